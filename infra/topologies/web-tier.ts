import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { generatedSecret } from "../../components/shared";
import {
  LoadBalancer,
  type LoadBalancerArgs,
  type LoadBalancerBackend,
} from "../../components/balancer/load-balancer";
import { ServerCluster, type ServerClusterArgs } from "../../components/cluster/server-cluster";
import { MysqlCluster, type MysqlClusterArgs } from "../../components/database/mysql-cluster";
import { PostgresCluster, type PostgresClusterArgs } from "../../components/database/postgres-cluster";
import { ShardedMysql, ShardedPostgres, type ShardMap } from "../../components/database/sharding";
import type { Platform } from "../../components/platform/types";
import type { MonitoringCollector } from "./monitoring";
import {
  dataProtected,
  databaseMembers,
  databaseMode,
  postgresqlSettings,
  type StackConfig,
} from "../config";

/** What every topology builder receives. */
export interface TopologyContext {
  readonly config: StackConfig;
  readonly platform: Platform;
  /** Ports outside clients use: Docker host ports, Kubernetes Service ports. */
  readonly publicPorts: { readonly http: number; readonly https: number };
  /** Host names the self-signed certificate covers (dev). */
  readonly tlsHostNames: string[];
  /** The component everything is created under (the Backend component); unset: the stack. */
  readonly parent?: pulumi.Resource;
  /** balancer.tls: provided, from args rather than the stack's config (the Backend component). */
  readonly providedTls?: {
    readonly certificate: pulumi.Input<string>;
    readonly privateKey: pulumi.Input<string>;
  };
  /** Collects the components' scrape jobs and alert settings for the stack's monitoring. */
  readonly collector: MonitoringCollector;
}

/** The components' metrics args: exporters as monitoring.exporters says. */
export function metricsArgs(ctx: Pick<TopologyContext, "config">): { exporters: boolean } {
  return { exporters: ctx.config.monitoring.exporters };
}

/** Stack outputs a topology exports (names are nouns; secrets stay secret). */
export type TopologyOutputs = Record<string, pulumi.Output<unknown>>;

/** What an app needs from a database cluster, whichever the engine. */
export interface DatabaseEndpoints {
  readonly rwEndpoint: pulumi.Output<string>;
  readonly roEndpoint: pulumi.Output<string>;
  readonly connectionUrl: pulumi.Output<string>;
  readonly readConnectionUrl: pulumi.Output<string>;
}

/** A topology's databases: one cluster, or clusters behind a shard map. */
export interface Databases {
  readonly clusters: DatabaseEndpoints[];
  readonly shardMap?: pulumi.Output<ShardMap>;
  /** Worst-case seconds from the writer's death to writes resuming; unset: manual failover. */
  readonly failoverBudgetSeconds?: pulumi.Output<number>;
}

/** The settings every cluster of the stack shares, for the MySQL family. */
export function mysqlArgs(ctx: TopologyContext, database: string, user: string): MysqlClusterArgs {
  const d = ctx.config.database;
  if (d.engine === "postgresql") throw new Error("mysqlArgs: the engine is postgresql");
  return {
    platform: ctx.platform,
    engine: d.engine,
    mode: databaseMode(d),
    members: d.members,
    semiSync: d.semiSync,
    galera: d.galera,
    database,
    user,
    storageGi: d.storageGi,
    // Production data survives `pulumi destroy` and replacements unless the stack says otherwise.
    protect: dataProtected(ctx.config),
    credentialRotation: rotationTokens(ctx.config),
    resources: d.resources,
    routerReplicas: d.routerReplicas,
    metrics: metricsArgs(ctx),
  };
}

/** Reports a MySQL-family cluster's jobs and alert settings to the stack's monitoring. */
function collectMysql(ctx: TopologyContext, db: MysqlCluster): void {
  ctx.collector.add(db);
  ctx.collector.mysql.push(db.alertPlan);
}

/** Reports a PostgreSQL cluster's jobs and alert settings to the stack's monitoring. */
function collectPostgres(ctx: TopologyContext, db: PostgresCluster): void {
  ctx.collector.add(db);
  ctx.collector.postgres.push(db.alertPlan.postgres);
  if (db.alertPlan.etcd !== undefined) ctx.collector.etcd.push(db.alertPlan.etcd);
}

/** The settings every cluster of the stack shares, for PostgreSQL (Patroni). */
export function postgresArgs(ctx: TopologyContext, database: string, user: string): PostgresClusterArgs {
  const d = ctx.config.database;
  const pg = postgresqlSettings(d);
  return {
    platform: ctx.platform,
    members: databaseMembers(ctx.config),
    timings: { ttl: pg.ttl, loopWait: pg.loopWait, retryTimeout: pg.retryTimeout },
    maximumLagOnFailover: pg.maximumLagOnFailover,
    synchronousMode: pg.synchronousMode,
    synchronousModeStrict: pg.synchronousModeStrict,
    image: pg.image,
    // One host is one failure domain: a single etcd member is enough on Docker.
    etcdMembers: pg.etcdMembers ?? 1,
    database,
    user,
    storageGi: d.storageGi,
    protect: dataProtected(ctx.config),
    credentialRotation: rotationTokens(ctx.config),
    resources: d.resources,
    sharedBuffers: pg.sharedBuffers,
    maxConnections: pg.maxConnections,
    routerReplicas: d.routerReplicas,
    metrics: metricsArgs(ctx),
  };
}

