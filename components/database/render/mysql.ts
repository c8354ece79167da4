/**
 * MySQL-family server configuration: my.cnf, the bootstrap SQL, the replica attach SQL and the
 * start script that gives each member its role. Plain data in, text out; MariaDB and MySQL 8.4
 * dialects. Checked with Debian's MariaDB 10.11 and galera-4 (live tests); the MySQL dialect is
 * checked by assertions only (no MySQL server in Debian 12).
 */
import * as g from "../../render-guard";

export type MysqlEngine = "mariadb" | "mysql";
export type MysqlMode = "replication" | "galera";

export interface GaleraTimings {
  /** A peer silent this long is suspected dead (evs.suspect_timeout). */
  readonly suspectTimeoutMs: number;
  /** A peer silent this long is declared dead and dropped (evs.inactive_timeout). */
  readonly inactiveTimeoutMs: number;
  /** How often to check for silent peers (evs.inactive_check_period). */
  readonly inactiveCheckPeriodMs: number;
  /** Keepalive when there is no traffic (evs.keepalive_period). */
  readonly keepalivePeriodMs: number;
}

/** Galera's own defaults (documented by Galera Cluster): about 6 s to notice a dead node. */
export const GALERA_DEFAULT_TIMINGS: GaleraTimings = {
  suspectTimeoutMs: 5000,
  inactiveTimeoutMs: 15_000,
  inactiveCheckPeriodMs: 1000,
  keepalivePeriodMs: 1000,
};

export interface MysqlRenderSpec {
  readonly engine: MysqlEngine;
  readonly mode: MysqlMode;
  /** Galera cluster name / replication label. */
  readonly clusterName: string;
  /** Members in ordinal order: member 0 is the primary (replication) or the bootstrap node (Galera). */
  readonly members: readonly { readonly name: string; readonly host: string }[];
  readonly port: number;
  /** Semi-synchronous replication with the AFTER_SYNC wait point (replication mode). */
  readonly semiSync: boolean;
  /** How long a commit waits for a replica's acknowledgement before going asynchronous. */
  readonly semiSyncTimeoutMs: number;
  readonly galera: GaleraTimings & {
    /** State snapshot transfer: mariabackup (non-blocking, in the official image) or rsync. */
    readonly sstMethod: "mariabackup" | "rsync";
  };
  /** InnoDB buffer pool, e.g. `256M`. */
  readonly bufferPool: string;
  readonly maxConnections: number;
}

/** Credentials the bootstrap creates; all secret. */
export interface MysqlCredentials {
  readonly rootPassword: string;
  readonly appUser: string;
  readonly appPassword: string;
  readonly appDatabase: string;
  readonly replicationUser: string;
  readonly replicationPassword: string;
  /** Galera SST user (mariabackup). */
  readonly sstUser: string;
  readonly sstPassword: string;
  /**
   * The metrics exporter's user (mysqld_exporter beside each member, in its network namespace):
   * created only for 127.0.0.1, with {@link MONITOR_GRANTS} and {@link MONITOR_MAX_CONNECTIONS}.
   * Set together with `monitorPassword`. @default none (no monitor user)
   */
  readonly monitorUser?: string;
  /** The monitor user's password; also written into the exporter's `[client]` file. */
  readonly monitorPassword?: string;
  /**
   * Where the monitor user may log in from: `127.0.0.1` where the exporter shares the member's
   * network namespace (a Kubernetes pod), `%` where it is a container of its own on the member's
   * networks (Docker, whose container addresses are not known in advance). @default "127.0.0.1"
   */
  readonly monitorHost?: "127.0.0.1" | "%";
}

/** The user the router's health checks log in as: no password, no privileges (SHOW STATUS needs none). */
export const CHECK_USER = "haproxy_check";

/**
 * What mysqld_exporter's collectors read (global status and variables, Galera's wsrep_* among
 * them, and replica status): PROCESS and REPLICATION CLIENT. MariaDB 10.5.9+ wants SLAVE MONITOR
 * for SHOW SLAVE STATUS: REPLICATION CLIENT (now BINLOG MONITOR) is refused, "you need (at least
 * one of) the SUPER, SLAVE MONITOR privilege(s)" (checked on 10.11). No SELECT: the collectors
 * ha-backend turns on produced the same 843 metric names without it (MariaDB 10.11, exporter
 * 0.14), and `SELECT ON *.*` would let the exporter's password read every table, the app's data
 * and mysql.user's password hashes among them. No write, DDL or admin privilege.
 */
