import { join } from "node:path";
import {
  failoverBudgetSeconds,
  patroniMemberEnv,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  slotNameForMember,
  type PatroniRenderSpec,
} from "../../components/database/render/patroni";
import { renderPgRouter } from "../../components/database/render/router";
import { PG_ROUTER_CHECK, slotWalKeepMb } from "../../components/database/postgres-cluster";
import { memberValues } from "../../components/platform/docker";
import {
  haproxyServerStates,
  httpGet,
  ProcessGroup,
  SLOW_MACHINE_FACTOR,
  startHaproxy,
  tempDir,
  waitFor,
} from "../support/daemons";
import {
  ensureUser,
  killPostmaster,
  ownedDir,
  pgConnect,
  role,
  startAsUser,
  startEtcd,
  waitForRole,
  writeOwned,
} from "../support/postgres";
import type { ChildProcess } from "node:child_process";
import type { Client } from "pg";

/**
 * Three Patroni-managed PostgreSQL 15 members on etcd 3.4, from the generated patroni.yml, behind
 * the generated router in the real HAProxy; the leader is killed with -9 under write load.
 */
const NET = 130;
const creds = {
  superuserPassword: "su-pass-1",
  replicationPassword: "repl-pass-1",
  rewindPassword: "rewind-pass-1",
};
const app = { user: "shop", password: "app-pass-1", database: "orders" };
// The router checks PostgresCluster deploys, so the measured outage is the budget it exports.
const ROUTER_CHECK = PG_ROUTER_CHECK;
// PostgresCluster's default timings, or with HA_BACKEND_PATRONI_DEFAULTS=1 Patroni's own
// (ttl 30, loop_wait 10, retry_timeout 10), for a side-by-side figure.
const TIMINGS =
  process.env.HA_BACKEND_PATRONI_DEFAULTS === "1" ? PATRONI_DEFAULT_TIMINGS : PATRONI_FAST_TIMINGS;

// Where the bounds below come from.
/** Patroni's HA loop runs every loop_wait: a role, slot or sync-standby change lands in a loop. */
const LOOP_MS = TIMINGS.loopWait * 1000;
/**
 * PostgreSQL's wal_retrieve_retry_interval (the generated config keeps the 5 s default): a standby
 * whose walreceiver could not start (primary not up yet, slot missing) tries again after this.
 */
const WAL_RETRY_MS = 5_000;
/**
 * Start-ups no timer governs — initdb, a base backup, crash recovery and pg_rewind, etcd and
 * HAProxy starting: a cap for a loaded 2-core machine, not an expectation (they take seconds).
 */
const START_CAP_MS = 120_000;
/** Writes resume within the failover budget: ttl + loop_wait + the router's rise × interval. */
const BUDGET_MS = failoverBudgetSeconds(TIMINGS, ROUTER_CHECK) * 1000;
/** 200 synchronous commits on loopback take about a second; a cap for a loaded machine. */
const PRE_KILL_CAP_MS = 30_000;

