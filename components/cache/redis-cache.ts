import {
  EXPORTER_PORT_NAMES,
  exportersOn,
  redisExporterSidecar,
  scrapeJob,
  type MetricsArgs,
} from "../monitoring/exporters";
import type { RedisPlan, ScrapeJob } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import { deployRouter, generatedSecret } from "../shared";
import { checkResources, invalidArg } from "../errors";
import type { MemberAddress, Platform, ResourceSpec } from "../platform/types";
import {
  REDIS_MONITOR_USER,
  renderRedisConf,
  renderRedisPing,
  renderRedisRouter,
  renderRedisStartScript,
  renderSentinelConf,
  SENTINEL_FAST_TIMINGS,
  SENTINEL_MIN_DOWN_AFTER_MS,
  sentinelBudgetSeconds,
  type RedisMode,
  type RedisRenderSpec,
  type SentinelTimings,
} from "./render/redis";
import { componentToken, physicalName, dataProtection, type DataArgs, type NamingArgs } from "../resource";

/** The official image, pinned: Redis 7.0, what the live tests run (Debian 12's redis-server). */
/** A Redis size (`256mb`, `2gb`; Redis's mb and gb are binary) in MiB. */
function redisSizeMb(size: string): number {
  const n = Number.parseInt(size, 10);
  return size.endsWith("gb") ? n * 1024 : n;
}

/** Memory a Redis member needs for `maxmemory` of data: the data, a fork's copy-on-write, the process. */
export function redisFootprintMb(maxmemory: string): number {
  return Math.ceil(redisSizeMb(maxmemory) * 1.5) + 64;
}

export const REDIS_IMAGE = "redis:7.0.15-alpine";
/** The image's unprivileged `redis` user. */
const REDIS_UID = 999;
const PORTS = { redis: 6379, sentinel: 26379 } as const;
const ROUTER_PORTS = { redis: 6379, stats: 8404 } as const;
/** The router's one section (renderRedisRouter's `listen redis`), as HAProxy's metrics label it. */
export const REDIS_ROUTER_WRITE_PROXY = "redis";
const ROUTER_CHECK = { intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 } as const;
const PATHS = {
  data: "/data",
  redisTemplate: "/etc/ha-backend/redis/redis.conf",
  sentinelTemplate: "/etc/ha-backend/redis/sentinel.conf",
  redisStart: "/etc/ha-backend/redis/start-redis.sh",
  sentinelStart: "/etc/ha-backend/redis/start-sentinel.sh",
} as const;

export interface RedisCacheArgs extends NamingArgs, DataArgs {
  readonly platform: Platform;
  /**
   * Metrics: redis_exporter beside every member and every Sentinel, logged in as an ACL user that
   * reads INFO (and Sentinel's view) only. @default on
   */
  readonly metrics?: MetricsArgs;
  /** `cache` (no persistence, LRU eviction) or `store` (AOF, writes need a replica). @default "cache" */
  readonly mode?: RedisMode;
  /** Replicas of the primary. @default 2 */
  readonly replicas?: number;
  /** Sentinels: 3 or 5 (1 only for development: it is never highly available). @default 3 */
  readonly sentinels?: number;
  /** Sentinels that must agree the primary is down. @default a majority */
  readonly quorum?: number;
  /** @default {@link SENTINEL_FAST_TIMINGS} (down-after 2000 ms, failover-timeout 10 s, parallel-syncs 1) */
  readonly timings?: Partial<SentinelTimings>;
  /** Memory limit per member, Redis units (`256mb`, `1gb`). @default "256mb" */
  readonly maxmemory?: string;
  /** Store mode: connected replicas a write needs. @default 1 */
  readonly minReplicasToWrite?: number;
  /** Store mode: seconds after which a silent replica stops counting. @default 10 */
  readonly minReplicasMaxLagSeconds?: number;
  /** Volume per member (the config copy; in store mode the AOF). @default 1 */
  readonly storageGi?: number;
  readonly resources?: ResourceSpec;
  /** Tiers that may connect (to the members, the Sentinels and the router). @default ["app"] */
  readonly allowFrom?: string[];
  /** Router replicas (the plain endpoint). @default 2 */
  readonly routerReplicas?: number;
}

