import { statsSection } from "../../balancer/render/haproxy";
import { hostPort, listenOn } from "../../balancer/render/spec";
import { guardTcpRouterBase, tcpPreamble, type TcpRouterBase } from "../../database/render/router";
import * as g from "../../render-guard";

/**
 * Redis with Sentinel: redis.conf and sentinel.conf (one file each for every member), and the
 * start script that gives each member its own lines in a writable copy. Plain data in, text
 * out. Checked with Debian's redis-server and redis-sentinel 7.0 (live tests).
 */

/** What Sentinel needs to notice a dead primary and promote a replica. */
export interface SentinelTimings {
  /** A primary silent for this long is subjectively down. Redis's default: 30000. */
  readonly downAfterMs: number;
  /** How long a failover may take before another Sentinel may retry it. Redis's default: 180000. */
  readonly failoverTimeoutMs: number;
  /** Replicas that resynchronise with a new primary at once (the rest keep serving stale reads). */
  readonly parallelSyncs: number;
}

/**
 * Sentinel pings every instance once a second. With down-after at that same 1 s, a primary it
 * has just switched to can look silent before its first PING is even answered, and be failed
 * over again: the live test saw that second, needless failover in about one run in ten. Below
 * this, components refuse the setting.
 */
export const SENTINEL_MIN_DOWN_AFTER_MS = 2000;

/** Fast and safe on a LAN: a primary silent for 2 s is down. */
export const SENTINEL_FAST_TIMINGS: SentinelTimings = {
  downAfterMs: SENTINEL_MIN_DOWN_AFTER_MS,
  failoverTimeoutMs: 10_000,
  parallelSyncs: 1,
};
/** Redis's own defaults, for comparison. */
export const SENTINEL_DEFAULT_TIMINGS: SentinelTimings = {
  downAfterMs: 30_000,
  failoverTimeoutMs: 180_000,
  parallelSyncs: 1,
};

/** `cache`: memory only, evicts; `store`: append-only file, writes need a replica's ack. */
export type RedisMode = "cache" | "store";

export interface RedisRenderSpec {
  /** The name Sentinel monitors the primary under (`sentinel get-master-addr-by-name`). */
  readonly masterName: string;
  /** Address of member 0, the first primary. */
  readonly primaryHost: string;
  readonly port: number;
  readonly sentinelPort: number;
  /** Sentinels that must agree the primary is down before a failover starts. */
  readonly quorum: number;
  readonly timings: SentinelTimings;
  readonly mode: RedisMode;
  /** Memory limit, e.g. `256mb`. */
  readonly maxmemory: string;
  /** Store mode: writes are refused unless this many replicas are connected and recent. */
  readonly minReplicasToWrite: number;
  /** Store mode: seconds of replica silence after which it no longer counts. */
  readonly minReplicasMaxLagSeconds: number;
  /** Where the writable config copy (and, in store mode, the AOF) lives. */
  readonly dataDir: string;
  /** Address to bind. @default all */
  readonly bind?: string;
  /** Sentinel's address to bind. @default all */
  readonly sentinelBind?: string;
}

export interface RedisCredentials {
  /** Clients and replicas (`requirepass`, `masterauth`). */
  readonly password: string;
  /** Clients of Sentinel and Sentinels among themselves. */
  readonly sentinelPassword: string;
  /**
   * The name CONFIG is renamed to: only Sentinel (told with `sentinel rename-command`) uses
   * it; a client with the password cannot rewrite the server's config.
   */
  readonly configCommand: string;
  /**
   * The metrics exporter's password. With it, redis.conf and sentinel.conf define the ACL user
   * {@link REDIS_MONITOR_USER}, which may run only what redis_exporter reads
   * ({@link REDIS_MONITOR_COMMANDS}); the default user is unchanged.
   * @default none (no monitor user)
   */
  readonly monitorPassword?: string;
}

/** The ACL user redis_exporter logs in as (`--redis.user`), on members and Sentinels alike. */
export const REDIS_MONITOR_USER = "metrics";

/**
 * The commands redis_exporter runs, per server kind: found live with Debian's redis_exporter
 * 1.45 against redis 7.0 (ACL LOG lists every command the user was refused), plus LATENCY
 * HISTOGRAM, which newer exporters (the pinned image) ask for too. Each reads server state, none
 * a key: INFO (redis_up, role, replicas, memory), CLIENT SETNAME (the exporter names its
 * connection), LATENCY and SLOWLOG LEN (times and counts). Not SLOWLOG GET: it returns the
 * arguments, the data, of slow commands, and the exporter goes on without it (silently). Sentinel
 * has a command table of its own, and a rule naming a command outside it (LATENCY, SLOWLOG)
 * stops Sentinel at start ("Unknown command or category name in ACL"): there, SENTINEL MASTERS,
 * SENTINELS, SLAVES and CKQUORUM instead. Never CONFIG: CONFIG GET reads the passwords.
 */