describe("Patroni cluster with synchronous mode behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("patroni");
  const etcdHost = `127.0.0.${NET}`;
  const router = { host: `127.0.0.${NET + 4}`, rw: 15432, ro: 15433, stats: 18408 };
  const members = [0, 1, 2].map((i) => ({ name: `orders-pg-${i}`, host: `127.0.0.${NET + 1 + i}` }));
  const patroni = new Map<string, ChildProcess>();
  /** Ids whose INSERT the failover test saw fail (it may still have been committed). */
  const unacknowledged = new Set<number>();

  function startMember(i: number): void {
    const m = members[i];
    const home = ownedDir(join(dir, m.name));
    // As in a StatefulSet: the file leaves the member's identity out, its environment sets it.
    const spec: PatroniRenderSpec = {
      scope: "orders",
      memberNames: members.map((x) => x.name),
      maxSlotWalKeepMb: slotWalKeepMb(10),
      dcs: { kind: "etcd3", hosts: [`${etcdHost}:2379`] },
      timings: TIMINGS,
      maximumLagOnFailover: 1_048_576,
      synchronousMode: true,
      synchronousModeStrict: false,
      pgPort: 5432,
      restApiPort: 8008,
      listenAddress: m.host,
      dataDir: join(home, "data"),
      binDir: "/usr/lib/postgresql/15/bin",
      pgpassPath: join(home, "pgpass"),
      postBootstrapScript: join(dir, "post-bootstrap.sh"),
      appUser: app.user,
      appDatabase: app.database,
      maxConnections: 100,
      sharedBuffers: "32MB",
      socketDir: home,
    };
    writeOwned(join(home, "patroni.yml"), renderPatroniYml(spec, creds));
    const env = memberValues(patroniMemberEnv(5432, 8008), m.name, m.host);
    patroni.set(m.name, startAsUser(procs, "patroni", [join(home, "patroni.yml")], env));
  }

  /**
   * The member Patroni's REST API calls primary, other than `not`. Waited for, not asked once: the
   * API answers slowly on a busy machine, and a single timed-out probe is not "no leader".
   */
  async function leader(not?: string): Promise<(typeof members)[number]> {
    let found: (typeof members)[number] | undefined;
    await waitFor(
      `a leader${not ? ` other than ${not}` : ""}`,
      async () => {
        for (const m of members) {
          if (m.name !== not && (await role(m.host)) === "primary") found = m;
        }
        return found !== undefined;
      },
      {
        withinMs: BUDGET_MS + 5 * LOOP_MS,
        intervalMs: 200,
        because: `a new leader takes the lock within the failover budget (${BUDGET_MS} ms), and its REST API says so within a few loops (loop_wait ${LOOP_MS} ms)`,
      },
    );
    return found as (typeof members)[number];
  }

  /** What member `name`'s running Patroni (and the PostgreSQL it started) printed. */
  const patroniLog = (name: string) => procs.logs.get(patroni.get(name)?.pid as number) ?? "";

  beforeAll(
    async () => {
      ensureUser();
      ownedDir(dir);
      writeOwned(
        join(dir, "post-bootstrap.sh"),
        // Not executable, like a mounted Secret: Patroni runs it through /bin/sh.
        renderPostBootstrap({ appUser: app.user, appDatabase: app.database }, app.password),
        0o600,
      );
      startEtcd(procs, dir, etcdHost);
      await waitFor("etcd", async () => (await httpGet(etcdHost, 2379, "/health")).status === 200, {
        withinMs: START_CAP_MS,
        because: "etcd's start-up (a single member elects itself at once)",
      });
      startMember(0);
      await waitForRole(members[0].host, "primary", {
        withinMs: START_CAP_MS,
        because: "initdb, the first start and the post-bootstrap script: no timer governs them",
      });
      startMember(1);
      startMember(2);
      for (const m of members.slice(1)) {
        await waitForRole(m.host, "replica", {
          withinMs: START_CAP_MS,
          because: "a base backup from the leader and PostgreSQL's start: no timer governs them",
        });
      }
      startHaproxy(
        procs,
        join(dir, "router"),
        renderPgRouter({
          members: members.map((m) => ({ ...m, pgPort: 5432, restApiPort: 8008 })),
          listenAddress: router.host,
          statsAddress: router.host,
          rwPort: router.rw,
          roPort: router.ro,
          statsPort: router.stats,
          check: ROUTER_CHECK,
          clientTimeoutMs: 60_000,
        }),
      );
      // HAProxy 2.6 counts a server as up until its first checks fail: wait until the router
      // agrees with Patroni (only the leader up for writes, only the replicas up for reads).
      await waitFor(
        "router settled",
        async () => {
          const states = await haproxyServerStates(router.host, router.stats);
          return members.every(
            (m, i) =>
              states.get(`primary/${m.name}`) === (i === 0 ? "UP" : "DOWN") &&
              states.get(`replicas/${m.name}`) === (i === 0 ? "DOWN" : "UP"),
          );
        },
        {
          withinMs: 20_000,
          because: `HAProxy's start, then fall × interval (${ROUTER_CHECK.fall} × ${ROUTER_CHECK.intervalMs} ms) to mark the non-leaders down: 1 s, capped for a loaded machine`,
        },
      );
      // The sum of the caps above.
    },
    4 * START_CAP_MS + 20_000 + 60_000,
  );

  /** kill -9 of a member: its Patroni and its postmaster (which runs in a session of its own). */
  async function killMember(name: string): Promise<void> {
    // The postmaster first, so the old leader never serves alone after its Patroni is gone.
    const pid = killPostmaster(join(dir, name, "data"));
    expect(pid).toBeDefined();
    await procs.kill(patroni.get(name)!, "SIGKILL");
  }

  afterAll(async () => {
    // Every process's output next to its data, for a failed run (the repeat runner keeps it).
    await procs.stopAll(join(dir, "logs"));
    for (const m of members) killPostmaster(join(dir, m.name, "data"));
  });

  it("bootstraps: one leader, two streaming replicas, writes through rw and reads through ro", async () => {
    // Replication details are for superusers (the app user sees empty columns).
    const su = await pgConnect(members[0].host, 5432, "postgres", creds.superuserPassword, "postgres");
    // A replica answers Patroni's /replica check as soon as it runs in recovery, which can be
    // before its walreceiver connects; and Patroni names a synchronous standby a loop or two
    // after the replicas join. Wait for both: two streaming replicas, one of them sync.
    const streaming = async () =>
      (
        await su.query(
          "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming' ORDER BY sync_state",
        )
      ).rows.map((r) => r.sync_state as string);
    await waitFor(
      "two streaming replicas, one synchronous",
      async () => {
        const s = await streaming();
        return s.length === 2 && s.includes("sync");
      },
      {
        withinMs: 2 * (WAL_RETRY_MS + 2 * LOOP_MS),
        intervalMs: 200,
        because: `a walreceiver that could not start retries after wal_retrieve_retry_interval (${WAL_RETRY_MS} ms), and the leader names a synchronous standby in its next loops (loop_wait ${LOOP_MS} ms): twice that`,
      },
    );
    const states = await streaming();
    await su.end();
    console.log(`patroni: replication states seen by the leader: ${states.join(", ")}`);
    expect(states).toHaveLength(2);
    expect(states).toContain("sync");
    const rw = await pgConnect(router.host, router.rw, app.user, app.password, app.database);
    await rw.query("CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT)");
    await rw.query("INSERT INTO orders VALUES (1, 'first')");
    const ro = await pgConnect(router.host, router.ro, app.user, app.password, app.database);
    await waitFor(
      "row on a replica",
      async () => (await ro.query("SELECT 1 FROM orders WHERE id = 1")).rowCount === 1,
      {
        withinMs: 10_000,
        intervalMs: 50,
        because:
          "a streaming standby applies a commit within milliseconds on loopback; the cap tells 'not replicating' from 'slow'",
      },
    );
    expect((await ro.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(true);
    await rw.end();
    await ro.end();
  });

  it(
    "fails over within the computed budget when the leader is killed with -9, losing no acknowledged write",
    async () => {
      // (The budget is printed beside the measured outage, not asserted: tests assert no wall-clock times.)
      const old = await leader();
      const acked: number[] = [];
      let conn: Client | undefined;
      let killedAt = 0;
      let firstAfterKill = 0;
      const started = Date.now();
      // Bounded in ids and in time: 200 writes (PRE_KILL_CAP_MS), then the leader (Patroni and its
      // postmaster) dies and writes must resume within SLOW_MACHINE_FACTOR failover budgets.
      for (let id = 100; id < 5100; id++) {
        if (killedAt === 0 && Date.now() - started > PRE_KILL_CAP_MS) break;
        if (killedAt !== 0 && Date.now() - killedAt > SLOW_MACHINE_FACTOR * BUDGET_MS) break;
        if (acked.length === 200 && killedAt === 0) {
          killedAt = Date.now();
          await killMember(old.name);
        }
        try {
          conn ??= await pgConnect(router.host, router.rw, app.user, app.password, app.database);
          await conn.query("INSERT INTO orders VALUES ($1, 'load')", [id]);
          acked.push(id);
          if (killedAt !== 0 && firstAfterKill === 0) firstAfterKill = Date.now();
          if (killedAt !== 0 && acked.length >= 400) break;
        } catch {
          // Failed for the client; the server may still have committed it.
          unacknowledged.add(id);
          await conn?.end().catch(() => undefined);
          conn = undefined;
          await new Promise((r) => setTimeout(r, 100)); // reconnect back-off, within the loop's bounds
        }
      }
      await conn?.end();
      expect(killedAt).toBeGreaterThan(0);
      expect(firstAfterKill).toBeGreaterThan(0);
      const now = await leader(old.name);
      const outage = (firstAfterKill - killedAt) / 1000;
      console.log(
        `patroni: leader ${old.name} killed; writes resumed on ${now.name} after ${outage.toFixed(1)} s (budget ${BUDGET_MS / 1000} s from ttl ${TIMINGS.ttl}, loop_wait ${TIMINGS.loopWait}, router ${ROUTER_CHECK.rise} × ${ROUTER_CHECK.intervalMs} ms)`,
      );
      // Synchronous mode: every acknowledged write is on the new leader.
      const c = await pgConnect(now.host, 5432, app.user, app.password, app.database);
      const ids = new Set((await c.query("SELECT id FROM orders")).rows.map((r) => Number(r.id)));
      await c.end();
      expect(acked.filter((id) => !ids.has(id))).toEqual([]);
    },
    PRE_KILL_CAP_MS + SLOW_MACHINE_FACTOR * BUDGET_MS + 60_000,
  );

  it(
    "takes the old leader back as a replica that streams from the new leader at once (pg_rewind, its slot kept)",
    async () => {
      const now = await leader(members[0].name);
      const su = await pgConnect(now.host, 5432, "postgres", creds.superuserPassword, "postgres");
      const p = await pgConnect(now.host, 5432, app.user, app.password, app.database);
      try {
        // GIVEN the new leader holds the old leader's slot while it is away: a permanent slot,
        // which the new leader creates in its loops after promotion. (Without it the member's slot
        // went with its DCS key, ttl seconds after it died.)
        const slot = slotNameForMember(members[0].name);
        await waitFor(
          `the new leader holds slot ${slot}`,
          async () =>
            (
              await su.query(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical'",
                [slot],
              )
            ).rowCount === 1,
          {
            withinMs: 5 * LOOP_MS,
            because: `the leader creates its configured slots in its HA loop, every loop_wait (${LOOP_MS} ms): five loops`,
          },
        );

        // WHEN the old leader comes back
        startMember(0);
        const asReplica = await waitForRole(members[0].host, "replica", {
          withinMs: START_CAP_MS,
          because: "crash recovery, pg_rewind and PostgreSQL's start: no timer governs them",
        });
        // and the new leader takes a write after that
        await p.query("INSERT INTO orders VALUES (100000, 'after the rejoin')");
        const lsn = (await su.query("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0].lsn as string;

        // THEN the new leader streams to it, up to that write. Asked of the leader: its view does
        // not depend on a connection to the member (a connection dies if the member restarts).
        const streamingMs = await waitFor(
          `${members[0].name} streams from the new leader past its last write`,
          async () => {
            const r = await su.query(
              "SELECT state, replay_lsn >= $1::pg_lsn AS replayed FROM pg_stat_replication WHERE application_name = $2",
              [lsn, members[0].name],
            );
            return r.rows[0]?.state === "streaming" && r.rows[0]?.replayed === true;
          },
          {
            withinMs: 2 * WAL_RETRY_MS + 2 * LOOP_MS,
            intervalMs: 50,
            because: `the walreceiver starts with PostgreSQL, a failed start is retried every wal_retrieve_retry_interval (${WAL_RETRY_MS} ms): two retries and two loops`,
          },
        );
        console.log(
          `patroni: old leader ${members[0].name} back as a replica ${asReplica} ms after restart, streaming and caught up ${streamingMs} ms later`,
        );
        // It was rewound, not copied anew, and it never asked for a slot the leader did not have.
        const log = patroniLog(members[0].name);
        expect(log).toContain("pg_rewind exit code=0");
        expect(log).not.toMatch(/replication slot "\w+" does not exist/);
        // Every row the new leader has: it replayed past the leader's last write.
        const c = await pgConnect(members[0].host, 5432, app.user, app.password, app.database);
        const ids = async (x: Client) =>
          new Set((await x.query("SELECT id FROM orders")).rows.map((r) => Number(r.id)));
        const [onLeader, onOld] = [await ids(p), await ids(c)];
        expect([...onLeader].filter((id) => !onOld.has(id))).toEqual([]);
        // A row only the member shows can only be a write the client saw fail: a synchronous
        // commit becomes visible on the leader once a standby confirms it, on a standby as soon as
        // it replays it. (A count comparison read that moment as "not caught up".)
        const extra = [...onOld].filter((id) => !onLeader.has(id));
        expect(extra.filter((id) => !unacknowledged.has(id))).toEqual([]);
        if (extra.length > 0)
          console.log(
            `patroni: ${extra.length} unacknowledged write(s) replayed, still invisible on the leader`,
          );
        expect((await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(true);
        await c.end();
      } finally {
        await su.end();
        await p.end();
      }
    },
    5 * LOOP_MS + START_CAP_MS + 2 * WAL_RETRY_MS + 2 * LOOP_MS + 30_000,
  );
});
