import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { LoadBalancer, type LoadBalancerBackend } from "../../components/balancer/load-balancer";
import { ServerCluster } from "../../components/cluster/server-cluster";
import { MysqlCluster, type MysqlClusterArgs } from "../../components/database/mysql-cluster";
import type { Platform } from "../../components/platform/types";
import type { StackConfig } from "../config";

/** What every topology builder receives. */
export interface TopologyContext {
  readonly config: StackConfig;
  readonly platform: Platform;
  /** Ports outside clients use: Docker host ports, Kubernetes Service ports. */
  readonly publicPorts: { readonly http: number; readonly https: number };
  /** Host names the self-signed certificate covers (dev). */
  readonly tlsHostNames: string[];
}

/** Stack outputs a topology exports (names are nouns; secrets stay secret). */
export type TopologyOutputs = Record<string, pulumi.Output<unknown>>;

/** The MySQL-family settings every cluster of the stack shares. */
export function databaseArgs(ctx: TopologyContext, database: string, user: string): MysqlClusterArgs {
  const d = ctx.config.database;
  return {
    platform: ctx.platform,
    engine: d.engine,
    mode: d.mode,
    members: d.members,
    semiSync: d.semiSync,
    galera: d.galera,
    database,
    user,
    storageGi: d.storageGi,
    // Production data survives `pulumi destroy` and replacements unless the stack says otherwise.
    protect: d.protect ?? ctx.config.platform === "kubernetes",
    resources: d.resources,
    routerReplicas: d.routerReplicas,
  };
}

/** The app's view of one cluster: read-write and read-only URLs, as secrets. */
export function databaseEnv(prefix: string, db: MysqlCluster): Record<string, pulumi.Input<string>> {
  return { [`${prefix}URL`]: db.connectionUrl, [`${prefix}READ_URL`]: db.readConnectionUrl };
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
      const key = new tls.PrivateKey(`${name}-tls-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" });
      const cert = new tls.SelfSignedCert(`${name}-tls-cert`, {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: ctx.tlsHostNames[0], organization: "ha-backend (self-signed, dev)" },
        dnsNames: ctx.tlsHostNames,
        validityPeriodHours: 24 * 365,
        earlyRenewalHours: 24 * 30,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
      });
      return { certificate: cert.certPem, privateKey: pulumi.secret(key.privateKeyPem) };
    }
    case "provided": {
      const cfg = new pulumi.Config("ha-backend");
      return { certificate: cfg.require("tlsCertificate"), privateKey: cfg.requireSecret("tlsKey") };
    }
    default: {
      const never: never = ctx.config.balancer.tls;
      throw new Error(`unhandled tls mode ${String(never)}`);
    }
  }
}

/**
 * The web tier both topologies share: the app servers (plus standby servers when
 * balancer.backups is set), a session-signing key from @pulumi/random, and the load balancer in
 * front. Under the real engine random results are secret already; `pulumi.secret` keeps them
 * secret under mocks too.
 */
export function webTier(
  ctx: TopologyContext,
  name: string,
  env: Record<string, pulumi.Input<string>>,
  secretEnv: Record<string, pulumi.Input<string>> = {},
): TopologyOutputs {
  const { app, balancer } = ctx.config;
  const sessionKey = new random.RandomPassword(`${name}-session-key`, { length: 48, special: false });
  const appArgs = {
    platform: ctx.platform,
    image: app.image,
    port: app.port,
    healthCheckPath: app.healthCheckPath,
    resources: app.resources,
    env: { ...env, ...app.env },
    secretEnv: { ...secretEnv, SESSION_SECRET: pulumi.secret(sessionKey.result) },
  };
  const primary = new ServerCluster(name, { ...appArgs, replicas: app.replicas });
  const backends: LoadBalancerBackend[] = [{ group: primary, weights: balancer.weights }];
  if (balancer.backups > 0) {
    const standby = new ServerCluster(`${name}-standby`, { ...appArgs, replicas: balancer.backups });
    backends.push({ group: standby, backup: true });
  }
  const lb = new LoadBalancer(`${name}-lb`, {
    platform: ctx.platform,
    engine: balancer.engine,
    backends,
    healthCheckPath: app.healthCheckPath,
    replicas: balancer.replicas,
    algorithm: balancer.algorithm,
    httpPort: ctx.publicPorts.http,
    httpsPort: ctx.publicPorts.https,
    tls: tlsMaterial(ctx, name),
    rateLimit: balancer.rateLimit,
    stickyCookie: balancer.stickyCookie,
    health: balancer.health,
    retries: balancer.retries,
    resources: balancer.resources,
  });
  return {
    url: lb.url,
    // Only with TLS on: an undefined stack output is dropped with a warning.
    ...(balancer.tls === "off" ? {} : { httpsUrl: lb.httpsUrl }),
    balancerEngine: pulumi.output(balancer.engine),
    appServiceHost: primary.serviceHost,
    appMembers: primary.members,
    appReplicas: primary.replicas,
  };
}