export const MONITOR_GRANTS = {
  mariadb: "PROCESS, REPLICATION CLIENT, SLAVE MONITOR",
  mysql: "PROCESS, REPLICATION CLIENT",
} as const satisfies Record<MysqlEngine, string>;

/** The exporter holds one connection per scrape: a few more and something else logs in with it. */
export const MONITOR_MAX_CONNECTIONS = 3;

const GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so";

function ms(v: number): string {
  // Galera takes ISO-8601 durations: PT1.5S.
  return `PT${(v / 1000).toFixed(3).replace(/\.?0+$/, "")}S`;
}

/** SQL string literal; credentials come from @pulumi/random (alphanumeric) but quote them anyway. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** SQL identifier (database and user names are validated as [a-z0-9_] upstream; quote anyway). */
function ident(s: string): string {
  return `\`${s.replace(/`/g, "``")}\``;
}

/**
 * Every value of the spec the MySQL-family files embed (my.cnf, SQL, bash scripts), checked at
 * each renderer's entry; shared with the promotion script. {@link RenderInputError} names the field.
 */
export function guardMysqlSpec(r: string, s: MysqlRenderSpec): void {
  const ms = (field: string, v: number) => g.wholeNumber(r, field, v, 1, 86_400_000);
  g.oneOf(r, "engine", s.engine, ["mariadb", "mysql"]);
  g.oneOf(r, "mode", s.mode, ["replication", "galera"]);
  g.objectName(r, "clusterName", s.clusterName);
  // gcomm:// lists hosts without brackets: no IPv6 literals.
  g.listOf(r, "members", s.members, 1, 100, (f, m) => {
    g.objectName(r, `${f}.name`, m.name);
    g.hostName(r, `${f}.host`, m.host, { ipv6: false });
  });
  g.port(r, "port", s.port);
  g.wholeNumber(r, "semiSyncTimeoutMs", s.semiSyncTimeoutMs, 0, 86_400_000);
  ms("galera.suspectTimeoutMs", s.galera.suspectTimeoutMs);
  ms("galera.inactiveTimeoutMs", s.galera.inactiveTimeoutMs);
  ms("galera.inactiveCheckPeriodMs", s.galera.inactiveCheckPeriodMs);
  ms("galera.keepalivePeriodMs", s.galera.keepalivePeriodMs);
  g.oneOf(r, "galera.sstMethod", s.galera.sstMethod, ["mariabackup", "rsync"]);
  g.mysqlSize(r, "bufferPool", s.bufferPool);
  g.wholeNumber(r, "maxConnections", s.maxConnections, 1, 100_000);
}

/**
 * Credentials: names unquoted in `wsrep_sst_auth = user:password`, passwords inside SQL literals
 * (quoted) except the SST one, which the cnf line holds as it is. Never shown in an error.
 */
function guardMysqlCredentials(r: string, c: MysqlCredentials): void {
  g.identifier(r, "appUser", c.appUser, { maxLength: 32 });
  g.identifier(r, "appDatabase", c.appDatabase, { maxLength: 64 });
  g.identifier(r, "replicationUser", c.replicationUser, { maxLength: 32 });
  g.identifier(r, "sstUser", c.sstUser, { maxLength: 32 });
  g.sqlSecret(r, "appPassword", c.appPassword);
  g.sqlSecret(r, "replicationPassword", c.replicationPassword);
  g.secretToken(r, "sstPassword", c.sstPassword);
  guardMonitorUser(r, c);
}

/**
 * The optional monitor user: both fields or neither. Its name must differ from every other user
 * the bootstrap creates (an account `name@'127.0.0.1'` is more specific than `name@'%'`, so it
 * would take over that user's logins over loopback), and its password also lands unquoted in the
 * exporter's `[client]` file, so it takes that file's stricter rule.
 */
