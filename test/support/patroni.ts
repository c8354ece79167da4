/**
 * Patroni for render and live tests: the render spec the renderers' tests share, and a live
 * cluster (etcd, three Patroni-managed PostgreSQL members and the generated router in the real
 * HAProxy, each on its own loopback address) started from the generated files as the
 * unprivileged user, with what its failover tests do to it: find the leader, kill it with -9
 * under write load, and tell when writes resumed.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { Client } from "pg";
import {
  patroniMemberEnv,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  type PatroniCredentials,
  type PatroniRenderSpec,
  type PatroniTimings,
} from "../../components/database/render/patroni";
import { renderPgRouter } from "../../components/database/render/router";
import { PG_ROUTER_CHECK, slotWalKeepMb } from "../../components/database/postgres-cluster";
import { memberValues } from "../../components/platform/docker";
import {
  haproxyServerStates,
  httpGet,
  ProcessGroup,
  startHaproxy,
  tempDir,
  waitFor,
  type WaitBound,
} from "./daemons";
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
} from "./postgres";

/** One member's patroni.yml as a three-member production cluster on etcd renders it (golden file). */
export const RENDER_SPEC: PatroniRenderSpec = {
  scope: "orders",
  member: { name: "orders-pg-1", host: "orders-pg-1" },
  memberNames: ["orders-pg-0", "orders-pg-1", "orders-pg-2"],
  maxSlotWalKeepMb: 2560,
  dcs: { kind: "etcd3", hosts: ["etcd-0:2379", "etcd-1:2379", "etcd-2:2379"] },
  timings: PATRONI_FAST_TIMINGS,
  maximumLagOnFailover: 1_048_576,
  synchronousMode: true,
  synchronousModeStrict: false,
  pgPort: 5432,
  restApiPort: 8008,
  dataDir: "/var/lib/postgresql/data/pgdata",
  binDir: "/usr/lib/postgresql/15/bin",
  pgpassPath: "/tmp/pgpass",
  postBootstrapScript: "/etc/ha-backend/pg/post-bootstrap.sh",
  appUser: "shop",
  appDatabase: "orders",
  maxConnections: 200,
  sharedBuffers: "256MB",
};

/** Credentials for rendering only (nothing logs in with them). */
export const RENDER_CREDS: PatroniCredentials = {
  superuserPassword: "su",
  replicationPassword: "rep",
  rewindPassword: "rw",
};

/**
 * PostgreSQL's wal_retrieve_retry_interval (the generated config keeps the 5 s default): a standby
 * whose walreceiver could not start (primary not up yet, slot missing) tries again after this.
 */
export const WAL_RETRY_MS = 5_000;

/**
 * Start-ups no timer governs — initdb, a base backup, crash recovery and pg_rewind, etcd and
 * HAProxy starting: a cap for a loaded 2-core machine, not an expectation (they take seconds).
 */
export const START_CAP_MS = 120_000;

/** How long the router may take to agree with Patroni once HAProxy runs: see `start`. */
const ROUTER_SETTLE_CAP_MS = 20_000;

/** The hook timeout for {@link LivePatroniCluster.start}: the sum of its caps, and a margin. */
export const CLUSTER_START_TIMEOUT_MS = 4 * START_CAP_MS + ROUTER_SETTLE_CAP_MS + 60_000;

/** The router checks PostgresCluster deploys, so a measured outage is the budget it exports. */
export const ROUTER_CHECK = PG_ROUTER_CHECK;

export interface LivePatroniClusterOptions {
  /** Names the temporary directory (`ha-backend-<name>-…`). */
  readonly name: string;
  /**
   * Last octet of etcd's loopback address: the members take the next three, the router the one
   * after. Each test file has its own, so a leftover of one never answers for another.
   */
  readonly net: number;
  /** Seeded into the DCS at bootstrap (`bootstrap.dcs`). */
  readonly timings: PatroniTimings;
  /** Seeded into the DCS at bootstrap. */
  readonly maximumLagOnFailover: number;
  /** Basic auth on the REST API's unsafe methods. @default none (the API as rendered without it) */
  readonly restApi?: { readonly username: string; readonly password: string };
  /** The metrics exporter's `pg_monitor` role, created at bootstrap. @default none */
  readonly monitor?: { readonly user: string; readonly password: string };
}

