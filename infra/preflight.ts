/**
 * The components' own checks, run on the stack config before any resource exists.
 *
 * The schema in config.ts says most rules in stack-config terms. The components keep their own
 * checks (for direct library users), and some rules live only there (a cache's memory against
 * its container, a balancer's timeouts). Rather than copy them, the program builds every
 * component's args exactly as the topology will (the same arg builders), runs each component's
 * pure `resolve*Args` on them against a stand-in platform, and reports what they refuse under the
 * stack key the field came from. So a rule added to a component is checked before `pulumi up`
 * creates anything, without a second copy to keep in step.
 */
import { MonitoringCollector } from "./topologies/monitoring";
import { resolveLoadBalancerArgs, type LoadBalancerBackend } from "../components/balancer/load-balancer";
import { resolveMemcachedArgs } from "../components/cache/memcached";
import { redisSecretNames, resolveRedisCacheArgs } from "../components/cache/redis-cache";
import { resolveServerClusterArgs } from "../components/cluster/server-cluster";
import { resolveLockServiceArgs } from "../components/coordination/lock-service";
import { mysqlSecretNames, resolveMysqlClusterArgs } from "../components/database/mysql-cluster";
import { postgresSecretNames, resolvePostgresClusterArgs } from "../components/database/postgres-cluster";
import { validateShards } from "../components/database/sharding";
import { InvalidArgumentError } from "../components/errors";
import { validateKubernetesPlatformArgs } from "../components/platform/kubernetes";
import type { Platform, PlatformStateStore } from "../components/platform/types";
import { NAMESPACE, REDACTED, type StackConfig } from "./config";
import { cacheEngine, lockArgs, locksEnabled, memcachedArgs, redisArgs } from "./topologies/services";
import { appArgs, balancerArgs, mysqlArgs, postgresArgs, type TopologyContext } from "./topologies/web-tier";
import { TOPOLOGY_PARTS } from "./topologies/parts";

/** Where a component's field comes from in the stack config: longest prefix first. */
type FieldKeys = readonly (readonly [field: string, key: string])[];

const RESOURCES = (section: string): FieldKeys => [["resources", `${section}.resources`]];

const DATABASE_FIELDS: FieldKeys = [
  ["timings", "database.postgresql.ttl"],
  ["synchronousModeStrict", "database.postgresql.synchronousModeStrict"],
  ["synchronousMode", "database.postgresql.synchronousMode"],
  ["maximumLagOnFailover", "database.postgresql.maximumLagOnFailover"],
  ["sharedBuffers", "database.postgresql.sharedBuffers"],
  ["maxConnections", "database.postgresql.maxConnections"],
  ["etcdMembers", "database.postgresql.etcdMembers"],
  ["image", "database.postgresql.image"],
  ["galera", "database.galera"],
  ["members", "database.members"],
  ["mode", "database.mode"],
  ["semiSync", "database.semiSync"],
  ["storageGi", "database.storageGi"],
  ["routerReplicas", "database.routerReplicas"],
  ["shards", "database.shards"],
  ...RESOURCES("database"),
];

/** Field → stack key, per component kind (the app's standby group: see {@link standbyKeys}). */
const KEYS: Record<string, FieldKeys> = {
  ServerCluster: [
    ["image", "app.image"],
    ["replicas", "app.replicas"],
    ["port", "app.port"],
    ["healthCheckPath", "app.healthCheckPath"],
    ["env", "app.env"],
    ...RESOURCES("app"),
  ],
  LoadBalancer: [
    ["httpPort", "docker.publicPort"],
    ["httpsPort", "docker.httpsPort"],
    ["healthCheckPath", "app.healthCheckPath"],
    ["backends[0].weights", "balancer.weights"],
    ["backends", "balancer.backups"],
    ["tls", "tlsCertificate"],
    ["health", "balancer.health"],
    ["rateLimit", "balancer.rateLimit"],
    ["replicas", "balancer.replicas"],
    ["algorithm", "balancer.algorithm"],
    ["stickyCookie", "balancer.stickyCookie"],
    ["retries", "balancer.retries"],
    ...RESOURCES("balancer"),
  ],
  MysqlCluster: DATABASE_FIELDS,
  PostgresCluster: DATABASE_FIELDS,
  ShardedMysql: DATABASE_FIELDS,
  ShardedPostgres: DATABASE_FIELDS,
  RedisCache: [
    ["timings.", "cache.redis."],
    ["resources", "cache.resources"],
    ["", "cache.redis."],
  ],
  Memcached: [
    ["resources", "cache.resources"],
    ["", "cache.memcached."],
  ],
  LockService: [["", "locks."]],
  KubernetesPlatform: [
    ["namespace", "kubernetes.namespace"],
    ["", "kubernetes."],
  ],
};

