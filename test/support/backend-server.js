#!/usr/bin/env node
// A tiny app server for balancer tests, run as its own process so a test can kill -9 it.
//   node backend-server.js NAME HOST PORT LOGFILE
// GET /healthz -> 200 ok; GET /* -> 200 {"server":NAME}; POST -> logs the request id to LOGFILE
// on arrival, then never answers: the test kills the server that holds it, however long it takes
// to notice (an answer after a fixed delay would race the test's kill on a slow machine). A POST
// that a balancer replayed shows up twice across the backends' logs.
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
    // Held open: only the kill (or the balancer's own server timeout) ends this request.
    req.resume();
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ server: name }) + "\n");
});
server.keepAliveTimeout = 65000;
server.listen(Number(port), host, () => process.stdout.write(`listening ${name} ${host}:${port}\n`));