export interface LiveMember {
  readonly name: string;
  readonly host: string;
}

/** How a write load runs through a leader's kill: ids, counts and time caps, all bounded. */
export interface FailoverLoad {
  /** The first id inserted; ids run up to (not including) `endId`. */
  readonly firstId: number;
  readonly endId: number;
  /** Acknowledged writes before the kill. */
  readonly ackedBeforeKill: number;
  /** Acknowledged writes (in all) after which the load stops once the kill happened. */
  readonly ackedInAll: number;
  /** The load gives up if `ackedBeforeKill` writes take longer than this. */
  readonly preKillCapMs: number;
  /** The load gives up this long after the kill, resumed or not. */
  readonly afterKillCapMs: number;
}

export interface FailoverRun {
  /** Ids whose INSERT the client saw succeed. */
  readonly acked: readonly number[];
  /** Ids whose INSERT the client saw fail (the server may still have committed them). */
  readonly unacknowledged: readonly number[];
  /** When the leader was killed (epoch ms); 0 if the load never got that far. */
  readonly killedAt: number;
  /** When the first write after the kill was acknowledged (epoch ms); 0 if none was. */
  readonly firstAfterKill: number;
}

/** The ids in the `orders` table, as `c` sees them. */
export async function orderIds(c: Client): Promise<Set<number>> {
  return new Set((await c.query("SELECT id FROM orders")).rows.map((r) => Number(r.id)));
}

/**
 * The replication states (`sync`, `async`, …) of the streaming standbys the superuser
 * connection `su` (to the leader) sees, sorted.
 */
export async function streamingStates(su: Client): Promise<string[]> {
  const r = await su.query(
    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming' ORDER BY sync_state",
  );
  return r.rows.map((x) => x.sync_state as string);
}

/**
 * Waits until the leader (`su`) streams to both replicas, one of them synchronous. A replica
 * answers Patroni's /replica check as soon as it runs in recovery, which can be before its
 * walreceiver connects; and Patroni names a synchronous standby a loop or two after the
 * replicas join. `loopMs` is the cluster's loop_wait now, `loopName` how to call it.
 */
export async function waitForSyncStandby(
  su: Client,
  loopMs: number,
  loopName = "loop_wait",
): Promise<number> {
  return waitFor(
    "two streaming replicas, one synchronous",
    async () => {
      const s = await streamingStates(su);
      return s.length === 2 && s.includes("sync");
    },
    {
      withinMs: 2 * (WAL_RETRY_MS + 2 * loopMs),
      intervalMs: 200,
      because: `a walreceiver that could not start retries after wal_retrieve_retry_interval (${WAL_RETRY_MS} ms), and the leader names a synchronous standby in its next loops (${loopName} ${loopMs} ms): twice that`,
    },
  );
}

/**
 * Three Patroni members of scope `orders` on one etcd, behind the generated router. Construct it
 * in the `describe` body (its addresses and directory exist at once), call `start` in
 * `beforeAll` and `stop` in `afterAll`: `stop` cleans up whatever `start` got to, also when
 * `start` failed half-way.
 */
export class LivePatroniCluster {
  readonly procs = new ProcessGroup();
  readonly dir: string;
  readonly scope = "orders";
  readonly etcdHost: string;
  readonly router: {
    readonly host: string;
    readonly rw: number;
    readonly ro: number;
    readonly stats: number;
  };
  readonly members: readonly LiveMember[];
  readonly creds: PatroniCredentials;
  readonly app = { user: "shop", password: "app-pass-1", database: "orders" } as const;
  private readonly patroni = new Map<string, ChildProcess>();

  constructor(private readonly options: LivePatroniClusterOptions) {
    const net = options.net;
    this.dir = tempDir(options.name);
    this.etcdHost = `127.0.0.${net}`;
    this.router = { host: `127.0.0.${net + 4}`, rw: 15432, ro: 15433, stats: 18408 };
    this.members = [0, 1, 2].map((i) => ({ name: `orders-pg-${i}`, host: `127.0.0.${net + 1 + i}` }));
    this.creds = {
      superuserPassword: "su-pass-1",
      replicationPassword: "repl-pass-1",
      rewindPassword: "rewind-pass-1",
      ...(options.restApi
        ? { restApiUsername: options.restApi.username, restApiPassword: options.restApi.password }
        : {}),
    };
  }