function guardMonitorUser(r: string, c: MysqlCredentials): void {
  if (c.monitorUser === undefined && c.monitorPassword === undefined) return;
  if (c.monitorPassword === undefined) {
    throw new g.RenderInputError(r, "monitorPassword", "be given together with monitorUser", undefined);
  }
  if (c.monitorUser === undefined) {
    throw new g.RenderInputError(r, "monitorUser", "be given together with monitorPassword", undefined);
  }
  g.identifier(r, "monitorUser", c.monitorUser, {
    maxLength: 32,
    reserved: ["root", "mysql", CHECK_USER, c.appUser, c.replicationUser, c.sstUser],
  });
  g.secretToken(r, "monitorPassword", c.monitorPassword);
}

/** The start script's paths (bash, some inside double quotes). */
export function guardScriptPaths(r: string, p: Partial<StartScriptPaths>): void {
  for (const key of ["dataDir", "initSql", "replicaSql"] as const) {
    if (p[key] !== undefined) g.filePath(r, key, p[key]);
  }
}

function galeraProviderOptions(s: MysqlRenderSpec): string {
  const g = s.galera;
  return [
    // Restore the primary component by itself when every node restarts (full outage recovery).
    "pc.recovery=TRUE",
    `evs.suspect_timeout=${ms(g.suspectTimeoutMs)}`,
    `evs.inactive_timeout=${ms(g.inactiveTimeoutMs)}`,
    `evs.inactive_check_period=${ms(g.inactiveCheckPeriodMs)}`,
    `evs.keepalive_period=${ms(g.keepalivePeriodMs)}`,
    // Must exceed the keepalive period; a peer is dropped from gmcast after this.
    `gmcast.peer_timeout=${ms(Math.max(3000, g.keepalivePeriodMs * 3))}`,
  ].join("; ");
}

/**
 * The [mysqld] settings every member shares. Per-member values (server id, read-only, bootstrap)
 * come from the start script, so one file serves all members.
 */