export const REDIS_MONITOR_COMMANDS = {
  redis: ["info", "client|setname", "latency|latest", "latency|histogram", "slowlog|len"],
  sentinel: [
    "info",
    "client|setname",
    "sentinel|masters",
    "sentinel|sentinels",
    "sentinel|slaves",
    "sentinel|ckquorum",
  ],
} as const;

/** The monitor user's ACL line: no keys, no channels, no command but the exporter's. */
function monitorUser(kind: keyof typeof REDIS_MONITOR_COMMANDS, c: RedisCredentials): string[] {
  if (c.monitorPassword === undefined) return [];
  const allowed = REDIS_MONITOR_COMMANDS[kind].map((cmd) => `+${cmd}`).join(" ");
  return [
    "# The metrics exporter's user: reads server state only.",
    `user ${REDIS_MONITOR_USER} on >${c.monitorPassword} resetkeys resetchannels -@all ${allowed}`,
  ];
}

const HEADER = "# Generated by ha-backend (components/cache/render/redis.ts). Secret: holds passwords.";

/**
 * Every value redis.conf and sentinel.conf embed, checked at the renderer's entry: both files are
 * read line by line and split at spaces, so a newline or a space in a value would add a directive
 * ({@link RenderInputError} names the field; passwords are never shown).
 */
function guardRedisSpec(r: string, s: RedisRenderSpec, c: RedisCredentials): void {
  const ms = (field: string, v: number) => g.wholeNumber(r, field, v, 1, 86_400_000);
  g.objectName(r, "masterName", s.masterName);
  g.hostName(r, "primaryHost", s.primaryHost);
  g.port(r, "port", s.port);
  g.port(r, "sentinelPort", s.sentinelPort);
  g.wholeNumber(r, "quorum", s.quorum, 1, 100);
  ms("timings.downAfterMs", s.timings.downAfterMs);
  ms("timings.failoverTimeoutMs", s.timings.failoverTimeoutMs);
  g.wholeNumber(r, "timings.parallelSyncs", s.timings.parallelSyncs, 1, 100);
  g.oneOf(r, "mode", s.mode, ["cache", "store"]);
  g.redisSize(r, "maxmemory", s.maxmemory);
  g.wholeNumber(r, "minReplicasToWrite", s.minReplicasToWrite, 0, 100);
  g.wholeNumber(r, "minReplicasMaxLagSeconds", s.minReplicasMaxLagSeconds, 0, 86_400);
  g.filePath(r, "dataDir", s.dataDir);
  if (s.bind !== undefined) g.ipAddress(r, "bind", s.bind);
  if (s.sentinelBind !== undefined) g.ipAddress(r, "sentinelBind", s.sentinelBind);
  g.secretToken(r, "password", c.password);
  g.secretToken(r, "sentinelPassword", c.sentinelPassword);
  g.commandName(r, "configCommand", c.configCommand);
  if (c.monitorPassword !== undefined) g.secretToken(r, "monitorPassword", c.monitorPassword);
}

/** redis.conf for every member; the start script adds each member's announce and replicaof lines. */
export function renderRedisConf(s: RedisRenderSpec, c: RedisCredentials): string {
  guardRedisSpec("renderRedisConf", s, c);
  const persistence =
    s.mode === "store"
      ? [
          "# Store: every write is appended and fsynced once a second; writes stop unless a",
          "# replica is connected and recent, which bounds what a failover can lose.",
          "appendonly yes",
          "appendfsync everysec",
          'save ""',
          `min-replicas-to-write ${s.minReplicasToWrite}`,
          `min-replicas-max-lag ${s.minReplicasMaxLagSeconds}`,
          "maxmemory-policy noeviction",
        ]
      : [
          "# Cache: memory only; the least recently used keys make room.",
          "appendonly no",
          'save ""',
          "maxmemory-policy allkeys-lru",
        ];
  return [
    HEADER,
    `bind ${s.bind ?? "* -::*"}`,
    `port ${s.port}`,
    "protected-mode yes",
    `requirepass ${c.password}`,
    `masterauth ${c.password}`,
    `dir ${s.dataDir}`,
    `maxmemory ${s.maxmemory}`,
    ...persistence,
    "# A replica serves reads while it resynchronises, and never takes writes.",
    "replica-read-only yes",
    "replica-serve-stale-data yes",
    // Disk-less sync: a new replica gets the dataset over the socket, nothing written first.
    "repl-diskless-sync yes",
    "repl-diskless-sync-delay 0",
    "# Clients that vanish are noticed.",
    "tcp-keepalive 60",
    "timeout 0",
    "# Dangerous commands: nothing may wipe the data set or load code; CONFIG is Sentinel's.",
    'rename-command FLUSHALL ""',
    'rename-command FLUSHDB ""',
    `rename-command CONFIG ${c.configCommand}`,
    "enable-debug-command no",
    "enable-module-command no",
    "enable-protected-configs no",
    ...monitorUser("redis", c),
    "",
  ].join("\n");
}

