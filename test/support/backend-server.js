#!/usr/bin/env node
// A tiny app server for balancer tests, run as its own process so a test can kill -9 it.
//   node backend-server.js NAME HOST PORT LOGFILE [CONTROL_PORT]
// GET /healthz -> 200 ok; GET /* -> 200 {"server":NAME}; POST -> logs the request id to LOGFILE
// on arrival, then never answers: the test kills the server that holds it, however long it takes
// to notice (an answer after a fixed delay would race the test's kill on a slow machine). A POST
// that a balancer replayed shows up twice across the backends' logs.
//
// With CONTROL_PORT, a second listener on HOST:CONTROL_PORT switches the app port's behaviour
// (`GET /mode/<mode>` answers the mode once it is in force):
//   ok      - as above (the default);
//   503     - every request, the health path too, gets 503 (an app that is up but cannot serve);
//   refuse  - the app port stops listening and drops its connections (connections are refused),
//             until `ok` listens again on the same address.
// A hang is SIGSTOP/SIGCONT of the process and a crash is SIGKILL: the test does those itself.
"use strict";
const http = require("node:http");
const fs = require("node:fs");

const [name, host, port, logFile, controlPort] = process.argv.slice(2);
if (!host || !host.startsWith("127.")) throw new Error("backend-server listens on loopback only");

let mode = "ok";

const server = http.createServer((req, res) => {
  if (mode === "503") {
    res.writeHead(503, { "content-type": "application/json" });
    return res.end(JSON.stringify({ error: "unavailable", server: name }) + "\n");
  }
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

function listen(done) {
  server.listen(Number(port), host, () => {
    process.stdout.write(`listening ${name} ${host}:${port}\n`);
    done();
  });
}

/** Switches the mode; calls `done` once it is in force (the port closed, or listening again). */
function setMode(next, done) {
  const was = mode;
  mode = next;
  if (next === "refuse" && was !== "refuse") {
    server.close(() => done());
    // Idle and busy keep-alive connections alike: a refused server holds none.
    server.closeAllConnections();
  } else if (next !== "refuse" && was === "refuse") {
    listen(done);
  } else {
    done();
  }
}

listen(() => {});

if (controlPort) {
  http
    .createServer((req, res) => {
      const m = /^\/mode\/(ok|503|refuse)$/.exec(req.url || "");
      if (m === null) {
        res.writeHead(404);
        return res.end();
      }
      setMode(m[1], () => {
        process.stdout.write(`mode ${name} ${m[1]}\n`);
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`${m[1]}\n`);
      });
    })
    .listen(Number(controlPort), host);
}
