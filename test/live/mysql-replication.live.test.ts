import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { renderReplicaSql } from "../../components/database/render/mysql";
import { KILL_MS, ProcessGroup, tempDir, waitFor, type WaitBound } from "../support/daemons";
import {
  CONNECT_TIMEOUT_MS,
  connect,
  connectRetryMs,
  HAPROXY_START_UP,
  INSTALL_DB_TIMEOUT_MS,
  MARIADBD_START_UP,
  MariaNode,
  renderTestFiles,
  routerNotices,
  routerState,
  SQL_TIMEOUT_MS,
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

/**
 * A replica applying an event its relay log already holds (semi-sync AFTER_SYNC: a commit returns
 * once one replica has it): a few ms here; no timer governs the applier.
 */
const APPLIED: WaitBound = {
  withinMs: 5_000,
  intervalMs: 5,
  because:
    "the replica's SQL thread applying a received event: no timer governs it; a cap for a loaded 2-core machine",
};

/** Every acknowledged write of the kill test applied from the relay logs: a few ms here. */
const RELAY_LOGS_APPLIED: WaitBound = {
  withinMs: 20_000,
  because:
    "the replicas' SQL threads applying the events their relay logs hold: no timer governs it; a cap for a loaded 2-core machine",
};

/**
 * A semi-sync commit (binlog and redo flushed, a replica's acknowledgement) takes a few ms here:
 * no timer governs it (the disk does); the write phase before the kill is capped at this per
 * write, 30 s for the 200, far above a loaded machine's slow fsync.
 */
const WRITE_CAP_MS = 150;
/** Writes acknowledged before the primary is killed. */
const WRITES_BEFORE_KILL = 200;

describe("MariaDB GTID replication with semi-sync behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("mysql-repl");
  const nodes = [0, 1, 2].map((i) => new MariaNode(`blog-db-${i}`, `127.0.0.${NET + 1 + i}`, 3306, dir));
  const router = { host: `127.0.0.${NET}`, rw: 13306, ro: 13307, stats: 18407 };
  const spec = testSpec("blog", nodes, { semiSync: true });
  const files = renderTestFiles(spec, creds, dir);
  /**
   * A replica's IO thread connects when START SLAVE runs and, failing that, retries every
   * MASTER_CONNECT_RETRY; a semi-sync replica counts as a client once connected.
   */
  const retryMs = connectRetryMs(renderReplicaSql(spec, creds));
  const SEMI_SYNC_CLIENTS: WaitBound = {
    withinMs: 5 * retryMs,
    because: `replica IO threads connect at START SLAVE, retrying every MASTER_CONNECT_RETRY (${retryMs} ms): 5 attempts`,
  };
  /**
   * A commit waits at most rpl_semi_sync_master_timeout for a replica's acknowledgement, then
   * goes asynchronous: a query still running after twice that is hung, not slow.
   */
  const QUERY_TIMEOUT_MS = 2 * spec.semiSyncTimeoutMs;
  // Jest timeouts: above the sum of the bounds inside each hook or test (waits, SQL calls, client
  // connects and queries, kills), so that the bound that trips is the one that reports.
  const SETUP_TIMEOUT_MS =
    3 * INSTALL_DB_TIMEOUT_MS +
    3 * MARIADBD_START_UP.withinMs +
    5 * SQL_TIMEOUT_MS +
    SEMI_SYNC_CLIENTS.withinMs +
    HAPROXY_START_UP.withinMs +
    routerNotices("up").withinMs;
  const LAG_TEST_TIMEOUT_MS = 2 * CONNECT_TIMEOUT_MS + 22 * QUERY_TIMEOUT_MS + 20 * APPLIED.withinMs;
  const KILL_TEST_TIMEOUT_MS =
    CONNECT_TIMEOUT_MS +
    WRITES_BEFORE_KILL * WRITE_CAP_MS +
    2 * QUERY_TIMEOUT_MS +
    KILL_MS +
    RELAY_LOGS_APPLIED.withinMs +
    4 * SQL_TIMEOUT_MS;
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
      await n.waitUp(MARIADBD_START_UP);
      expect(n.applyInitdb()).toEqual(
        i === 0 ? ["10-ha-backend-init.sql"] : ["10-ha-backend-init.sql", "20-ha-backend-replica.sql"],
      );
    }
    await waitFor(
      "semi-sync replicas connected",
      async () => nodes[0].status("Rpl_semi_sync_master_clients") === "2",
      SEMI_SYNC_CLIENTS,
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
      routerNotices("up"),
    );
  }, SETUP_TIMEOUT_MS);

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it(
    "replicates a write through the rw port to the ro port, and measures the lag",
    async () => {
      const rw = await app(router.rw);
      const ro = await app(router.ro);
      await rw.query({
        sql: "CREATE TABLE posts (id BIGINT PRIMARY KEY, title VARCHAR(64))",
        timeout: QUERY_TIMEOUT_MS,
      });
      const lags: number[] = [];
      for (let id = 1; id <= 20; id++) {
        const t0 = Date.now();
        await rw.query({ sql: "INSERT INTO posts VALUES (?, 'hello')", timeout: QUERY_TIMEOUT_MS }, [id]);
        await waitFor(
          "a post on a replica",
          async () => {
            const [rows] = await ro.query("SELECT id FROM posts WHERE id = ?", [id]);
            return (rows as unknown[]).length === 1;
          },
          APPLIED,
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
    },
    LAG_TEST_TIMEOUT_MS,
  );

  it("has replicas that refuse writes from the application", async () => {
    const replica = await app(3306, nodes[1].host);
    await expect(replica.query("INSERT INTO posts VALUES (999, 'nope')")).rejects.toThrow(/read-only/);
    await replica.end();
    expect(nodes[0].status("Rpl_semi_sync_master_status")).toBe("ON");
  });

  it(
    "with semi-sync AFTER_SYNC, every acknowledged write is on a replica when the primary dies",
    async () => {
      const rw: Connection = await app(router.rw);
      const acked: number[] = [];
      let failure = "";
      let killed: Promise<void> | undefined;
      // Bounded: 2000 ids, and time for the writes before the kill. The primary is killed with -9
      // after 200 acknowledged writes while the writes go on: the first that fails ends the loop,
      // once the primary is dead (within the kill's wait, plus the query in flight).
      const started = Date.now();
      let killedAt = 0;
      let deadline = started + WRITES_BEFORE_KILL * WRITE_CAP_MS;
      for (let id = 1000; id < 3000 && Date.now() < deadline; id++) {
        if (acked.length === WRITES_BEFORE_KILL && killed === undefined) {
          killedAt = Date.now();
          killed = procs.kill(nodes[0].process!, "SIGKILL");
          deadline = Date.now() + KILL_MS + QUERY_TIMEOUT_MS;
        }
        try {
          await rw.query({ sql: "INSERT INTO posts VALUES (?, 'semi-sync')", timeout: QUERY_TIMEOUT_MS }, [
            id,
          ]);
          acked.push(id);
        } catch (e) {
          failure = (e as Error).message;
          break;
        }
      }
      rw.destroy();
      await killed;
      // Replicas have every acknowledged event in their relay logs; wait (bounded) until applied: the
      // one that acknowledged the last write has them all. Until then the probe names the writes
      // missing on both, so a wait that trips says which.
      const present = (n: MariaNode) =>
        new Set(n.sql("SELECT id FROM blog.posts WHERE id >= 1000").split("\n").filter(Boolean).map(Number));
      const missing = () => {
        const onReplicas = nodes.slice(1).map(present);
        return acked.filter((id) => !onReplicas.some((ids) => ids.has(id)));
      };
      await waitFor(
        "replicas applied their relay logs",
        async () => {
          const m = missing();
          if (m.length > 0)
            throw new Error(`${m.length} acknowledged writes on neither replica: ${m.slice(0, 10)}`);
          return true;
        },
        RELAY_LOGS_APPLIED,
      );
      const lost = missing();
      console.log(
        `semi-sync: ${acked.length} writes acknowledged before the primary died (${failure}); lost on both replicas: ${lost.length}; ` +
          `the writes before the kill took ${killedAt === 0 ? "-" : killedAt - started} ms (cap ${WRITES_BEFORE_KILL * WRITE_CAP_MS} ms)`,
      );
      expect(acked.length).toBeGreaterThanOrEqual(WRITES_BEFORE_KILL);
      expect(lost).toEqual([]);
    },
    KILL_TEST_TIMEOUT_MS,
  );
});