/**
 * The stack key a component's field came from. `["", "cache.redis."]` maps every field under a
 * section; `["health", "balancer.health"]` maps `health.timeoutMs` to `balancer.health.timeoutMs`.
 */
export function stackKeyOf(kind: string, field: string, standby = false): string | undefined {
  if (standby && field === "replicas") return "balancer.backups";
  for (const [prefix, key] of KEYS[kind] ?? []) {
    if (prefix === "" || prefix.endsWith(".")) {
      if (field.startsWith(prefix)) return `${key}${field.slice(prefix.length)}`;
    } else if (field === prefix) {
      return key;
    } else if (field.startsWith(`${prefix}.`)) {
      return `${key}${field.slice(prefix.length)}`;
    }
  }
  return undefined;
}

/**
 * A platform that answers what the components ask before they create anything (its kind, whether
 * it builds images, whether it has a state store, member addresses) and refuses to deploy.
 */
function standInPlatform(config: StackConfig): Platform {
  const kind = config.platform;
  const refuse = (): never => {
    throw new Error("preflight: the stand-in platform deploys nothing");
  };
  return {
    kind,
    canBuildImages: kind === "docker" || config.kubernetes?.imageRegistry !== undefined,
    sidecarsShareLoopback: kind === "kubernetes",
    memberNetworks: kind === "kubernetes" ? (config.kubernetes?.podNetworks ?? []) : undefined,
    memberHosts: (name, replicas) => Array.from({ length: replicas }, (_, i) => `${name}-${i}`),
    stateStore: (): PlatformStateStore | undefined =>
      kind === "kubernetes" ? ({} as PlatformStateStore) : undefined,
    deploy: refuse,
    runTask: refuse,
    monitors: refuse,
  };
}

/** One refusal of a component check, said in stack keys. */
function sentence(e: InvalidArgumentError, config: StackConfig, standby: boolean): string {
  const key = stackKeyOf(e.kind, e.field, standby);
  const top = key?.split(".")[0];
  const secret = top !== undefined && config.secretKeys.includes(top);
  const given = secret
    ? "a secret value (not shown)"
    : e.value === undefined
      ? "nothing"
      : JSON.stringify(e.value);
  const where = `(checked by ${e.kind} "${e.resourceName}", field ${e.field})`;
  return key === undefined
    ? `${NAMESPACE} config is refused by ${e.kind} "${e.resourceName}": ${e.field} must ${e.rule}, but ${given} was provided. ${e.fix}`
    : `${NAMESPACE}:${key} must ${e.rule}, but ${given} was provided. ${e.fix} ${where}`;
}

/** Every secret the stack generates, by the name `credentialRotation` uses. */
export function generatedSecretNames(config: StackConfig, parts = TOPOLOGY_PARTS[config.topology]): string[] {
  const clusters = parts.databases.flatMap((db) =>
    db.sharded ? Array.from({ length: config.database.shards }, (_, i) => `${db.name}-${i}`) : [db.name],
  );
  const names = [
    ...clusters.flatMap(config.database.engine === "postgresql" ? postgresSecretNames : mysqlSecretNames),
    ...(cacheEngine(config) === "redis" ? redisSecretNames(parts.cache) : []),
    `${parts.app}-session-key`,
    ...(config.monitoring.enabled ? ["monitoring-grafana-admin-password"] : []),
  ];
  // The exporters' users exist only with the exporters.
  return names.filter((n) => config.monitoring.exporters || !n.endsWith("-metrics-password")).sort();
}

