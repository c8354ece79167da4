/**
 * Balancer specs and commands on loopback, shared by the live tests and the benchmark: the same
 * defaults the LoadBalancer component renders with, listeners on one loopback address, every
 * file under a directory the caller owns.
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderHaproxy } from "../../components/balancer/render/haproxy";
import { renderNginx } from "../../components/balancer/render/nginx";
import type { BalancerBackend, BalancerRenderSpec } from "../../components/balancer/render/spec";
import { httpGet, type ProcessGroup, SLOW_MACHINE_FACTOR, waitFor, type WaitBound } from "./daemons";

export type Engine = "nginx" | "haproxy";

export function loopbackSpec(
  host: string,
  dir: string,
  backends: BalancerBackend[],
  patch: Partial<BalancerRenderSpec> = {},
): BalancerRenderSpec {
  return {
    listenAddress: host,
    statsAddress: host,
    httpPort: 18080,
    statsPort: 18404,
    algorithm: "round-robin",
    backends,
    discovery: [],
    health: { path: "/healthz", intervalMs: 2000, timeoutMs: 1000, fall: 3, rise: 2 },
    passive: { maxFails: 1, failTimeoutS: 4 },
    retries: 2,
    timeouts: { connectMs: 2000, clientMs: 30_000, serverMs: 30_000 },
    keepaliveConnections: 64,
    maxConnsPerServer: 0,
    securityHeaders: true,
    accessLog: false,
    errorLog: join(dir, "error.log"),
    tmpDir: dir,
    ...patch,
  };
}

/** Checks tight enough that a failure test sees a dead server marked down within about a second. */
export const FAST_CHECKS: Partial<BalancerRenderSpec> = {
  health: { path: "/healthz", intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 },
  passive: { maxFails: 1, failTimeoutS: 2 },
  timeouts: { connectMs: 1000, clientMs: 30_000, serverMs: 10_000 },
};

/** Writes the rendered config into `dir` and returns the command that runs it in the foreground. */
export function balancerCommand(
  engine: Engine,
  spec: BalancerRenderSpec,
  dir: string,
  sbin: string,
): [string, string[]] {
  if (engine === "nginx") {
    const conf = join(dir, "nginx.conf");
    writeFileSync(conf, renderNginx(spec));
    return [sbin, ["-c", conf, "-p", dir, "-e", spec.errorLog, "-g", "daemon off;"]];
  }
  const conf = join(dir, "haproxy.cfg");
  writeFileSync(conf, renderHaproxy(spec));
  return [sbin, ["-f", conf, "-db"]];
}

/** Start-up of one `backend-server.js` (a bare Node process): listening within a second here. */
export const BACKEND_START: WaitBound = {
  withinMs: 15_000,
  because: "backend-server.js start-up: no timer governs it; a cap for a loaded 2-core machine",
};

/** The app server the live tests put behind a balancer (see the file for what it answers). */
const BACKEND_SERVER = join(__dirname, "backend-server.js");

/** One app server: its name (what it answers with) and the loopback address it listens on. */
export interface LiveBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/**
 * Starts `backend-server.js` as `app` in `procs` (so the group's clean-up stops it, on failure
 * too) and waits until it answers /healthz, within {@link BACKEND_START}. Every POST it receives
 * is logged to `postLog`. `running`, where a test finds its app servers by name to kill them,
 * gets the process before the wait: a kill after a start that failed its wait still reaches it.
 */
export async function startBackend(
  procs: ProcessGroup,
  app: LiveBackend,
  postLog: string,
  running?: Map<string, ChildProcess>,
): Promise<ChildProcess> {
  const child = procs.start(process.execPath, [
    BACKEND_SERVER,
    app.name,
    app.host,
    String(app.port),
    postLog,
  ]);
  running?.set(app.name, child);
  await waitFor(
    app.name,
    async () => (await httpGet(app.host, app.port, "/healthz")).status === 200,
    BACKEND_START,
  );
  return child;
}

/** Start-up of nginx or HAProxy: listening within tens of milliseconds here. */
export const BALANCER_START: WaitBound = {
  withinMs: 15_000,
  because: "nginx/haproxy start-up: no timer governs it; a cap for a loaded 2-core machine",
};

/**
 * HAProxy's turn-around before it retries a failed connect on the same server: min(`timeout
 * connect`, 1 s) (configuration.txt, `retries`). It applies when no other running server can
 * take the retry: the last live server, or none.
 */
