/**
 * MariaDB members for live tests, run from the generated files: the rendered my.cnf and secret
 * cnf, the rendered start script (with the entrypoint swapped for mariadbd itself), and the
 * rendered bootstrap SQL, as the official image's entrypoint would apply it. Each member has its
 * own loopback address, data directory and socket, owned by the unprivileged `mysql` user.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createConnection, type Connection } from "mysql2/promise";
import {
  GALERA_DEFAULT_TIMINGS,
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderSecretCnf,
  renderStartScript,
  type MysqlCredentials,
  type MysqlMode,
  type MysqlRenderSpec,
} from "../../components/database/render/mysql";
import { renderDbRouter } from "../../components/database/render/router";
import type { ProcessGroup, WaitBound } from "./daemons";
import { haproxyServerStates, httpGet, SLOW_MACHINE_FACTOR, startHaproxy, waitFor } from "./daemons";

/**
 * mariadb-install-db on an empty data directory (about 2 s here): no timer governs it; a cap for
 * a loaded 2-core machine.
 */
export const INSTALL_DB_TIMEOUT_MS = 60_000;

/**
 * One SQL batch over the local socket: the statements the tests send answer in milliseconds, and
 * a server that is still starting refuses the socket at once; the cap tells a hung server.
 */
export const SQL_TIMEOUT_MS = 30_000;

/**
 * One status probe over the local socket (SHOW GLOBAL STATUS answers even on a node outside the
 * primary component). spawnSync blocks the event loop, so waitFor cannot cut a hung probe short:
 * the probe's own cap keeps a wait from overrunning its bound by more than this.
 */
const PROBE_TIMEOUT_MS = 5_000;

/** mariadbd start-up until its socket answers a ping (about 1 s here, InnoDB with a 64M pool). */
export const MARIADBD_START_UP: WaitBound = {
  withinMs: 60_000,
  because: "mariadbd start-up: no timer governs it; a cap for a loaded 2-core machine",
};

/**
 * A client connection (through the router or to a member): the handshake on loopback takes
 * milliseconds; the cap tells a dead or hung server from a slow one.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The router's health checks in these tests: fast, so a killed member is noticed in about a
 * second. Tests compute their bounds from these values with {@link routerNotices}.
 */
export const ROUTER_CHECK = { intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 } as const;

/** A router's health-check settings (HAProxy's inter, timeout check, fall and rise). */
export interface RouterCheck {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly fall: number;
  readonly rise: number;
}

/**
 * The longest the router takes, unloaded, to mark a server up (`rise` checks in a row) or down
 * (`fall`), once the server changed: the check in flight may still see the old state, then `n`
 * more. A check cycle is the interval, plus the check's connect (HAProxy caps it at
 * min(timeout connect, inter) when `timeout check` is set) and its read (`timeout check`).
 */
export function routerReactionMs(change: "up" | "down", check: RouterCheck = ROUTER_CHECK): number {
  const n = change === "up" ? check.rise : check.fall;
  const cycle = 2 * check.intervalMs + check.timeoutMs;
  return (n + 1) * cycle;
}

/**
 * A wait bound for the router to mark a server up or down: its reaction, for a loaded machine.
 * `check`: the settings the router runs with (these tests' fast ones unless given).
 */
export function routerNotices(change: "up" | "down", check: RouterCheck = ROUTER_CHECK): WaitBound {
  const { intervalMs, timeoutMs, rise, fall } = check;
  const checks = change === "up" ? `rise ${rise}` : `fall ${fall}`;
  return {
    withinMs: SLOW_MACHINE_FACTOR * routerReactionMs(change, check),
    because:
      `HAProxy marks a server ${change} after ${checks} checks in a row (inter ${intervalMs} ms, ` +
      `timeout check ${timeoutMs} ms): one more check cycle than that, each 2 x inter + timeout; ${SLOW_MACHINE_FACTOR}x that`,
  };
}

/** HAProxy start-up until its stats listener answers: no timer governs it. */
export const HAPROXY_START_UP: WaitBound = {
  withinMs: 30_000,
  because:
    "HAProxy start-up: no timer governs it (it listens within milliseconds); a cap for a loaded 2-core machine",
};

/**
 * The replica's retry period for connecting to the primary (MASTER_CONNECT_RETRY in the
 * rendered replica SQL), in milliseconds.
 */