/** sentinel.conf for every Sentinel; the start script adds each one's announce line. */
export function renderSentinelConf(s: RedisRenderSpec, c: RedisCredentials): string {
  guardRedisSpec("renderSentinelConf", s, c);
  const m = s.masterName;
  return [
    HEADER,
    `bind ${s.sentinelBind ?? "* -::*"}`,
    `port ${s.sentinelPort}`,
    `dir ${s.dataDir}`,
    "protected-mode yes",
    // Members are found by name (containers and pods change addresses when they restart).
    "sentinel resolve-hostnames yes",
    "sentinel announce-hostnames yes",
    `requirepass ${c.sentinelPassword}`,
    `sentinel sentinel-pass ${c.sentinelPassword}`,
    `sentinel monitor ${m} ${s.primaryHost} ${s.port} ${s.quorum}`,
    `sentinel auth-pass ${m} ${c.password}`,
    `sentinel down-after-milliseconds ${m} ${s.timings.downAfterMs}`,
    `sentinel failover-timeout ${m} ${s.timings.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${m} ${s.timings.parallelSyncs}`,
    `sentinel rename-command ${m} CONFIG ${c.configCommand}`,
    // Scripts run by Sentinel could be rewritten through SENTINEL SET: refuse that.
    "sentinel deny-scripts-reconfig yes",
    ...monitorUser("sentinel", c),
    "",
  ].join("\n");
}

/** Paths the start script works with. */
export interface RedisStartPaths {
  /** The generated file, read-only (a mounted secret). */
  readonly template: string;
  /** Its writable copy, which Redis or Sentinel rewrites (CONFIG REWRITE, failovers). */
  readonly config: string;
  /** The server binary (`redis-server` or `redis-sentinel`). */
  readonly binary: string;
}

/**
 * Start a member from a writable copy of its config. The copy is refreshed only when the
 * template changed, and then keeps what Sentinel decided: a data member keeps its `replicaof`
 * line (or its lack: a promoted primary stays primary), a Sentinel keeps the primary it follows.
 * The member's name and address come from REDIS_MEMBER and REDIS_HOST.
 */
export function renderRedisStartScript(
  kind: "redis" | "sentinel",
  s: Pick<RedisRenderSpec, "masterName" | "primaryHost" | "port">,
  p: RedisStartPaths,
): string {
  // The script is sh, with the values inside double quotes, awk and sed patterns.
  const r = "renderRedisStartScript";
  g.oneOf(r, "kind", kind, ["redis", "sentinel"]);
  g.objectName(r, "masterName", s.masterName);
  g.hostName(r, "primaryHost", s.primaryHost);
  g.port(r, "port", s.port);
  g.filePath(r, "template", p.template);
  g.filePath(r, "config", p.config);
  g.executable(r, "binary", p.binary);
  const stamp = `${p.config}.template`;
  // The template is mounted read-only (0444) and the member is not root: the copy must be made
  // writable before anything is appended, and a copy a failed start left behind replaced.
  const copyTemplate = ['rm -f "$conf.new"', 'cp "$template" "$conf.new"', 'chmod 600 "$conf.new"'];
  const perMember =
    kind === "redis"
      ? [
          'if [ -f "$conf" ]; then',
          "  kept=$(grep -E '^replicaof ' \"$conf\" || true)",
          "  fresh=0",
          "else",
          "  fresh=1",
          "fi",
          ...copyTemplate,
          'echo "replica-announce-ip $REDIS_HOST" >> "$conf.new"',
          'if [ "$fresh" = 1 ]; then',
          "  # First start: member 0 is the primary, the others replicate from it.",
          '  if [ "${REDIS_MEMBER##*-}" != 0 ]; then',
          `    echo "replicaof ${s.primaryHost} ${s.port}" >> "$conf.new"`,
          "  fi",
          'elif [ -n "$kept" ]; then',
          '  echo "$kept" >> "$conf.new"',
          "fi",
        ]
      : [
          'master=""',
          'if [ -f "$conf" ]; then',
          `  master=$(awk '$1 == "sentinel" && $2 == "monitor" && $3 == "${s.masterName}" { print $4; exit }' "$conf")`,
          "fi",
          ...copyTemplate,
          'if [ -n "$master" ]; then',
          "  # Keep following the primary Sentinel last agreed on.",
          `  sed -i "s/^sentinel monitor ${s.masterName} [^ ]* /sentinel monitor ${s.masterName} $master /" "$conf.new"`,
          "fi",
          'echo "sentinel announce-ip $REDIS_HOST" >> "$conf.new"',
        ];
  return [
    "#!/bin/sh",
    "# Generated by ha-backend (components/cache/render/redis.ts). Do not edit.",
    "set -eu",
    `template=${p.template}`,
    `conf=${p.config}`,
    `if ! cmp -s "$template" ${stamp} 2>/dev/null; then`,
    ...perMember.map((l) => `  ${l}`),
    '  mv "$conf.new" "$conf"',
    `  cp "$template" ${stamp}`,
    `  chmod 600 ${stamp}`,
    "fi",
    `exec ${p.binary} "$conf"`,
    "",
  ].join("\n");
}