export interface ResolvedRedisCacheArgs {
  /** The members' resources to deploy with, Outputs carrying their check (see `checkResources`). */
  readonly resources?: ResourceSpec;
  readonly mode: RedisMode;
  readonly replicas: number;
  readonly sentinels: number;
  readonly quorum: number;
  readonly timings: SentinelTimings;
  readonly maxmemory: string;
  readonly minReplicasToWrite: number;
  readonly minReplicasMaxLagSeconds: number;
  readonly storageGi: number;
  readonly routerReplicas: number;
}

/** The generated secrets of cache `name`, as `credentialRotation` names them. */
export function redisSecretNames(name: string): string[] {
  return ["password", "sentinel-password", "config-command", "metrics-password"].map(
    (role) => `${name}-${role}`,
  );
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("RedisCache", name, field, rule, value, fix);
}

const whole = (n: unknown, min: number, max: number) =>
  Number.isInteger(n) && (n as number) >= min && (n as number) <= max;

/** Defaults and every rule, before any child exists (pure). */
export function resolveRedisCacheArgs(name: string, args: RedisCacheArgs): ResolvedRedisCacheArgs {
  const mode = args.mode ?? "cache";
  if (mode !== "cache" && mode !== "store") fail(name, "mode", "be cache or store", mode, "Pick one.");
  const replicas = args.replicas ?? 2;
  if (!whole(replicas, 0, 8)) fail(name, "replicas", "be a whole number from 0 to 8", replicas, "Use 2.");
  const sentinels = args.sentinels ?? 3;
  if (![1, 3, 5, 7].includes(sentinels)) {
    fail(
      name,
      "sentinels",
      "be 1, 3, 5 or 7 (an even count adds no vote a majority needs)",
      sentinels,
      "Use 3 (survives the loss of one); 1 only for development.",
    );
  }
  const quorum = args.quorum ?? Math.floor(sentinels / 2) + 1;
  if (!whole(quorum, 1, sentinels)) {
    fail(
      name,
      "quorum",
      `be from 1 to the number of sentinels (${sentinels})`,
      quorum,
      "Use a majority, e.g. 2 of 3.",
    );
  }
  const timings = { ...SENTINEL_FAST_TIMINGS, ...args.timings };
  if (!whole(timings.downAfterMs, SENTINEL_MIN_DOWN_AFTER_MS, 600_000)) {
    fail(
      name,
      "timings.downAfterMs",
      `be whole milliseconds from ${SENTINEL_MIN_DOWN_AFTER_MS} to 600000 (Sentinel pings once a second; less can fail over a primary it has just promoted)`,
      timings.downAfterMs,
      `Use ${SENTINEL_MIN_DOWN_AFTER_MS}.`,
    );
  }
  if (!whole(timings.failoverTimeoutMs, timings.downAfterMs + 1, 3_600_000)) {
    fail(
      name,
      "timings.failoverTimeoutMs",
      `exceed downAfterMs (${timings.downAfterMs})`,
      timings.failoverTimeoutMs,
      "Use e.g. 10000.",
    );
  }
  if (!whole(timings.parallelSyncs, 1, 8)) {
    fail(name, "timings.parallelSyncs", "be a whole number from 1 to 8", timings.parallelSyncs, "Use 1.");
  }
  const minReplicasToWrite = mode === "store" ? (args.minReplicasToWrite ?? 1) : 0;
  if (mode === "store" && replicas < 1) {
    fail(
      name,
      "replicas",
      "be at least 1 in store mode (a write must reach a replica before the primary can be lost)",
      replicas,
      "Set replicas: 2, or mode: cache.",
    );
  }
  if (!whole(minReplicasToWrite, 0, replicas)) {
    fail(
      name,
      "minReplicasToWrite",
      `be from 0 to the number of replicas (${replicas})`,
      minReplicasToWrite,
      "Use 1.",
    );
  }
  const minReplicasMaxLagSeconds = args.minReplicasMaxLagSeconds ?? 10;
  if (!whole(minReplicasMaxLagSeconds, 1, 3600)) {
    fail(
      name,
      "minReplicasMaxLagSeconds",
      "be whole seconds from 1 to 3600",
      minReplicasMaxLagSeconds,
      "Use 10.",
    );
  }
  const maxmemory = args.maxmemory ?? "256mb";
  if (!/^[1-9][0-9]{0,6}(mb|gb)$/.test(maxmemory)) {
    fail(name, "maxmemory", "be a Redis size such as 256mb or 2gb", maxmemory, "Fix the size.");
  }
  const storageGi = args.storageGi ?? 1;
  if (!whole(storageGi, 1, 16_384))
    fail(name, "storageGi", "be a whole number of at least 1", storageGi, "Use 1.");
  const routerReplicas = args.routerReplicas ?? 2;
  if (!whole(routerReplicas, 1, 10))
    fail(name, "routerReplicas", "be from 1 to 10", routerReplicas, "Use 2.");
  const resources = checkResources("RedisCache", name, args.resources, {
    // Redis's guidance: leave room for the copy-on-write of a fork (a rewrite, a replica's full
    // sync), i.e. maxmemory at most two thirds of the memory.
    minMemoryMb: Math.ceil(redisSizeMb(maxmemory) * 1.5),
    needs: `maxmemory ${maxmemory} at most two thirds of it, for the copy a rewrite or a full sync makes`,
  });
  return {
    mode,
    replicas,
    sentinels,
    quorum,
    timings,
    maxmemory,
    minReplicasToWrite,
    minReplicasMaxLagSeconds,
    storageGi,
    routerReplicas,
    resources,
  };
}

