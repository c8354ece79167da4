import {
  failoverBudgetSeconds,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  slotNameForMember,
} from "../../components/database/render/patroni";
import { SLOW_MACHINE_FACTOR, waitFor } from "../support/daemons";
import { waitForRole } from "../support/postgres";
import {
  CLUSTER_START_TIMEOUT_MS,
  LivePatroniCluster,
  orderIds,
  ROUTER_CHECK,
  START_CAP_MS,
  streamingStates,
  waitForSyncStandby,
  WAL_RETRY_MS,
} from "../support/patroni";

/**
 * Three Patroni-managed PostgreSQL 15 members on etcd 3.4, from the generated patroni.yml, behind
 * the generated router in the real HAProxy; the leader is killed with -9 under write load.
 */
// PostgresCluster's default timings, or with HA_BACKEND_PATRONI_DEFAULTS=1 Patroni's own
// (ttl 30, loop_wait 10, retry_timeout 10), for a side-by-side figure.
const TIMINGS =
  process.env.HA_BACKEND_PATRONI_DEFAULTS === "1" ? PATRONI_DEFAULT_TIMINGS : PATRONI_FAST_TIMINGS;

// Where the bounds below come from (and WAL_RETRY_MS, START_CAP_MS in ../support/patroni).
/** Patroni's HA loop runs every loop_wait: a role, slot or sync-standby change lands in a loop. */
const LOOP_MS = TIMINGS.loopWait * 1000;
/** Writes resume within the failover budget: ttl + loop_wait + the router's rise × interval. */
const BUDGET_MS = failoverBudgetSeconds(TIMINGS, ROUTER_CHECK) * 1000;
/** 200 synchronous commits on loopback take about a second; a cap for a loaded machine. */
const PRE_KILL_CAP_MS = 30_000;

describe("Patroni cluster with synchronous mode behind the generated router (live)", () => {
  const cluster = new LivePatroniCluster({
    name: "patroni",
    net: 130,
    timings: TIMINGS,
    maximumLagOnFailover: 1_048_576,
  });
  const { members, router } = cluster;
  /** Ids whose INSERT the failover test saw fail (it may still have been committed). */
  const unacknowledged = new Set<number>();

  const leader = (not?: string) =>
    cluster.leader(
      {
        withinMs: BUDGET_MS + 5 * LOOP_MS,
        because: `a new leader takes the lock within the failover budget (${BUDGET_MS} ms), and its REST API says so within a few loops (loop_wait ${LOOP_MS} ms)`,
      },
      not,
    );

  beforeAll(() => cluster.start(), CLUSTER_START_TIMEOUT_MS);

  // Every process's output next to its data, for a failed run (the repeat runner keeps it).
  afterAll(() => cluster.stop());

  it("bootstraps: one leader, two streaming replicas, writes through rw and reads through ro", async () => {
    // Replication details are for superusers (the app user sees empty columns).
    const su = await cluster.superuserConnect(members[0].host);
    await waitForSyncStandby(su, LOOP_MS);
    const states = await streamingStates(su);
    await su.end();
    console.log(`patroni: replication states seen by the leader: ${states.join(", ")}`);
    expect(states).toHaveLength(2);
    expect(states).toContain("sync");
    const rw = await cluster.appConnect(router.host, router.rw);
    await rw.query("CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT)");
    await rw.query("INSERT INTO orders VALUES (1, 'first')");
    const ro = await cluster.appConnect(router.host, router.ro);
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
      // Bounded in ids and in time: 200 writes (PRE_KILL_CAP_MS), then the leader (Patroni and its
      // postmaster) dies and writes must resume within SLOW_MACHINE_FACTOR failover budgets.
      const run = await cluster.writeThroughFailover(old, {
        firstId: 100,
        endId: 5100,
        ackedBeforeKill: 200,
        ackedInAll: 400,
        preKillCapMs: PRE_KILL_CAP_MS,
        afterKillCapMs: SLOW_MACHINE_FACTOR * BUDGET_MS,
      });
      for (const id of run.unacknowledged) unacknowledged.add(id);
      expect(run.killedAt).toBeGreaterThan(0);
      expect(run.firstAfterKill).toBeGreaterThan(0);
      const now = await leader(old.name);
      const outage = (run.firstAfterKill - run.killedAt) / 1000;
      console.log(
        `patroni: leader ${old.name} killed; writes resumed on ${now.name} after ${outage.toFixed(1)} s (budget ${BUDGET_MS / 1000} s from ttl ${TIMINGS.ttl}, loop_wait ${TIMINGS.loopWait}, router ${ROUTER_CHECK.rise} × ${ROUTER_CHECK.intervalMs} ms)`,
      );
      // Synchronous mode: every acknowledged write is on the new leader.
      expect(await cluster.lostWrites(now.host, run)).toEqual([]);
    },
    PRE_KILL_CAP_MS + SLOW_MACHINE_FACTOR * BUDGET_MS + 60_000,
  );

  it(
    "takes the old leader back as a replica that streams from the new leader at once (pg_rewind, its slot kept)",
    async () => {
      const now = await leader(members[0].name);
      const su = await cluster.superuserConnect(now.host);
      const p = await cluster.appConnect(now.host);
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
        cluster.startMember(0);
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
        const log = cluster.log(members[0].name);
        expect(log).toContain("pg_rewind exit code=0");
        expect(log).not.toMatch(/replication slot "\w+" does not exist/);
        // Every row the new leader has: it replayed past the leader's last write.
        const c = await cluster.appConnect(members[0].host);
        const [onLeader, onOld] = [await orderIds(p), await orderIds(c)];
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
