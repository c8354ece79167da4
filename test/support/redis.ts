/**
 * Redis members and Sentinels for live tests, from the generated files: one store-mode set (a
 * primary, its replicas and their Sentinels) started by the generated start script, each in a
 * private mount namespace with its own /etc/hosts (the members by name, as in a container), and
 * fail-fast ioredis clients.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import {
  renderRedisConf,
  renderRedisStartScript,
  renderSentinelConf,
  type RedisCredentials,
  type RedisRenderSpec,
  type SentinelTimings,
} from "../../components/cache/render/redis";
import { type ProcessGroup, withHosts } from "./daemons";

/** A member or Sentinel: the name the others know it by, and its loopback address. */
export interface RedisMember {
  readonly name: string;
  readonly ip: string;
}

/** What every member and Sentinel of one store-mode set shares (master name `cache`). */
export interface RedisStoreSet {
  /** The member the set starts with as its primary. */
  readonly primaryHost: string;
  readonly timings: SentinelTimings;
  readonly creds: RedisCredentials;
  /** Name to address, for each daemon's /etc/hosts. */
  readonly hosts: Readonly<Record<string, string>>;
}

/** The render spec of one member or Sentinel of the set, on its own address and data directory. */
function storeSpec(set: RedisStoreSet, m: RedisMember, dataDir: string): RedisRenderSpec {
  return {
    masterName: "cache",
    primaryHost: set.primaryHost,
    port: 6379,
    sentinelPort: 26379,
    quorum: 2,
    timings: set.timings,
    mode: "store",
    maxmemory: "64mb",
    minReplicasToWrite: 1,
    minReplicasMaxLagSeconds: 10,
    dataDir,
    bind: m.ip,
    sentinelBind: m.ip,
  };
}

/**
 * Starts `m` in `procs` by the generated start script, with `home` as its data directory. The
 * files are written at the first start only: a restart reuses them (and the config Redis or
 * Sentinel rewrote), as a container restart does.
 */
export function startRedisMember(
  procs: ProcessGroup,
  set: RedisStoreSet,
  kind: "redis" | "sentinel",
  m: RedisMember,
  home: string,
): ChildProcess {
  const script = join(home, "start.sh");
  if (!existsSync(script)) {
    mkdirSync(home, { recursive: true });
    const s = storeSpec(set, m, home);
    const template = join(home, "template.conf");
    writeFileSync(
      template,
      kind === "redis" ? renderRedisConf(s, set.creds) : renderSentinelConf(s, set.creds),
    );
    const paths = {
      template,
      config: join(home, kind === "redis" ? "redis.conf" : "sentinel.conf"),
      binary: kind === "redis" ? "redis-server" : "redis-sentinel",
    };
    writeFileSync(script, renderRedisStartScript(kind, s, paths));
  }
  const env = { REDIS_MEMBER: m.name, REDIS_HOST: m.name };
  return procs.start("unshare", withHosts(set.hosts, "sh", [script], env));
}

/** Where a fail-fast client connects, as whom, and how long it waits. */
export interface RedisClientOptions {
  readonly host: string;
  readonly port: number;
  readonly password: string;
  /** An ACL user; the default user when absent. */
  readonly username?: string;
  readonly connectTimeoutMs: number;
  /** A bound on each command; none when absent. */
  readonly commandTimeoutMs?: number;
}

/**
 * A client that fails fast: connected by the caller (`connect()`), one connect and no retries;
 * errors surface on the command that fails instead of as events.
 */
export function failFastRedis(o: RedisClientOptions): Redis {
  const c = new Redis({
    host: o.host,
    port: o.port,
    ...(o.username !== undefined ? { username: o.username } : {}),
    password: o.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: o.connectTimeoutMs,
    ...(o.commandTimeoutMs !== undefined ? { commandTimeout: o.commandTimeoutMs } : {}),
    retryStrategy: () => null,
  });
  c.on("error", () => undefined);
  return c;
}

/** Runs `f` on a fresh fail-fast connection, closed afterwards (members restart and die under the tests). */
export async function withRedis<T>(o: RedisClientOptions, f: (c: Redis) => Promise<T>): Promise<T> {
  const c = failFastRedis(o);
  try {
    await c.connect();
    return await f(c);
  } finally {
    c.disconnect();
  }
}