  /** Where member `name`'s patroni.yml is. */
  ymlPath(name: string): string {
    return join(this.dir, name, "patroni.yml");
  }

  /**
   * Member `m`'s render spec. As in a StatefulSet, it leaves the member's identity out; the
   * environment `startMember` gives Patroni sets it.
   */
  spec(m: LiveMember): PatroniRenderSpec {
    const home = join(this.dir, m.name);
    return {
      scope: this.scope,
      memberNames: this.members.map((x) => x.name),
      maxSlotWalKeepMb: slotWalKeepMb(10),
      dcs: { kind: "etcd3", hosts: [`${this.etcdHost}:2379`] },
      timings: this.options.timings,
      maximumLagOnFailover: this.options.maximumLagOnFailover,
      synchronousMode: true,
      synchronousModeStrict: false,
      pgPort: 5432,
      restApiPort: 8008,
      listenAddress: m.host,
      dataDir: join(home, "data"),
      binDir: "/usr/lib/postgresql/15/bin",
      pgpassPath: join(home, "pgpass"),
      postBootstrapScript: join(this.dir, "post-bootstrap.sh"),
      appUser: this.app.user,
      appDatabase: this.app.database,
      ...(this.options.monitor ? { monitorUser: this.options.monitor.user } : {}),
      maxConnections: 100,
      sharedBuffers: "32MB",
      socketDir: home,
    };
  }

  /** Renders member `i`'s patroni.yml and starts its Patroni (again, after a kill). */
  startMember(i: number): void {
    const m = this.members[i];
    ownedDir(join(this.dir, m.name));
    writeOwned(this.ymlPath(m.name), renderPatroniYml(this.spec(m), this.creds));
    const env = memberValues(patroniMemberEnv(5432, 8008), m.name, m.host);
    this.patroni.set(m.name, startAsUser(this.procs, "patroni", [this.ymlPath(m.name)], env));
  }