/**
 * The stack's database for `name`: a cluster of the configured engine, or with `shards` > 1
 * (or when `sharded`), that many clusters and the shard map.
 */
export function databases(
  ctx: TopologyContext,
  name: string,
  database: string,
  user: string,
  shards?: number,
): Databases {
  if (ctx.config.database.engine === "postgresql") {
    const args = postgresArgs(ctx, database, user);
    if (shards === undefined) {
      const db = new PostgresCluster(name, args, { parent: ctx.parent });
      collectPostgres(ctx, db);
      return { clusters: [db], failoverBudgetSeconds: db.failoverBudgetSeconds };
    }
    const sharded = new ShardedPostgres(name, { ...args, shards }, { parent: ctx.parent });
    for (const shard of sharded.shards) collectPostgres(ctx, shard);
    return {
      clusters: sharded.shards,
      shardMap: sharded.shardMap,
      failoverBudgetSeconds: sharded.shards[0].failoverBudgetSeconds,
    };
  }
  const args = mysqlArgs(ctx, database, user);
  if (shards === undefined) {
    const db = new MysqlCluster(name, args, { parent: ctx.parent });
    collectMysql(ctx, db);
    return { clusters: [db], failoverBudgetSeconds: db.failoverBudgetSeconds };
  }
  const sharded = new ShardedMysql(name, { ...args, shards }, { parent: ctx.parent });
  for (const shard of sharded.shards) collectMysql(ctx, shard);
  return {
    clusters: sharded.shards,
    shardMap: sharded.shardMap,
    failoverBudgetSeconds: sharded.shards[0].failoverBudgetSeconds,
  };
}

/** The app's view of one cluster: read-write and read-only URLs, as credentials (files). */
export function databaseCredentials(
  prefix: string,
  db: DatabaseEndpoints,
): Record<string, pulumi.Input<string>> {
  return { [`${prefix}URL`]: db.connectionUrl, [`${prefix}READ_URL`]: db.readConnectionUrl };
}

/** Stack outputs every topology shares about its databases. */
export function databaseOutputs(ctx: TopologyContext, dbs: Databases[]): TopologyOutputs {
  const budget = dbs.find((d) => d.failoverBudgetSeconds !== undefined)?.failoverBudgetSeconds;
  return {
    databaseEngine: pulumi.output(ctx.config.database.engine),
    // Galera and Patroni fail over by themselves; replication mode waits for a person.
    databaseFailover: pulumi.output(budget ? "automatic" : "manual"),
    ...(budget ? { databaseFailoverBudgetSeconds: budget } : {}),
  };
}

/**
 * credentialRotation's tokens, as secrets when the key is stored with --secret (they become the
 * random passwords' keepers, which state and previews show otherwise).
 */
export function rotationTokens(
  config: TopologyContext["config"],
): Record<string, pulumi.Input<string>> | undefined {
  const tokens = config.credentialRotation;
  if (tokens === undefined || !config.secretKeys.includes("credentialRotation")) return tokens;
  return Object.fromEntries(Object.entries(tokens).map(([k, v]) => [k, pulumi.secret(v)]));
}

/** Whether the public host name comes from config stored with --secret (`docker.host`). */
function hostsSecret(ctx: TopologyContext): boolean {
  return ctx.config.platform === "docker" && ctx.config.secretKeys.includes("docker");
}

/**
 * The certificate and key for balancer.tls: generated with @pulumi/tls (self-signed, for dev),
 * or the user's, read with requireSecret (provided, for prod).
 */
function tlsMaterial(ctx: TopologyContext, name: string) {
  switch (ctx.config.balancer.tls) {
    case "off":
      return undefined;
    case "self-signed": {
      const key = new tls.PrivateKey(
        `${name}-tls-key`,
        { algorithm: "ECDSA", ecdsaCurve: "P256" },
        { parent: ctx.parent },
      );
      const cert = new tls.SelfSignedCert(
        `${name}-tls-cert`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: ctx.tlsHostNames[0], organization: "ha-backend (self-signed, dev)" },
          // The remote Docker host's name, when `docker` is stored with --secret, stays secret.
          dnsNames: hostsSecret(ctx) ? pulumi.secret(ctx.tlsHostNames) : ctx.tlsHostNames,
          validityPeriodHours: 24 * 365,
          earlyRenewalHours: 24 * 30,
          allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
        },
        { parent: ctx.parent },
      );
      return { certificate: cert.certPem, privateKey: pulumi.secret(key.privateKeyPem) };
    }
    case "provided": {
      // Given by the caller (the Backend component), else read from the stack's config.
      if (ctx.providedTls !== undefined) return ctx.providedTls;
      const cfg = new pulumi.Config("ha-backend");
      // A certificate is public, but one stored with --secret stays secret.
      const certificate = ctx.config.secretKeys.includes("tlsCertificate")
        ? cfg.requireSecret("tlsCertificate")
        : cfg.require("tlsCertificate");
      return { certificate, privateKey: cfg.requireSecret("tlsKey") };
    }
    default: {
      const never: never = ctx.config.balancer.tls;
      throw new Error(`unhandled tls mode ${String(never)}`);
    }
  }
}

