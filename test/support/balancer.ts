/**
 * Balancer specs and commands on loopback, shared by the live tests and the benchmark: the same
 * defaults the LoadBalancer component renders with, listeners on one loopback address, every
 * file under a directory the caller owns.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderHaproxy } from "../../components/balancer/render/haproxy";
import { renderNginx } from "../../components/balancer/render/nginx";
import type { BalancerBackend, BalancerRenderSpec } from "../../components/balancer/render/spec";

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
