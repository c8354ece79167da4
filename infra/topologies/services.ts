import * as pulumi from "@pulumi/pulumi";
import { Memcached } from "../../components/cache/memcached";
import { RedisCache } from "../../components/cache/redis-cache";
import { LockService } from "../../components/coordination/lock-service";
import { dataProtected, DEFAULT_CACHE_ENGINE, DEFAULT_REDIS_MODE } from "../config";
import type { TopologyContext, TopologyOutputs } from "./web-tier";

/** What a backing service hands the app tier, and what the stack exports about it. */
export interface AppService {
  readonly env: Record<string, pulumi.Input<string>>;
  readonly secretEnv: Record<string, pulumi.Input<string>>;
  readonly outputs: TopologyOutputs;
}

const NONE: AppService = { env: {}, secretEnv: {}, outputs: {} };

/** The stack's cache: Redis with Sentinel, a memcached pool, or none (cache.engine). */
export function cacheService(ctx: TopologyContext, name: string): AppService {
  const { cache, topology } = ctx.config;
  const engine = cache.engine ?? DEFAULT_CACHE_ENGINE[topology];
  switch (engine) {
    case "redis": {
      const r = cache.redis;
      const redis = new RedisCache(name, {
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
        credentialRotation: ctx.config.credentialRotation,
        resources: cache.resources,
      });
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
      const m = cache.memcached;
      const pool = new Memcached(name, {
        platform: ctx.platform,
        members: m?.members,
        memoryMb: m?.memoryMb,
        maxConnections: m?.maxConnections,
        resources: cache.resources,
      });
      return {
        env: pool.appEnv(),
        secretEnv: {},
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
  const { locks, topology, platform } = ctx.config;
  if (!(locks.enabled ?? topology === "ecommerce")) return NONE;
  const service = new LockService(name, {
    platform: ctx.platform,
    members: locks.members ?? (platform === "kubernetes" ? 3 : 1),
    ttlSeconds: locks.ttlSeconds,
    protect: dataProtected(ctx.config),
  });
  return { ...service.appEnv(), outputs: { lockEndpoints: service.endpoints } };
}