/**
 * The app servers' args (without replicas): the stack's services' env and credentials, plus
 * app.env — which holds secrets when the stack stores `app` with `--secret` (then all of it is
 * secret env, so no value shows in a spec or a diff).
 */
export function appArgs(
  ctx: TopologyContext,
  env: Record<string, pulumi.Input<string>>,
  credentials: Record<string, pulumi.Input<string>>,
): Omit<ServerClusterArgs, "replicas"> {
  const { app } = ctx.config;
  const appEnvIsSecret = ctx.config.secretKeys.includes("app");
  return {
    platform: ctx.platform,
    image: app.image,
    port: app.port,
    healthCheckPath: app.healthCheckPath,
    resources: app.resources,
    env: appEnvIsSecret ? env : { ...env, ...app.env },
    // The services' credentials and the session key: files under /run/secrets, each named by
    // <NAME>_FILE (ServerClusterArgs.credentials). app.env stays environment, the names the app
    // reads.
    credentials,
    secretEnv: appEnvIsSecret ? { ...app.env } : undefined,
  };
}

/** The balancer's args in front of `backends`. */
export function balancerArgs(
  ctx: TopologyContext,
  backends: LoadBalancerBackend[],
  tls: LoadBalancerArgs["tls"],
): LoadBalancerArgs {
  const { app, balancer } = ctx.config;
  return {
    platform: ctx.platform,
    engine: balancer.engine,
    backends,
    healthCheckPath: app.healthCheckPath,
    replicas: balancer.replicas,
    algorithm: balancer.algorithm,
    httpPort: ctx.publicPorts.http,
    httpsPort: ctx.publicPorts.https,
    tls,
    rateLimit: balancer.rateLimit,
    stickyCookie: balancer.stickyCookie,
    health: balancer.health,
    retries: balancer.retries,
    resources: balancer.resources,
    metrics: metricsArgs(ctx),
  };
}

/**
 * The web tier both topologies share: the app servers (plus standby servers when
 * balancer.backups is set), a session-signing key from @pulumi/random, and the load balancer in
 * front. Under the real engine random results are secret already; generatedSecret keeps them
 * secret under mocks too.
 */
export function webTier(
  ctx: TopologyContext,
  name: string,
  env: Record<string, pulumi.Input<string>>,
  credentials: Record<string, pulumi.Input<string>> = {},
): TopologyOutputs {
  const { app, balancer } = ctx.config;
  const sessionKey = generatedSecret(ctx.parent, `${name}-session-key`, {
    length: 48,
    rotation: rotationTokens(ctx.config)?.[`${name}-session-key`],
  });
  const args = appArgs(ctx, env, { ...credentials, SESSION_SECRET: sessionKey });
  const primary = new ServerCluster(name, { ...args, replicas: app.replicas }, { parent: ctx.parent });
  const backends: LoadBalancerBackend[] = [{ group: primary, weights: balancer.weights }];
  const health = [...primary.healthTargets];
  if (balancer.backups > 0) {
    const standby = new ServerCluster(
      `${name}-standby`,
      { ...args, replicas: balancer.backups },
      { parent: ctx.parent },
    );
    backends.push({ group: standby, backup: true });
    health.push(...standby.healthTargets);
  }
  const lb = new LoadBalancer(`${name}-lb`, balancerArgs(ctx, backends, tlsMaterial(ctx, name)), {
    parent: ctx.parent,
  });
  ctx.collector.add(lb);
  ctx.collector.web = {
    balancer: {
      component: `${name}-lb`,
      engine: balancer.engine ?? "nginx",
      backends: app.replicas,
      backups: balancer.backups,
      tls: balancer.tls !== "off",
    },
    app: { component: name, replicas: app.replicas, deployment: `${name}-app` },
    edge: lb.probeUrls,
    backends: health,
  };
  return {
    url: hostsSecret(ctx) ? pulumi.secret(lb.url) : lb.url,
    // Only with TLS on: an undefined stack output is dropped with a warning.
    ...(balancer.tls === "off"
      ? {}
      : { httpsUrl: hostsSecret(ctx) ? pulumi.secret(lb.httpsUrl) : lb.httpsUrl }),
    balancerEngine: pulumi.output(balancer.engine),
    appServiceHost: primary.serviceHost,
    appMembers: primary.members,
    appReplicas: primary.replicas,
  };
}