export function connectRetryMs(replicaSql: string): number {
  const m = /MASTER_CONNECT_RETRY = (\d+)/.exec(replicaSql);
  if (m === null) throw new Error("the rendered replica SQL sets no MASTER_CONNECT_RETRY");
  return Number(m[1]) * 1000;
}

export interface RenderedFiles {
  readonly myCnf: string;
  readonly secretCnf: string;
  readonly startScript: string;
}

/**
 * Where the bootstrap SQL lives for a test cluster: one copy shared by every member, as the
 * platform mounts one Secret into every container. The data directory is the container default
 * (each member's real one is passed by the stand-in entrypoint).
 */
export function sqlPaths(dir: string, sql: { init: string; replica: string }) {
  mkdirSync(join(dir, "files"), { recursive: true });
  const paths = {
    dataDir: "/var/lib/mysql",
    initSql: join(dir, "files", "init.sql"),
    replicaSql: join(dir, "files", "replica.sql"),
  };
  writeFileSync(paths.initSql, sql.init);
  writeFileSync(paths.replicaSql, sql.replica);
  return paths;
}

function mysqlIds(): { uid: number; gid: number } {
  const uid = Number(spawnSync("id", ["-u", "mysql"], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", "mysql"], { encoding: "utf8" }).stdout.trim());
  if (!Number.isInteger(uid) || uid <= 0)
    throw new Error("the mysql user is missing: install mariadb-server");
  return { uid, gid };
}

function chownTree(path: string): void {
  const r = spawnSync("chown", ["-R", "mysql:mysql", path]);
  if (r.status !== 0) throw new Error(`chown ${path} failed`);
}

export class MariaNode {
  readonly dir: string;
  readonly dataDir: string;
  readonly socket: string;
  /** The member's own temporary directory: the test's TMPDIR may not be writable by `mysql`. */
  readonly tmpDir: string;
  process?: ChildProcess;

  constructor(
    readonly name: string,
    readonly host: string,
    readonly port: number,
    private readonly baseDir: string,
  ) {
    this.dir = join(baseDir, name);
    this.dataDir = join(this.dir, "data");
    this.socket = join(this.dir, "mysqld.sock");
    this.tmpDir = join(this.dir, "tmp");
  }

  /** Writes the rendered files and the per-member wrapper cnf (addresses, paths) next to them. */
  prepare(files: RenderedFiles, galeraListen: boolean): void {
    mkdirSync(this.dataDir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
    // mkdtemp makes 0700 folders: the mysql user must be able to walk into its own.
    chmodSync(this.baseDir, 0o755);
    const { uid, gid } = mysqlIds();
    chownSync(this.dir, uid, gid);
    writeFileSync(join(this.dir, "ha-backend.cnf"), files.myCnf);
    writeFileSync(join(this.dir, "secret.cnf"), files.secretCnf);
    writeFileSync(join(this.dir, "start.sh"), files.startScript);
    chmodSync(join(this.dir, "secret.cnf"), 0o600);
    // What a container gets from its own network namespace: its own address for every listener.
    const providerOptions = /wsrep_provider_options = "(.*)"/.exec(files.myCnf)?.[1];
    const local = [
      "[mysqld]",
      `datadir = ${this.dataDir}`,
      `socket = ${this.socket}`,
      `pid-file = ${join(this.dir, "mysqld.pid")}`,
      `log-error = ${join(this.dir, "error.log")}`,
      `tmpdir = ${this.tmpDir}`,
      `bind-address = ${this.host}`,
      "user = mysql",
      ...(galeraListen && providerOptions
        ? [
            `wsrep_node_address = ${this.host}`,
            `wsrep_provider_options = "${providerOptions}; gmcast.listen_addr=tcp://${this.host}:4567; ist.recv_addr=${this.host}:4568"`,
            `wsrep_sst_receive_address = ${this.host}:4444`,
          ]
        : []),
      "[client]",
      `socket = ${this.socket}`,
    ];
    writeFileSync(
      join(this.dir, "my.cnf"),
      [
        `!include ${join(this.dir, "ha-backend.cnf")}`,
        `!include ${join(this.dir, "secret.cnf")}`,
        ...local,
        "",
      ].join("\n"),
    );
    // The start script execs the server with its flags; this stand-in for the image's entrypoint
    // puts the member's cnf first, as mariadbd requires.
    writeFileSync(
      join(this.dir, "exec.sh"),
      `#!/bin/sh\nserver="$1"; shift\nexec "$server" --defaults-file=${join(this.dir, "my.cnf")} "$@"\n`,
    );
    chmodSync(join(this.dir, "exec.sh"), 0o755);
    chownTree(this.dir);
  }

  /** mariadb-install-db, as the image does on an empty data directory. */
  install(): void {
    const r = spawnSync(
      "mariadb-install-db",
      [
        "--no-defaults",
        "--user=mysql",
        `--datadir=${this.dataDir}`,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
      ],
      { encoding: "utf8", timeout: INSTALL_DB_TIMEOUT_MS, env: { ...process.env, TMPDIR: this.tmpDir } },
    );
    if (r.status !== 0) throw new Error(`install-db ${this.name}: ${r.stderr}`);
  }

  /** Runs the rendered start script with this member's host name; returns the server process. */
  start(procs: ProcessGroup): ChildProcess {
    this.process = procs.start("env", [
      `HOSTNAME=${this.name}`,
      `TMPDIR=${this.tmpDir}`,
      `HA_BACKEND_EXEC=${join(this.dir, "exec.sh")}`,
      `HA_BACKEND_DATADIR=${this.dataDir}`,
      `HA_BACKEND_INITDB=${join(this.dir, "initdb")}`,
      `PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
      "bash",
      join(this.dir, "start.sh"),
    ]);
    return this.process;
  }

  /** Runs SQL as root over the socket (how the image's entrypoint applies init scripts). */
  sql(text: string, timeoutMs = SQL_TIMEOUT_MS): string {
    const r = spawnSync("mariadb", [`--defaults-file=${join(this.dir, "my.cnf")}`, "-uroot", "-N", "-B"], {
      input: text,
      encoding: "utf8",
      timeout: timeoutMs,
    });
    if (r.error !== undefined) throw new Error(`${this.name}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${this.name}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Waits until mariadbd answers on its socket (a fresh client per probe). */
  async waitUp(bound: WaitBound = MARIADBD_START_UP): Promise<number> {
    return waitFor(
      `${this.name} socket`,
      async () =>
        spawnSync("mariadb-admin", [`--socket=${this.socket}`, "-uroot", "ping"], {
          timeout: PROBE_TIMEOUT_MS,
        }).status === 0,
      bound,
    );
  }

  /**
   * Applies the init scripts the start script picked for this member, in name order: what the
   * image's entrypoint does with /docker-entrypoint-initdb.d on a new data directory.
   */
  applyInitdb(): string[] {
    const initdb = join(this.dir, "initdb");
    const scripts = readdirSync(initdb).sort();
    for (const f of scripts) this.sql(readFileSync(join(initdb, f), "utf8"));
    return scripts;
  }

  /** One status variable, read on a fresh connection: safe to poll across restarts. */
  status(variable: string): string {
    return this.sql(`SHOW GLOBAL STATUS LIKE '${variable}'`, PROBE_TIMEOUT_MS).split("\t")[1] ?? "";
  }
}

/** The first node of a new cluster is Synced once it bootstrapped (at once here). */
export const BOOTSTRAPPED: WaitBound = {
  withinMs: 30_000,
  because: "a new cluster's first node is Synced as soon as it bootstrapped: no timer governs it; a cap",
};

/**
 * A node starting into a running cluster, by full SST: about 13 s here, once 27 s under a CPU
 * hog. A node restarting after kill -9 comes back by IST from the position the start script
 * recovers (--wsrep-recover, then --wsrep-start-position): about 3.5 s here, 8 s under a CPU hog
 * (13 s by SST before).
 */
export const JOINED: WaitBound = {
  withinMs: 120_000,
  because:
    "mariadbd start-up plus a state transfer: mariabackup SST, whose donor script sleeps 10 s before " +
    "streaming, or after a crash a --wsrep-recover run then IST from a donor's gcache; no timer bounds " +
    "the rest; a cap for a loaded 2-core machine",
};

/** Waits until `node` reports Synced (wsrep_local_state 4), on a fresh connection per probe. */
export async function synced(node: MariaNode, bound: WaitBound): Promise<number> {
  return waitFor(`${node.name} Synced`, async () => node.status("wsrep_local_state") === "4", bound);
}

/**
 * A new Galera cluster from `files`: the first node initialised like the image does and
 * bootstrapped, then the others join by state transfer, one after another, or all started at
 * once as containers are (the start script then makes each wait for the member before it).
 * A joiner that does not get Synced fails with the end of its error log. Returns the join times.
 */
export async function bootstrapGalera(
  procs: ProcessGroup,
  nodes: MariaNode[],
  files: RenderedFiles,
  startJoiners: "one by one" | "together",
): Promise<number[]> {
  for (const n of nodes) n.prepare(files, true);
  nodes[0].install();
  nodes[0].start(procs);
  await nodes[0].waitUp(MARIADBD_START_UP);
  const linked = nodes[0].applyInitdb();
  if (linked.join() !== "10-ha-backend-init.sql") throw new Error(`the first node linked ${linked.join()}`);
  await synced(nodes[0], BOOTSTRAPPED);
  const joined = async (n: MariaNode) =>
    synced(n, JOINED).catch((e: Error) => {
      throw new Error(`${e.message}\n${readFileSync(join(n.dir, "error.log"), "utf8").slice(-3000)}`);
    });
  const times: number[] = [];
  if (startJoiners === "together") {
    for (const n of nodes.slice(1)) {
      n.install();
      n.start(procs);
    }
  }
  for (const n of nodes.slice(1)) {
    if (startJoiners === "one by one") {
      n.install();
      n.start(procs);
    }
    times.push(await joined(n));
  }
  return times;
}

/** A TCP connection as the application user (through a router or to a member). */
export function connect(
  host: string,
  port: number,
  user: string,
  password: string,
  database: string,
): Promise<Connection> {
  if (!host.startsWith("127.")) throw new Error("tests connect to loopback only");
  return createConnection({ host, port, user, password, database, connectTimeout: CONNECT_TIMEOUT_MS });
}

/** Credentials for a test cluster whose app database and user are both `app`. */
export function testCredentials(app: string): MysqlCredentials {
  return {
    rootPassword: "unused-in-test",
    appUser: app,
    appPassword: `${app}-pass-123`,
    appDatabase: app,
    replicationUser: "repl",
    replicationPassword: "repl-pass-123",
    sstUser: "sst",
    sstPassword: "sst-pass-123",
  };
}

export interface TestRouter {
  readonly host: string;
  readonly rw: number;
  readonly ro: number;
  readonly stats: number;
}

/** Renders the database router for `nodes` with fast checks, runs it in the real HAProxy, waits for it. */
export async function startRouter(
  procs: ProcessGroup,
  dir: string,
  mode: MysqlMode,
  nodes: MariaNode[],
  router: TestRouter,
): Promise<void> {
  startHaproxy(
    procs,
    join(dir, "router"),
    renderDbRouter({
      mode,
      members: nodes.map((n) => ({ name: n.name, host: n.host, port: n.port })),
      listenAddress: router.host,
      statsAddress: router.host,
      rwPort: router.rw,
      roPort: router.ro,
      statsPort: router.stats,
      check: ROUTER_CHECK,
      clientTimeoutMs: 60_000,
    }),
  );
  await waitFor(
    "router",
    async () => (await httpGet(router.host, router.stats, "/lb-health")).status === 200,
    HAPROXY_START_UP,
  );
}

/** The router's view of one server (`UP`, `DOWN`, …) in one of its listeners. */
export async function routerState(
  router: TestRouter,
  listener: "rw" | "ro",
  server: string,
): Promise<string | undefined> {
  return (await haproxyServerStates(router.host, router.stats)).get(`${listener}/${server}`);
}

/** A small-footprint render spec for `nodes` on loopback; tests patch what they exercise. */
export function testSpec(
  clusterName: string,
  nodes: MariaNode[],
  patch: Partial<MysqlRenderSpec>,
): MysqlRenderSpec {
  return {
    engine: "mariadb",
    mode: "replication",
    clusterName,
    members: nodes.map((n) => ({ name: n.name, host: n.host })),
    port: 3306,
    semiSync: false,
    semiSyncTimeoutMs: 10_000,
    galera: { ...GALERA_DEFAULT_TIMINGS, sstMethod: "mariabackup" },
    bufferPool: "64M",
    maxConnections: 200,
    ...patch,
  };
}

/** Every file a member gets, rendered as the component renders them; the SQL placed in `dir`. */
export function renderTestFiles(spec: MysqlRenderSpec, creds: MysqlCredentials, dir: string): RenderedFiles {
  return {
    myCnf: renderMyCnf(spec),
    secretCnf: renderSecretCnf(spec, creds),
    startScript: renderStartScript(
      spec,
      sqlPaths(dir, { init: renderInitSql(spec, creds), replica: renderReplicaSql(spec, creds) }),
    ),
  };
}
