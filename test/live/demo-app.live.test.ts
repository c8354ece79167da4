import { mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { renderDemoApp } from "../../components/cluster/render/demo-app";
import { binary, httpGet, ProcessGroup, tempDir, waitFor } from "../support/daemons";

/** nginx answers every request from its config (no upstream): a cap for a loaded machine. */
const REPLY_MS = 10_000;

/**
 * The default app image's generated config, served by the real nginx: two members on their own
 * loopback addresses, as two containers would run it.
 */
describe("demo app in the real nginx", () => {
  const procs = new ProcessGroup();
  const members = [
    { host: "127.0.0.21", port: 18081 },
    { host: "127.0.0.22", port: 18081 },
  ];

  beforeAll(async () => {
    for (const m of members) {
      const dir = tempDir("demo-app-live");
      mkdirSync(join(dir, "logs"));
      const conf = join(dir, "nginx.conf");
      writeFileSync(
        conf,
        renderDemoApp({
          port: m.port,
          healthPath: "/healthz",
          service: "shop",
          listenAddress: m.host,
          tmpDir: dir,
        }),
      );
      procs.start(binary("nginx"), [
        "-c",
        conf,
        "-p",
        dir,
        "-e",
        join(dir, "logs", "error.log"),
        "-g",
        "daemon off;",
      ]);
    }
    for (const m of members) {
      const ms = await waitFor(
        `nginx on ${m.host}`,
        async () => (await httpGet(m.host, m.port, "/healthz", REPLY_MS)).status === 200,
        {
          withinMs: 15_000,
          because: "nginx start-up: no timer governs it; a cap for a loaded 2-core machine",
        },
      );
      console.log(`demo app on ${m.host}:${m.port} ready after ${ms} ms`);
    }
  });

  afterAll(() => procs.stopAll());

  it("answers the health path with 200 ok", async () => {
    for (const m of members) {
      const r = await httpGet(m.host, m.port, "/healthz", REPLY_MS);
      expect([r.status, r.body]).toEqual([200, "ok\n"]);
    }
  });

  it("names the member that served each request, in JSON and in a header", async () => {
    const r = await httpGet(members[1].host, members[1].port, "/cart?id=7", REPLY_MS);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(r.body)).toEqual({
      service: "shop",
      served_by: hostname(),
      method: "GET",
      uri: "/cart?id=7",
    });
    expect(r.headers["x-served-by"]).toBe(hostname());
  });
});