export function renderMyCnf(s: MysqlRenderSpec): string {
  guardMysqlSpec("renderMyCnf", s);
  const lines = [
    "# Generated by ha-backend (components/database/render/mysql.ts). Do not edit.",
    "[mysqld]",
    `port = ${s.port}`,
    "bind-address = 0.0.0.0",
    "skip-name-resolve = ON",
    `max_connections = ${s.maxConnections}`,
    "character_set_server = utf8mb4",
    "collation_server = utf8mb4_unicode_ci",
    "default_storage_engine = InnoDB",
    `innodb_buffer_pool_size = ${s.bufferPool}`,
    // Durability: every commit flushed to disk, binlog included.
    "innodb_flush_log_at_trx_commit = 1",
    "sync_binlog = 1",
    "log_bin = binlog",
    // MariaDB defaults to MIXED: row events replicate exactly what changed.
    "binlog_format = ROW",
  ];
  if (s.engine === "mariadb") {
    lines.push(
      // A replica must not drift: refuse events that would break the GTID sequence.
      "gtid_strict_mode = ON",
      // Off by default in MariaDB 10.11: a replica must log what it applies to be promotable.
      "log_slave_updates = ON",
      "relay_log = relay-bin",
      "relay_log_recovery = ON",
    );
  } else {
    lines.push(
      "gtid_mode = ON",
      "enforce_gtid_consistency = ON",
      "log_replica_updates = ON",
      "relay_log = relay-bin",
      "relay_log_recovery = ON",
    );
  }
  if (s.mode === "replication" && s.semiSync) {
    if (s.engine === "mariadb") {
      // Built into MariaDB 10.3+. AFTER_SYNC: the commit becomes visible only after a replica has
      // the event, so a client never sees a write that a failover could lose (AFTER_COMMIT can).
      // Switched on per role by the start script: a replica with the master side on would stall
      // its own SQL thread waiting for acknowledgements nobody sends (seen in the live test).
      lines.push(
        "rpl_semi_sync_master_wait_point = AFTER_SYNC",
        `rpl_semi_sync_master_timeout = ${s.semiSyncTimeoutMs}`,
      );
    } else {
      lines.push(
        "plugin_load_add = semisync_source.so",
        "plugin_load_add = semisync_replica.so",
        "rpl_semi_sync_source_wait_point = AFTER_SYNC",
        `rpl_semi_sync_source_timeout = ${s.semiSyncTimeoutMs}`,
      );
    }
  }
  if (s.mode === "galera") {
    const peers = s.members.map((m) => m.host).join(",");
    lines.push(
      "# Galera: synchronous multi-primary; every node has every committed write.",
      "wsrep_on = ON",
      `wsrep_provider = ${GALERA_PROVIDER}`,
      `wsrep_cluster_name = ${s.clusterName}`,
      `wsrep_cluster_address = gcomm://${peers}`,
      `wsrep_provider_options = "${galeraProviderOptions(s)}"`,
      `wsrep_sst_method = ${s.galera.sstMethod}`,
      "wsrep_slave_threads = 4",
      // Galera needs these: row events, no auto-increment lock gaps between nodes.
      "innodb_autoinc_lock_mode = 2",
      // Reads see every write committed anywhere in the cluster before them.
      "wsrep_sync_wait = 1",
      // Cluster writes get the same GTIDs on every node, in a domain no node uses for local writes
      // (the start script gives each node domain ordinal + 1).
      "wsrep_gtid_mode = ON",
      "wsrep_gtid_domain_id = 0",
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Secret settings, in a file of their own that goes to the platform's secret store: the Galera
 * SST credentials (the donor's mariabackup logs in with them).
 */
export function renderSecretCnf(s: MysqlRenderSpec, c: MysqlCredentials): string {
  guardMysqlSpec("renderSecretCnf", s);
  guardMysqlCredentials("renderSecretCnf", c);
  const lines = ["# Generated by ha-backend. Secret: Galera SST credentials.", "[mysqld]"];
  if (s.mode === "galera") lines.push(`wsrep_sst_auth = ${c.sstUser}:${c.sstPassword}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Runs once on every member's first start, before replication: the same users and database
 * everywhere, written with the binary log off so no member holds transactions the others lack.
 */
export function renderInitSql(s: MysqlRenderSpec, c: MysqlCredentials): string {
  guardMysqlSpec("renderInitSql", s);
  guardMysqlCredentials("renderInitSql", c);
  const user = (name: string, password: string) =>
    s.engine === "mysql"
      ? `CREATE USER IF NOT EXISTS ${sqlString(name)}@'%' IDENTIFIED WITH caching_sha2_password BY ${sqlString(password)};`
      : `CREATE USER IF NOT EXISTS ${sqlString(name)}@'%' IDENTIFIED BY ${sqlString(password)};`;
  const lines = [
    "-- Generated by ha-backend (components/database/render/mysql.ts). Secret: holds passwords.",
    // Galera: the first node bootstraps alone and the others copy it whole (state transfer).
    ...(s.mode === "galera" ? ["SET SESSION wsrep_on = OFF;"] : []),
    "SET SESSION sql_log_bin = 0;",
    `CREATE DATABASE IF NOT EXISTS ${ident(c.appDatabase)};`,
    user(c.appUser, c.appPassword),
    `GRANT ALL PRIVILEGES ON ${ident(c.appDatabase)}.* TO ${sqlString(c.appUser)}@'%';`,
    user(c.replicationUser, c.replicationPassword),
    `GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ${sqlString(c.replicationUser)}@'%';`,
    // The router logs in to check health: no password, no privileges.
    `CREATE USER IF NOT EXISTS ${sqlString(CHECK_USER)}@'%';`,
  ];
  if (s.mode === "galera") {
    lines.push(
      `CREATE USER IF NOT EXISTS ${sqlString(c.sstUser)}@'localhost' IDENTIFIED BY ${sqlString(c.sstPassword)};`,
      `GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO ${sqlString(c.sstUser)}@'localhost';`,
    );
  }
  if (c.monitorUser !== undefined && c.monitorPassword !== undefined) {
    lines.push(...monitorUserSql(s.engine, c.monitorUser, c.monitorPassword, c.monitorHost ?? "127.0.0.1"));
  }
  lines.push("FLUSH PRIVILEGES;");
  return `${lines.join("\n")}\n`;
}

/**
 * The exporter's user, for `host` only: 127.0.0.1 where the exporter shares the member's network
 * namespace and connects over loopback, so the account cannot be used from any other address
 * (the server skips name resolution, so `localhost` would mean the socket alone). The connection
 * limit is a user resource option of CREATE USER in both dialects (MySQL 8 refuses it in GRANT).
 */
function monitorUserSql(engine: MysqlEngine, name: string, password: string, host: string): string[] {
  const account = `${sqlString(name)}@${sqlString(host)}`;
  const auth =
    engine === "mysql"
      ? `IDENTIFIED WITH caching_sha2_password BY ${sqlString(password)}`
      : `IDENTIFIED BY ${sqlString(password)}`;
  return [
    `CREATE USER IF NOT EXISTS ${account} ${auth} WITH MAX_USER_CONNECTIONS ${MONITOR_MAX_CONNECTIONS};`,
    `GRANT ${MONITOR_GRANTS[engine]} ON *.* TO ${account};`,
  ];
}

/** Points a replica at the primary by GTID and starts replicating (run once, on replicas only). */
export function renderReplicaSql(s: MysqlRenderSpec, c: MysqlCredentials): string {
  guardMysqlSpec("renderReplicaSql", s);
  guardMysqlCredentials("renderReplicaSql", c);
  const primary = s.members[0];
  if (s.engine === "mariadb") {
    return [
      "-- Generated by ha-backend. Secret: holds the replication password.",
      "STOP SLAVE;",
      `CHANGE MASTER TO MASTER_HOST = ${sqlString(primary.host)}, MASTER_PORT = ${s.port},`,
      `  MASTER_USER = ${sqlString(c.replicationUser)}, MASTER_PASSWORD = ${sqlString(c.replicationPassword)},`,
      "  MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 2;",
      "START SLAVE;",
      "",
    ].join("\n");
  }
  return [
    "-- Generated by ha-backend. Secret: holds the replication password.",
    "STOP REPLICA;",
    `CHANGE REPLICATION SOURCE TO SOURCE_HOST = ${sqlString(primary.host)}, SOURCE_PORT = ${s.port},`,
    `  SOURCE_USER = ${sqlString(c.replicationUser)}, SOURCE_PASSWORD = ${sqlString(c.replicationPassword)},`,
    "  SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1, SOURCE_CONNECT_RETRY = 2;",
    "START REPLICA;",
    "",
  ].join("\n");
}

/**
 * A replication member's role at start. First start (no binary log yet): member 0 is the
 * writable primary, the others replicas that attach themselves (today's rule). On a restart the
 * ordinal no longer decides, since a promotion may have moved the primary: a member comes back
 * writable only if it is not configured as a replica (MariaDB: no master.info in its data
 * directory; RESET SLAVE ALL at promotion removes it) and no other member answers as writable
 * (asked as the router's password-less check user); otherwise it starts read-only (fenced) and
 * says why. Not covered: a restart while the writable member is down or cut off from this one (a
 * restarted old primary then resumes writes: safe only if no promotion happened meanwhile, which
 * the promotion script refuses while it answers); every member restarting at once with the old
 * primary dead (each old primary comes back writable, unless a peer is up first); MySQL keeps
 * replica settings in tables, so there a restarted member other than 0 is always read-only.
 */
/**
 * A shell command printing the value a peer answers to `SHOW GLOBAL STATUS|VARIABLES LIKE …`,
 * asked as the password-less check user (no privilege needed), nothing if it does not answer.
 * `index` is a shell expression for the peer's index in the script's `members` array.
 */
function peerValue(client: string, index: string, port: number, sql: string): string {
  return [
    `${client} --no-defaults -h "$\{members[${index}]}" -P ${port} -u ${CHECK_USER} --connect-timeout=2 -N -B`,
    `-e "${sql}" 2>/dev/null | cut -f2`,
  ].join(" ");
}

function replicationRole(s: MysqlRenderSpec, paths: StartScriptPaths): string[] {
  const [client, readOnly, semi] =
    s.engine === "mariadb"
      ? [
          "mariadb",
          "--read-only=ON",
          { primary: "--rpl-semi-sync-master-enabled=ON", replica: "--rpl-semi-sync-slave-enabled=ON" },
        ]
      : [
          "mysql",
          "--super-read-only=ON",
          { primary: "--rpl-semi-sync-source-enabled=ON", replica: "--rpl-semi-sync-replica-enabled=ON" },
        ];
  const peerReadOnly = `timeout 5 ${peerValue(client, "$i", s.port, "SHOW GLOBAL VARIABLES LIKE 'read_only'")}`;
  const isReplica =
    s.engine === "mariadb"
      ? ['  if [ -e "$datadir/master.info" ]; then', '    why="it is configured as a replica (master.info)"']
      : ['  if [ "$ordinal" -gt 0 ]; then', '    why="member $ordinal of a MySQL cluster"'];
  return [
    `members=(${s.members.map((m) => m.host).join(" ")})`,
    'why=""',
    // The binary log (log_bin = binlog in my.cnf) exists once the server has run here.
    'if [ -e "$datadir/binlog.index" ]; then',
    ...isReplica,
    "  else",
    '    for i in "${!members[@]}"; do',
    '      if [ "$i" -eq "$ordinal" ]; then continue; fi',
    `      if [ "$(${peerReadOnly} || true)" = OFF ]; then`,
    '        why="${members[$i]} answers as writable"',
    "        break",
    "      fi",
    "    done",
    "  fi",
    '  if [ -n "$why" ]; then echo "ha-backend: $host restarts read-only: $why" >&2',
    '  else echo "ha-backend: $host restarts writable: not a replica, and no other member answers as writable" >&2; fi',
    'elif [ "$ordinal" -gt 0 ]; then',
    '  why="first start of a replica"',
    "fi",
    'if [ "$ordinal" -gt 0 ]; then',
    // A replica attaches itself to the primary on its first start (init scripts run only then).
    `  ln -sf ${paths.replicaSql} "$initdb/20-ha-backend-replica.sql"`,
    "fi",
    'if [ -n "$why" ]; then',
    // Replicas refuse writes from applications (replication itself still applies).
    `  args+=(${readOnly}${s.semiSync ? ` ${semi.replica}` : ""})`,
    ...(s.semiSync ? ["else", `  args+=(${semi.primary})`] : []),
    "fi",
  ];
}

/** Where the start script finds the data and the bootstrap SQL inside the container. */
export interface StartScriptPaths {
  readonly dataDir: string;
  readonly initSql: string;
  readonly replicaSql: string;
}

/**
 * The container's command: works out the member's ordinal from its host name (`shop-db-2` → 2;
 * Docker members and StatefulSet pods are named so), picks the bootstrap SQL for its role (the
 * image's entrypoint runs /docker-entrypoint-initdb.d once, on an empty data directory), then
 * starts the server with the role's flags. `HA_BACKEND_EXEC` replaces the image's entrypoint
 * and `HA_BACKEND_INITDB` its init directory in tests.
 */
export function renderStartScript(s: MysqlRenderSpec, paths: StartScriptPaths): string {
  guardMysqlSpec("renderStartScript", s);
  guardScriptPaths("renderStartScript", paths);
  const server = s.engine === "mariadb" ? "mariadbd" : "mysqld";
  const lines = [
    "#!/bin/bash",
    "# Generated by ha-backend (components/database/render/mysql.ts). Do not edit.",
    "set -euo pipefail",
    'host="${HOSTNAME:-$(hostname)}"',
    'ordinal="${host##*-}"',
    'case "$ordinal" in ""|*[!0-9]*) echo "ha-backend: cannot read a member ordinal from host name $host" >&2; exit 1;; esac',
    `datadir="\${HA_BACKEND_DATADIR:-${paths.dataDir}}"`,
    'initdb="${HA_BACKEND_INITDB:-/docker-entrypoint-initdb.d}"',
    'mkdir -p "$initdb"',
    // Every member gets the same users and database (binary log off while they are created).
    `ln -sf ${paths.initSql} "$initdb/10-ha-backend-init.sql"`,
    // Unique ids: replication events carry the server id; 0 is not allowed.
    s.engine === "mariadb"
      ? 'args=(--server-id="$((ordinal + 1))" --gtid-domain-id="$((ordinal + 1))")'
      : 'args=(--server-id="$((ordinal + 1))")',
  ];
  if (s.mode === "replication") {
    lines.push(...replicationRole(s, paths));
  } else {
    lines.push(...galeraDonorArgs(s), ...galeraStart(s, server));
    return lines.join("\n");
  }
  lines.push(`exec \${HA_BACKEND_EXEC:-docker-entrypoint.sh} ${server} "\${args[@]}" "$@"`, "");
  return lines.join("\n");
}

/**
 * Each node names itself after its member (the host name) and asks for state transfers from the
 * other members in reverse ordinal order, then from any node (the trailing comma). The router's
 * writer is the first Synced member in ordinal order, and a donor of a full transfer leaves
 * Synced for its length: so a rejoining node takes its snapshot from the node least likely to be
 * the writer, and the writer keeps taking writes.
 */
function galeraDonorArgs(s: MysqlRenderSpec): string[] {
  return [
    `names=(${s.members.map((m) => m.name).join(" ")})`,
    'donors=""',
    "for ((i = ${#names[@]} - 1; i >= 0; i--)); do",
    '  if [ "$i" -ne "$ordinal" ]; then donors+="${names[$i]},"; fi',
    "done",
    'args+=(--wsrep-node-name="$host" --wsrep-sst-donor="$donors")',
  ];
}

/** Where the start script keeps a Galera node's last primary view across a clean stop. */
export const SAVED_VIEW_FILE = "gvwstate.dat.ha-backend";

/** How long a new joiner waits for the member before it to be Synced, at most (then joins anyway). */
export const JOIN_WAIT_SECONDS = 300;

/**
 * A Galera node's start: its bootstrap decision, then the server as a child process whose
 * SIGTERM first saves the node's last primary view.
 *
 * - Saved view: Galera deletes its view (gvwstate.dat) on a clean stop, and after a clean stop of
 *   every node at once (a StatefulSet with `Parallel` scaled down, a cluster shut down) it marks
 *   no node `safe_to_bootstrap` either (seen live): every node then waited for a primary
 *   component nobody would form, gave up after pc.wait_prim_timeout and restarted, forever. With
 *   the view saved at SIGTERM and put back at the next start, pc.recovery forms the primary
 *   component again once all members of that view meet, and state transfer brings every node to
 *   the most advanced one's position, as after a crash; a node restarting alone merges into the
 *   running cluster, as after a crash too. A node Galera did mark `safe_to_bootstrap` (it left
 *   the cluster last, with every commit) bootstraps.
 * - First start of a joiner (an empty volume; members start together): it waits until the member
 *   before it is Synced, asked as the router's password-less check user, so state transfers run
 *   one at a time. Two joiners asking the only Synced node at once went wrong live: MariaDB
 *   10.11's mariabackup SST does not survive its "no donor available, retrying" path (one joiner
 *   aborted; another kept running with its applier stopped, never Synced). The wait is bounded:
 *   a member that stays away does not keep a new node out for long.
 * - After a crash (kill -9, OOM, a lost node: grastate.dat says `seqno: -1`) of a node that does
 *   not bootstrap: the server runs once with `--wsrep-recover`, which reads the last committed
 *   position from InnoDB, and the real start gets it as `--wsrep-start-position`, as MariaDB's own
 *   `galera_recovery` does for systemd. Without it Galera knows no position and asks for a full
 *   snapshot (SST); with it a donor sends only the missed writes from its gcache (IST). The
 *   recovery run's error log goes to stderr (`--disable-log-error` overrides a `log-error` in a
 *   cnf) and from there to a file of the script's own, whoever the server runs as. If recovery
 *   fails the node starts without a position: SST, the safe way back.
 */
function galeraStart(s: MysqlRenderSpec, server: string): string[] {
  const synced = peerValue(
    "mariadb",
    "$((ordinal - 1))",
    s.port,
    "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'",
  );
  return [
    `members=(${s.members.map((m) => m.host).join(" ")})`,
    `saved="$datadir/${SAVED_VIEW_FILE}"`,
    'if [ ! -e "$datadir/grastate.dat" ]; then',
    // A brand-new cluster: its first node bootstraps it, the others join by state transfer.
    '  if [ "$ordinal" -eq 0 ]; then',
    "    args+=(--wsrep-new-cluster)",
    "  else",
    // bash's SECONDS counts whole seconds from a whole-second start, so the first tick may come
    // at once: one more, and the wait is never shorter than asked.
    `    deadline=$((SECONDS + 1 + \${HA_BACKEND_JOIN_WAIT_SECONDS:-${JOIN_WAIT_SECONDS}}))`,
    `    until [ "$(${synced})" = 4 ]; do`,
    '      if [ "$SECONDS" -ge "$deadline" ]; then',
    '        echo "ha-backend: ${members[$((ordinal - 1))]} is not Synced; joining anyway" >&2',
    "        break",
    "      fi",
    "      sleep 1",
    "    done",
    "  fi",
    "elif grep -q '^safe_to_bootstrap: *1' \"$datadir/grastate.dat\"; then",
    // Galera's own mark: this node left the primary component last, with every commit.
    "  args+=(--wsrep-new-cluster)",
    "else",
    // After a clean stop: the view saved then. After a crash Galera's own file is there, newer.
    '  if [ ! -e "$datadir/gvwstate.dat" ] && [ -e "$saved" ]; then mv "$saved" "$datadir/gvwstate.dat"; fi',
    `  if grep -q '^seqno: *-1' "$datadir/grastate.dat"; then`,
    ...recoverPosition(server).map((l) => `    ${l}`),
    "  fi",
    "fi",
    'rm -f "$saved"',
    'child=""',
    "stop() {",
    '  if [ -e "$datadir/gvwstate.dat" ]; then',
    '    cp -p "$datadir/gvwstate.dat" "$saved.new" && mv "$saved.new" "$saved" || true',
    "  fi",
    '  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi',
    "}",
    "trap stop TERM",
    `\${HA_BACKEND_EXEC:-docker-entrypoint.sh} ${server} "\${args[@]}" "$@" &`,
    "child=$!",
    // `wait` returns when the trap runs: wait again for the server's own exit status.
    "set +e",
    'wait "$child"',
    "status=$?",
    'while kill -0 "$child" 2>/dev/null; do',
    '  wait "$child"',
    "  status=$?",
    "done",
    'exit "$status"',
    "",
  ];
}

/** Where the start script says it recovered a crashed Galera node's position (stderr). */
export const RECOVERED_POSITION_NOTE = "ha-backend: recovered Galera position";

/** Where the start script says position recovery failed (stderr); the node then starts by SST. */
export const RECOVERY_FAILED_NOTE = "ha-backend: could not recover the Galera position after a crash";

/**
 * The crash branch of {@link galeraStart}: `mariadbd --wsrep-recover` through the same exec path
 * as the real start, its log parsed for `WSREP: Recovered position: <uuid>:<seqno>[,<gtid>]`
 * (the whole value, GTID included, as galera_recovery passes it). A position with seqno -1 (a
 * node that crashed before it had any state, e.g. during its first SST) is no position at all.
 * Every failure (no temporary file, the run fails, no position in its log) falls back to a start
 * without a position; with `set -e` and `pipefail`, hence the `|| true` and `if`s.
 */
function recoverPosition(server: string): string[] {
  return [
    'position=""',
    'recovery_log="$(mktemp "${TMPDIR:-/tmp}/ha-backend-wsrep-recover.XXXXXX" || true)"',
    `if [ -n "$recovery_log" ] && \${HA_BACKEND_EXEC:-docker-entrypoint.sh} ${server} "\${args[@]}" "$@" --wsrep-recover --disable-log-error >"$recovery_log" 2>&1; then`,
    '  position="$(grep -a -o -E \'WSREP: Recovered position: [0-9a-f-]{36}:[0-9]+(,[0-9]+-[0-9]+-[0-9]+)?\' "$recovery_log" | tail -n 1 || true)"',
    '  position="${position##* }"',
    "fi",
    'if [ -n "$position" ]; then',
    `  echo "${RECOVERED_POSITION_NOTE} $position after a crash; a donor can send what it missed (IST)" >&2`,
    '  args+=(--wsrep-start-position="$position")',
    "else",
    `  echo "${RECOVERY_FAILED_NOTE}; starting without it: full state transfer (SST). The recovery run's log ends:" >&2`,
    '  if [ -n "$recovery_log" ]; then tail -n 20 "$recovery_log" >&2; fi',
    "fi",
    'if [ -n "$recovery_log" ]; then rm -f "$recovery_log"; fi',
  ];
}
