/**
 * Injection: every string and number a renderer embeds, fed hostile values — a line break with a
 * directive after it, NUL, tab, CR, quotes, braces, `;`, `#`, `$` expansions, Unicode line
 * separators, very long strings, NaN — is refused at the renderer's entry, with the exact field
 * named ({@link RenderInputError}). Each table starts from the most unusual inputs the guards
 * accept, and the last part proves the real daemons accept exactly those: nginx -t, haproxy -c,
 * redis-server and redis-sentinel, memcached, PostgreSQL with the rendered pg_hba and
 * post-bootstrap script, MariaDB with the rendered my.cnf, start script and init SQL.
 * Starts daemons on loopback: run under `flock /tmp/ha-live.lock`.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import Redis from "ioredis";
import { parse } from "yaml";
import { renderHaproxy } from "../../components/balancer/render/haproxy";
import { renderNginx } from "../../components/balancer/render/nginx";
import type { BalancerRenderSpec } from "../../components/balancer/render/spec";
import { renderMemcachedArgs, type MemcachedRenderSpec } from "../../components/cache/render/memcached";
import {
  renderRedisConf,
  renderRedisPing,
  renderRedisRouter,
  renderRedisStartScript,
  renderSentinelConf,
  type RedisCredentials,
  type RedisRenderSpec,
  type RedisRouterSpec,
} from "../../components/cache/render/redis";
import { renderDemoApp, type DemoAppSpec } from "../../components/cluster/render/demo-app";
import {
  GALERA_DEFAULT_TIMINGS,
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderSecretCnf,
  renderStartScript,
  sqlString,
  type MysqlCredentials,
  type MysqlRenderSpec,
} from "../../components/database/render/mysql";
import {
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  type PatroniCredentials,
  type PatroniRenderSpec,
} from "../../components/database/render/patroni";
import {
  patroniDynamicConfig,
  renderApplySettingsScript,
  renderDynamicConfigJson,
} from "../../components/database/render/patroni-settings";
import { renderPromoteScript } from "../../components/database/render/promote";
import {
  renderDbRouter,
  renderPgRouter,
  type DbRouterSpec,
  type PgRouterSpec,
} from "../../components/database/render/router";
import { RenderInputError, showValue } from "../../components/render-guard";
import {
  binary,
  check,
  nginxTest,
  ProcessGroup,
  selfSignedCert,
  tempDir,
  waitFor,
  withHosts,
} from "../support/daemons";
import { connect as mysqlConnect, MariaNode, sqlPaths } from "../support/mariadb";
import { ensureUser, ownedDir, pgConnect, runAsUser, startAsUser, writeOwned } from "../support/postgres";

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

/** Appended to a field's valid value: the value stays plausible up to the payload. */
const SUFFIXES: readonly (readonly [string, string])[] = [
  ["a newline and an nginx directive", "\n    return 200;"],
  ["a newline and an HAProxy server", "\n  server evil 1.2.3.4:80"],
  ["a newline and a Redis directive", "\nslaveof 1.2.3.4 6379"],
  ["CRLF and a directive", "\r\nbind 0.0.0.0"],
  ["a pg_hba method and a rule of its own", " trust\nhost all all 0.0.0.0/0 trust"],
  ["a YAML key on a new line", "\nsuperuser: {password: x}"],
  ["SQL after a quote", "'; DROP TABLE users; --"],
  ["NUL", "\0"],
  ["a tab", "\tx"],
  ["a CR", "\rx"],
  ["a space", " x"],
  ["a double quote", '"x'],
  ["a single quote", "'x"],
  ["a backslash", "\\x"],
  ["an opening brace", "{"],
  ["a closing brace", "}"],
  ["a semicolon", ";x"],
  ["a # comment", "#x"],
  ["an nginx/shell variable", "$host"],
  ["an HAProxy/shell expansion", "${HOME}"],
  ["a command substitution", "$(id)"],
  ["backticks", "`id`"],
  ["a comma (list separator)", ",evil"],
  ["an HAProxy sample fetch", "%[src]"],
  ["U+2028 line separator", "\u2028x"],
  ["U+2029 paragraph separator", "\u2029x"],
  ["U+0085 next line", "\u0085x"],
  ["DEL", "\u007fx"],
  ["U+202E right-to-left override", "\u202ex"],
  ["U+FEFF zero-width no-break space", "\ufeffx"],
  ["a non-ASCII letter", "é"],
  ["5000 more characters", "x".repeat(5000)],
];

/** The kinds of value the guards know, and whole values each must refuse besides the suffixes. */
const EXTRAS = {
  urlPath: ["", "healthz", "/a b", "/a%0Ab", "/a?x=1", "/a#frag", "/a;b", "/a~b"],
  cookie: ["", "1abc", "a-b", "a.b", "A".repeat(33)],
  name: ["", "-x", ".x", "_x", "a:b", "a/b", "a,b", "a".repeat(64)],
  display: ["", " shop", "shop ", "a".repeat(129)],
  host: [
    "",
    "-oProxyCommand=id",
    "10.0.0.256",
    "1.2.3",
    "a..b",
    "a.-b.c",
    "-a.b",
    "fe80::1%eth0",
    "[::1]",
    "host:80",
    "*",
    `${"a".repeat(64)}.com`,
  ],
  // Galera's gcomm:// list has no brackets for IPv6 literals.
  hostV4: ["", "-x", "10.0.0.256", "a..b", "::1", "fd00::1", "host:3306"],
  ip: ["", "localhost", "0.0.0.0:80", "fe80::1%eth0", "*", "[::1]", "1.2.3", "010.0.0.1", "::g"],
  hostPort: [
    "",
    "etcd-0",
    "etcd-0:0",
    "etcd-0:70000",
    "::1:2379",
    "[::1]:2379x",
    "[10.0.0.1]:2379",
    "etcd-0:-1",
  ],
  pgHba: [
    "",
    "all",
    "0.0.0.0/0 trust",
    "10.0.0.0/33",
    "10.0.0.256/8",
    "fd00::/129",
    "fe80::%eth0/64",
    "10.0.0.0",
    "samenet samehost",
    "samenet,samehost",
  ],
  redisSize: ["", "0mb", "256", "-1mb", "256 mb", "99999999gb", "1tb", "256mb256mb"],
  pgSize: ["", "128mb", "0MB", "128 MB", "128", "1TB", "128MB'"],
  mysqlSize: ["", "256MB", "0M", "1T", "-1M", "256"],
  // pg_hba.conf reads these as keywords, not as a database or role.
  pgIdentifier: [
    "",
    "all",
    "replication",
    "sameuser",
    "samerole",
    "samegroup",
    "Shop",
    "1shop",
    "+admins",
    "@file",
    "a".repeat(64),
  ],
  pgRole: [
    "",
    "all",
    "replication",
    "postgres",
    "replicator",
    "rewind_user",
    "Shop",
    "+admins",
    "a".repeat(64),
  ],
  identifier: ["", "Shop", "1shop", "a-b", "a:b", "a".repeat(65)],
  mysqlUser: ["", "Shop", "1shop", "a-b", "a:b", "a".repeat(33)],
  secret: ["", "pass word", "a".repeat(257)],
  pgSqlSecret: ["", "a".repeat(257), "line\nbreak"],
  mysqlSqlSecret: ["", "a".repeat(257), "line\nbreak"],
  env: ["", "1A", "A-B", "A B"],
  command: ["", "1X", "CONFIG EVIL", "-x"],
  executable: ["", "-x", "redis-server --port 1", "./x", "/a/../b"],
  path: ["", "relative/path", "/a/../etc/passwd", "/a/./b", "~/x", "/a b", "/a,b"],
  logTarget: ["", "stdout", "syslog:server=1.2.3.4", "relative.log"],
  enum: ["", "x"],
  dnsLabel: ["", "Prod", "-prod", "prod-", "a.b", "a".repeat(64)],
  labelKey: ["", "a/b/c", "-a", "a b", "Example.com/x", "/x"],
  labelValue: ["-a", "a-", "a b", "a,b=c", "a".repeat(64)],
  pgParameter: ["", "a b", "x'y", "a,b", "a\\b"],
} as const;
type Kind = keyof typeof EXTRAS;

