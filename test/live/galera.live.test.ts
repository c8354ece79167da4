import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { GALERA_TUNED_TIMINGS } from "../../components/database/mysql-cluster";
import { GALERA_DEFAULT_TIMINGS, RECOVERED_POSITION_NOTE } from "../../components/database/render/mysql";
import {
  KILL_MS,
  ProcessGroup,
  SLOW_MACHINE_FACTOR,
  tempDir,
  waitFor,
  type WaitBound,
} from "../support/daemons";
import {
  BOOTSTRAPPED,
  bootstrapGalera,
  connect,
  HAPROXY_START_UP,
  JOINED,
  INSTALL_DB_TIMEOUT_MS,
  MARIADBD_START_UP,
  MariaNode,
  renderTestFiles,
  routerNotices,
  routerReactionMs,
  routerState,
  SQL_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  startRouter,
  synced,
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

/** Every node killed and restarted at once: about 4 s here. */
const RECOVERED: WaitBound = {
  withinMs: 120_000,
  because:
    "mariadbd start-up of every node, then pc.recovery restores the saved primary component as soon " +
    "as all its members meet (and a node behind catches up by IST): no timer governs these; a cap",
};

/** A desynced node with nothing to catch up is Synced again at once. */
const RESYNCED: WaitBound = {
  withinMs: 30_000,
  because: "wsrep_desync=OFF with no backlog to apply: no timer governs the switch back to Synced; a cap",
};

/**
 * The longest a write can stall, unloaded, when the writer dies: the survivors evict it at most
 * evs.inactive_timeout after its last message (silence is checked every evs.inactive_check_period;
 * it is suspected after evs.suspect_timeout) and a write waits for that view change, while the
 * router takes the writer out after `fall` checks; both run from the kill. SLOW_MACHINE_FACTOR x that.
 */
const GALERA_EVICTION_MS = TIMINGS.inactiveTimeoutMs + TIMINGS.inactiveCheckPeriodMs;
const FAILOVER_MS = SLOW_MACHINE_FACTOR * Math.max(GALERA_EVICTION_MS, routerReactionMs("down"));

/**
 * A commit on a healthy cluster (certified on every node, flushed to disk) takes a few ms here:
 * no timer governs it; the write phases below are capped at this per write.
 */
const WRITE_CAP_MS = 50;
/** Writes before the kill, and the writes the cluster must take after it. */
const WRITES_BEFORE_KILL = 300;
const WRITES_AFTER_KILL = 1000;

// Jest timeouts: above the sum of the bounds inside each hook or test (waits, SQL calls, client
// connects and queries, kills), so that the bound that trips is the one that reports.
const CONNECT_AND_QUERY_MS = CONNECT_TIMEOUT_MS + FAILOVER_MS;
const SETUP_TIMEOUT_MS =
  3 * INSTALL_DB_TIMEOUT_MS +
  MARIADBD_START_UP.withinMs +
  SQL_TIMEOUT_MS +
  BOOTSTRAPPED.withinMs +
  2 * JOINED.withinMs +
  HAPROXY_START_UP.withinMs;
const ROUTER_TEST_TIMEOUT_MS = routerNotices("up").withinMs + CONNECT_AND_QUERY_MS;
const DESYNC_TEST_TIMEOUT_MS =
  2 * SQL_TIMEOUT_MS + routerNotices("down").withinMs + RESYNCED.withinMs + routerNotices("up").withinMs;
const FAILOVER_TEST_TIMEOUT_MS =
  (WRITES_BEFORE_KILL + WRITES_AFTER_KILL) * WRITE_CAP_MS +
  FAILOVER_MS +
  KILL_MS +
  2 * CONNECT_AND_QUERY_MS +
  2 * SQL_TIMEOUT_MS;
const REJOIN_TEST_TIMEOUT_MS = JOINED.withinMs + 3 * SQL_TIMEOUT_MS;
const RESTART_TEST_TIMEOUT_MS =
  4 * SQL_TIMEOUT_MS + 3 * KILL_MS + RECOVERED.withinMs + routerNotices("up").withinMs + CONNECT_AND_QUERY_MS;

/**
 * The state transfers a joiner's error log shows, in order (`IST`, `SST`, `SST+IST`, or `none`).
 * MariaDB's SST scripts (mariabackup, rsync) end with "<method> IST completed on joiner" or
 * "<method> SST completed on joiner". Galera's own "IST received" cannot tell them apart: after a
 * full snapshot the donor sends the writes since by IST too (seen live).
 */
function stateTransfer(log: string): string {
  const kinds = [...log.matchAll(/WSREP_SST: \[INFO\] \S+ (IST|SST) completed on joiner/g)].map((m) => m[1]);
  return kinds.length === 0 ? "none" : kinds.join("+");
}

describe("Galera cluster behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("galera");
  const nodes = [0, 1, 2].map((i) => new MariaNode(`shop-db-${i}`, `127.0.0.${NET + 1 + i}`, 3306, dir));
  const router = { host: `127.0.0.${NET}`, rw: 13306, ro: 13307, stats: 18406 };
  const spec = testSpec("shop", nodes, { mode: "galera", galera: { ...TIMINGS, sstMethod: "mariabackup" } });
  const files = renderTestFiles(spec, creds, dir);

  /**
   * Runs `sql` on a fresh connection through the router's read-write port: a probe that must not
   * reuse a connection a restart cut. A query waits at most a failover (a view change) long.
   */
  async function writeThroughRouter(sql: string): Promise<void> {
    const app = await connect(router.host, router.rw, creds.appUser, creds.appPassword, creds.appDatabase);
    try {
      await app.query({ sql, timeout: FAILOVER_MS });
    } finally {
      app.destroy();
    }
  }

  beforeAll(async () => {
    const times = await bootstrapGalera(procs, nodes, files, "one by one");
    for (const [i, ms] of times.entries())
      console.log(`${nodes[i + 1].name} joined and Synced after ${ms} ms`);
    await startRouter(procs, dir, "galera", nodes, router);
  }, SETUP_TIMEOUT_MS);

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it(
    "marks every Synced node up in the router, through the real MySQL protocol check",
    async () => {
      // Both listeners check every node on their own: the write below needs the rw port's too.
      const servers = (["rw", "ro"] as const).flatMap((l) => nodes.map((n) => [l, n.name] as const));
      await waitFor(
        "all nodes up",
        async () =>
          (await Promise.all(servers.map(([l, n]) => routerState(router, l, n)))).every((st) => st === "UP"),
        routerNotices("up"),
      );
      await writeThroughRouter("CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, note VARCHAR(64))");
    },
    ROUTER_TEST_TIMEOUT_MS,
  );

  it(
    "takes a node that is not Synced out of rotation, and back when it is",
    async () => {
      const state = (name: string) => routerState(router, "ro", name);
      // A desynced node still accepts logins; only the wsrep_local_state check can tell.
      nodes[2].sql("SET GLOBAL wsrep_desync = ON");
      await waitFor(
        "desynced node down",
        async () => (await state(nodes[2].name)) === "DOWN",
        routerNotices("down"),
      );
      nodes[2].sql("SET GLOBAL wsrep_desync = OFF");
      // The node first, then the router: each wait has its own mechanism.
      await synced(nodes[2], RESYNCED);
      await waitFor(
        "resynced node up",
        async () => (await state(nodes[2].name)) === "UP",
        routerNotices("up"),
      );
    },
    DESYNC_TEST_TIMEOUT_MS,
  );

  it(
    "keeps taking writes when the writer is killed with -9, and loses none it acknowledged",
    async () => {
      const acked: number[] = [];
      const errors: string[] = [];
      let conn: Connection | undefined;
      let id = 0;
      let longestPause = 0;
      let lastAck = Date.now();
      /**
       * Writes through the router until `count` writes are acknowledged or `withinMs` passed (and
       * at most 4000 ids in all), reconnecting after a failure: a connection the kill cut is never
       * reused. A write waits at most a failover long (it may wait for the view change).
       */
      const writeUntil = async (count: number, withinMs: number) => {
        const deadline = Date.now() + withinMs;
        while (acked.length < count && Date.now() < deadline && id < 4000) {
          id++;
          try {
            conn ??= await connect(
              router.host,
              router.rw,
              creds.appUser,
              creds.appPassword,
              creds.appDatabase,
            );
            await conn.query(
              { sql: "INSERT INTO orders (id, note) VALUES (?, 'load')", timeout: FAILOVER_MS },
              [id],
            );
            const now = Date.now();
            longestPause = Math.max(longestPause, now - lastAck);
            lastAck = now;
            acked.push(id);
          } catch (e) {
            errors.push((e as Error).message);
            conn?.destroy();
            conn = undefined;
            await new Promise((r) => setTimeout(r, 50)); // back off before reconnecting (bounded by the loop)
          }
        }
      };
      // GIVEN writes acknowledged by the preferred writer
      const beforeCapMs = WRITES_BEFORE_KILL * WRITE_CAP_MS;
      const started = Date.now();
      await writeUntil(WRITES_BEFORE_KILL, beforeCapMs);
      // WHEN it is killed with -9 (only once it took them all)
      let killedAt = 0;
      const afterCapMs = FAILOVER_MS + WRITES_AFTER_KILL * WRITE_CAP_MS;
      if (acked.length === WRITES_BEFORE_KILL) {
        killedAt = Date.now();
        await procs.kill(nodes[0].process!, "SIGKILL");
        // THEN the cluster keeps taking writes: after a failover, at the healthy rate
        await writeUntil(WRITES_BEFORE_KILL + WRITES_AFTER_KILL, afterCapMs);
      }
      const ended = Date.now();
      await conn?.end();
      console.log(
        `galera (${TIMINGS === GALERA_TUNED_TIMINGS ? "tuned" : "Galera's default"} failure detection): ${acked.length} writes acknowledged, ${errors.length} failed attempts while the writer died; ` +
          `longest pause between acknowledged writes ${longestPause} ms (failover cap ${FAILOVER_MS} ms); ` +
          `writes before the kill took ${(killedAt === 0 ? ended : killedAt) - started} ms (cap ${beforeCapMs} ms), ` +
          `after it ${killedAt === 0 ? "-" : ended - killedAt} ms (cap ${afterCapMs} ms)`,
      );
      expect(killedAt).toBeGreaterThan(0);
      expect(acked.length).toBeGreaterThanOrEqual(WRITES_BEFORE_KILL + WRITES_AFTER_KILL);
      // Every acknowledged write is on both survivors (wsrep_sync_wait: a read sees every commit).
      for (const n of nodes.slice(1)) {
        const ids = new Set(n.sql("SELECT id FROM shop.orders").split("\n").map(Number));
        const lost = acked.filter((id) => !ids.has(id));
        expect([n.name, lost]).toEqual([n.name, []]);
      }
    },
    FAILOVER_TEST_TIMEOUT_MS,
  );

  it(
    "lets the killed node rejoin and catch up",
    async () => {
      // GIVEN the writer killed with -9 above, which missed the writes taken after it
      const errorLog = join(nodes[0].dir, "error.log");
      const before = statSync(errorLog).size;
      // WHEN it restarts through the start script
      const server = nodes[0].start(procs);
      const ms = await synced(nodes[0], JOINED);
      const counts = nodes.map((n) => n.sql("SELECT COUNT(*) FROM shop.orders"));
      // Only what this start wrote: the log holds the node's whole life (it donated the first joins' SSTs).
      const rejoinLog = readFileSync(errorLog).subarray(before).toString("utf8");
      const transfer = stateTransfer(rejoinLog);
      console.log(
        `galera: ${nodes[0].name} rejoined by ${transfer} and Synced ${ms} ms after restart; row counts ${counts.join(" / ")}`,
      );
      // THEN it caught up with only the writes it missed (IST), from the position the start script
      // recovered, not with a full snapshot (SST)
      expect(procs.logs.get(server.pid as number)).toContain(RECOVERED_POSITION_NOTE);
      expect(transfer).toBe("IST");
      expect(new Set(counts).size).toBe(1);
    },
    REJOIN_TEST_TIMEOUT_MS,
  );

  it(
    "recovers by itself when every node is killed and restarted (pc.recovery)",
    async () => {
      const before = nodes[1].sql("SELECT COUNT(*) FROM shop.orders");
      for (const n of nodes) await procs.kill(n.process!, "SIGKILL");
      const t0 = Date.now();
      // No node bootstraps by hand: each start script sees its grastate.dat and just starts.
      for (const n of nodes) n.start(procs);
      await Promise.all(nodes.map((n) => synced(n, RECOVERED)));
      const counts = nodes.map((n) => n.sql("SELECT COUNT(*) FROM shop.orders"));
      console.log(
        `galera: full restart after kill -9 of all nodes -> primary component back in ${Date.now() - t0} ms; rows ${counts.join(" / ")}`,
      );
      expect(counts).toEqual([before, before, before]);
      // The router marks the nodes up again after `rise` checks; until then a connection is refused.
      // Idempotent, so a retry after a write whose answer was lost does not hit the duplicate key.
      await waitFor(
        "a write through the router",
        async () => {
          await writeThroughRouter(
            "INSERT INTO orders (id, note) VALUES (999999, 'after full restart') ON DUPLICATE KEY UPDATE note = VALUES(note)",
          );
          return true;
        },
        { ...routerNotices("up"), intervalMs: 200 },
      );
    },
    RESTART_TEST_TIMEOUT_MS,
  );
});
