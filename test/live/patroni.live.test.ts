import { join } from "node:path";
import {
  failoverBudgetSeconds,
  patroniMemberEnv,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  type PatroniRenderSpec,
} from "../../components/database/render/patroni";
import { renderPgRouter } from "../../components/database/render/router";
import { PG_ROUTER_CHECK, slotWalKeepMb } from "../../components/database/postgres-cluster";
import { memberValues } from "../../components/platform/docker";
import { binary, httpGet, ProcessGroup, tempDir, waitFor } from "../support/daemons";
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
import { writeFileSync } from "node:fs";
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

describe("Patroni cluster with synchronous mode behind the generated router (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("patroni");
  const etcdHost = `127.0.0.${NET}`;
  const router = { host: `127.0.0.${NET + 4}`, rw: 15432, ro: 15433, stats: 18408 };
  const members = [0, 1, 2].map((i) => ({ name: `orders-pg-${i}`, host: `127.0.0.${NET + 1 + i}` }));
  const patroni = new Map<string, ChildProcess>();

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

  const leader = async () => {
    for (const m of members) if ((await role(m.host)) === "primary") return m;
    return undefined;
  };

  beforeAll(async () => {
    ensureUser();
    ownedDir(dir);
    writeOwned(
      join(dir, "post-bootstrap.sh"),
      // Not executable, like a mounted Secret: Patroni runs it through /bin/sh.
      renderPostBootstrap({ appUser: app.user, appDatabase: app.database }, app.password),
      0o600,
    );
    startEtcd(procs, dir, etcdHost);
    await waitFor("etcd", async () => (await httpGet(etcdHost, 2379, "/health")).status === 200);
    startMember(0);
    await waitForRole(members[0].host, "primary");
    startMember(1);
    startMember(2);
    for (const m of members.slice(1)) await waitForRole(m.host, "replica");
    const routerDir = ownedDir(join(dir, "router"));
    writeFileSync(
      join(routerDir, "haproxy.cfg"),
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
    procs.start(binary("haproxy"), ["-f", join(routerDir, "haproxy.cfg"), "-db"]);
    // HAProxy 2.6 counts a server as up until its first checks fail: wait until the router
    // agrees with Patroni (only the leader up for writes, only the replicas up for reads).
    await waitFor(
      "router settled",
      async () => {
        const csv = (await httpGet(router.host, router.stats, "/stats;csv")).body.split("\n");
        const status = (backend: string, server: string) =>
          csv.find((l) => l.startsWith(`${backend},${server},`))?.split(",")[17];
        return members.every(
          (m, i) =>
            status("primary", m.name) === (i === 0 ? "UP" : "DOWN") &&
            status("replicas", m.name) === (i === 0 ? "DOWN" : "UP"),
        );
      },
      { attempts: 100, intervalMs: 100 },
    );
  }, 240_000);

  /** kill -9 of a member: its Patroni and its postmaster (which runs in a session of its own). */
  async function killMember(name: string): Promise<void> {
    // The postmaster first, so the old leader never serves alone after its Patroni is gone.
    const pid = killPostmaster(join(dir, name, "data"));
    expect(pid).toBeDefined();
    await procs.kill(patroni.get(name)!, "SIGKILL");
  }

  afterAll(async () => {
    await procs.stopAll();
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
      { attempts: 150, intervalMs: 200 },
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
      { attempts: 100, intervalMs: 50 },
    );
    expect((await ro.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(true);
    await rw.end();
    await ro.end();
  });

  it("fails over within the computed budget when the leader is killed with -9, losing no acknowledged write", async () => {
    // (The budget is printed beside the measured outage, not asserted: tests assert no wall-clock times.)
    const budget = failoverBudgetSeconds(TIMINGS, ROUTER_CHECK);
    const old = await leader();
    expect(old).toBeDefined();
    const acked: number[] = [];
    let conn: Client | undefined;
    let killedAt = 0;
    let firstAfterKill = 0;
    const started = Date.now();
    // Bounded: 3000 ids or 60 s; the leader (Patroni and its postmaster) dies after 200 writes.
    for (let id = 100; id < 3100 && Date.now() - started < 60_000; id++) {
      if (acked.length === 200 && killedAt === 0) {
        killedAt = Date.now();
        await killMember(old!.name);
      }
      try {
        conn ??= await pgConnect(router.host, router.rw, app.user, app.password, app.database);
        await conn.query("INSERT INTO orders VALUES ($1, 'load')", [id]);
        acked.push(id);
        if (killedAt !== 0 && firstAfterKill === 0) firstAfterKill = Date.now();
        if (killedAt !== 0 && acked.length >= 400) break;
      } catch {
        await conn?.end().catch(() => undefined);
        conn = undefined;
        await new Promise((r) => setTimeout(r, 100)); // reconnect back-off, within the loop's bounds
      }
    }
    await conn?.end();
    const outage = (firstAfterKill - killedAt) / 1000;
    const now = await leader();
    console.log(
      `patroni: leader ${old!.name} killed; writes resumed on ${now?.name} after ${outage.toFixed(1)} s (budget ${budget} s from ttl ${TIMINGS.ttl}, loop_wait ${TIMINGS.loopWait}, router ${ROUTER_CHECK.rise} × ${ROUTER_CHECK.intervalMs} ms)`,
    );
    expect(firstAfterKill).toBeGreaterThan(0);
    expect(now?.name).not.toBe(old!.name);
    // Synchronous mode: every acknowledged write is on the new leader.
    const c = await pgConnect(now!.host, 5432, app.user, app.password, app.database);
    const ids = new Set((await c.query("SELECT id FROM orders")).rows.map((r) => Number(r.id)));
    await c.end();
    expect(acked.filter((id) => !ids.has(id))).toEqual([]);
  }, 120_000);

  it("takes the old leader back as a replica (pg_rewind) with every row", async () => {
    const now = await leader();
    startMember(0);
    const ms = await waitForRole(members[0].host, "replica");
    const c = await pgConnect(members[0].host, 5432, app.user, app.password, app.database);
    const p = await pgConnect(now!.host, 5432, app.user, app.password, app.database);
    await waitFor(
      "the old leader caught up",
      async () =>
        (await c.query("SELECT count(*)::int AS n FROM orders")).rows[0].n ===
        (await p.query("SELECT count(*)::int AS n FROM orders")).rows[0].n,
      { attempts: 100, intervalMs: 100 },
    );
    console.log(`patroni: old leader ${members[0].name} back as a replica ${ms} ms after restart`);
    expect((await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(true);
    await c.end();
    await p.end();
  }, 120_000);
});