/** Credentials: the error names the field but never shows the value. */
const SECRET_KINDS: readonly Kind[] = ["secret", "pgSqlSecret", "mysqlSqlSecret"];

/**
 * Kinds whose format quotes the value, so some payloads are no syntax there: inside a SQL literal
 * the renderer quotes, printable ASCII is accepted; inside the demo app's JSON string, inner
 * spaces. Accepted values must come out quoted.
 */
const QUOTED: Partial<Record<Kind, { readonly when: RegExp; readonly quote: (v: string) => string }>> = {
  pgSqlSecret: { when: /^[ -~]{1,256}$/, quote: (v) => `'${v.replace(/'/g, "''")}'` },
  mysqlSqlSecret: { when: /^[ -~]{1,256}$/, quote: sqlString },
  display: {
    when: /^[A-Za-z0-9_.-](?:[A-Za-z0-9 _.-]{0,126}[A-Za-z0-9_.-])?$/,
    quote: (v) => JSON.stringify(v),
  },
};

/** Numbers that break a file: NaN, infinities, negative, fractional, huge, and not numbers. */
const NUMBERS: readonly unknown[] = [NaN, Infinity, -Infinity, -2, 1.5, 1e21, "80", null];

// ---------------------------------------------------------------------------------------------
// The most unusual valid inputs (the base of every row, and what the daemons get)
// ---------------------------------------------------------------------------------------------

const NET = "127.0.47";
const IP = {
  redis: `${NET}.1`,
  sentinel: `${NET}.2`,
  pg: `${NET}.3`,
  maria: `${NET}.4`,
  stats: `${NET}.5`,
  named: `${NET}.6`,
};
const PORT = {
  http: 47080,
  https: 47443,
  stats: 47404,
  demo: 47081,
  redis: 47379,
  sentinel: 47380,
  memcached: 47211,
  pg: 47432,
  maria: 47306,
};
/** Host names with capitals, underscores and dots, resolved to loopback for the checkers. */
const HOSTS = {
  "App_Node-1.svc.Cluster.local": IP.named,
  "app_pods.headless.svc.cluster.local": IP.named,
  "Db_0.orders.svc": IP.named,
  "cache-redis-1.cache.svc": IP.named,
};

const work = tempDir("injection");
// The database users (hapg, mysql) walk into their directories below it.
chmodSync(work, 0o755);
/** A directory name with every character paths may hold besides letters: `+ . _ -`. */
const ODD = "v1.2+x_y-z";
const lbTmp = join(work, `lb-${ODD}`);
const demoTmp = join(work, `demo-${ODD}`);
mkdirSync(lbTmp);
mkdirSync(demoTmp);
const tlsDir = join(work, `tls-${ODD}`);
mkdirSync(tlsDir);
const cert = selfSignedCert(tlsDir);
const HEALTH_PATH = "/_internal/health-check.v2/ready";

const balancerBase = {
  listenAddress: "::1",
  httpPort: PORT.http,
  httpsPort: PORT.https,
  statsPort: PORT.stats,
  statsAddress: IP.stats,
  health: { path: HEALTH_PATH, intervalMs: 1, timeoutMs: 1, fall: 1000, rise: 1 },
  passive: { maxFails: 1000, failTimeoutS: 86_400 },
  retries: 100,
  timeouts: { connectMs: 1, clientMs: 86_400_000, serverMs: 1 },
  keepaliveConnections: 1,
  maxConnsPerServer: 1_000_000,
  tls: { certPath: cert, hstsMaxAgeS: 0, redirectPort: 443 },
  // nginx refuses `burst=0`: the renderer leaves it out (no burst is nginx's default).
  rateLimit: { perSecond: 1_000_000, burst: 0 },
  securityHeaders: true,
  accessLog: join(lbTmp, `access-${ODD}.log`),
  errorLog: "stderr",
  tmpDir: lbTmp,
} as const;

/** nginx 1.22: no `resolve` (so no discovery), no backup with a sticky hash. */
const nginxSpec: BalancerRenderSpec = {
  ...balancerBase,
  algorithm: "least-conn",
  backends: [
    { name: "App_Node-1.v2", host: "App_Node-1.svc.Cluster.local", port: 8080, weight: 256, backup: false },
    { name: "app.v6", host: "::1", port: 65535, weight: 1, backup: false, maxFails: 0 },
    { name: "0-app", host: "127.0.0.2", port: 1, weight: 3, backup: false },
  ],
  discovery: [],
  sticky: { cookie: "Srv_ID2" },
};

const haproxySpec: BalancerRenderSpec = {
  ...balancerBase,
  algorithm: "ip-hash",
  backends: [
    { name: "App_Node-1.v2", host: "App_Node-1.svc.Cluster.local", port: 8080, weight: 256, backup: false },
    { name: "app.v6", host: "::1", port: 65535, weight: 1, backup: true, maxFails: 0 },
    { name: "0-app", host: "127.0.0.2", port: 1, weight: 1, backup: true },
  ],
  discovery: [
    {
      name: "Pods_v1.2-x",
      host: "app_pods.headless.svc.cluster.local",
      port: 8080,
      slots: 1000,
      backup: false,
    },
  ],
  dynamicDns: { resolvers: ["127.0.0.53", "::1"] },
  sticky: { cookie: "Srv_ID2", dynamicKeyEnv: "HA_KEY_2" },
};

const demoSpec: DemoAppSpec = {
  port: PORT.demo,
  healthPath: "/_internal/health-check.v2/",
  service: "Blog v1.2_x-y",
  listenAddress: "::1",
  tmpDir: demoTmp,
};