/** A rotation entry for a secret the stack does not have would rotate nothing. */
function rotationProblems(
  config: StackConfig,
  parts: (typeof TOPOLOGY_PARTS)[keyof typeof TOPOLOGY_PARTS],
): string[] {
  const known = generatedSecretNames(config, parts);
  const secret = config.secretKeys.includes("credentialRotation");
  return Object.keys(config.credentialRotation ?? {})
    .filter((name) => !known.includes(name))
    .map(
      (name) =>
        `${NAMESPACE}:credentialRotation.${name} must name a secret this stack generates (${known.join(", ")}), but ${secret ? "a secret value (not shown)" : JSON.stringify(name)} was provided. ` +
        "Fix the name (pulumi stack --show-urns lists the random:index/randomPassword resources), or remove the entry.",
    );
}

/**
 * Every component check the stack's topology will meet, run on its config: the problems, one
 * sentence each, naming the stack key. Empty when `pulumi up` can create everything.
 */
export function preflightProblems(config: StackConfig, stack: string): string[] {
  const platform = standInPlatform(config);
  const ctx: TopologyContext = {
    config,
    platform,
    collector: new MonitoringCollector(),
    publicPorts:
      config.platform === "docker"
        ? { http: config.docker?.publicPort ?? 8080, https: config.docker?.httpsPort ?? 8443 }
        : { http: 80, https: 443 },
    tlsHostNames: ["localhost"],
  };
  const parts = TOPOLOGY_PARTS[config.topology];
  const problems: string[] = [];
  const check = (run: () => void, standby = false) => {
    try {
      run();
    } catch (e) {
      if (!(e instanceof InvalidArgumentError)) throw e;
      problems.push(sentence(e, config, standby));
    }
  };
  if (config.platform === "kubernetes") {
    const k = config.kubernetes;
    check(() =>
      validateKubernetesPlatformArgs("kubernetes", {
        namespace: k?.namespace ?? stack,
        imageRegistry: k?.imageRegistry,
        podNetworks: k?.podNetworks,
        apiServerCidrs: k?.apiServerCidrs,
        serviceType: k?.serviceType,
        serviceTimeoutMinutes: k?.serviceTimeoutMinutes,
        allowSystemNamespace: k?.allowSystemNamespace,
      }),
    );
  }
  for (const db of parts.databases) {
    if (config.database.engine === "postgresql") {
      const args = postgresArgs(ctx, db.database, db.user);
      check(() => resolvePostgresClusterArgs(db.sharded ? `${db.name}-0` : db.name, args));
    } else {
      const args = mysqlArgs(ctx, db.database, db.user);
      check(() => resolveMysqlClusterArgs(db.sharded ? `${db.name}-0` : db.name, args));
    }
    if (db.sharded) check(() => validateShards(db.name, config.database.shards));
  }
  const cache = cacheEngine(config);
  if (cache === "redis") check(() => resolveRedisCacheArgs(parts.cache, redisArgs(ctx)));
  if (cache === "memcached") check(() => resolveMemcachedArgs(parts.cache, memcachedArgs(ctx)));
  if (locksEnabled(config)) check(() => resolveLockServiceArgs(parts.locks, lockArgs(ctx)));
  const app = appArgs(ctx, {}, {});
  check(() => resolveServerClusterArgs(parts.app, { ...app, replicas: config.app.replicas }));
  const backends: LoadBalancerBackend[] = [{ group: undefined as never, weights: config.balancer.weights }];
  if (config.balancer.backups > 0) {
    check(
      () => resolveServerClusterArgs(`${parts.app}-standby`, { ...app, replicas: config.balancer.backups }),
      true,
    );
    backends.push({ group: undefined as never, backup: true });
  }
  const tls = config.balancer.tls === "off" ? undefined : { certificate: REDACTED, privateKey: REDACTED };
  check(() => resolveLoadBalancerArgs(`${parts.app}-lb`, balancerArgs(ctx, backends, tls)));
  problems.push(...rotationProblems(config, parts));
  return [...new Set(problems)];
}
