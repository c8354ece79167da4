#!/usr/bin/env node
// A tiny app server for balancer tests, run as its own process so a test can kill -9 it.
//   node backend-server.js NAME HOST PORT LOGFILE
// GET /healthz -> 200 ok; GET /* -> 200 {"server":NAME}; POST /slow -> logs the request id to
// LOGFILE on arrival (before answering), then answers after 1.5 s. A POST that a balancer
// replayed shows up twice across the backends' logs.
"use strict";
const http = require("node:http");
const fs = require("node:fs");

const [name, host, port, logFile] = process.argv.slice(2);
if (!host || !host.startsWith("127.")) throw new Error("backend-server listens on loopback only");

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("ok\n");
  }
  if (req.method === "POST") {
    const id = req.headers["x-request-id"] || "none";
    fs.appendFileSync(logFile, `${id} ${name}\n`);
    req.resume();
    return setTimeout(() => {
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ server: name, id }) + "\n");
    }, 1500);
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ server: name }) + "\n");
});
server.keepAliveTimeout = 65000;
server.listen(Number(port), host, () => process.stdout.write(`listening ${name} ${host}:${port}\n`));