const redisData = join(work, `redis-${ODD}`);
mkdirSync(redisData);
const redisSpec: RedisRenderSpec = {
  masterName: "Cache_v1.2-x",
  primaryHost: IP.redis,
  port: PORT.redis,
  sentinelPort: PORT.sentinel,
  quorum: 1,
  timings: { downAfterMs: 86_400_000, failoverTimeoutMs: 1, parallelSyncs: 100 },
  mode: "store",
  maxmemory: "128MB",
  minReplicasToWrite: 0,
  minReplicasMaxLagSeconds: 86_400,
  dataDir: redisData,
  bind: IP.redis,
  sentinelBind: IP.sentinel,
};
const redisCreds: RedisCredentials = {
  password: "Pa.ss_w~o+r=d-1",
  sentinelPassword: "S3nt.in~el+=_-",
  configCommand: "CONFIG_x-Y_1",
};
const redisPaths = {
  template: join(work, `tpl-${ODD}.conf`),
  config: join(work, `live-${ODD}.conf`),
  binary: "cat",
};

const tcpRouter = {
  statsPort: PORT.stats,
  statsAddress: IP.stats,
  listenAddress: "::1",
  check: { intervalMs: 1, timeoutMs: 86_400_000, fall: 1000, rise: 1 },
  dynamicDns: { resolvers: ["::1", "127.0.0.53"] },
  clientTimeoutMs: 86_400_000,
};
const redisRouterSpec: RedisRouterSpec = {
  ...tcpRouter,
  port: PORT.redis,
  members: [
    { name: "Cache_v1.2-redis-0", host: "::1", port: 6379 },
    { name: "r.1", host: "cache-redis-1.cache.svc", port: 65535 },
  ],
};

const memcachedSpec: MemcachedRenderSpec = {
  port: PORT.memcached,
  // memcached's least: an item may take 1 MiB, at most half the memory; 5 × threads + 8 connections.
  memoryMb: 2,
  maxConnections: 13,
  threads: 1,
  listen: "::1",
};

const pgWork = join(work, "pg");
const patroniSpec: PatroniRenderSpec = {
  scope: "Orders_v1.2-x",
  member: { name: "orders_v1.2-pg-0", host: "fd00::1" },
  memberNames: ["orders_v1.2-pg-0", "Orders.pg-1"],
  maxSlotWalKeepMb: -1,
  dcs: {
    kind: "kubernetes",
    namespace: "prod-1",
    labels: { "app.kubernetes.io/part-of": "ha_backend.v1-2", tier: "" },
    scopeLabel: "app.kubernetes.io/name",
  },
  peerNetworks: ["samehost", "fd00::/8", "::1/128", "2001:db8:abcd:12::/64", "10.0.0.0/8", "192.168.1.0/24"],
  timings: PATRONI_FAST_TIMINGS,
  maximumLagOnFailover: 0,
  synchronousMode: false,
  synchronousModeStrict: false,
  pgPort: PORT.pg,
  restApiPort: 65535,
  listenAddress: IP.pg,
  dataDir: join(pgWork, "data"),
  binDir: "/usr/lib/postgresql/15/bin",
  pgpassPath: join(pgWork, `pgpass-${ODD}`),
  postBootstrapScript: join(pgWork, `post-bootstrap-${ODD}.sh`),
  appUser: "_app_user1",
  appDatabase: "orders_v2",
  maxConnections: 20,
  sharedBuffers: "16384kB",
  socketDir: join(pgWork, `run-${ODD}`),
};
const patroniEtcdSpec: PatroniRenderSpec = {
  ...patroniSpec,
  dcs: { kind: "etcd3", hosts: ["etcd_0.Example-1:2379", "[fd00::2]:65535", "10.0.0.3:1"] },
};
const patroniCreds: PatroniCredentials = {
  superuserPassword: "Su.per_~+=-1",
  replicationPassword: "Re.pl_~+=-2",
  rewindPassword: "Re.wind_~+=-3",
  restApiPassword: "Rest.api_~+=-4",
  restApiUsername: "patroni_admin",
};
/** Accepted because it lands inside a SQL literal the renderer quotes; hostile everywhere else. */
const SQL_HOSTILE_PASSWORD = `p'w"; DROP ROLE postgres; -- $(id) \`id\` \\ {#} %s`;

const mysqlSpec: MysqlRenderSpec = {
  engine: "mariadb",
  mode: "galera",
  clusterName: "Orders_v1.2-x",
  members: [
    { name: "Orders_v1.2-db-0", host: "Db_0.orders.svc" },
    { name: "orders.db-1", host: "127.0.0.2" },
  ],
  port: PORT.maria,
  semiSync: false,
  semiSyncTimeoutMs: 0,
  galera: { ...GALERA_DEFAULT_TIMINGS, inactiveCheckPeriodMs: 1, keepalivePeriodMs: 1, sstMethod: "rsync" },
  bufferPool: "64m",
  // Not MariaDB's most (100000): it lowers that to what the open-files limit allows.
  maxConnections: 5000,
};
const mysqlCreds: MysqlCredentials = {
  rootPassword: "unused",
  appUser: "_app_user1",
  appPassword: SQL_HOSTILE_PASSWORD,
  appDatabase: "orders_v2",
  replicationUser: "repl_1",
  replicationPassword: `${SQL_HOSTILE_PASSWORD}'\\'`,
  sstUser: "sst_1",
  sstPassword: "Ss.t_~+=-1",
};
const mysqlPaths = {
  dataDir: join(work, `mysql-${ODD}`),
  initSql: join(work, `init-${ODD}.sql`),
  replicaSql: join(work, `replica-${ODD}.sql`),
  rootPassword: join(work, `root-${ODD}`),
};

const dbRouterSpec: DbRouterSpec = {
  ...tcpRouter,
  mode: "galera",
  rwPort: PORT.maria,
  roPort: PORT.maria + 1,
  members: [
    { name: "Orders_v1.2-db-0", host: "Db_0.orders.svc", port: 3306 },
    { name: "orders.db-1", host: "::1", port: 65535 },
  ],
};
const pgRouterSpec: PgRouterSpec = {
  ...tcpRouter,
  rwPort: PORT.pg,
  roPort: PORT.pg + 1,
  members: [
    { name: "orders_v1.2-pg-0", host: "fd00::1", pgPort: 5432, restApiPort: 65535 },
    { name: "Orders.pg-1", host: "App_Node-1.svc.Cluster.local", pgPort: 1, restApiPort: 8008 },
  ],
};

// ---------------------------------------------------------------------------------------------
// The tables: renderer, its arguments, and every field that comes from outside it
// ---------------------------------------------------------------------------------------------

/** A field as the error names it, its kind, and where it sits in the arguments (`0.<field>` by default). */
type StringField = readonly [field: string, kind: Kind, at?: string];
type NumberField = readonly [field: string, at?: string];

interface Target {
  readonly label: string;
  readonly renderer: string;
  readonly args: readonly unknown[];
  readonly render: (args: readonly unknown[]) => unknown;
  readonly strings: readonly StringField[];
  readonly numbers: readonly NumberField[];
  /** Its numbers are optional: null takes the default (`??`), which is no injection. */
  readonly nullIsDefault?: boolean;
}