/**
 * Redis with automatic failover: a primary and replicas, Sentinels that promote a replica
 * when the primary dies, and an HAProxy router whose one port follows the primary for clients
 * that cannot ask Sentinel. Passwords come from @pulumi/random and stay secret.
 */
export class RedisCache extends pulumi.ComponentResource {
  /** `host:26379` of every Sentinel. */
  public readonly sentinelEndpoints: pulumi.Output<string[]>;
  /** The name Sentinel knows the primary by. */
  public readonly masterName: pulumi.Output<string>;
  /** `host:6379` that always reaches the primary (the router). */
  public readonly endpoint: pulumi.Output<string>;
  /** `redis://:password@host:6379` through the router (secret). */
  public readonly url: pulumi.Output<string>;
  /** Clients' password (secret). */
  public readonly password: pulumi.Output<string>;
  /** Sentinel's password (secret). */
  public readonly sentinelPassword: pulumi.Output<string>;
  public readonly members: pulumi.Output<MemberAddress[]>;
  /** Worst-case seconds from the primary's death to writes through Sentinel: down-after + 4. */
  public readonly failoverBudgetSeconds: pulumi.Output<number>;
  /** The scrape jobs of its exporters and its router (none with `metrics.exporters: false`). */
  public readonly metricsJobs: readonly ScrapeJob[];
  /** What its alert rules follow (plain data). */
  public readonly alertPlan: RedisPlan;

