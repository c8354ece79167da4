import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  GALERA_DEFAULT_TIMINGS,
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderStartScript,
  SAVED_VIEW_FILE,
  type MysqlCredentials,
  type MysqlRenderSpec,
} from "../../components/database/render/mysql";
import { renderDbRouter } from "../../components/database/render/router";
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
};

/** A clean stop's grastate.dat; `safe` is Galera's mark on the node that left the cluster last. */
const grastate = (safe: 0 | 1) =>
  `# GALERA saved state\nversion: 2.1\nuuid:    1b8d3b4a-e9b0-11f1-a7b4-c7f523247421\nseqno:   3\nsafe_to_bootstrap: ${safe}\n`;

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
  const r = spawnSync("bash", [join(dir, "start.sh"), "--extra"], {
    env: {
      PATH: opts.bin ? `${opts.bin}:${process.env.PATH}` : process.env.PATH,
      HA_BACKEND_JOIN_WAIT_SECONDS: String(opts.joinWaitSeconds ?? 0),
      HOSTNAME: host,
      HA_BACKEND_EXEC: "echo",
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
  return { code: r.status, args: r.stdout.trim().split(" "), stderr: r.stderr, linked, dir, data };
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

  it("replication: writes to the primary only, reads from replicas with the primary as backup", () => {
    const cfg = router("replication");
    expectGolden("db-router-replication.cfg", cfg);
    const rw = cfg.slice(cfg.indexOf("listen rw"), cfg.indexOf("listen ro"));
    expect(rw.match(/^\s+server /gm)).toHaveLength(1);
    expect(rw).toContain("server orders-db-0 orders-db-0:3306 check\n");
    expect(cfg).toContain("server orders-db-0 orders-db-0:3306 check backup\n");
    expect(cfg).toContain("option mysql-check user haproxy_check post-41");
    expect(cfg).toContain("on-marked-down shutdown-sessions");
  });

  it("galera: one writer with the others as backups, reads everywhere, a Synced-only check", () => {
    const cfg = router("galera");
    expectGolden("db-router-galera.cfg", cfg);
    const rw = cfg.slice(cfg.indexOf("listen rw"), cfg.indexOf("listen ro"));
    expect(rw.match(/ check backup$/gm)).toHaveLength(2);
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