const balancerStrings: StringField[] = [
  ["listenAddress", "ip"],
  ["statsAddress", "ip"],
  ["algorithm", "enum"],
  ["backends[0].name", "name"],
  ["backends[0].host", "host"],
  ["backends[1].host", "host"],
  ["health.path", "urlPath"],
  ["tls.certPath", "path"],
  ["sticky.cookie", "cookie"],
  ["accessLog", "path"],
  ["errorLog", "logTarget"],
  ["tmpDir", "path"],
];
const balancerNumbers: NumberField[] = [
  ["httpPort"],
  ["httpsPort"],
  ["statsPort"],
  ["backends[0].port"],
  ["backends[0].weight"],
  ["backends[1].maxFails"],
  ["health.intervalMs"],
  ["health.timeoutMs"],
  ["health.fall"],
  ["health.rise"],
  ["passive.maxFails"],
  ["passive.failTimeoutS"],
  ["retries"],
  ["timeouts.connectMs"],
  ["timeouts.clientMs"],
  ["timeouts.serverMs"],
  ["keepaliveConnections"],
  ["maxConnsPerServer"],
  ["tls.hstsMaxAgeS"],
  ["tls.redirectPort"],
  ["rateLimit.perSecond"],
  ["rateLimit.burst"],
];
const routerStrings: StringField[] = [
  ["listenAddress", "ip"],
  ["statsAddress", "ip"],
  ["members[0].name", "name"],
  ["members[0].host", "host"],
  ["members[1].host", "host"],
  ["dynamicDns.resolvers[0]", "host"],
];
const routerNumbers: NumberField[] = [
  ["statsPort"],
  ["check.intervalMs"],
  ["check.timeoutMs"],
  ["check.fall"],
  ["check.rise"],
  ["clientTimeoutMs"],
];
const redisStrings: StringField[] = [
  ["masterName", "name"],
  ["primaryHost", "host"],
  ["mode", "enum"],
  ["maxmemory", "redisSize"],
  ["dataDir", "path"],
  ["bind", "ip"],
  ["sentinelBind", "ip"],
  ["password", "secret", "1.password"],
  ["sentinelPassword", "secret", "1.sentinelPassword"],
  ["configCommand", "command", "1.configCommand"],
];
const redisNumbers: NumberField[] = [
  ["port"],
  ["sentinelPort"],
  ["quorum"],
  ["timings.downAfterMs"],
  ["timings.failoverTimeoutMs"],
  ["timings.parallelSyncs"],
  ["minReplicasToWrite"],
  ["minReplicasMaxLagSeconds"],
];
const patroniStrings: StringField[] = [
  ["scope", "name"],
  ["member.name", "name"],
  ["member.host", "host"],
  ["memberNames[1]", "name"],
  ["dcs.kind", "enum"],
  ["dcs.namespace", "dnsLabel"],
  ["dcs.scopeLabel", "labelKey"],
  ["peerNetworks[0]", "pgHba"],
  ["peerNetworks[2]", "pgHba"],
  ["listenAddress", "ip"],
  ["dataDir", "path"],
  ["binDir", "path"],
  ["pgpassPath", "path"],
  ["postBootstrapScript", "path"],
  ["socketDir", "path"],
  ["appUser", "pgRole"],
  ["appDatabase", "pgIdentifier"],
  ["sharedBuffers", "pgSize"],
  ["superuserPassword", "secret", "1.superuserPassword"],
  ["replicationPassword", "secret", "1.replicationPassword"],
  ["rewindPassword", "secret", "1.rewindPassword"],
  ["restApiPassword", "secret", "1.restApiPassword"],
  ["restApiUsername", "identifier", "1.restApiUsername"],
];
const patroniNumbers: NumberField[] = [
  ["maxSlotWalKeepMb"],
  ["timings.ttl"],
  ["timings.loopWait"],
  ["timings.retryTimeout"],
  ["maximumLagOnFailover"],
  ["pgPort"],
  ["restApiPort"],
  ["maxConnections"],
];
const mysqlStrings: StringField[] = [
  ["engine", "enum"],
  ["mode", "enum"],
  ["clusterName", "name"],
  ["members[0].name", "name"],
  ["members[0].host", "hostV4"],
  ["members[1].host", "hostV4"],
  ["galera.sstMethod", "enum"],
  ["bufferPool", "mysqlSize"],
];
const mysqlNumbers: NumberField[] = [
  ["port"],
  ["semiSyncTimeoutMs"],
  ["galera.suspectTimeoutMs"],
  ["galera.inactiveTimeoutMs"],
  ["galera.inactiveCheckPeriodMs"],
  ["galera.keepalivePeriodMs"],
  ["maxConnections"],
];
const mysqlCredStrings: StringField[] = [
  ["appUser", "mysqlUser", "1.appUser"],
  ["appDatabase", "identifier", "1.appDatabase"],
  ["replicationUser", "mysqlUser", "1.replicationUser"],
  ["sstUser", "mysqlUser", "1.sstUser"],
  ["sstPassword", "secret", "1.sstPassword"],
];
const scriptPaths: StringField[] = [
  ["dataDir", "path", "1.dataDir"],
  ["initSql", "path", "1.initSql"],
  ["replicaSql", "path", "1.replicaSql"],
];

/** A renderer called with a table's argument list (its rows replace one value in it). */
const call =
  <A extends readonly unknown[]>(f: (...a: A) => unknown) =>
  (args: readonly unknown[]) =>
    f(...(args as A));

