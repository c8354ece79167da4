import * as pulumi from "@pulumi/pulumi";
import { Memcached, type MemcachedArgs } from "../../components/cache/memcached";
import { RedisCache, type RedisCacheArgs } from "../../components/cache/redis-cache";
import { LockService, type LockServiceArgs } from "../../components/coordination/lock-service";
import { dataProtected, DEFAULT_CACHE_ENGINE, DEFAULT_REDIS_MODE } from "../config";
import { metricsArgs, rotationTokens, type TopologyContext, type TopologyOutputs } from "./web-tier";

/** What a backing service hands the app tier, and what the stack exports about it. */
export interface AppService {
  readonly env: Record<string, pulumi.Input<string>>;
  /** Reach the app as files (`ServerClusterArgs.credentials`), never as environment. */
  readonly credentials: Record<string, pulumi.Input<string>>;
  readonly outputs: TopologyOutputs;
}

const NONE: AppService = { env: {}, credentials: {}, outputs: {} };

/** The stack's cache engine: cache.engine, or the topology's. */
export function cacheEngine(config: TopologyContext["config"]): "redis" | "memcached" | "none" {
  return config.cache.engine ?? DEFAULT_CACHE_ENGINE[config.topology];
}

/** Whether the stack runs the lock service (locks.enabled; unset: on for the shop, off for the blog). */
export function locksEnabled(config: TopologyContext["config"]): boolean {
  return config.locks.enabled ?? config.topology === "ecommerce";
}

export function redisArgs(ctx: TopologyContext): RedisCacheArgs {
  const { cache, topology } = ctx.config;
  const r = cache.redis;
  return {
    platform: ctx.platform,
    mode: r?.mode ?? DEFAULT_REDIS_MODE[topology],
    replicas: r?.replicas,
    sentinels: r?.sentinels,
    quorum: r?.quorum,
    timings: r && {
      downAfterMs: r.downAfterMs,
      failoverTimeoutMs: r.failoverTimeoutMs,
      parallelSyncs: r.parallelSyncs,
    },
    maxmemory: r?.maxmemory,
    minReplicasToWrite: r?.minReplicasToWrite,
    storageGi: r?.storageGi,
    protect: dataProtected(ctx.config),
    credentialRotation: rotationTokens(ctx.config),
    resources: cache.resources,
    metrics: metricsArgs(ctx),
  };
}

export function memcachedArgs(ctx: TopologyContext): MemcachedArgs {
  const { cache } = ctx.config;
  return {
    platform: ctx.platform,
    members: cache.memcached?.members,
    memoryMb: cache.memcached?.memoryMb,
    maxConnections: cache.memcached?.maxConnections,
    resources: cache.resources,
    metrics: metricsArgs(ctx),
  };
}

export function lockArgs(ctx: TopologyContext): LockServiceArgs {
  const { locks, platform } = ctx.config;
  return {
    platform: ctx.platform,
    members: locks.members ?? (platform === "kubernetes" ? 3 : 1),
    ttlSeconds: locks.ttlSeconds,
    protect: dataProtected(ctx.config),
    metrics: metricsArgs(ctx),
  };
}

/** The stack's cache: Redis with Sentinel, a memcached pool, or none (cache.engine). */
export function cacheService(ctx: TopologyContext, name: string): AppService {
  const engine = cacheEngine(ctx.config);
  switch (engine) {
    case "redis": {
      const redis = new RedisCache(name, redisArgs(ctx), { parent: ctx.parent });
      ctx.collector.add(redis);
      ctx.collector.redis = redis.alertPlan;
      return {
        ...redis.appEnv(),
        outputs: {
          cacheEngine: pulumi.output("redis"),
          cacheSentinels: redis.sentinelEndpoints,
          cacheMasterName: redis.masterName,
          cacheEndpoint: redis.endpoint,
          cacheFailoverBudgetSeconds: redis.failoverBudgetSeconds,
        },
      };
    }
    case "memcached": {
      const pool = new Memcached(name, memcachedArgs(ctx), { parent: ctx.parent });
      ctx.collector.add(pool);
      ctx.collector.memcached = { component: name, members: memcachedArgs(ctx).members ?? 3 };
      return {
        env: pool.appEnv(),
        credentials: {},
        outputs: { cacheEngine: pulumi.output("memcached"), cacheServers: pool.servers },
      };
    }
    case "none":
      return NONE;
    default: {
      const never: never = engine;
      throw new Error(`unhandled cache engine ${String(never)}`);
    }
  }
}

/** The lock service, when locks.enabled (default: on for the shop, off for the blog). */
export function lockService(ctx: TopologyContext, name: string): AppService {
  if (!locksEnabled(ctx.config)) return NONE;
  const service = new LockService(name, lockArgs(ctx), { parent: ctx.parent });
  ctx.collector.add(service);
  ctx.collector.etcd.push(service.alertPlan);
  return { ...service.appEnv(), outputs: { lockEndpoints: service.endpoints } };
}
