import { mkdirSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import type { SecureVersion } from "node:tls";
import { balancerCommand, FAST_CHECKS, loopbackSpec } from "../support/balancer";
import { binary, httpGet, ProcessGroup, selfSignedCert, tempDir, waitFor } from "../support/daemons";

const BACKEND = join(__dirname, "..", "support", "backend-server.js");

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpsGet(
  host: string,
  port: number,
  path: string,
  // `from` picks the client's loopback address: rate limits are per client IP.
  opts: { maxVersion?: SecureVersion; cookie?: string; from?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host,
        port,
        path,
        rejectUnauthorized: false, // a throwaway self-signed certificate
        maxVersion: opts.maxVersion,
        localAddress: opts.from,
        minVersion: "TLSv1",
        headers: opts.cookie ? { cookie: opts.cookie } : {},
        timeout: 3_000,
        agent: false,
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end();
  });
}

/**
 * TLS termination, redirect, HSTS, security headers, per-client rate limit, sticky sessions and
 * the internal stats endpoint, each in the real daemon on loopback.
 */
describe.each([
  ["nginx", 60],
  ["haproxy", 70],
] as const)("%s balancer features (live)", (engine, net) => {
  const lb = `127.0.0.${net}`;
  const procs = new ProcessGroup();
  const dir = tempDir(`lb-features-${engine}`);

  beforeAll(async () => {
    mkdirSync(join(dir, "logs"), { recursive: true });
    const apps = [0, 1].map((i) => ({
      name: `app-${i}`,
      host: `127.0.0.${net + 1 + i}`,
      port: 18081,
      weight: 1,
      backup: false,
    }));
    for (const a of apps) {
      procs.start(process.execPath, [BACKEND, a.name, a.host, String(a.port), join(dir, "posts.log")]);
      await waitFor(a.name, async () => (await httpGet(a.host, a.port, "/healthz")).status === 200);
    }
    const spec = loopbackSpec(lb, dir, apps, {
      ...FAST_CHECKS,
      health: { path: "/healthz", intervalMs: 500, timeoutMs: 400, fall: 2, rise: 1 },
      httpsPort: 18443,
      keepaliveConnections: 8,
      tls: { certPath: selfSignedCert(dir), hstsMaxAgeS: 31_536_000, redirectPort: 18443 },
      rateLimit: { perSecond: 20, burst: 10 },
      sticky: { cookie: "SRV" },
    });
    procs.start(...balancerCommand(engine, spec, dir, binary(engine)));
    await waitFor(`${engine}`, async () => (await httpsGet(lb, 18443, "/")).status === 200);
  });

  afterAll(() => procs.stopAll());

  it("redirects plain HTTP to HTTPS on the port clients use", async () => {
    const r = await httpGet(lb, 18080, "/cart?item=7");
    expect(r.status).toBe(301);
    expect(r.headers.location).toMatch(
      new RegExp(`^https://${lb.replace(/\./g, "\\.")}:18443/cart\\?item=7$`),
    );
  });

  it("serves HTTPS with HSTS and security headers, and refuses TLS 1.1", async () => {
    const r = await httpsGet(lb, 18443, "/");
    expect(r.status).toBe(200);
    expect(r.headers["strict-transport-security"]).toBe("max-age=31536000");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["x-frame-options"]).toBe("SAMEORIGIN");
    await expect(httpsGet(lb, 18443, "/", { maxVersion: "TLSv1.1" })).rejects.toThrow();
  });

  it("keeps a client on one server with the sticky cookie", async () => {
    // nginx hashes the cookie's value; HAProxy sets the cookie to the server's name.
    const first = await httpsGet(lb, 18443, "/");
    const setCookie = ([] as string[]).concat(first.headers["set-cookie"] ?? []);
    const cookie = engine === "haproxy" ? (setCookie[0] ?? "").split(";")[0] : "SRV=client-42";
    expect(cookie).toMatch(/^SRV=/);
    const servers = new Set<string>();
    for (let i = 0; i < 10; i++)
      servers.add(
        JSON.parse((await httpsGet(lb, 18443, "/", { cookie, from: `127.0.1.${net}` })).body).server,
      );
    expect(servers.size).toBe(1);
  });

  it("answers 429 to a client over its rate, and serves it again later", async () => {
    const greedy = `127.0.2.${net}`;
    const statuses = await Promise.all(
      Array.from({ length: 60 }, () => httpsGet(lb, 18443, "/", { from: greedy }).then((r) => r.status)),
    );
    const limited = statuses.filter((s) => s === 429).length;
    console.log(
      `${engine}: 60 requests at once -> ${statuses.filter((s) => s === 200).length} served, ${limited} refused with 429`,
    );
    expect(limited).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    // The limit is per client: another address is served at the same moment.
    expect((await httpsGet(lb, 18443, "/", { from: `127.0.3.${net}` })).status).toBe(200);
    await waitFor(
      "rate limit to lift",
      async () => (await httpsGet(lb, 18443, "/", { from: greedy })).status === 200,
      {
        attempts: 40,
        intervalMs: 100,
      },
    );
  });

  it("exposes stats on the internal port only", async () => {
    const path = engine === "nginx" ? "/nginx_status" : "/metrics";
    const r = await httpGet(lb, 18404, path);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(engine === "nginx" ? /^Active connections: \d+/ : /haproxy_process_/);
    // The public listener does not serve it.
    expect((await httpsGet(lb, 18443, path)).body).not.toMatch(/Active connections|haproxy_process_/);
  });
});