const TARGETS: readonly Target[] = [
  {
    label: "renderNginx",
    renderer: "renderNginx",
    args: [nginxSpec],
    render: call(renderNginx),
    strings: balancerStrings,
    numbers: balancerNumbers,
  },
  {
    label: "renderHaproxy",
    renderer: "renderHaproxy",
    args: [haproxySpec],
    render: call(renderHaproxy),
    strings: [
      ...balancerStrings,
      ["discovery[0].name", "name"],
      ["discovery[0].host", "host"],
      ["dynamicDns.resolvers[1]", "host"],
      ["sticky.dynamicKeyEnv", "env"],
    ],
    numbers: [...balancerNumbers, ["discovery[0].port"], ["discovery[0].slots"]],
  },
  {
    label: "renderDemoApp",
    renderer: "renderDemoApp",
    args: [demoSpec],
    render: call(renderDemoApp),
    strings: [
      ["healthPath", "urlPath"],
      ["service", "display"],
      ["listenAddress", "ip"],
      ["tmpDir", "path"],
    ],
    numbers: [["port"]],
  },
  {
    label: "renderRedisConf",
    renderer: "renderRedisConf",
    args: [redisSpec, redisCreds],
    render: call(renderRedisConf),
    strings: redisStrings,
    numbers: redisNumbers,
  },
  {
    label: "renderSentinelConf",
    renderer: "renderSentinelConf",
    args: [redisSpec, redisCreds],
    render: call(renderSentinelConf),
    strings: redisStrings,
    numbers: redisNumbers,
  },
  {
    label: "renderRedisStartScript",
    renderer: "renderRedisStartScript",
    args: ["sentinel", redisSpec, redisPaths],
    render: call(renderRedisStartScript),
    strings: [
      ["kind", "enum", "0"],
      ["masterName", "name", "1.masterName"],
      ["primaryHost", "host", "1.primaryHost"],
      ["template", "path", "2.template"],
      ["config", "path", "2.config"],
      ["binary", "executable", "2.binary"],
    ],
    numbers: [["port", "1.port"]],
  },
  {
    label: "renderRedisRouter",
    renderer: "renderRedisRouter",
    args: [redisRouterSpec, redisCreds.password],
    render: call(renderRedisRouter),
    strings: [...routerStrings, ["password", "secret", "1"]],
    numbers: [...routerNumbers, ["port"], ["members[1].port"]],
  },
  {
    label: "renderRedisPing",
    renderer: "renderRedisPing",
    args: [PORT.redis, join(work, `redis-${ODD}.conf`)],
    render: call(renderRedisPing),
    strings: [["configPath", "path", "1"]],
    numbers: [["port", "0"]],
  },
  {
    label: "renderMemcachedArgs",
    renderer: "renderMemcachedArgs",
    args: [memcachedSpec],
    render: call(renderMemcachedArgs),
    strings: [["listen", "ip"]],
    numbers: [["port"], ["memoryMb"], ["maxConnections"], ["threads"]],
  },
  {
    label: "renderPatroniYml (Kubernetes DCS)",
    renderer: "renderPatroniYml",
    args: [patroniSpec, patroniCreds],
    render: call(renderPatroniYml),
    strings: patroniStrings,
    numbers: patroniNumbers,
  },
  {
    label: "renderPatroniYml (etcd DCS)",
    renderer: "renderPatroniYml",
    args: [patroniEtcdSpec, patroniCreds],
    render: call(renderPatroniYml),
    strings: [
      ["dcs.hosts[0]", "hostPort"],
      ["dcs.hosts[1]", "hostPort"],
    ],
    numbers: [],
  },
  {
    label: "renderPostBootstrap",
    renderer: "renderPostBootstrap",
    args: [patroniSpec, SQL_HOSTILE_PASSWORD],
    render: call(renderPostBootstrap),
    strings: [
      ["appUser", "pgRole"],
      ["appDatabase", "pgIdentifier"],
      ["appPassword", "pgSqlSecret", "1"],
    ],
    numbers: [],
  },
  {
    label: "patroniDynamicConfig",
    renderer: "patroniDynamicConfig",
    args: [patroniSpec],
    render: call(patroniDynamicConfig),
    strings: [
      ["memberNames[0]", "name"],
      ["sharedBuffers", "pgSize"],
    ],
    numbers: [
      ["timings.ttl"],
      ["timings.loopWait"],
      ["timings.retryTimeout"],
      ["maximumLagOnFailover"],
      ["maxConnections"],
    ],
  },
  {
    // A configuration made by hand, not by patroniDynamicConfig: its values reach postgresql.conf too.
    label: "renderDynamicConfigJson",
    renderer: "renderDynamicConfigJson",
    args: [patroniDynamicConfig(patroniSpec)],
    render: call(renderDynamicConfigJson),
    strings: [
      ["postgresql.parameters.shared_buffers", "pgParameter"],
      ["postgresql.parameters.password_encryption", "pgParameter"],
    ],
    numbers: [],
  },
  {
    label: "renderApplySettingsScript",
    renderer: "renderApplySettingsScript",
    args: [{ attempts: 1, intervalSeconds: 86_400, deadlineSeconds: 1, requestTimeoutSeconds: 1 }],
    render: call(renderApplySettingsScript),
    strings: [],
    numbers: [["attempts"], ["intervalSeconds"], ["deadlineSeconds"], ["requestTimeoutSeconds"]],
    nullIsDefault: true,
  },
  {
    label: "renderMyCnf",
    renderer: "renderMyCnf",
    args: [mysqlSpec],
    render: call(renderMyCnf),
    strings: mysqlStrings,
    numbers: mysqlNumbers,
  },
  {
    label: "renderSecretCnf",
    renderer: "renderSecretCnf",
    args: [mysqlSpec, mysqlCreds],
    render: call(renderSecretCnf),
    strings: [...mysqlStrings, ...mysqlCredStrings],
    numbers: mysqlNumbers,
  },
  {
    label: "renderInitSql",
    renderer: "renderInitSql",
    args: [mysqlSpec, mysqlCreds],
    render: call(renderInitSql),
    strings: [
      ...mysqlStrings,
      ...mysqlCredStrings,
      ["appPassword", "mysqlSqlSecret", "1.appPassword"],
      ["replicationPassword", "mysqlSqlSecret", "1.replicationPassword"],
    ],
    numbers: mysqlNumbers,
  },
  {
    label: "renderReplicaSql",
    renderer: "renderReplicaSql",
    args: [mysqlSpec, mysqlCreds],
    render: call(renderReplicaSql),
    strings: [
      ...mysqlStrings,
      ...mysqlCredStrings,
      ["replicationPassword", "mysqlSqlSecret", "1.replicationPassword"],
    ],
    numbers: mysqlNumbers,
  },
  {
    label: "renderStartScript",
    renderer: "renderStartScript",
    args: [mysqlSpec, mysqlPaths],
    render: call(renderStartScript),
    strings: [...mysqlStrings, ...scriptPaths],
    numbers: mysqlNumbers,
  },
  {
    label: "renderPromoteScript",
    renderer: "renderPromoteScript",
    args: [{ ...mysqlSpec, mode: "replication" }, mysqlPaths],
    render: call(renderPromoteScript),
    strings: [...mysqlStrings, ["replicaSql", "path", "1.replicaSql"]],
    numbers: mysqlNumbers,
  },
  {
    label: "renderDbRouter",
    renderer: "renderDbRouter",
    args: [dbRouterSpec],
    render: call(renderDbRouter),
    strings: [...routerStrings, ["mode", "enum"]],
    numbers: [...routerNumbers, ["rwPort"], ["roPort"], ["members[0].port"]],
  },
  {
    label: "renderPgRouter",
    renderer: "renderPgRouter",
    args: [pgRouterSpec],
    render: call(renderPgRouter),
    strings: routerStrings,
    numbers: [...routerNumbers, ["rwPort"], ["roPort"], ["members[0].pgPort"], ["members[1].restApiPort"]],
  },
];

/** `backends[1].host` → `["backends", "1", "host"]`. */
function keys(path: string): string[] {
  return path.match(/[^.[\]]+/g) ?? [];
}

function getAt(value: unknown, path: string): unknown {
  return keys(path).reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], value);
}

/** A copy of `value` with `path` set to `v` (arrays stay arrays). */
function setAt(value: unknown, path: string[], v: unknown): unknown {
  if (path.length === 0) return v;
  const [k, ...rest] = path;
  if (Array.isArray(value)) {
    const copy = [...value];
    copy[Number(k)] = setAt(copy[Number(k)], rest, v);
    return copy;
  }
  const obj = value as Record<string, unknown>;
  return { ...obj, [k]: setAt(obj[k], rest, v) };
}

