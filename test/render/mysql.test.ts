import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  GALERA_DEFAULT_TIMINGS,
  MONITOR_MAX_CONNECTIONS,
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderSecretCnf,
  renderStartScript,
  RECOVERED_POSITION_NOTE,
  RECOVERY_FAILED_NOTE,
  SAVED_VIEW_FILE,
  type MysqlCredentials,
  type MysqlRenderSpec,
} from "../../components/database/render/mysql";
import {
  renderDbRouter,
  replicationReadOnlyCheck,
  replicationWritableCheck,
} from "../../components/database/render/router";
import { PROMOTE_APPLY_WAIT_SECONDS, renderPromoteScript } from "../../components/database/render/promote";
import { haproxyCheck, tempDir } from "../support/daemons";
import { expectGolden } from "../support/golden";

const members = [0, 1, 2].map((i) => ({ name: `orders-db-${i}`, host: `orders-db-${i}` }));
const replication: MysqlRenderSpec = {
  engine: "mariadb",
  mode: "replication",
  clusterName: "orders",
  members,
  port: 3306,
  semiSync: true,
  semiSyncTimeoutMs: 10_000,
  galera: { ...GALERA_DEFAULT_TIMINGS, sstMethod: "mariabackup" },
  bufferPool: "256M",
  maxConnections: 500,
};
const galera: MysqlRenderSpec = { ...replication, mode: "galera", semiSync: false };
const mysql84: MysqlRenderSpec = { ...replication, engine: "mysql" };
const creds: MysqlCredentials = {
  rootPassword: "r",
  appUser: "shop",
  appPassword: "p'w",
  appDatabase: "orders",
  replicationUser: "replicator",
  replicationPassword: "rp",
  sstUser: "sst",
  sstPassword: "sp",
};
const paths = {
  dataDir: "/var/lib/mysql",
  initSql: "/etc/ha-backend/db/init.sql",
  replicaSql: "/etc/ha-backend/db/replica.sql",
  rootPassword: "/etc/ha-backend/db/root-password",
};

/**
 * A grastate.dat: a clean stop's by default, a crash's with seqno -1 (Galera writes the position
 * only at a clean stop); `safe` is Galera's mark on the node that left the cluster last.
 */
const grastate = (safe: 0 | 1, seqno = 3) =>
  `# GALERA saved state\nversion: 2.1\nuuid:    1b8d3b4a-e9b0-11f1-a7b4-c7f523247421\nseqno:   ${seqno}\nsafe_to_bootstrap: ${safe}\n`;

/** Runs the rendered start script as member `host`, with `echo` in place of the image's entrypoint. */
function roleOf(
  spec: MysqlRenderSpec,
  host: string,
  opts: {
    grastate?: boolean | string;
    dataFiles?: Record<string, string>;
    /** A directory put first on PATH (stand-in clients). */
    bin?: string;
    joinWaitSeconds?: number;
    /** Stands in for the image's entrypoint. @default echo */
    exec?: string;
  } = {},
) {
  const dir = tempDir("start-script");
  mkdirSync(join(dir, "data"));
  if (opts.grastate) {
    const text = opts.grastate === true ? "# GALERA saved state\n" : opts.grastate;
    writeFileSync(join(dir, "data", "grastate.dat"), text);
  }
  for (const [f, text] of Object.entries(opts.dataFiles ?? {})) writeFileSync(join(dir, "data", f), text);
  writeFileSync(join(dir, "start.sh"), renderStartScript(spec, paths));
  mkdirSync(join(dir, "tmp"));
  const r = spawnSync("bash", [join(dir, "start.sh"), "--extra"], {
    env: {
      PATH: opts.bin ? `${opts.bin}:${process.env.PATH}` : process.env.PATH,
      HA_BACKEND_JOIN_WAIT_SECONDS: String(opts.joinWaitSeconds ?? 0),
      HOSTNAME: host,
      TMPDIR: join(dir, "tmp"),
      HA_BACKEND_EXEC: opts.exec ?? "echo",
      HA_BACKEND_DATADIR: join(dir, "data"),
      HA_BACKEND_INITDB: join(dir, "initdb"),
    },
    encoding: "utf8",
    timeout: 30_000,
  });
  const linked = spawnSync("ls", [join(dir, "initdb")], { encoding: "utf8" })
    .stdout.trim()
    .split("\n")
    .filter(Boolean);
  const data = readdirSync(join(dir, "data")).sort();
  const tmp = readdirSync(join(dir, "tmp"));
  const all = r.stdout.trim().split(" ");
  // A Galera node's name and donor preference: the same on every start, asserted on their own.
  const naming = /^--wsrep-(node-name|sst-donor)=/;
  return {
    code: r.status,
    args: all.filter((a) => !naming.test(a)),
    naming: all.filter((a) => naming.test(a)),
    stderr: r.stderr,
    linked,
    dir,
    data,
    tmp,
  };
}

