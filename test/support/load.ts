/**
 * A bounded HTTP load generator for live tests: at most `maxRequests` requests and `maxMs`
 * milliseconds, `concurrency` keep-alive connections, loopback targets only. `maxMs` is a cap on
 * a run that stalls, not a measure: a test that needs all `maxRequests` asserts `sent`, and its
 * own timeout allows for `maxMs` plus one request's `requestTimeoutMs` (the last requests in flight).
 */
import { Agent, request } from "node:http";

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** Failure reasons (status codes or error messages) with counts. */
  failures: Map<string, number>;
  /** Successful responses per server name (from the JSON body). */
  servers: Map<string, number>;
  elapsedMs: number;
  /** Longest single request. */
  maxLatencyMs: number;
}

export interface LoadOptions {
  host: string;
  port: number;
  path?: string;
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  /** Called once when this many requests have completed (fault injection point). */
  at?: { completed: number; run: () => Promise<void> | void };
  /** Per request; the caller derives it from what it talks to (see `clientTimeoutMs`). */
  requestTimeoutMs: number;
}

export function get(
  agent: Agent,
  host: string,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent, timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end();
  });
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (!o.host.startsWith("127.")) throw new Error(`load goes to loopback only, not ${o.host}`);
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const r: LoadResult = {
    sent: 0,
    ok: 0,
    failed: 0,
    failures: new Map(),
    servers: new Map(),
    elapsedMs: 0,
    maxLatencyMs: 0,
  };
  const started = Date.now();
  let completed = 0;
  let hook: Promise<void> | undefined;
  const fail = (why: string) => {
    r.failed++;
    r.failures.set(why, (r.failures.get(why) ?? 0) + 1);
  };
  const worker = async () => {
    while (r.sent < o.maxRequests && Date.now() - started < o.maxMs) {
      r.sent++;
      const t0 = Date.now();
      try {
        const res = await get(agent, o.host, o.port, o.path ?? "/", o.requestTimeoutMs);
        if (res.status === 200) {
          r.ok++;
          const server = (JSON.parse(res.body) as { server?: string }).server ?? "?";
          r.servers.set(server, (r.servers.get(server) ?? 0) + 1);
        } else fail(`HTTP ${res.status}`);
      } catch (e) {
        fail((e as Error).message);
      }
      r.maxLatencyMs = Math.max(r.maxLatencyMs, Date.now() - t0);
      completed++;
      if (o.at && completed === o.at.completed) hook = Promise.resolve(o.at.run());
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  await hook;
  agent.destroy();
  r.elapsedMs = Date.now() - started;
  return r;
}

export function describeLoad(r: LoadResult): string {
  const servers = [...r.servers.entries()]
    .sort()
    .map(([s, n]) => `${s}=${n}`)
    .join(" ");
  const failures = [...r.failures.entries()].map(([w, n]) => `${w}×${n}`).join(", ");
  return (
    `${r.sent} requests in ${r.elapsedMs} ms (${Math.round((r.ok * 1000) / Math.max(1, r.elapsedMs))} ok/s), ` +
    `${r.failed} failed${failures ? ` (${failures})` : ""}, longest ${r.maxLatencyMs} ms; served by ${servers}`
  );
}