export function turnAroundMs(s: BalancerRenderSpec): number {
  return Math.min(s.timeouts.connectMs, 1000);
}

/**
 * The longest the balancer spends before a request reaches a live server: a connect timeout per
 * try (the first and `retries` more), and HAProxy's turn-around between them. A dead server on
 * loopback refuses at once, so this is far more than a failover takes here.
 */
export function connectPhaseMs(s: BalancerRenderSpec): number {
  return s.timeouts.connectMs * (s.retries + 1) + s.retries * turnAroundMs(s);
}

/**
 * The longest the balancer takes to answer a proxied request: the connect phase, then the
 * server timeout (nginx renders about this as `proxy_next_upstream_timeout`).
 */
function answerWithinMs(s: BalancerRenderSpec): number {
  return connectPhaseMs(s) + s.timeouts.serverMs;
}

/**
 * A client's timeout for a request through the balancer: what the balancer may take itself, plus
 * a cap for a loaded machine. Any failure a test sees is then the balancer's answer (a 5xx or a
 * closed connection), never the client giving up first.
 */
export function clientTimeoutMs(s: BalancerRenderSpec): number {
  return answerWithinMs(s) + 5_000;
}

/**
 * How long until the balancer stops choosing a server that died (a request that meets it
 * meanwhile is retried elsewhere). nginx: the first request that fails on it (`max_fails`) takes
 * it out, after at worst a connect timeout per try. HAProxy: the first refused connection
 * (`observe layer4 error-limit 1`) or else `fall` failed checks, `inter` apart after up to one
 * `inter` of phase, the last one waiting up to `timeout check`; then a request in flight may
 * still need its retries' turn-arounds.
 */
export function markedDownWithin(engine: Engine, s: BalancerRenderSpec): WaitBound {
  if (engine === "nginx") {
    const ms = s.timeouts.connectMs * (s.retries + 1);
    return {
      withinMs: SLOW_MACHINE_FACTOR * ms,
      because:
        `nginx max_fails=${s.passive.maxFails}: out after failing requests, each moved on by proxy_next_upstream ` +
        `within ${s.retries + 1} tries x connect ${s.timeouts.connectMs} ms = ${ms} ms; ${SLOW_MACHINE_FACTOR}x that`,
    };
  }
  const checksMs = (s.health.fall + 1) * s.health.intervalMs + s.health.timeoutMs;
  const ms = checksMs + s.retries * turnAroundMs(s);
  return {
    withinMs: SLOW_MACHINE_FACTOR * ms,
    because:
      `HAProxy observe layer4, else fall ${s.health.fall} checks: (fall + 1) x inter ${s.health.intervalMs} ms ` +
      `+ timeout check ${s.health.timeoutMs} ms, + ${s.retries} retries x turn-around ${turnAroundMs(s)} ms = ` +
      `${ms} ms; ${SLOW_MACHINE_FACTOR}x that`,
  };
}

/**
 * How long until the balancer sends requests again to a server that came back (or to one it
 * has just started with). nginx: a failed server is skipped for `fail_timeout` (counted in
 * whole seconds), then the next request that round-robin gives it is its test. HAProxy: `rise`
 * passing checks, `inter` apart after up to one `inter` of phase, each answered within `timeout
 * check` (HAProxy starts servers up, so at its own start-up this is an upper bound).
 */
export function backInRotationWithin(engine: Engine, s: BalancerRenderSpec): WaitBound {
  if (engine === "nginx") {
    // nginx compares whole seconds (`now - checked <= fail_timeout` with ngx_time()), so the
    // server stays out for fail_timeout and up to one second more.
    const ms = (s.passive.failTimeoutS + 1) * 1000;
    return {
      withinMs: SLOW_MACHINE_FACTOR * ms,
      because:
        `nginx fail_timeout=${s.passive.failTimeoutS}s + 1 s (whole-second clock), then round-robin's ` +
        `next request: ${ms} ms; ${SLOW_MACHINE_FACTOR}x that`,
    };
  }
  const ms = (s.health.rise + 1) * s.health.intervalMs + s.health.timeoutMs;
  return {
    withinMs: SLOW_MACHINE_FACTOR * ms,
    because:
      `HAProxy rise ${s.health.rise} checks: (rise + 1) x inter ${s.health.intervalMs} ms + timeout check ` +
      `${s.health.timeoutMs} ms = ${ms} ms; ${SLOW_MACHINE_FACTOR}x that`,
  };
}