describe("renderMyCnf", () => {
  it("MariaDB replication: GTID strict, replicas log what they apply, ROW, semi-sync AFTER_SYNC", () => {
    const cnf = renderMyCnf(replication);
    expectGolden("mariadb-replication.cnf", cnf);
    for (const line of [
      "gtid_strict_mode = ON",
      "log_slave_updates = ON",
      "binlog_format = ROW",
      "rpl_semi_sync_master_wait_point = AFTER_SYNC",
      "sync_binlog = 1",
    ]) {
      expect(cnf).toContain(`${line}\n`);
    }
    // The role decides which side of semi-sync is on (see the start script).
    expect(cnf).not.toContain("rpl_semi_sync_master_enabled");
  });

  it("Galera: provider, peers, state transfer, recovery and the failure-detection timings", () => {
    const cnf = renderMyCnf({
      ...galera,
      galera: {
        ...galera.galera,
        suspectTimeoutMs: 2000,
        inactiveTimeoutMs: 4000,
        keepalivePeriodMs: 500,
        inactiveCheckPeriodMs: 500,
      },
    });
    expectGolden("mariadb-galera.cnf", cnf);
    expect(cnf).toContain("wsrep_cluster_address = gcomm://orders-db-0,orders-db-1,orders-db-2\n");
    expect(cnf).toContain(
      'wsrep_provider_options = "pc.recovery=TRUE; evs.suspect_timeout=PT2S; evs.inactive_timeout=PT4S; evs.inactive_check_period=PT0.5S; evs.keepalive_period=PT0.5S; gmcast.peer_timeout=PT3S"\n',
    );
    expect(cnf).toContain("innodb_autoinc_lock_mode = 2\n");
    expect(cnf).toContain("wsrep_sst_method = mariabackup\n");
  });

  it("MySQL 8.4 dialect: gtid_mode, enforce_gtid_consistency, semi-sync plugins by their 8.4 names", () => {
    const cnf = renderMyCnf(mysql84);
    for (const line of [
      "gtid_mode = ON",
      "enforce_gtid_consistency = ON",
      "log_replica_updates = ON",
      "plugin_load_add = semisync_source.so",
      "rpl_semi_sync_source_wait_point = AFTER_SYNC",
    ]) {
      expect(cnf).toContain(`${line}\n`);
    }
    expect(cnf).not.toMatch(/gtid_strict_mode|log_slave_updates|rpl_semi_sync_master/);
  });
});

describe("bootstrap SQL", () => {
  it("creates the same users everywhere with the binary log off, and quotes passwords", () => {
    const sql = renderInitSql(replication, creds);
    expect(sql.split("\n")[1]).toBe("SET SESSION sql_log_bin = 0;");
    expect(sql).toContain("CREATE USER IF NOT EXISTS 'shop'@'%' IDENTIFIED BY 'p''w';");
    expect(sql).toContain("GRANT ALL PRIVILEGES ON `orders`.* TO 'shop'@'%';");
    expect(sql).toContain("CREATE USER IF NOT EXISTS 'haproxy_check'@'%';");
    expect(renderInitSql(galera, creds)).toContain("SET SESSION wsrep_on = OFF;\n");
    expect(renderInitSql(mysql84, creds)).toContain("IDENTIFIED WITH caching_sha2_password BY 'p''w';");
  });

  it("creates no monitor user unless one is given", () => {
    for (const spec of [replication, galera, mysql84]) {
      expect(renderInitSql(spec, creds)).not.toContain("'127.0.0.1'");
      expect(renderInitSql(spec, creds)).not.toContain("MAX_USER_CONNECTIONS");
    }
  });

  it("creates the monitor user for loopback only, with read-only privileges and 3 connections", () => {
    const monitored: MysqlCredentials = { ...creds, monitorUser: "metrics", monitorPassword: "m.pw-1" };
    const maria = renderInitSql(replication, monitored).split("\n");
    // GIVEN MariaDB: SLAVE MONITOR too, which 10.11 wants for SHOW SLAVE STATUS
    expect(maria).toContain(
      "CREATE USER IF NOT EXISTS 'metrics'@'127.0.0.1' IDENTIFIED BY 'm.pw-1' WITH MAX_USER_CONNECTIONS 3;",
    );
    expect(maria).toContain(
      "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'metrics'@'127.0.0.1';",
    );
    // Created with the binary log off, before FLUSH PRIVILEGES, like every other user.
    expect(maria.indexOf("SET SESSION sql_log_bin = 0;")).toBeLessThan(
      maria.findIndex((l) => l.includes("'metrics'")),
    );
    expect(maria.findIndex((l) => l.includes("'metrics'"))).toBeLessThan(maria.indexOf("FLUSH PRIVILEGES;"));
    // The account exists for 127.0.0.1 only: never '%' or a name.
    expect(
      maria.filter((l) => l.includes("'metrics'@")).every((l) => l.includes("'metrics'@'127.0.0.1'")),
    ).toBe(true);
    expect(MONITOR_MAX_CONNECTIONS).toBe(3);
    // Galera: the same user, created on the bootstrap node (state transfer copies it).
    expect(renderInitSql(galera, monitored)).toContain(
      "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'metrics'@'127.0.0.1';\n",
    );
    // MySQL 8.4: caching_sha2_password; SHOW REPLICA STATUS needs only REPLICATION CLIENT.
    const my = renderInitSql(mysql84, monitored);
    expect(my).toContain(
      "CREATE USER IF NOT EXISTS 'metrics'@'127.0.0.1' IDENTIFIED WITH caching_sha2_password BY 'm.pw-1' WITH MAX_USER_CONNECTIONS 3;\n",
    );
    expect(my).toContain("GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'metrics'@'127.0.0.1';\n");
    expect(my).not.toContain("SLAVE MONITOR");
    // Never a write, DDL or admin privilege, and no SELECT (it would read the app's data).
    expect(maria.filter((l) => l.includes("'metrics'")).join("\n")).not.toMatch(
      /ALL|SELECT|INSERT|UPDATE|DELETE|CREATE[^ ]|DROP|ALTER|SUPER|RELOAD|SHUTDOWN|GRANT OPTION/,
    );
    // Docker: the exporter is a container of its own, at an address not known in advance.
    expect(renderInitSql(replication, { ...monitored, monitorHost: "%" })).toContain(
      "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'metrics'@'%';\n",
    );
  });

  it.each<[string, Partial<MysqlCredentials>, string]>([
    [
      "a user without a password",
      { monitorUser: "metrics" },
      "renderInitSql: monitorPassword must be given together with monitorUser, but undefined was provided.",
    ],
    [
      "a password without a user",
      { monitorPassword: "m.pw-1" },
      "renderInitSql: monitorUser must be given together with monitorPassword, but undefined was provided.",
    ],
    [
      "a user name with a quote",
      { monitorUser: "m'x", monitorPassword: "m.pw-1" },
      `renderInitSql: monitorUser must be an identifier: a lowercase letter or _, then lowercase letters, digits and _ (at most 32 characters), e.g. shop, but "m'x" (character "'" at index 1) was provided.`,
    ],
    [
      "the app user's name (its loopback logins would become the monitor's)",
      { monitorUser: "shop", monitorPassword: "m.pw-1" },
      'renderInitSql: monitorUser must not be one of the keywords root, mysql, haproxy_check, shop, replicator, sst, but "shop" was provided.',
    ],
    [
      "a password the exporter's [client] file cannot hold",
      { monitorUser: "metrics", monitorPassword: "a b#c" },
      "renderInitSql: monitorPassword must be letters, digits, ., _, ~, +, = and - (1 to 256 characters), but a secret of 5 characters (not shown) was provided.",
    ],
  ])("refuses %s", (_, patch, message) => {
    expect(() => renderInitSql(replication, { ...creds, ...patch })).toThrow(message);
    // Every renderer that takes the credentials checks them.
    expect(() => renderSecretCnf(galera, { ...creds, ...patch })).toThrow(
      message.replace("renderInitSql", "renderSecretCnf"),
    );
  });

  it("attaches replicas by GTID in each dialect", () => {
    expect(renderReplicaSql(replication, creds)).toContain("MASTER_USE_GTID = slave_pos");
    expect(renderReplicaSql(replication, creds)).toContain("MASTER_HOST = 'orders-db-0'");
    const my = renderReplicaSql(mysql84, creds);
    expect(my).toContain("CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'orders-db-0'");
    expect(my).toContain("SOURCE_AUTO_POSITION = 1");
    expect(my).toContain("START REPLICA;");
  });
});