function withValue(t: Target, at: string, v: unknown): readonly unknown[] {
  return setAt(t.args, keys(at), v) as readonly unknown[];
}

/** Runs `render` and returns the RenderInputError it throws (any other outcome fails the test). */
function refusal(render: () => unknown): RenderInputError {
  try {
    render();
  } catch (e) {
    if (e instanceof RenderInputError) return e;
    throw e;
  }
  throw new Error("the renderer accepted it");
}

type Row = readonly [field: string, label: string, kind: Kind | "number", at: string, value: unknown];

function stringRows(t: Target): Row[] {
  return t.strings.flatMap(([field, kind, at = `0.${field}`]) => {
    const valid = getAt(t.args, at);
    if (typeof valid !== "string") throw new Error(`${t.label}: ${at} holds no string in the base arguments`);
    return [
      ...SUFFIXES.map(([label, payload]): Row => [
        field,
        `${showValue(valid)} + ${label}`,
        kind,
        at,
        valid + payload,
      ]),
      ...EXTRAS[kind].map((v): Row => [field, showValue(v), kind, at, v]),
    ];
  });
}

function numberRows(t: Target): Row[] {
  return t.numbers.flatMap(([field, at = `0.${field}`]) =>
    NUMBERS.filter((v) => !(t.nullIsDefault && v === null)).map((v): Row => [
      field,
      showValue(v),
      "number",
      at,
      v,
    ]),
  );
}

/** Characters an error message must never carry raw (it goes to terminals and logs). */
// eslint-disable-next-line no-control-regex -- control characters are what this looks for
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\ufeff]/u;

describe.each(TARGETS)("$label", (t) => {
  it("renders the base arguments (the most unusual valid inputs) without complaint", () => {
    expect(() => t.render(t.args)).not.toThrow();
  });

  const strings = stringRows(t);
  const numbers = numberRows(t);
  if (strings.length > 0) {
    it.each(strings)("%s: %s", (field, _label, kind, at, value) => {
      const render = () => t.render(withValue(t, at, value));
      const quoted = kind === "number" ? undefined : QUOTED[kind];
      if (quoted !== undefined && typeof value === "string" && quoted.when.test(value)) {
        // No syntax where the renderer quotes it: accepted, and it comes out quoted.
        expect(String(render())).toContain(quoted.quote(value));
        return;
      }
      const e = refusal(render);
      expect([e.renderer, e.field]).toEqual([t.renderer, field]);
      expect(e.message.startsWith(`${t.renderer}: ${field} must `)).toBe(true);
      expect(e.message).not.toMatch(RAW_CONTROL);
      if (kind !== "number" && SECRET_KINDS.includes(kind)) {
        expect(e.value).toBe("[secret]");
        if (typeof value === "string" && value.length > 0) expect(e.message).not.toContain(value);
      }
    });
  }
  if (numbers.length > 0) {
    it.each(numbers)("%s: %s", (field, _label, _kind, at, value) => {
      const e = refusal(() => t.render(withValue(t, at, value)));
      expect([e.renderer, e.field]).toEqual([t.renderer, field]);
      expect(e.message).toContain(`${t.renderer}: ${field} must be a whole number `);
    });
  }
});

describe("renderPatroniYml's Kubernetes labels (a label selector)", () => {
  const labels = (l: Record<string, string>): PatroniRenderSpec => ({
    ...patroniSpec,
    dcs: { ...(patroniSpec.dcs as Extract<PatroniRenderSpec["dcs"], { kind: "kubernetes" }>), labels: l },
  });
  it.each([...SUFFIXES.map(([, p]) => `ha${p}`), ...EXTRAS.labelValue])("refuses the value %j", (v) => {
    const e = refusal(() => renderPatroniYml(labels({ "app.kubernetes.io/part-of": v }), patroniCreds));
    expect(e.field).toBe('dcs.labels["app.kubernetes.io/part-of"]');
  });
  it.each([...SUFFIXES.map(([, p]) => `app.kubernetes.io/x${p}`), ...EXTRAS.labelKey])(
    "refuses the key %j",
    (k) => {
      const e = refusal(() => renderPatroniYml(labels({ [k]: "x" }), patroniCreds));
      expect(e.field).toBe("dcs.labels");
    },
  );
});

describe("relations between fields a daemon enforces", () => {
  it.each([
    [64, 64, 328],
    [12, 1, 13],
    [64, 12, 68],
  ])(
    "memcached: %i connections for %i threads is refused (it needs %i)",
    (maxConnections, threads, needs) => {
      const e = refusal(() => renderMemcachedArgs({ ...memcachedSpec, maxConnections, threads }));
      expect(e.field).toBe("maxConnections");
      expect(e.message).toContain(`(${needs} for ${threads} threads)`);
    },
  );
});

describe("renderDynamicConfigJson's parameter names (postgresql.conf keys)", () => {
  it.each(["fsync = off\nshared_buffers", "x y", "Shared_Buffers", "a'b", ""])("refuses %j", (name) => {
    const config = patroniDynamicConfig(patroniSpec);
    const e = refusal(() =>
      renderDynamicConfigJson({
        ...config,
        postgresql: { ...config.postgresql, parameters: { ...config.postgresql.parameters, [name]: "on" } },
      }),
    );
    expect(e.field).toBe("postgresql.parameters");
    expect(e.message).not.toMatch(RAW_CONTROL);
  });
});