  /**
   * etcd, member 0 as the leader, members 1 and 2 as replicas, then the router, waiting until it
   * agrees with Patroni. Bounded by {@link CLUSTER_START_TIMEOUT_MS}.
   */
  async start(): Promise<void> {
    ensureUser();
    ownedDir(this.dir);
    writeOwned(
      join(this.dir, "post-bootstrap.sh"),
      // Not executable, like a mounted Secret: Patroni runs it through /bin/sh.
      renderPostBootstrap(
        { appUser: this.app.user, appDatabase: this.app.database, monitorUser: this.options.monitor?.user },
        this.app.password,
        this.options.monitor?.password,
      ),
      0o600,
    );
    startEtcd(this.procs, this.dir, this.etcdHost);
    await waitFor("etcd", async () => (await httpGet(this.etcdHost, 2379, "/health")).status === 200, {
      withinMs: START_CAP_MS,
      because: "etcd's start-up (a single member elects itself at once)",
    });
    this.startMember(0);
    await waitForRole(this.members[0].host, "primary", {
      withinMs: START_CAP_MS,
      because: "initdb, the first start and the post-bootstrap script: no timer governs them",
    });
    this.startMember(1);
    this.startMember(2);
    for (const m of this.members.slice(1)) {
      await waitForRole(m.host, "replica", {
        withinMs: START_CAP_MS,
        because: "a base backup from the leader and PostgreSQL's start: no timer governs them",
      });
    }
    const router = this.router;
    startHaproxy(
      this.procs,
      join(this.dir, "router"),
      renderPgRouter({
        members: this.members.map((m) => ({ ...m, pgPort: 5432, restApiPort: 8008 })),
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
    // agrees with Patroni (only the leader up for writes, only the replicas up for reads). Its
    // checks are unauthenticated GETs: with REST auth on they still see the roles.
    await waitFor(
      "router settled",
      async () => {
        const states = await haproxyServerStates(router.host, router.stats);
        return this.members.every(
          (m, i) =>
            states.get(`primary/${m.name}`) === (i === 0 ? "UP" : "DOWN") &&
            states.get(`replicas/${m.name}`) === (i === 0 ? "DOWN" : "UP"),
        );
      },
      {
        withinMs: ROUTER_SETTLE_CAP_MS,
        because: `HAProxy's start, then fall × interval (${ROUTER_CHECK.fall} × ${ROUTER_CHECK.intervalMs} ms) to mark the non-leaders down: 1 s, capped for a loaded machine`,
      },
    );
  }

  /**
   * Every process stopped by PID (its output kept in `<dir>/logs`, for a failed run: the repeat
   * runner keeps it), and every postmaster, which runs in a session of its own.
   */
  async stop(): Promise<void> {
    await this.procs.stopAll(join(this.dir, "logs"));
    for (const m of this.members) killPostmaster(this.dataDir(m.name));
  }

  dataDir(name: string): string {
    return join(this.dir, name, "data");
  }

  /** What member `name`'s running Patroni (and the PostgreSQL it started) printed. */
  log(name: string): string {
    return this.procs.logs.get(this.patroni.get(name)?.pid as number) ?? "";
  }

  /** A connection as the application, to a member (port 5432) or to the router. */
  appConnect(host: string, port = 5432): Promise<Client> {
    return pgConnect(host, port, this.app.user, this.app.password, this.app.database);
  }

  /** A connection as the superuser to a member's `postgres` database. */
  superuserConnect(host: string): Promise<Client> {
    return pgConnect(host, 5432, "postgres", this.creds.superuserPassword, "postgres");
  }

  /**
   * The member Patroni's REST API calls primary, other than `not`. Waited for, not asked once: the
   * API answers slowly on a busy machine, and a single timed-out probe is not "no leader".
   */
  async leader(bound: Omit<WaitBound, "intervalMs">, not?: string): Promise<LiveMember> {
    let found: LiveMember | undefined;
    await waitFor(
      `a leader${not ? ` other than ${not}` : ""}`,
      async () => {
        for (const m of this.members) {
          if (m.name !== not && (await role(m.host)) === "primary") found = m;
        }
        return found !== undefined;
      },
      { ...bound, intervalMs: 200 },
    );
    return found as LiveMember;
  }

  /** kill -9 of a member: its Patroni and its postmaster (which runs in a session of its own). */
  async killMember(name: string): Promise<void> {
    // The postmaster first, so the old leader never serves alone after its Patroni is gone.
    expect(killPostmaster(this.dataDir(name))).toBeDefined();
    await this.procs.kill(this.patroni.get(name) as ChildProcess, "SIGKILL");
  }

  /**
   * Inserts into `orders` through the router's rw port and kills `old` (the leader) after
   * `ackedBeforeKill` acknowledged writes, then goes on writing until `ackedInAll` are
   * acknowledged: bounded in ids and in time (`load`'s caps), reconnecting after each failure.
   */
  async writeThroughFailover(old: LiveMember, load: FailoverLoad): Promise<FailoverRun> {
    const acked: number[] = [];
    const unacknowledged: number[] = [];
    let conn: Client | undefined;
    let killedAt = 0;
    let firstAfterKill = 0;
    const started = Date.now();
    for (let id = load.firstId; id < load.endId; id++) {
      if (killedAt === 0 && Date.now() - started > load.preKillCapMs) break;
      if (killedAt !== 0 && Date.now() - killedAt > load.afterKillCapMs) break;
      if (acked.length === load.ackedBeforeKill && killedAt === 0) {
        killedAt = Date.now();
        await this.killMember(old.name);
      }
      try {
        conn ??= await this.appConnect(this.router.host, this.router.rw);
        await conn.query("INSERT INTO orders VALUES ($1, 'load')", [id]);
        acked.push(id);
        if (killedAt !== 0 && firstAfterKill === 0) firstAfterKill = Date.now();
        if (killedAt !== 0 && acked.length >= load.ackedInAll) break;
      } catch {
        // Failed for the client; the server may still have committed it.
        unacknowledged.push(id);
        await conn?.end().catch(() => undefined);
        conn = undefined;
        await new Promise((r) => setTimeout(r, 100)); // reconnect back-off, within the loop's bounds
      }
    }
    await conn?.end();
    return { acked, unacknowledged, killedAt, firstAfterKill };
  }

  /** The acknowledged writes of `run` that member `host` does not have (synchronous mode: none). */
  async lostWrites(host: string, run: FailoverRun): Promise<number[]> {
    const c = await this.appConnect(host);
    const ids = await orderIds(c);
    await c.end();
    return run.acked.filter((id) => !ids.has(id));
  }
}
