import { join } from "node:path";
import { writeFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import type { Connection } from "mysql2/promise";
import { renderReplicaSql } from "../../components/database/render/mysql";
import {
  PROMOTE_APPLY_WAIT_SECONDS,
  PROMOTE_CONNECT_WAIT_SECONDS,
  PROMOTE_SQL_TIMEOUT_SECONDS,
  renderPromoteScript,
} from "../../components/database/render/promote";
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

/** root@'%' as the official image creates it (MARIADB_ROOT_PASSWORD_FILE): the promotion script logs in so. */
const ROOT_PASSWORD = "root-pass-123";

/**
 * The promotion script, at worst: every statement is capped (`timeout`), so this is its probes
 * (3 members, 3 statements each), per replica the relay-log wait plus 5 statements, the connect
 * waits of the repointed members and of the semi-sync client, plus 8 statements; 1 s per member
 * of client connect timeouts on top. It takes about a second here.
 */
const SCRIPT_FINISHES: WaitBound = {
  withinMs:
    1000 *
    (9 * PROMOTE_SQL_TIMEOUT_SECONDS +
      2 * (PROMOTE_APPLY_WAIT_SECONDS + 5 * PROMOTE_SQL_TIMEOUT_SECONDS) +
      3 * (PROMOTE_CONNECT_WAIT_SECONDS + 2 * PROMOTE_SQL_TIMEOUT_SECONDS) +
      8 * PROMOTE_SQL_TIMEOUT_SECONDS +
      3),
  because:
    "the promotion script: its relay-log and connect waits and one capped statement per step (promote.ts constants), summed",
};

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
    8 * SQL_TIMEOUT_MS +
    SEMI_SYNC_CLIENTS.withinMs +
    HAPROXY_START_UP.withinMs +
    routerNotices("down").withinMs;
  const LAG_TEST_TIMEOUT_MS = 2 * CONNECT_TIMEOUT_MS + 22 * QUERY_TIMEOUT_MS + 20 * APPLIED.withinMs;
  const KILL_TEST_TIMEOUT_MS =
    CONNECT_TIMEOUT_MS +
    WRITES_BEFORE_KILL * WRITE_CAP_MS +
    2 * QUERY_TIMEOUT_MS +
    KILL_MS +
    RELAY_LOGS_APPLIED.withinMs +
    4 * SQL_TIMEOUT_MS;
  /**
   * The promotion test: the script, writes resuming (the router marking the new primary up in
   * rw), the old primary's restart (start-up plus its peer probes, 5 s each at most), the replica
   * following, the router taking the old primary into ro; client connects, queries and SQL calls.
   */
  const PROMOTE_TEST_TIMEOUT_MS =
    SCRIPT_FINISHES.withinMs +
    routerNotices("up").withinMs +
    MARIADBD_START_UP.withinMs +
    3 * 5_000 +
    RELAY_LOGS_APPLIED.withinMs +
    routerNotices("up").withinMs +
    SCRIPT_FINISHES.withinMs +
    4 * CONNECT_TIMEOUT_MS +
    6 * QUERY_TIMEOUT_MS +
    10 * SQL_TIMEOUT_MS +
    KILL_MS;
  /** Writes the kill test had acknowledged: the promotion must keep every one. */
  const ackedBeforeKill: number[] = [];
  /** The ids of the test writes (1000 and above) a member holds. */
  const postIds = (n: MariaNode) =>
    new Set(n.sql("SELECT id FROM blog.posts WHERE id >= 1000").split("\n").filter(Boolean).map(Number));
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
      // What the official image's entrypoint does with MARIADB_ROOT_PASSWORD_FILE (binary log off):
      // root@localhost and root@'%' only (install-db's password-less root@127.0.0.1 would win).
      n.sql(
        "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS root@'127.0.0.1', root@'::1'; " +
          `CREATE USER root@'%' IDENTIFIED BY '${ROOT_PASSWORD}'; ` +
          "GRANT ALL PRIVILEGES ON *.* TO root@'%' WITH GRANT OPTION;",
      );
    }
    await waitFor(
      "semi-sync replicas connected",
      async () => nodes[0].status("Rpl_semi_sync_master_clients") === "2",
      SEMI_SYNC_CLIENTS,
    );
    await startRouter(procs, dir, "replication", nodes, router);
    // Writes reach only the writable member; reads the read-only ones (the writable one as a
    // backup). HAProxy starts every server UP: the read-only members' rw checks take them down.
    const expected: ["rw" | "ro", string, string][] = [
      ["rw", nodes[0].name, "UP"],
      ["rw", nodes[1].name, "DOWN"],
      ["rw", nodes[2].name, "DOWN"],
      ["ro", nodes[0].name, "DOWN"],
      ["ro", nodes[1].name, "UP"],
      ["ro", nodes[2].name, "UP"],
      ["ro", `${nodes[0].name}-primary`, "UP"],
    ];
    await waitFor(
      "router sees the primary and the replicas",
      async () =>
        (await Promise.all(expected.map(([l, n]) => routerState(router, l, n)))).every(
          (st, i) => st === expected[i][2],
        ),
      routerNotices("down"),
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
      const missing = () => {
        const onReplicas = nodes.slice(1).map(postIds);
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
      ackedBeforeKill.push(...acked);
    },
    KILL_TEST_TIMEOUT_MS,
  );

  /** Runs the rendered promotion script as a member would (root's password in its file). */
  async function promote(script: string): Promise<{ code: number | null; output: string; ms: number }> {
    const started = Date.now();
    const child: ChildProcess = procs.start("bash", [script]);
    await waitFor("the promotion script exits", async () => child.exitCode !== null, SCRIPT_FINISHES);
    return {
      code: child.exitCode,
      output: procs.logs.get(child.pid as number) ?? "",
      ms: Date.now() - started,
    };
  }

  /** Inserts ids from `first` on through the rw port until stopped, reconnecting after a failure. */
  function writeLoad(first: number, deadline: number) {
    const acked: { id: number; at: number }[] = [];
    let failed = 0;
    let stopped = false;
    const done = (async () => {
      let conn: Connection | undefined;
      for (let id = first; id < first + 100_000 && !stopped && Date.now() < deadline; id++) {
        try {
          conn ??= await app(router.rw);
          await conn.query({ sql: "INSERT INTO posts VALUES (?, 'promotion')", timeout: QUERY_TIMEOUT_MS }, [
            id,
          ]);
          acked.push({ id, at: Date.now() });
        } catch {
          failed++;
          conn?.destroy();
          conn = undefined;
          // A retry pause, so a router with no writer is not hammered.
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      conn?.destroy();
    })();
    return {
      acked,
      failed: () => failed,
      stop: async () => {
        stopped = true;
        await done;
      },
    };
  }

  it(
    "promotes the most advanced replica with the rendered script: writes follow it, nothing acknowledged is lost, the old primary comes back fenced",
    async () => {
      // GIVEN the primary killed with -9 under semi-sync write load (the test before), and writes
      // still being tried through the rw port
      expect(ackedBeforeKill.length).toBeGreaterThanOrEqual(WRITES_BEFORE_KILL);
      const script = join(dir, "promote.sh");
      // Root's password as a member has it: a file (MARIADB_ROOT_PASSWORD_FILE), no environment.
      const rootPassword = join(dir, "files", "root-password");
      writeFileSync(rootPassword, ROOT_PASSWORD, { mode: 0o400 });
      writeFileSync(
        script,
        renderPromoteScript(spec, { replicaSql: join(dir, "files", "replica.sql"), rootPassword }),
      );
      const load = writeLoad(10_000, Date.now() + PROMOTE_TEST_TIMEOUT_MS);
      try {
        // WHEN the operator runs the promotion script inside a surviving member
        const started = Date.now();
        const run = await promote(script);
        console.log(`promotion script output (exit ${run.code}):\n${run.output}`);
        expect(run.code).toBe(0);
        // THEN writes resume through the router, on the promoted replica
        await waitFor(
          "writes resume through the rw port",
          async () => load.acked.length > 0,
          routerNotices("up"),
        );
        const resumedMs = load.acked[0].at - started;
        await waitFor("20 writes on the new primary", async () => load.acked.length >= 20, {
          withinMs: 20 * WRITE_CAP_MS,
          because: "semi-sync commits on the new primary: a few ms each here; the write cap per write",
        });
        await load.stop();
        const primary = nodes.slice(1).find((n) => n.sql("SELECT @@read_only") === "0");
        expect(primary).toBeDefined();
        expect(run.output).toContain(`most advanced: ${primary!.host}`);
        const rw = await app(router.rw);
        const [[served]] = (await rw.query("SELECT @@server_id AS id")) as unknown as [[{ id: number }]];
        rw.destroy();
        expect(served.id).toBe(nodes.indexOf(primary!) + 1);
        // Every write acknowledged before the kill and during the promotion is on the new primary.
        const acked = [...ackedBeforeKill, ...load.acked.map((a) => a.id)];
        const missingOn = (n: MariaNode) => {
          const ids = postIds(n);
          return acked.filter((id) => !ids.has(id));
        };
        expect(missingOn(primary!)).toEqual([]);
        // The other replica follows the new primary.
        const other = nodes.slice(1).find((n) => n !== primary)!;
        await waitFor(
          "the other replica has every acknowledged write",
          async () => missingOn(other).length === 0,
          RELAY_LOGS_APPLIED,
        );
        // Master_Host is SHOW SLAVE STATUS's second column; Slave_running: both threads, connected.
        expect(other.sql("SHOW SLAVE STATUS").split("\t")[1]).toBe(primary!.host);
        expect(other.status("Slave_running")).toBe("ON");
        expect(other.status("Rpl_semi_sync_slave_status")).toBe("ON");
        console.log(
          `promotion: script ran in ${run.ms} ms; from script start to the first write acknowledged through the router: ${resumedMs} ms ` +
            `(${load.failed()} writes refused meanwhile); acknowledged writes lost: ${missingOn(primary!).length} of ${acked.length}`,
        );

        // WHEN the old primary restarts with its start script
        const old = nodes[0];
        const restarted = old.start(procs);
        await old.waitUp(MARIADBD_START_UP);
        // THEN it comes back read-only, says why, and the router keeps writes off it
        expect(old.sql("SELECT @@read_only")).toBe("1");
        expect(procs.logs.get(restarted.pid as number)).toContain(
          `restarts read-only: ${primary!.host} answers as writable`,
        );
        await waitFor(
          "the router sees the fenced old primary as read-only",
          async () => (await routerState(router, "ro", old.name)) === "UP",
          routerNotices("up"),
        );
        expect(await routerState(router, "rw", old.name)).toBe("DOWN");
        expect(await routerState(router, "rw", primary!.name)).toBe("UP");
        console.log(
          `promotion: old primary restarted fenced (read_only ON); its GTID position ${old.sql("SELECT @@gtid_current_pos")}, ` +
            `the new primary's ${primary!.sql("SELECT @@gtid_current_pos")}`,
        );
        // AND the script refuses to promote again while a writable primary answers
        const again = await promote(script);
        expect(again.code).toBe(1);
        expect(again.output).toContain(`${primary!.host} answers and is writable`);
      } finally {
        await load.stop();
      }
    },
    PROMOTE_TEST_TIMEOUT_MS,
  );
});