describe("error messages", () => {
  it("show control characters and invisible separators escaped, and cut long values", () => {
    const e = refusal(() =>
      renderNginx({ ...nginxSpec, health: { ...nginxSpec.health, path: "/h\n    return 200;\u2028" } }),
    );
    expect(e.message).toBe(
      'renderNginx: health.path must be a URL path: "/" then letters, digits, "/", "_", ".", "-" (at most 255 characters), e.g. /healthz, but "/h\\n    return 200;\\u2028" (character "\\n" at index 2) was provided.',
    );
    const long = refusal(() =>
      renderRedisConf({ ...redisSpec, dataDir: `/${"d".repeat(2000)}` }, redisCreds),
    );
    expect(long.message).toContain(`but "/${"d".repeat(79)}"… (2001 characters) was provided.`);
  });

  it("never show a secret, not even the character that broke the rule", () => {
    const e = refusal(() =>
      renderRedisConf(redisSpec, { ...redisCreds, password: "hunter2\nslaveof 1.2.3.4 6379" }),
    );
    expect(e.message).toBe(
      "renderRedisConf: password must be letters, digits, ., _, ~, +, = and - (1 to 256 characters), but a secret of 28 characters (not shown) was provided.",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The real daemons accept the most unusual valid inputs
// ---------------------------------------------------------------------------------------------

/** A start cap: no timer governs these start-ups (they listen within a second here). */
const START_UP = {
  withinMs: 15_000,
  because: "daemon start-up: no timer governs it; a cap for a loaded machine",
};

/** `haproxy -c` with host names mapped to loopback and `env` set. */
function haproxyCheckWith(config: string, env: Record<string, string> = {}) {
  const file = join(tempDir("inj-haproxy"), "haproxy.cfg");
  writeFileSync(file, config);
  return check("unshare", withHosts(HOSTS, binary("haproxy"), ["-c", "-f", file], env));
}

function expectHaproxyValid(r: { code: number; output: string }): void {
  expect(r.output.replace(/\[NOTICE\].*\n/g, "")).toBe("Configuration file is valid\n");
  expect(r.code).toBe(0);
}

/** One memcached text-protocol command to an address (IPv6 included): the reply up to END. */
function memcachedStats(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    let reply = "";
    const timer = setTimeout(() => socket.destroy(new Error("no reply in 5 s")), 5_000);
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("data", (d) => {
      reply += d.toString();
      if (reply.endsWith("END\r\n")) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.write("stats settings\r\n");
  });
}

describe("the real daemons accept the most unusual valid inputs", () => {
  const procs = new ProcessGroup();
  afterAll(() => procs.stopAll(join(work, "process-logs")));

  it("nginx -t: the balancer (IPv6 listener and server, odd names and paths, sticky cookie, TLS)", () => {
    const r = nginxTest(renderNginx(nginxSpec), HOSTS);
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
  });

  it("haproxy -c: the balancer (backups, discovery of 1000 slots, IPv6 name server, dynamic cookie key)", () => {
    const config = renderHaproxy(haproxySpec);
    expect(config).toContain(`uri ${HEALTH_PATH} ver HTTP/1.1`);
    expectHaproxyValid(haproxyCheckWith(config, { HA_KEY_2: "k3y" }));
  });

  it("nginx -t: the demo app (IPv6 listener, odd health path and service name)", () => {
    const r = nginxTest(renderDemoApp(demoSpec));
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
  });

  it("haproxy -c: the Redis, MySQL and PostgreSQL routers (IPv6 members and listeners, odd names)", () => {
    expectHaproxyValid(haproxyCheckWith(renderRedisRouter(redisRouterSpec, redisCreds.password)));
    expectHaproxyValid(haproxyCheckWith(renderDbRouter(dbRouterSpec)));
    expectHaproxyValid(haproxyCheckWith(renderDbRouter({ ...dbRouterSpec, mode: "replication" })));
    expectHaproxyValid(haproxyCheckWith(renderPgRouter(pgRouterSpec)));
  });

  it("redis-server and redis-sentinel start and hold the values (128MB, the renamed CONFIG, the odd master name)", async () => {
    const conf = join(work, "redis.conf");
    const sentinelConf = join(work, "sentinel.conf");
    writeFileSync(conf, renderRedisConf(redisSpec, redisCreds));
    writeFileSync(sentinelConf, renderSentinelConf(redisSpec, redisCreds));
    procs.start(binary("redis-server"), [conf]);
    procs.start(binary("redis-sentinel"), [sentinelConf]);
    const options = { maxRetriesPerRequest: 0, retryStrategy: () => 100, lazyConnect: false } as const;
    const redis = new Redis({ ...options, host: IP.redis, port: PORT.redis, password: redisCreds.password });
    const sentinel = new Redis({
      ...options,
      host: IP.sentinel,
      port: PORT.sentinel,
      password: redisCreds.sentinelPassword,
    });
    redis.on("error", () => undefined);
    sentinel.on("error", () => undefined);
    try {
      await waitFor("redis-server up", async () => (await redis.ping()) === "PONG", START_UP);
      expect(await redis.call(redisCreds.configCommand, "GET", "maxmemory")).toEqual([
        "maxmemory",
        "134217728",
      ]);
      expect(await redis.call(redisCreds.configCommand, "GET", "dir")).toEqual(["dir", redisData]);
      await expect(redis.call("CONFIG", "GET", "maxmemory")).rejects.toThrow(/unknown command/);
      await waitFor("redis-sentinel up", async () => (await sentinel.ping()) === "PONG", START_UP);
      expect(await sentinel.call("SENTINEL", "get-master-addr-by-name", redisSpec.masterName)).toEqual([
        IP.redis,
        String(PORT.redis),
      ]);
    } finally {
      redis.disconnect();
      sentinel.disconnect();
    }
  });

  it("the Redis start script keeps a Sentinel on the primary it follows, with an odd master name", () => {
    const run = (template: string) => {
      writeFileSync(redisPaths.template, template);
      writeFileSync(join(work, "start.sh"), renderRedisStartScript("sentinel", redisSpec, redisPaths));
      const r = spawnSync("sh", [join(work, "start.sh")], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, REDIS_MEMBER: "s-0", REDIS_HOST: "s-0" },
      });
      return [r.status, r.stdout];
    };
    const m = redisSpec.masterName;
    expect(run(`sentinel monitor ${m} ${IP.redis} 6379 2\n`)).toEqual([
      0,
      `sentinel monitor ${m} ${IP.redis} 6379 2\nsentinel announce-ip s-0\n`,
    ]);
    writeFileSync(redisPaths.config, `sentinel monitor ${m} 10.9.9.9 6379 2\n`);
    expect(run(`sentinel monitor ${m} ${IP.redis} 6379 3\n`)).toEqual([
      0,
      `sentinel monitor ${m} 10.9.9.9 6379 3\nsentinel announce-ip s-0\n`,
    ]);
  });

  it("memcached starts with the arguments (IPv6 listener, 2 MiB, 13 connections, 1 thread)", async () => {
    procs.start(binary("memcached"), [...renderMemcachedArgs(memcachedSpec), "-u", "nobody"]);
    let stats = "";
    await waitFor(
      "memcached up",
      async () => {
        stats = await memcachedStats("::1", PORT.memcached);
        return true;
      },
      START_UP,
    );
    expect(stats).toContain("STAT maxbytes 2097152\r\n");
    expect(stats).toContain("STAT maxconns 13\r\n");
    expect(stats).toContain("STAT num_threads 1\r\n");
    expect(stats).toContain("STAT udpport 0\r\n");
  });

  it("PostgreSQL runs on the rendered pg_hba (IPv6 networks, samehost) and parameters; the post-bootstrap script creates the app role with a hostile password", async () => {
    // GIVEN patroni.yml and the post-bootstrap script rendered from the unusual values
    const doc = parse(renderPatroniYml(patroniSpec, patroniCreds));
    const params = { ...doc.bootstrap.dcs.postgresql.parameters, ...doc.postgresql.parameters };
    const hba: string[] = doc.postgresql.pg_hba;
    expect(hba).toContain("host replication replicator fd00::/8 scram-sha-256");
    expect(hba).toContain("host orders_v2 _app_user1 all scram-sha-256");
    ensureUser();
    ownedDir(pgWork);
    ownedDir(patroniSpec.socketDir as string);
    const pwfile = join(pgWork, "superuser-password");
    writeOwned(pwfile, patroniCreds.superuserPassword);
    const hbaFile = join(pgWork, `pg_hba-${ODD}.conf`);
    writeOwned(hbaFile, `${hba.join("\n")}\n`);
    writeOwned(patroniSpec.postBootstrapScript, renderPostBootstrap(patroniSpec, SQL_HOSTILE_PASSWORD));
    const initdb = await runAsUser(
      join(patroniSpec.binDir, "initdb"),
      [
        "-D",
        patroniSpec.dataDir,
        "-U",
        "postgres",
        `--pwfile=${pwfile}`,
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
      ],
      {},
      60_000,
    );
    expect([initdb.code, initdb.output]).toEqual([0, expect.stringContaining("Success.")]);
    // WHEN PostgreSQL starts with them (as Patroni would start it: the file's parameters on the command line)
    startAsUser(procs, join(patroniSpec.binDir, "postgres"), [
      "-D",
      patroniSpec.dataDir,
      "-c",
      `listen_addresses=${IP.pg}`,
      "-p",
      String(PORT.pg),
      "-c",
      `hba_file=${hbaFile}`,
      "-c",
      `unix_socket_directories=${params.unix_socket_directories}`,
      "-c",
      `shared_buffers=${params.shared_buffers}`,
      "-c",
      `max_connections=${params.max_connections}`,
      "-c",
      `max_slot_wal_keep_size=${params.max_slot_wal_keep_size}`,
    ]);
    const su = () => pgConnect(IP.pg, PORT.pg, "postgres", patroniCreds.superuserPassword, "postgres");
    await waitFor("postgres up", async () => (await su()).end().then(() => true), START_UP);
    const url = `postgresql://postgres:${encodeURIComponent(patroniCreds.superuserPassword)}@${IP.pg}:${PORT.pg}/postgres`;
    const post = await runAsUser("/bin/sh", [patroniSpec.postBootstrapScript, url], {}, 30_000);
    expect([post.code, post.output]).toEqual([0, "CREATE ROLE\nCREATE DATABASE\n"]);
    // THEN every pg_hba line parsed, the parameters hold, and the app role logs in to its database only
    const c = await su();
    try {
      const rules = await c.query(
        "SELECT address, netmask, error FROM pg_hba_file_rules WHERE 'replicator' = ANY(user_name) ORDER BY line_number",
      );
      expect(rules.rows).toEqual([
        { address: "samehost", netmask: null, error: null },
        { address: "fd00::", netmask: "ff00::", error: null },
        { address: "::1", netmask: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", error: null },
        { address: "2001:db8:abcd:12::", netmask: "ffff:ffff:ffff:ffff::", error: null },
        { address: "10.0.0.0", netmask: "255.0.0.0", error: null },
        { address: "192.168.1.0", netmask: "255.255.255.0", error: null },
      ]);
      expect(
        (await c.query("SELECT count(*)::int AS n FROM pg_hba_file_rules WHERE error IS NOT NULL")).rows,
      ).toEqual([{ n: 0 }]);
      expect((await c.query("SHOW shared_buffers")).rows).toEqual([{ shared_buffers: "16MB" }]);
      expect((await c.query("SHOW max_connections")).rows).toEqual([{ max_connections: "20" }]);
      expect((await c.query("SHOW unix_socket_directories")).rows).toEqual([
        { unix_socket_directories: patroniSpec.socketDir },
      ]);
    } finally {
      await c.end();
    }
    const app = await pgConnect(IP.pg, PORT.pg, "_app_user1", SQL_HOSTILE_PASSWORD, "orders_v2");
    try {
      expect((await app.query("SELECT current_user AS u, current_database() AS d")).rows).toEqual([
        { u: "_app_user1", d: "orders_v2" },
      ]);
    } finally {
      await app.end();
    }
    await expect(pgConnect(IP.pg, PORT.pg, "_app_user1", SQL_HOSTILE_PASSWORD, "postgres")).rejects.toThrow(
      /pg_hba\.conf rejects connection/,
    );
  });

  it("mariadbd reads the Galera my.cnf and SST credentials (odd cluster name, gcomm list, 64m pool)", () => {
    const file = join(work, "galera.cnf");
    writeFileSync(file, renderMyCnf(mysqlSpec) + renderSecretCnf(mysqlSpec, mysqlCreds));
    const r = spawnSync(
      binary("mariadbd"),
      [`--defaults-file=${file}`, "--user=mysql", "--verbose", "--help"],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect([r.status, r.stderr.split("\n").filter((l) => l.includes("[ERROR]"))]).toEqual([0, []]);
    const value = (name: string) => new RegExp(`^${name} +(.*)$`, "m").exec(r.stdout)?.[1];
    expect(value("innodb-buffer-pool-size")).toBe("67108864");
    expect(value("wsrep-cluster-name")).toBe("Orders_v1.2-x");
    expect(value("wsrep-cluster-address")).toBe("gcomm://Db_0.orders.svc,127.0.0.2");
    expect(value("wsrep-sst-auth")).toBe("sst_1:Ss.t_~+=-1");
    expect(value("max-connections")).toBe("5000");
  });

  it("bash -n accepts the start scripts and the promotion script", () => {
    for (const script of [
      renderStartScript(mysqlSpec, mysqlPaths),
      renderStartScript({ ...mysqlSpec, mode: "replication", semiSync: true }, mysqlPaths),
      renderPromoteScript({ ...mysqlSpec, mode: "replication" }, mysqlPaths),
    ]) {
      const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
    }
  });

  it("MariaDB starts from the rendered start script, my.cnf and init SQL; the app user logs in with a hostile password", async () => {
    // GIVEN one replication member named oddly, its files rendered from the unusual values
    const base = join(work, `maria-${ODD}`);
    mkdirSync(base);
    const node = new MariaNode("Orders_v1.2-db-0", IP.maria, PORT.maria, base);
    const spec: MysqlRenderSpec = {
      ...mysqlSpec,
      mode: "replication",
      members: [{ name: node.name, host: node.host }],
    };
    const paths = sqlPaths(base, {
      init: renderInitSql(spec, mysqlCreds),
      replica: renderReplicaSql(spec, mysqlCreds),
    });
    node.prepare(
      {
        myCnf: renderMyCnf(spec),
        secretCnf: renderSecretCnf(spec, mysqlCreds),
        startScript: renderStartScript(spec, { ...mysqlPaths, ...paths }),
      },
      false,
    );
    node.install();
    // WHEN the start script starts it and the init SQL it linked runs
    node.start(procs);
    await node.waitUp();
    expect(node.applyInitdb()).toEqual(["10-ha-backend-init.sql"]);
    expect(readFileSync(paths.initSql, "utf8")).toContain(sqlString(SQL_HOSTILE_PASSWORD));
    // THEN the app user logs in to its database with the password exactly as given
    const c = await mysqlConnect(IP.maria, PORT.maria, "_app_user1", SQL_HOSTILE_PASSWORD, "orders_v2");
    try {
      const [rows] = await c.query(
        "SELECT CURRENT_USER() AS u, DATABASE() AS d, @@innodb_buffer_pool_size AS pool",
      );
      expect(rows).toEqual([{ u: "_app_user1@%", d: "orders_v2", pool: 67108864 }]);
    } finally {
      await c.end();
    }
  });
});
