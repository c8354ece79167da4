/**
 * `npm run bench`: requests/s and latency through each balancer config, measured side by side
 * in one run on loopback with wrk, against two nginx backends serving the demo app:
 *
 *   direct      wrk -> one backend (the ceiling)
 *   generated   the config ha-backend renders (renderNginx / renderHaproxy)
 *   expert      a hand-tuned config written for this comparison (upstream keepalive, no frills)
 *   stock       the daemon's out-of-the-box reverse proxy (no upstream keepalive in nginx)
 *
 * Prints ratios; asserts nothing (this is a measurement, not a test). 2 cores: wrk, the balancer
 * and the backends share them, so absolute figures are low and ratios are what to compare.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderDemoApp } from "../components/cluster/render/demo-app";
import { renderHaproxy } from "../components/balancer/render/haproxy";
import { renderNginx } from "../components/balancer/render/nginx";
import type { BalancerRenderSpec } from "../components/balancer/render/spec";
import { loopbackSpec } from "../test/support/balancer";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const LB = "127.0.0.80";
const LB_PORT = 18080;
const BACKENDS = [
  { name: "app-0", host: "127.0.0.81", port: 18081, weight: 1, backup: false },
  { name: "app-1", host: "127.0.0.82", port: 18081, weight: 1, backup: false },
];
const children: ChildProcess[] = [];

function sbin(name: string): string {
  for (const dir of ["/usr/sbin", "/usr/bin", "/sbin"]) {
    if (spawnSync("test", ["-x", join(dir, name)]).status === 0) return join(dir, name);
  }
  throw new Error(`${name} not installed: run scripts/install-test-deps.sh`);
}

function start(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: "ignore", detached: true });
  children.push(c);
  return c;
}

function stop(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(resolve, 5_000);
    c.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    try {
      process.kill(-(c.pid as number), "SIGKILL");
    } catch {
      resolve();
    }
  });
}

function ok(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/", timeout: 1_000, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function ready(host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await ok(host, port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${host}:${port} did not come up`);
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function ms(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
}

function wrk(host: string, port: number): Result {
  const r = spawnSync(
    "wrk",
    ["-t2", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", `http://${host}:${port}/`],
    {
      encoding: "utf8",
      timeout: (SECONDS + 30) * 1000,
    },
  );
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  // wrk prints "Non-2xx" and "Socket errors" lines only when they are non-zero.
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    rps,
    p50: ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ""),
    p99: ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ""),
    errors: non2xx + socketErrors,
  };
}

/** The generated config as the LoadBalancer component renders it, on loopback. */
function baseSpec(dir: string): BalancerRenderSpec {
  return loopbackSpec(LB, dir, BACKENDS, { httpPort: LB_PORT });
}

const upstreams = BACKENDS.map((b) => `        server ${b.host}:${b.port};`).join("\n");

/** nginx as a reverse proxy out of the box: HTTP/1.0 to upstreams, a new connection per request. */
const nginxStock = (dir: string) => `pid ${dir}/nginx.pid;
events {}
http {
    access_log off;
    upstream app {
${upstreams}
    }
    server {
        listen ${LB}:${LB_PORT};
        location / { proxy_pass http://app; }
    }
}
`;

/** What an experienced operator writes by hand for raw throughput. */
const nginxExpert = (dir: string) => `pid ${dir}/nginx.pid;
worker_processes auto;
events { worker_connections 8192; }
http {
    access_log off;
    upstream app {
${upstreams}
        keepalive 64;
    }
    server {
        listen ${LB}:${LB_PORT};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;

const haproxyServers = BACKENDS.map((b) => `    server ${b.name} ${b.host}:${b.port}`).join("\n");
const haproxyStock = () => `defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend public
    bind ${LB}:${LB_PORT}
    default_backend app
backend app
${haproxyServers}
`;
const haproxyExpert = () => `global
    tune.bufsize 16384
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend public
    bind ${LB}:${LB_PORT}
    default_backend app
backend app
    balance roundrobin
${BACKENDS.map((b) => `    server ${b.name} ${b.host}:${b.port} check inter 2s`).join("\n")}
`;

async function measure(
  engine: "nginx" | "haproxy",
  label: string,
  config: string,
  dir: string,
): Promise<Result> {
  const file = join(dir, `${engine}-${label}.conf`);
  writeFileSync(file, config);
  const proc =
    engine === "nginx"
      ? start(sbin("nginx"), ["-c", file, "-p", dir, "-e", join(dir, "error.log"), "-g", "daemon off;"])
      : start(sbin("haproxy"), ["-f", file, "-db"]);
  await ready(LB, LB_PORT);
  const r = wrk(LB, LB_PORT);
  await stop(proc);
  return r;
}

function row(label: string, r: Result, direct: Result, stock?: Result, expert?: Result): string {
  const ratio = (a: number, b?: number) => (b ? (a / b).toFixed(2) : "  - ");
  return [
    label.padEnd(22),
    r.rps.toFixed(0).padStart(8),
    r.p50.toFixed(2).padStart(8),
    r.p99.toFixed(2).padStart(8),
    String(r.errors).padStart(7),
    ratio(r.rps, direct.rps).padStart(10),
    ratio(r.rps, stock?.rps).padStart(9),
    ratio(r.rps, expert?.rps).padStart(10),
  ].join(" ");
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "ha-backend-bench-"));
  mkdirSync(join(dir, "logs"));
  for (const b of BACKENDS) {
    const bdir = join(dir, b.name);
    mkdirSync(bdir);
    writeFileSync(
      join(bdir, "nginx.conf"),
      renderDemoApp({
        port: b.port,
        healthPath: "/healthz",
        service: "bench",
        listenAddress: b.host,
        tmpDir: bdir,
      }),
    );
    start(sbin("nginx"), [
      "-c",
      join(bdir, "nginx.conf"),
      "-p",
      bdir,
      "-e",
      join(bdir, "error.log"),
      "-g",
      "daemon off;",
    ]);
  }
  for (const b of BACKENDS) await ready(b.host, b.port);

  console.log(`wrk -t2 -c${CONNECTIONS} -d${SECONDS}s on loopback, ${new Date().toISOString()}`);
  const direct = wrk(BACKENDS[0].host, BACKENDS[0].port);
  const header = `${"config".padEnd(22)} ${"req/s".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"errors".padStart(7)} ${"vs direct".padStart(10)} ${"vs stock".padStart(9)} ${"vs expert".padStart(10)}`;
  console.log(header);
  console.log(row("direct to one backend", direct, direct));
  for (const engine of ["nginx", "haproxy"] as const) {
    const stock = await measure(engine, "stock", engine === "nginx" ? nginxStock(dir) : haproxyStock(), dir);
    const expert = await measure(
      engine,
      "expert",
      engine === "nginx" ? nginxExpert(dir) : haproxyExpert(),
      dir,
    );
    const spec = baseSpec(dir);
    const generated = await measure(
      engine,
      "generated",
      engine === "nginx" ? renderNginx(spec) : renderHaproxy(spec),
      dir,
    );
    console.log(row(`${engine} stock`, stock, direct, stock, expert));
    console.log(row(`${engine} expert`, expert, direct, stock, expert));
    console.log(row(`${engine} generated`, generated, direct, stock, expert));
  }
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => Promise.all(children.map(stop)));