/**
 * Worst-case seconds from the primary's death to writes succeeding through Sentinel: the
 * down-after period, then up to 1 s each for the quorum to agree (ODOWN), for a Sentinel leader
 * to be elected and for the promotion to be seen (Sentinel polls INFO every second in a
 * failover), and 1 s for clients to ask Sentinel again.
 */
export function sentinelBudgetSeconds(t: SentinelTimings): number {
  return t.downAfterMs / 1000 + 4;
}

/** HAProxy in front of the members: one port that always reaches the current primary. */
export interface RedisRouterSpec extends Omit<TcpRouterBase, "roPort" | "rwPort"> {
  readonly port: number;
  readonly members: readonly { readonly name: string; readonly host: string; readonly port: number }[];
}

/**
 * For clients that cannot ask Sentinel: a server counts only while it answers `role:master`
 * after AUTH, so the port follows Sentinel's promotions within the router's rise × interval.
 * The config holds the password: it is a secret file.
 */
export function renderRedisRouter(s: RedisRouterSpec, password: string): string {
  const r = "renderRedisRouter";
  guardTcpRouterBase(r, s);
  g.port(r, "port", s.port);
  g.listOf(r, "members", s.members, 0, 100, (f, m) => {
    g.objectName(r, `${f}.name`, m.name);
    g.hostName(r, `${f}.host`, m.host);
    g.port(r, `${f}.port`, m.port);
  });
  // Sent as `AUTH\ <password>\r\n` in a tcp-check line: a space or backslash would change it.
  g.secretToken(r, "password", password);
  if (s.members.length === 0) throw new Error("router: at least one member is required");
  return [
    ...tcpPreamble({ ...s, rwPort: s.port, roPort: s.port }),
    "",
    "# The current primary, whichever member Sentinel promoted.",
    "listen redis",
    `    bind ${listenOn(s.listenAddress, s.port, "haproxy")}`,
    "    option tcp-check",
    "    tcp-check connect",
    `    tcp-check send AUTH\\ ${password}\\r\\n`,
    "    tcp-check expect string +OK",
    "    tcp-check send PING\\r\\n",
    "    tcp-check expect string +PONG",
    "    tcp-check send INFO\\ replication\\r\\n",
    "    tcp-check expect string role:master",
    "    tcp-check send QUIT\\r\\n",
    "    tcp-check expect string +OK",
    ...s.members.map((m) => `    server ${m.name} ${hostPort(m.host, m.port)} check`),
    "",
    ...statsSection(s.statsAddress, s.statsPort, "tcp"),
    "",
  ].join("\n");
}

/**
 * The health check of a Redis member or Sentinel (an exec command): PING on its own port as an
 * authenticated client, with the password taken from the `requirepass` line of the generated
 * config it starts from (`configPath`, a secret file), never from the container's environment or
 * a command line. redis-cli reads it from REDISCLI_AUTH, set for that one process only.
 */
export function renderRedisPing(port: number, configPath: string): string[] {
  const r = "renderRedisPing";
  g.port(r, "port", port);
  g.filePath(r, "configPath", configPath);
  return [
    "sh",
    "-c",
    `REDISCLI_AUTH="$(sed -n 's/^requirepass //p' ${configPath})" redis-cli -h 127.0.0.1 -p ${port} ping | grep -q PONG`,
  ];
}
