import type { Connection } from "mysql2/promise";
import { ProcessGroup, tempDir, waitFor } from "../support/daemons";
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
 * GTID replication with semi-synchronous AFTER_SYNC, from the generated files: a primary and two
 * replicas of Debian's MariaDB 10.11, attached by the generated replica SQL, behind the generated
 * router in the real HAProxy.
 */
const NET = 110;
const creds = testCredentials("blog");

describe("MariaDB GTID replication with semi-sync behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("mysql-repl");
  const nodes = [0, 1, 2].map((i) => new MariaNode(`blog-db-${i}`, `127.0.0.${NET + 1 + i}`, 3306, dir));
  const router = { host: `127.0.0.${NET}`, rw: 13306, ro: 13307, stats: 18407 };
  const spec = testSpec("blog", nodes, { semiSync: true });
  const files = renderTestFiles(spec, creds, dir);
  const app = (port: number, host = router.host) =>
    connect(host, port, creds.appUser, creds.appPassword, creds.appDatabase);

  beforeAll(async () => {
    for (const n of nodes) {
      n.prepare(files, false);
      n.install();
      n.start(procs);
    }
    // The start script picked each member's bootstrap by its ordinal: replicas attach themselves.
    for (const [i, n] of nodes.entries()) {
      await n.waitUp();
      expect(n.applyInitdb()).toEqual(
        i === 0 ? ["10-ha-backend-init.sql"] : ["10-ha-backend-init.sql", "20-ha-backend-replica.sql"],
      );
    }
    await waitFor(
      "semi-sync replicas connected",
      async () => nodes[0].status("Rpl_semi_sync_master_clients") === "2",
      {
        attempts: 200,
        intervalMs: 100,
      },
    );
    await startRouter(procs, dir, "replication", nodes, router);
    // Writes reach only the primary; reads every member (the primary as a backup).
    const expected: ["rw" | "ro", string][] = [
      ["rw", nodes[0].name],
      ...nodes.map((n): ["ro", string] => ["ro", n.name]),
    ];
    await waitFor(
      "router sees every member",
      async () =>
        (await Promise.all(expected.map(([l, n]) => routerState(router, l, n)))).every((st) => st === "UP"),
      { attempts: 100, intervalMs: 100 },
    );
  }, 180_000);

  afterAll(() => procs.stopAll());

  it("replicates a write through the rw port to the ro port, and measures the lag", async () => {
    const rw = await app(router.rw);
    const ro = await app(router.ro);
    await rw.query("CREATE TABLE posts (id BIGINT PRIMARY KEY, title VARCHAR(64))");
    const lags: number[] = [];
    for (let id = 1; id <= 20; id++) {
      const t0 = Date.now();
      await rw.query("INSERT INTO posts VALUES (?, 'hello')", [id]);
      await waitFor(
        `post ${id} on a replica`,
        async () => {
          const [rows] = await ro.query("SELECT id FROM posts WHERE id = ?", [id]);
          return (rows as unknown[]).length === 1;
        },
        { attempts: 200, intervalMs: 5 },
      );
      lags.push(Date.now() - t0);
    }
    const [[served]] = (await ro.query("SELECT @@hostname AS h, @@server_id AS id")) as unknown as [
      [{ id: number }],
    ];
    lags.sort((a, b) => a - b);
    console.log(
      `replication: write-to-visible-on-replica lag over 20 writes: median ${lags[10]} ms, max ${lags[19]} ms`,
    );
    expect(served.id).toBeGreaterThan(1); // the ro port reached a replica (server ids 2, 3)
    await rw.end();
    await ro.end();
  });

  it("has replicas that refuse writes from the application", async () => {
    const replica = await app(3306, nodes[1].host);
    await expect(replica.query("INSERT INTO posts VALUES (999, 'nope')")).rejects.toThrow(/read-only/);
    await replica.end();
    expect(nodes[0].status("Rpl_semi_sync_master_status")).toBe("ON");
  });

  it("with semi-sync AFTER_SYNC, every acknowledged write is on a replica when the primary dies", async () => {
    const rw: Connection = await app(router.rw);
    const acked: number[] = [];
    const started = Date.now();
    let failure = "";
    // Bounded: 2000 ids or 30 s; the primary is killed with -9 after 200 acknowledged writes.
    for (let id = 1000; id < 3000 && Date.now() - started < 30_000; id++) {
      if (acked.length === 200) void procs.kill(nodes[0].process!, "SIGKILL");
      try {
        await rw.query("INSERT INTO posts VALUES (?, 'semi-sync')", [id]);
        acked.push(id);
      } catch (e) {
        failure = (e as Error).message;
        break;
      }
    }
    rw.destroy();
    // Replicas have every acknowledged event in their relay logs; wait (bounded) until applied.
    const present = (n: MariaNode) =>
      new Set(n.sql("SELECT id FROM blog.posts WHERE id >= 1000").split("\n").filter(Boolean).map(Number));
    await waitFor(
      "replicas applied their relay logs",
      async () => nodes.slice(1).some((n) => acked.every((id) => present(n).has(id))),
      {
        attempts: 100,
        intervalMs: 100,
      },
    ).catch(() => undefined);
    const lost = acked.filter((id) => !nodes.slice(1).some((n) => present(n).has(id)));
    console.log(
      `semi-sync: ${acked.length} writes acknowledged before the primary died (${failure}); lost on both replicas: ${lost.length}`,
    );
    expect(acked.length).toBeGreaterThanOrEqual(200);
    expect(lost).toEqual([]);
  });
});
