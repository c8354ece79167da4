import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { GALERA_TUNED_TIMINGS } from "../../components/database/mysql-cluster";
import { GALERA_DEFAULT_TIMINGS } from "../../components/database/render/mysql";
import { httpGet, ProcessGroup, tempDir, waitFor } from "../support/daemons";
import {
  connect,
  MariaNode,
  renderTestFiles,
  routerState,
  startRouter,
  testCredentials,
  testSpec,
} from "../support/mariadb";

/**
 * Three MariaDB 10.11 + galera-4 nodes from the generated files, the generated router in the
 * real HAProxy in front, bounded write load through the read-write port, kill -9 of the writer.
 */
const NET = 100;
const creds = testCredentials("shop");
// The component's tuned failure detection (a dead node is dropped within about 3 s), or, with
// HA_BACKEND_GALERA_DEFAULTS=1, Galera's own defaults for a side-by-side figure.
const TIMINGS =
  process.env.HA_BACKEND_GALERA_DEFAULTS === "1" ? GALERA_DEFAULT_TIMINGS : GALERA_TUNED_TIMINGS;

describe("Galera cluster behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("galera");
  const nodes = [0, 1, 2].map((i) => new MariaNode(`shop-db-${i}`, `127.0.0.${NET + 1 + i}`, 3306, dir));
  const router = { host: `127.0.0.${NET}`, rw: 13306, ro: 13307, stats: 18406 };
  const spec = testSpec("shop", nodes, { mode: "galera", galera: { ...TIMINGS, sstMethod: "mariabackup" } });
  const files = renderTestFiles(spec, creds, dir);

  async function synced(node: MariaNode): Promise<number> {
    return waitFor(`${node.name} Synced`, async () => node.status("wsrep_local_state") === "4", {
      attempts: 600,
      intervalMs: 100,
    });
  }

  beforeAll(async () => {
    for (const n of nodes) n.prepare(files, true);
    // First node: an empty cluster, initialised like the image does, then bootstrapped.
    nodes[0].install();
    nodes[0].start(procs);
    await nodes[0].waitUp();
    expect(nodes[0].applyInitdb()).toEqual(["10-ha-backend-init.sql"]);
    await synced(nodes[0]);
    // The others join and get their data by state transfer (mariabackup).
    for (const n of nodes.slice(1)) {
      n.install();
      n.start(procs);
      const ms = await synced(n).catch(async (e) => {
        throw new Error(
          `${(e as Error).message}\n${readFileSync(join(n.dir, "error.log"), "utf8").slice(-3000)}`,
        );
      });
      console.log(`${n.name} joined and Synced after ${ms} ms`);
    }
    await startRouter(procs, dir, "galera", nodes, router);
  }, 300_000);

  afterAll(() => procs.stopAll());

  it("marks every Synced node up in the router, through the real MySQL protocol check", async () => {
    await waitFor(
      "all nodes up",
      async () => {
        const csv = (await httpGet(router.host, router.stats, "/stats;csv")).body;
        return nodes.every((n) =>
          csv
            .split("\n")
            .filter((l) => l.startsWith(`ro,${n.name},`))
            .some((l) => l.includes(",UP,")),
        );
      },
      { attempts: 100, intervalMs: 100 },
    );
    const app = await connect(router.host, router.rw, creds.appUser, creds.appPassword, creds.appDatabase);
    await app.query("CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, note VARCHAR(64))");
    await app.end();
  });

  it("takes a node that is not Synced out of rotation, and back when it is", async () => {
    const state = (name: string) => routerState(router, "ro", name);
    // A desynced node still accepts logins; only the wsrep_local_state check can tell.
    nodes[2].sql("SET GLOBAL wsrep_desync = ON");
    await waitFor("desynced node down", async () => (await state(nodes[2].name)) === "DOWN", {
      attempts: 100,
      intervalMs: 100,
    });
    nodes[2].sql("SET GLOBAL wsrep_desync = OFF");
    await waitFor("resynced node up", async () => (await state(nodes[2].name)) === "UP", {
      attempts: 100,
      intervalMs: 100,
    });
  });

  it("keeps taking writes when the writer is killed with -9, and loses none it acknowledged", async () => {
    const acked: number[] = [];
    const errors: string[] = [];
    let conn: Connection | undefined;
    let killedAt = 0;
    let longestPause = 0;
    let lastAck = Date.now();
    const started = Date.now();
    // Bounded: at most 4000 writes or 40 s; the writer is killed after 300 acknowledged writes.
    for (let id = 1; id <= 4000 && Date.now() - started < 40_000; id++) {
      if (acked.length === 300 && killedAt === 0) {
        killedAt = Date.now();
        await procs.kill(nodes[0].process!, "SIGKILL");
      }
      try {
        conn ??= await connect(router.host, router.rw, creds.appUser, creds.appPassword, creds.appDatabase);
        await conn.query("INSERT INTO orders (id, note) VALUES (?, 'load')", [id]);
        const now = Date.now();
        longestPause = Math.max(longestPause, now - lastAck);
        lastAck = now;
        acked.push(id);
        if (killedAt !== 0 && acked.length >= 1300) break;
      } catch (e) {
        errors.push((e as Error).message);
        await conn?.destroy();
        conn = undefined;
        await new Promise((r) => setTimeout(r, 50)); // back off before reconnecting (bounded by the loop)
      }
    }
    await conn?.end();
    console.log(
      `galera (${TIMINGS === GALERA_TUNED_TIMINGS ? "tuned" : "Galera's default"} failure detection): ${acked.length} writes acknowledged, ${errors.length} failed attempts while the writer died; ` +
        `longest pause between acknowledged writes ${longestPause} ms`,
    );
    expect(killedAt).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThanOrEqual(1300);
    // Every acknowledged write is on both survivors.
    for (const n of nodes.slice(1)) {
      const ids = new Set(n.sql("SELECT id FROM shop.orders").split("\n").map(Number));
      const lost = acked.filter((id) => !ids.has(id));
      expect([n.name, lost]).toEqual([n.name, []]);
    }
  });

  it("lets the killed node rejoin and catch up", async () => {
    nodes[0].start(procs);
    const ms = await synced(nodes[0]);
    const counts = nodes.map((n) => n.sql("SELECT COUNT(*) FROM shop.orders"));
    console.log(
      `galera: ${nodes[0].name} rejoined and Synced ${ms} ms after restart; row counts ${counts.join(" / ")}`,
    );
    expect(new Set(counts).size).toBe(1);
  });

  it("recovers by itself when every node is killed and restarted (pc.recovery)", async () => {
    const before = nodes[1].sql("SELECT COUNT(*) FROM shop.orders");
    for (const n of nodes) await procs.kill(n.process!, "SIGKILL");
    const t0 = Date.now();
    // No node bootstraps by hand: each start script sees its grastate.dat and just starts.
    for (const n of nodes) n.start(procs);
    await Promise.all(nodes.map((n) => synced(n)));
    const counts = nodes.map((n) => n.sql("SELECT COUNT(*) FROM shop.orders"));
    console.log(
      `galera: full restart after kill -9 of all nodes -> primary component back in ${Date.now() - t0} ms; rows ${counts.join(" / ")}`,
    );
    expect(counts).toEqual([before, before, before]);
    // The router marks the nodes up again after `rise` checks; until then a connection is refused.
    await waitFor(
      "a write through the router",
      async () => {
        const app = await connect(
          router.host,
          router.rw,
          creds.appUser,
          creds.appPassword,
          creds.appDatabase,
        );
        try {
          await app.query("INSERT INTO orders (id, note) VALUES (999999, 'after full restart')");
          return true;
        } finally {
          await app.end();
        }
      },
      { attempts: 50, intervalMs: 200 },
    );
  });
});