describe("the start script, run as each member", () => {
  it("names each Galera node after its member and asks the other members for state transfers, last ordinal first", () => {
    expect([0, 1, 2].map((i) => roleOf(galera, `orders-db-${i}`, { grastate: true }).naming)).toEqual([
      ["--wsrep-node-name=orders-db-0", "--wsrep-sst-donor=orders-db-2,orders-db-1,"],
      ["--wsrep-node-name=orders-db-1", "--wsrep-sst-donor=orders-db-2,orders-db-0,"],
      ["--wsrep-node-name=orders-db-2", "--wsrep-sst-donor=orders-db-1,orders-db-0,"],
    ]);
    expect(roleOf(replication, "orders-db-1").naming).toEqual([]);
  });

  it.each<[string, MysqlRenderSpec, string, boolean, string[], string[]]>([
    [
      "the replication primary",
      replication,
      "orders-db-0",
      false,
      ["mariadbd", "--server-id=1", "--gtid-domain-id=1", "--rpl-semi-sync-master-enabled=ON", "--extra"],
      ["10-ha-backend-init.sql"],
    ],
    [
      "a replication replica",
      replication,
      "orders-db-2",
      false,
      [
        "mariadbd",
        "--server-id=3",
        "--gtid-domain-id=3",
        "--read-only=ON",
        "--rpl-semi-sync-slave-enabled=ON",
        "--extra",
      ],
      ["10-ha-backend-init.sql", "20-ha-backend-replica.sql"],
    ],
    [
      "a MySQL replica",
      mysql84,
      "orders-db-1",
      false,
      ["mysqld", "--server-id=2", "--super-read-only=ON", "--rpl-semi-sync-replica-enabled=ON", "--extra"],
      ["10-ha-backend-init.sql", "20-ha-backend-replica.sql"],
    ],
    [
      "Galera's first node of a new cluster",
      galera,
      "orders-db-0",
      false,
      ["mariadbd", "--server-id=1", "--gtid-domain-id=1", "--wsrep-new-cluster", "--extra"],
      ["10-ha-backend-init.sql"],
    ],
    [
      "Galera's first node restarting",
      galera,
      "orders-db-0",
      true,
      ["mariadbd", "--server-id=1", "--gtid-domain-id=1", "--extra"],
      ["10-ha-backend-init.sql"],
    ],
  ])("%s", (_label, spec, host, grastate, args, linked) => {
    const r = roleOf(spec, host, { grastate });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.args).toEqual(args);
    expect(r.linked).toEqual(linked);
  });

  it("a new Galera joiner starts once the member before it is Synced, asked as the check user", () => {
    // A stand-in client: records how it was asked, answers Synced (4).
    const bin = tempDir("fake-mariadb");
    writeFileSync(
      join(bin, "mariadb"),
      `#!/bin/sh\necho "$*" >> "${join(bin, "asked")}"\nprintf 'wsrep_local_state\\t4\\n'\n`,
    );
    chmodSync(join(bin, "mariadb"), 0o755);
    const r = roleOf(galera, "orders-db-2", { bin, joinWaitSeconds: 60 });
    expect(r.stderr).toBe("");
    expect(r.args).toEqual(["mariadbd", "--server-id=3", "--gtid-domain-id=3", "--extra"]);
    expect(r.linked).toEqual(["10-ha-backend-init.sql"]);
    expect(readFileSync(join(bin, "asked"), "utf8")).toBe(
      "--no-defaults -h orders-db-1 -P 3306 -u haproxy_check --connect-timeout=2 -N -B -e SHOW GLOBAL STATUS LIKE 'wsrep_local_state'\n",
    );
  });

  it("a new Galera joiner waits for the member before it a bounded time, then joins anyway", () => {
    const started = Date.now();
    const r = roleOf(galera, "orders-db-1", { joinWaitSeconds: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(r.stderr).toBe("ha-backend: orders-db-0 is not Synced; joining anyway\n");
    expect(r.args).toEqual(["mariadbd", "--server-id=2", "--gtid-domain-id=2", "--extra"]);
  });

  it("bootstraps from the node Galera marked safe_to_bootstrap, whatever its ordinal", () => {
    const r = roleOf(galera, "orders-db-2", {
      grastate: grastate(1),
      dataFiles: { [SAVED_VIEW_FILE]: "old" },
    });
    expect(r.args).toEqual([
      "mariadbd",
      "--server-id=3",
      "--gtid-domain-id=3",
      "--wsrep-new-cluster",
      "--extra",
    ]);
    // A view saved at an earlier stop is stale once this node starts a new primary component.
    expect(r.data).toEqual(["grastate.dat"]);
  });

  it("after a clean stop, gives pc.recovery back the view saved at SIGTERM", () => {
    const r = roleOf(galera, "orders-db-0", {
      grastate: grastate(0),
      dataFiles: { [SAVED_VIEW_FILE]: "view" },
    });
    expect(r.args).toEqual(["mariadbd", "--server-id=1", "--gtid-domain-id=1", "--extra"]);
    expect(r.data).toEqual(["grastate.dat", "gvwstate.dat"]);
    expect(readFileSync(join(r.dir, "data", "gvwstate.dat"), "utf8")).toBe("view");
  });

  it("after a crash, keeps Galera's own view (newer than a saved one)", () => {
    const r = roleOf(galera, "orders-db-1", {
      grastate: grastate(0),
      dataFiles: { "gvwstate.dat": "crash", [SAVED_VIEW_FILE]: "older" },
    });
    expect(r.args).toEqual(["mariadbd", "--server-id=2", "--gtid-domain-id=2", "--extra"]);
    expect(r.data).toEqual(["grastate.dat", "gvwstate.dat"]);
    expect(readFileSync(join(r.dir, "data", "gvwstate.dat"), "utf8")).toBe("crash");
  });

  it("on SIGTERM saves the node's primary view, then stops the server and exits with its status", async () => {
    const dir = tempDir("start-script-term");
    mkdirSync(join(dir, "data"));
    writeFileSync(join(dir, "data", "grastate.dat"), grastate(0));
    writeFileSync(join(dir, "data", "gvwstate.dat"), "view at the stop");
    writeFileSync(join(dir, "start.sh"), renderStartScript(galera, paths));
    // The server's stand-in: says it runs, and on SIGTERM stops as Galera does, removing its view.
    const server = join(dir, "server.sh");
    writeFileSync(
      server,
      [
        "#!/bin/bash",
        `trap 'rm -f "${join(dir, "data", "gvwstate.dat")}"; exit 7' TERM`,
        "echo running",
        "for _ in $(seq 300); do sleep 0.1; done",
        "exit 1",
        "",
      ].join("\n"),
    );
    chmodSync(server, 0o755);
    const child = spawn("bash", [join(dir, "start.sh")], {
      env: {
        PATH: process.env.PATH,
        HOSTNAME: "orders-db-1",
        HA_BACKEND_EXEC: server,
        HA_BACKEND_DATADIR: join(dir, "data"),
        HA_BACKEND_INITDB: join(dir, "initdb"),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    // Bounded by the stand-in's own 30 s and jest's timeout: it prints once it runs.
    await new Promise((resolve) => child.stdout.once("data", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(7);
    expect(readdirSync(join(dir, "data")).sort()).toEqual(["grastate.dat", SAVED_VIEW_FILE]);
    expect(readFileSync(join(dir, "data", SAVED_VIEW_FILE), "utf8")).toBe("view at the stop");
  });

  it("refuses a host name without an ordinal", () => {
    const r = roleOf(replication, "orders-db");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot read a member ordinal from host name orders-db");
  });
});

/**
 * A stand-in for the image's entrypoint that records every run's arguments: a `--wsrep-recover`
 * run prints `recoveryLog` on stderr (where the script sends the server's error log) and exits
 * `code`; the real start echoes its arguments, as `echo` does in {@link roleOf}.
 */
function recoveringEntrypoint(recoveryLog: string, code = 0) {
  const dir = tempDir("fake-entrypoint");
  const runs = join(dir, "runs");
  writeFileSync(join(dir, "recovery.log"), recoveryLog);
  writeFileSync(
    join(dir, "entrypoint.sh"),
    [
      "#!/bin/sh",
      `echo "$*" >> "${runs}"`,
      'case " $* " in *" --wsrep-recover "*)',
      `  cat "${join(dir, "recovery.log")}" >&2`,
      `  exit ${code};;`,
      "esac",
      'echo "$@"',
      "",
    ].join("\n"),
  );
  chmodSync(join(dir, "entrypoint.sh"), 0o755);
  const all = () => (existsSync(runs) ? readFileSync(runs, "utf8").trim().split("\n") : []);
  return {
    exec: join(dir, "entrypoint.sh"),
    recoveryRuns: () => all().filter((run) => run.includes(" --wsrep-recover")),
    starts: () => all().filter((run) => !run.includes(" --wsrep-recover")),
  };
}

describe("the Galera start script after a crash (grastate.dat seqno -1)", () => {
  const position = "1b8d3b4a-e9b0-11f1-a7b4-c7f523247421:42,0-1-42";
  const innodbNotes = "2026-11-26 18:46:25 0 [Note] InnoDB: log sequence number 44404; transaction id 14\n";

  it("recovers the position with --wsrep-recover through the entrypoint, then starts from it", () => {
    const server = recoveringEntrypoint(
      `${innodbNotes}2026-11-26 18:46:25 0 [Note] WSREP: Recovered position: ${position}\n`,
    );
    const r = roleOf(galera, "orders-db-1", {
      grastate: grastate(0, -1),
      dataFiles: { "gvwstate.dat": "crash" },
      exec: server.exec,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `${RECOVERED_POSITION_NOTE} ${position} after a crash; a donor can send what it missed (IST)\n`,
    );
    // The member's own flags, then the recovered position (GTID included, as galera_recovery
    // passes it), the container's arguments last; a crashed node never bootstraps.
    expect(r.args[0]).toBe("mariadbd");
    expect(r.args).toContain("--server-id=2");
    expect(r.args.slice(-2)).toEqual([`--wsrep-start-position=${position}`, "--extra"]);
    expect(r.args).not.toContain("--wsrep-new-cluster");
    // Before it, one recovery run with the same server and flags, its error log sent to stderr
    // whatever a cnf's log-error says; the script's temporary copy of that log is gone.
    const [start] = server.starts();
    expect(server.recoveryRuns()).toEqual([
      `${start.replace(` --wsrep-start-position=${position}`, "")} --wsrep-recover --disable-log-error`,
    ]);
    expect(r.tmp).toEqual([]);
    // Galera's own view after the crash stays for pc.recovery.
    expect(r.data).toEqual(["grastate.dat", "gvwstate.dat"]);
  });

  it.each<[string, string, number]>([
    ["the recovery run fails", "2026-11-26 18:46:25 0 [ERROR] InnoDB: Plugin initialization aborted", 1],
    ["its log has no position", "2026-11-26 18:46:25 0 [Note] WSREP: something else", 0],
    [
      "the node had no state yet (crashed in its first SST)",
      "2026-11-26 18:46:25 0 [Note] WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1,0-0-0",
      0,
    ],
  ])("starts without a position, by full state transfer, when %s", (_label, lastLine, code) => {
    const server = recoveringEntrypoint(`${innodbNotes}${lastLine}\n`, code);
    const r = roleOf(galera, "orders-db-2", { grastate: grastate(0, -1), exec: server.exec });
    expect(r.code).toBe(0);
    expect(server.recoveryRuns()).toHaveLength(1);
    expect(r.stderr.split("\n")[0]).toMatch(new RegExp(`^${RECOVERY_FAILED_NOTE}; starting without it`));
    // The reason is in the container's log.
    expect(r.stderr).toContain(`${lastLine}\n`);
    expect(r.args.join(" ")).not.toContain("--wsrep-start-position");
    expect(r.args.slice(-1)).toEqual(["--extra"]);
    expect(r.tmp).toEqual([]);
  });

  it.each<[string, string]>([
    ["after a clean stop (Galera saved the position)", grastate(0)],
    ["on the node that bootstraps (safe_to_bootstrap: 1)", grastate(1, -1)],
  ])("runs no recovery %s", (_label, state) => {
    const server = recoveringEntrypoint("unused\n");
    const r = roleOf(galera, "orders-db-1", { grastate: state, exec: server.exec });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(server.recoveryRuns()).toEqual([]);
    expect(r.args.join(" ")).not.toContain("--wsrep-start-position");
  });

  it.each([
    ["replication", replication],
    ["galera", galera],
    ["mysql", mysql84],
  ] as const)("%s: the rendered script passes bash -n", (_label, spec) => {
    const file = join(tempDir("start-script-n"), "start.sh");
    writeFileSync(file, renderStartScript(spec, paths));
    const r = spawnSync("bash", ["-n", file], { encoding: "utf8", timeout: 10_000 });
    expect([r.status, r.stderr]).toEqual([0, ""]);
  });
});

/**
 * A stand-in `mariadb` client for the scripts: logs every call (`<host>: <sql>`), answers from
 * per-host state files in `dir`: `<host>.down` (refuses), `<host>.writable` (read_only OFF),
 * `<host>.pos` (GTID position), `<host>.replica` (has a SHOW SLAVE STATUS row).
 */
function fakeMariadb(
  hosts: Record<string, { down?: boolean; writable?: boolean; pos?: string; replica?: boolean }>,
) {
  const dir = tempDir("fake-mariadb");
  for (const [h, st] of Object.entries(hosts)) {
    if (st.down) writeFileSync(join(dir, `${h}.down`), "");
    if (st.writable) writeFileSync(join(dir, `${h}.writable`), "");
    if (st.replica) writeFileSync(join(dir, `${h}.replica`), "");
    writeFileSync(join(dir, `${h}.pos`), `${st.pos ?? ""}\n`);
  }
  const slaveStatus = [
    "Slave_IO_Running: Yes",
    "Slave_SQL_Running: Yes",
    "Master_Log_File: binlog.000001",
    "Read_Master_Log_Pos: 4242",
  ].join("\\n");
  writeFileSync(
    join(dir, "mariadb"),
    [
      "#!/bin/bash",
      'host=""; sql=""; vertical=0; user=""',
      'while [ $# -gt 0 ]; do case "$1" in -h) host=$2; shift ;; -u) user=$2; shift ;; -e) sql=$2; shift ;; -E) vertical=1 ;; esac; shift; done',
      '[ -n "$sql" ] || sql="$(cat)"',
      `s="${dir}/$host"`,
      `echo "$host: $sql" >> "${dir}/log"`,
      `if [ -e "$s.down" ]; then echo "ERROR 2002 (HY000): Can't connect to server on '$host'" >&2; exit 1; fi`,
      // Root's password is "r" (the client takes it from MYSQL_PWD, as the promotion script passes it).
      `if [ "$user" = root ] && [ "\${MYSQL_PWD:-}" != r ]; then echo "ERROR 1045 (28000): Access denied for user 'root'@'$host'" >&2; exit 1; fi`,
      'case "$sql" in',
      '  "SELECT @@read_only") if [ -e "$s.writable" ]; then echo 0; else echo 1; fi ;;',
      `  "SHOW GLOBAL VARIABLES LIKE 'read_only'") if [ -e "$s.writable" ]; then echo 'read_only	OFF'; else echo 'read_only	ON'; fi ;;`,
      `  "SHOW SLAVE STATUS") if [ ! -e "$s.replica" ]; then :; elif [ $vertical = 1 ]; then printf '${slaveStatus}\\n'; else echo row; fi ;;`,
      '  "SELECT @@gtid_current_pos"|"SELECT @@gtid_binlog_pos") cat "$s.pos" ;;',
      "  *MASTER_POS_WAIT*|*MASTER_GTID_WAIT*) echo 0 ;;",
      "  *Rpl_semi_sync_master_clients*) printf 'Rpl_semi_sync_master_clients\\t1\\n' ;;",
      '  "SET GLOBAL read_only = OFF") touch "$s.writable" ;;',
      '  "SET GLOBAL read_only = ON") rm -f "$s.writable" ;;',
      '  *"RESET SLAVE ALL"*) rm -f "$s.replica" ;;',
      '  *"CHANGE MASTER"*) touch "$s.replica" ;;',
      "esac",
      "",
    ].join("\n"),
  );
  chmodSync(join(dir, "mariadb"), 0o755);
  const log = () => (existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8") : "");
  return { bin: dir, log };
}

describe("the replication start script on a restart (fencing)", () => {
  const restart = (
    spec: MysqlRenderSpec,
    host: string,
    peers: Record<string, { down?: boolean; writable?: boolean }>,
    dataFiles: Record<string, string> = {},
  ) => {
    const fake = fakeMariadb(peers);
    const r = roleOf(spec, host, { bin: fake.bin, dataFiles: { "binlog.index": "", ...dataFiles } });
    return { ...r, asked: fake.log() };
  };
  const argsOf = (n: number, role: string[]) => [
    "mariadbd",
    `--server-id=${n + 1}`,
    `--gtid-domain-id=${n + 1}`,
    ...role,
    "--extra",
  ];
  const primaryArgs = (n: number) => argsOf(n, ["--rpl-semi-sync-master-enabled=ON"]);
  const readOnlyArgs = (n: number) => argsOf(n, ["--read-only=ON", "--rpl-semi-sync-slave-enabled=ON"]);

  it("an old primary comes back read-only while another member answers as writable", () => {
    const r = restart(replication, "orders-db-0", { "orders-db-1": { writable: true } });
    expect(r.code).toBe(0);
    expect(r.args).toEqual(readOnlyArgs(0));
    expect(r.stderr).toBe("ha-backend: orders-db-0 restarts read-only: orders-db-1 answers as writable\n");
    // Asked as the password-less check user, a global variable (no privilege needed).
    expect(r.asked).toBe("orders-db-1: SHOW GLOBAL VARIABLES LIKE 'read_only'\n");
  });

  it("a promoted member (no master.info) comes back writable while no other member is", () => {
    const r = restart(replication, "orders-db-1", { "orders-db-0": { down: true }, "orders-db-2": {} });
    expect(r.args).toEqual(primaryArgs(1));
    expect(r.stderr).toContain("orders-db-1 restarts writable: not a replica");
    expect(
      r.asked
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(":")[0]),
    ).toEqual(["orders-db-0", "orders-db-2"]);
  });

  it("a member configured as a replica comes back read-only without asking anyone", () => {
    const r = restart(replication, "orders-db-0", {}, { "master.info": "" });
    expect(r.args).toEqual(readOnlyArgs(0));
    expect(r.stderr).toContain("restarts read-only: it is configured as a replica (master.info)");
    expect(r.asked).toBe("");
  });

  it("MySQL keeps replica settings in tables: a member other than 0 always comes back read-only", () => {
    const r = restart(mysql84, "orders-db-1", {});
    expect(r.args).toEqual([
      "mysqld",
      "--server-id=2",
      "--super-read-only=ON",
      "--rpl-semi-sync-replica-enabled=ON",
      "--extra",
    ]);
    expect(r.stderr).toContain("restarts read-only: member 1 of a MySQL cluster");
  });
});

describe("renderPromoteScript", () => {
  const replicaSql = renderReplicaSql(replication, creds);
  /**
   * Runs the rendered script against stand-in members; the replica SQL and root's password file
   * (unless `rootPassword` is null) in place.
   */
  const run = (
    spec: MysqlRenderSpec,
    hosts: Parameters<typeof fakeMariadb>[0],
    args: string[] = [],
    rootPassword: string | null = "r",
  ) => {
    const fake = fakeMariadb(hosts);
    writeFileSync(join(fake.bin, "replica.sql"), replicaSql);
    if (rootPassword !== null) writeFileSync(join(fake.bin, "root-password"), rootPassword);
    writeFileSync(
      join(fake.bin, "promote.sh"),
      renderPromoteScript(spec, {
        replicaSql: join(fake.bin, "replica.sql"),
        rootPassword: join(fake.bin, "root-password"),
      }),
    );
    const r = spawnSync("bash", [join(fake.bin, "promote.sh"), ...args], {
      env: { PATH: `${fake.bin}:${process.env.PATH}` },
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr, asked: fake.log() };
  };
  const primaryDown = {
    "orders-db-0": { down: true },
    "orders-db-1": { replica: true, pos: "1-1-10" },
    "orders-db-2": { replica: true, pos: "1-1-12" },
  };

  it.each([
    ["MariaDB", replication],
    ["MySQL 8.4", mysql84],
  ])("%s: bash -n accepts it", (_label, spec) => {
    const dir = tempDir("promote");
    writeFileSync(join(dir, "promote.sh"), renderPromoteScript(spec, paths));
    const r = spawnSync("bash", ["-n", join(dir, "promote.sh")], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("names every member and its bounds, and opens writes only after the replicas are repointed", () => {
    const script = renderPromoteScript(replication, paths);
    expect(script).toContain("members=(orders-db-0 orders-db-1 orders-db-2)\n");
    expect(script).toContain(`apply_wait=${PROMOTE_APPLY_WAIT_SECONDS}\n`);
    expect(script).toContain(`replica_sql=${paths.replicaSql}\n`);
    expect(script.indexOf('attach "$r" "$best"')).toBeLessThan(script.indexOf("SET GLOBAL read_only = OFF"));
    expect(() => renderPromoteScript(galera, paths)).toThrow("only for replication mode");
  });

  it("promotes the most advanced replica, repoints the other at it, and opens writes last", () => {
    const r = run(replication, primaryDown);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("promote: orders-db-0: unreachable");
    expect(r.out).toContain("promote: most advanced: orders-db-2 (1-1-12;");
    const writes = r.asked.split("\n").filter((l) => !/: (SELECT|SHOW)/.test(l) && l !== "");
    expect(writes[0]).toBe("orders-db-1: STOP SLAVE IO_THREAD");
    expect(writes).toContain("orders-db-2: STOP SLAVE; RESET SLAVE ALL");
    // The other replica gets the replica SQL with the new primary's host, semi-sync slave side on.
    expect(r.asked).toContain(
      "orders-db-1: SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL rpl_semi_sync_slave_enabled = ON;\n",
    );
    expect(r.asked).toContain("CHANGE MASTER TO MASTER_HOST = 'orders-db-2', MASTER_PORT = 3306,\n");
    expect(r.asked).toContain("MASTER_USE_GTID = slave_pos");
    expect(writes.at(-1)).toBe("orders-db-2: SET GLOBAL read_only = OFF");
  });

  it("breaks a tie by the lowest ordinal", () => {
    const r = run(replication, { ...primaryDown, "orders-db-2": { replica: true, pos: "1-1-10" } });
    expect(r.code).toBe(0);
    expect(r.out).toContain("most advanced: orders-db-1 (1-1-10;");
  });

  it.each<[string, Parameters<typeof fakeMariadb>[0], string[], string | null, number, string]>([
    [
      "a primary that answers and is writable",
      { ...primaryDown, "orders-db-0": { writable: true, pos: "1-1-12" } },
      [],
      "r",
      1,
      "orders-db-0 answers and is writable: it is the primary, and promoting another member would make two. Nothing changed.",
    ],
    [
      "replicas that diverge",
      { ...primaryDown, "orders-db-1": { replica: true, pos: "1-1-10,2-2-3" } },
      [],
      "r",
      1,
      "hold different transactions: pick by hand",
    ],
    [
      "no root password file",
      primaryDown,
      [],
      null,
      1,
      "root-password (root's password): run this inside a member container",
    ],
    ["an unknown flag", primaryDown, ["--yes"], "r", 2, "usage: promote.sh [--force]"],
  ])("refuses %s", (_label, hosts, args, rootPassword, code, message) => {
    const r = run(replication, hosts, args, rootPassword);
    expect(r.code).toBe(code);
    expect(r.err).toContain(message);
    expect(r.asked).not.toMatch(/RESET SLAVE|read_only = OFF/);
  });

  it("--force fences a writable primary first, and makes it a replica if the new primary has all it has", () => {
    const r = run(replication, { ...primaryDown, "orders-db-0": { writable: true, pos: "1-1-12" } }, [
      "--force",
    ]);
    expect(r.code).toBe(0);
    const writes = r.asked.split("\n").filter((l) => /^orders-db-\d: (SET|STOP|CHANGE|RESET)/.test(l));
    expect(writes[0]).toBe("orders-db-0: SET GLOBAL read_only = ON");
    expect(r.out).toContain("orders-db-0: fenced (read_only ON); it holds nothing orders-db-2 lacks");
    expect(r.asked).toContain("orders-db-0: STOP SLAVE; SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos");
  });

  it("leaves a fenced member with transactions the new primary lacks read-only, and says so", () => {
    const r = run(replication, { ...primaryDown, "orders-db-0": { pos: "1-1-13" } });
    expect(r.code).toBe(1);
    expect(r.err).toContain("orders-db-0 has transactions the new primary lacks");
    expect(r.err).toContain("orders-db-2 was promoted, but the above needs attention");
  });

  it("MySQL 8.4: refuses with the steps to do by hand", () => {
    const r = run(mysql84, primaryDown);
    expect(r.code).toBe(1);
    expect(r.err).toContain("this script promotes MariaDB members only; this cluster runs MySQL 8.4");
    expect(r.asked).toBe("");
  });
});

describe("renderDbRouter", () => {
  const router = (mode: "replication" | "galera") =>
    renderDbRouter({
      mode,
      members: members.map((m) => ({ ...m, port: 3306 })),
      rwPort: 3306,
      roPort: 3307,
      statsPort: 8404,
      check: { intervalMs: 1000, timeoutMs: 800, fall: 2, rise: 2 },
      dynamicDns: { resolvers: [] },
      clientTimeoutMs: 3_600_000,
    });

  it("replication: writes follow read_only OFF on any member, reads the read-only ones, the writer as backup", () => {
    const cfg = router("replication");
    expectGolden("db-router-replication.cfg", cfg);
    const rw = cfg.slice(cfg.indexOf("listen rw"), cfg.indexOf("listen ro"));
    const ro = cfg.slice(cfg.indexOf("listen ro"), cfg.indexOf("frontend stats"));
    // Every member may be the writer after a promotion; `first` picks one should two pass.
    expect(rw.match(/^ {4}server orders-db-\d orders-db-\d:3306 check$/gm)).toHaveLength(3);
    expect(rw).toContain("    balance first\n");
    // The rows "read_only | OFF" and "read_only | ON" in MySQL's text protocol.
    const row = (v: string) =>
      Buffer.from(`\x09read_only${String.fromCharCode(v.length)}${v}`).toString("hex");
    expect(rw).toContain(`tcp-check expect binary ${row("OFF")}\n`);
    expect(ro).toContain(`tcp-check expect binary ${row("ON")}\n`);
    expect(cfg).not.toContain("mysql-check");
    expect(ro.match(/^ {4}server orders-db-\d orders-db-\d:3306 check$/gm)).toHaveLength(3);
    for (const m of members) {
      expect(ro).toContain(`server ${m.name}-primary ${m.host}:3306 backup track rw/${m.name}\n`);
    }
    expect(cfg).toContain("on-marked-down shutdown-sessions");
  });

  it.each([
    ["replicationWritableCheck", replicationWritableCheck(), "OFF"],
    ["replicationReadOnlyCheck", replicationReadOnlyCheck(), "ON"],
  ])("%s logs in as the check user and asks for read_only", (_name, check, value) => {
    const hex = (t: string) => Buffer.from(t).toString("hex");
    expect(check.join("\n")).toContain(hex("haproxy_check\0"));
    expect(check.join("\n")).toContain(hex("SHOW GLOBAL VARIABLES LIKE 'read_only'"));
    expect(check.at(-2)).toBe(
      `    tcp-check expect binary ${hex("\x09read_only")}${hex(String.fromCharCode(value.length) + value)}`,
    );
  });

  it("galera: one writer with the others as backups, reads everywhere, a Synced-only check", () => {
    const cfg = router("galera");
    expectGolden("db-router-galera.cfg", cfg);
    const rw = cfg.slice(cfg.indexOf("listen rw"), cfg.indexOf("listen ro"));
    expect(rw.match(/ check backup$/gm)).toHaveLength(2);
    // The preferred writer, back and Synced, cuts the sessions still open on its stand-in: the
    // routers agree on one writer again at once instead of writing to two nodes.
    expect(rw.match(/ check on-marked-up shutdown-backup-sessions$/gm)).toHaveLength(1);
    expect(rw.indexOf("on-marked-up")).toBeLessThan(rw.indexOf(" backup\n"));
    // The row "wsrep_local_state | 4" in MySQL's text protocol.
    expect(cfg).toContain(
      `tcp-check expect binary ${Buffer.from("\x11wsrep_local_state\x014").toString("hex")}`,
    );
  });

  it.each(["replication", "galera"] as const)("%s: passes haproxy -c", (mode) => {
    const r = haproxyCheck(
      router(mode),
      Object.fromEntries(members.map((m, i) => [m.host, `127.0.2.${i + 1}`])),
    );
    expect(r.output).not.toMatch(/WARNING|ALERT/);
    expect(r.code).toBe(0);
  });
});

describe("mariadbd's option parser as a config check", () => {
  it("refuses a misspelt setting (so the stack checks can fail)", () => {
    const dir = tempDir("bad-cnf");
    writeFileSync(
      join(dir, "my.cnf"),
      renderMyCnf(replication).replace("gtid_strict_mode = ON", "gtid_strickt_mode = ON"),
    );
    const r = spawnSync(
      "mariadbd",
      [`--defaults-file=${join(dir, "my.cnf")}`, "--user=mysql", "--verbose", "--help"],
      { encoding: "utf8" },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("unknown variable 'gtid_strickt_mode=ON'");
  });
});