  constructor(name: string, args: RedisCacheArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("cache", "RedisCache", opts);
    super(token, name, {}, options);
    name = physicalName("RedisCache", name, args);
    const r = resolveRedisCacheArgs(name, args);
    const protect = dataProtection(args, opts);
    // Passwords live in the config files, not in the data: replaceable, never protected.
    const secret = (role: string, length = 32) =>
      generatedSecret(this, `${name}-${role}`, {
        length,
        rotation: args.credentialRotation?.[`${name}-${role}`],
      });
    const password = secret("password");
    const sentinelPassword = secret("sentinel-password");
    // A name nobody can guess: CONFIG renamed to it is Sentinel's alone.
    const configCommand = secret("config-command", 24).apply((s) => `CONFIG_${s}`);
    const metricsPassword = exportersOn(args) ? secret("metrics-password") : undefined;

    const workload = `${name}-redis`;
    const sentinelWorkload = `${name}-sentinel`;
    const routerTier = `${name}-router`;
    const clients = args.allowFrom ?? ["app"];
    const members = r.replicas + 1;
    const hosts = args.platform.memberHosts(workload, members);
    const spec: RedisRenderSpec = {
      masterName: name,
      primaryHost: hosts[0],
      port: PORTS.redis,
      sentinelPort: PORTS.sentinel,
      quorum: r.quorum,
      timings: r.timings,
      mode: r.mode,
      maxmemory: r.maxmemory,
      minReplicasToWrite: r.minReplicasToWrite,
      minReplicasMaxLagSeconds: r.minReplicasMaxLagSeconds,
      dataDir: PATHS.data,
    };
    const creds = pulumi
      .all([password, sentinelPassword, configCommand, metricsPassword ?? ""])
      .apply(([p, sp, cc, mp]) => ({
        password: p,
        sentinelPassword: sp,
        configCommand: cc,
        ...(metricsPassword ? { monitorPassword: mp } : {}),
      }));
    const memberEnv = { REDIS_MEMBER: "{name}", REDIS_HOST: "{host}" };
    const volume = { mountPath: PATHS.data, sizeGi: r.storageGi, protect };
    // The password comes from the member's own secret config file, never from its environment.
    const ping = (port: number, config: string) => ({
      exec: renderRedisPing(port, config),
      intervalSeconds: 5,
      timeoutSeconds: 3,
      failureThreshold: 3,
      startPeriodSeconds: 20,
    });

    const redis = args.platform.deploy(
      workload,
      {
        kind: "stateful",
        replicas: members,
        image: REDIS_IMAGE,
        command: ["sh", PATHS.redisStart],
        memberEnv,
        files: {
          [PATHS.redisStart]: renderRedisStartScript("redis", spec, {
            template: PATHS.redisTemplate,
            config: `${PATHS.data}/redis.conf`,
            binary: "redis-server",
          }),
        },
        secretFiles: { [PATHS.redisTemplate]: pulumi.secret(creds.apply((c) => renderRedisConf(spec, c))) },
        ports: { redis: PORTS.redis },
        healthCheck: ping(PORTS.redis, PATHS.redisTemplate),
        volume,
        resources: r.resources,
        tier: workload,
        // Clients that ask Sentinel connect to the primary it names, so they reach members too.
        allowFrom: [sentinelWorkload, routerTier, ...clients],
        runAsUser: REDIS_UID,
        fileOwner: REDIS_UID,
        // Config copies and data live on the volume.
        writablePaths: [],
        // maxmemory plus room for the copy-on-write of a rewrite or a replica's full sync.
        defaultResources: { cpu: "250m", memory: `${redisFootprintMb(r.maxmemory)}Mi` },
        ...(metricsPassword
          ? {
              sidecars: [redisExporterSidecar("redis", REDIS_MONITOR_USER, metricsPassword, PORTS.redis)],
              metricsPorts: [{ port: EXPORTER_PORT_NAMES.redis }],
            }
          : {}),
      },
      { parent: this },
    );

    const sentinel = args.platform.deploy(
      sentinelWorkload,
      {
        kind: "stateful",
        replicas: r.sentinels,
        image: REDIS_IMAGE,
        command: ["sh", PATHS.sentinelStart],
        memberEnv,
        files: {
          [PATHS.sentinelStart]: renderRedisStartScript("sentinel", spec, {
            template: PATHS.sentinelTemplate,
            config: `${PATHS.data}/sentinel.conf`,
            binary: "redis-sentinel",
          }),
        },
        secretFiles: {
          [PATHS.sentinelTemplate]: pulumi.secret(creds.apply((c) => renderSentinelConf(spec, c))),
        },
        ports: { sentinel: PORTS.sentinel },
        healthCheck: ping(PORTS.sentinel, PATHS.sentinelTemplate),
        // Sentinel rewrites its config (known replicas, epochs, the current primary): keep it.
        volume: { ...volume, sizeGi: 1 },
        // A Sentinel holds no data: a small fixed size wherever the members are sized.
        resources: args.resources ? { cpu: "100m", memory: "64Mi" } : undefined,
        tier: sentinelWorkload,
        allowFrom: clients,
        runAsUser: REDIS_UID,
        fileOwner: REDIS_UID,
        writablePaths: [],
        defaultResources: { cpu: "100m", memory: "64Mi" },
        ...(metricsPassword
          ? {
              sidecars: [
                redisExporterSidecar("sentinel", REDIS_MONITOR_USER, metricsPassword, PORTS.sentinel),
              ],
              metricsPorts: [{ port: EXPORTER_PORT_NAMES.sentinel }],
            }
          : {}),
      },
      { parent: this },
    );
    this.alertPlan = {
      component: name,
      mode: r.mode,
      replicas: r.replicas,
      sentinels: r.sentinels,
      failoverBudgetSeconds: sentinelBudgetSeconds(r.timings),
      // renderRedisRouter's `listen redis`: the member that answers role:master.
      router: { writeProxy: REDIS_ROUTER_WRITE_PROXY },
    };

    const routerConfig = password.apply((p) =>
      renderRedisRouter(
        {
          port: ROUTER_PORTS.redis,
          statsPort: ROUTER_PORTS.stats,
          members: redis.members.map((m) => ({ name: m.name, host: m.host, port: PORTS.redis })),
          check: ROUTER_CHECK,
          dynamicDns: { resolvers: [] },
          clientTimeoutMs: 3_600_000,
        },
        p,
      ),
    );
    // The checks log in: the config holds the password.
    const router = deployRouter(
      args.platform,
      routerTier,
      {
        replicas: r.routerReplicas,
        ports: ROUTER_PORTS,
        config: routerConfig,
        configIsSecret: true,
        allowFrom: clients,
        metrics: metricsPassword !== undefined,
      },
      this,
    );
    this.metricsJobs = metricsPassword
      ? [
          scrapeJob(name, "redis", redis, EXPORTER_PORT_NAMES.redis, members),
          scrapeJob(name, "sentinel", sentinel, EXPORTER_PORT_NAMES.sentinel, r.sentinels),
          scrapeJob(name, "router", router, "stats", r.routerReplicas),
        ]
      : [];

    this.sentinelEndpoints = pulumi.output(sentinel.members.map((m) => `${m.host}:${PORTS.sentinel}`));
    this.masterName = pulumi.output(name);
    this.endpoint = pulumi.output(`${router.serviceHost}:${ROUTER_PORTS.redis}`);
    this.url = pulumi.secret(
      pulumi.interpolate`redis://:${password}@${router.serviceHost}:${ROUTER_PORTS.redis}`,
    );
    this.password = password;
    this.sentinelPassword = sentinelPassword;
    this.members = pulumi.output([...redis.members]);
    this.failoverBudgetSeconds = pulumi.output(sentinelBudgetSeconds(r.timings));
    this.registerOutputs({
      sentinelEndpoints: this.sentinelEndpoints,
      masterName: this.masterName,
      endpoint: this.endpoint,
      url: this.url,
      members: this.members,
      failoverBudgetSeconds: this.failoverBudgetSeconds,
    });
  }

  /**
   * What the app needs: where Sentinel is and what to ask it (plain environment), and the
   * credentials, for a `ServerCluster`'s `credentials` (files `/run/secrets/<NAME>`, with
   * `<NAME>_FILE` in the environment).
   */
  appEnv(prefix = "REDIS_"): {
    env: Record<string, pulumi.Input<string>>;
    credentials: Record<string, pulumi.Input<string>>;
  } {
    return {
      env: {
        [`${prefix}SENTINELS`]: this.sentinelEndpoints.apply((e) => e.join(",")),
        [`${prefix}MASTER_NAME`]: this.masterName,
      },
      credentials: {
        [`${prefix}URL`]: this.url,
        [`${prefix}PASSWORD`]: this.password,
        [`${prefix}SENTINEL_PASSWORD`]: this.sentinelPassword,
      },
    };
  }
}
