import type { MetricsArgs } from "../monitoring/exporters";
import type { EtcdPlan, ScrapeJob } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { invalidArg } from "../errors";
import type { Platform, ResourceSpec } from "../platform/types";
import { EtcdCluster, etcdWorkload } from "./etcd-cluster";
import { componentToken, physicalName, dataProtection, type DataArgs, type NamingArgs } from "../resource";

export interface LockServiceArgs extends NamingArgs, DataArgs {
  readonly platform: Platform;
  /** Metrics: etcd's own /metrics, open to the platform's scraper. @default on */
  readonly metrics?: MetricsArgs;
  /** etcd members: 3 or 5 in production, 1 for development. @default 3 */
  readonly members?: number;
  /** The lease TTL apps are told to use: how long a crashed holder keeps the lock. @default 10 */
  readonly ttlSeconds?: number;
  /** Tiers that may take locks. @default ["app"] */
  readonly allowFrom?: string[];
  readonly storageGi?: number;
  readonly resources?: ResourceSpec;
}

const YEAR_HOURS = 24 * 365;

/** Defaults and rules, before any child exists (pure). */
export function resolveLockServiceArgs(
  name: string,
  args: Pick<LockServiceArgs, "members" | "ttlSeconds">,
): { members: number; ttlSeconds: number } {
  const members = args.members ?? 3;
  if (![1, 3, 5, 7].includes(members)) {
    invalidArg(
      "LockService",
      name,
      "members",
      "be 1, 3, 5 or 7 (a majority must survive; an even count adds nothing)",
      members,
      "Use 3 (survives one loss); 1 only for development.",
    );
  }
  const ttlSeconds = args.ttlSeconds ?? 10;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2 || ttlSeconds > 3600) {
    invalidArg(
      "LockService",
      name,
      "ttlSeconds",
      "be whole seconds from 2 to 3600",
      ttlSeconds,
      "Use 10: a crashed holder blocks others for at most that long.",
    );
  }
  return { members, ttlSeconds };
}

/**
 * Distributed locks for the app tier: an etcd cluster of its own that serves only HTTPS and only
 * to clients with a certificate its CA signed. The CA, the members' certificate and the app's
 * client certificate come from @pulumi/tls (renewed by `pulumi up` in the last 30 days of their
 * year); the client key reaches the app only as a file (see {@link LockService.appEnv}). Apps
 * lock with etcd leases: see {@link EtcdLockClient} and the README.
 */
export class LockService extends pulumi.ComponentResource {
  /** `https://host:2379` of every member. */
  public readonly endpoints: pulumi.Output<string[]>;
  /** The CA that signed the members' and the app's certificates (PEM). */
  public readonly caCert: pulumi.Output<string>;
  /** The app's client certificate (PEM). */
  public readonly clientCert: pulumi.Output<string>;
  /** The app's client key (PEM, secret). */
  public readonly clientKey: pulumi.Output<string>;
  public readonly ttlSeconds: pulumi.Output<number>;

  /** The scrape job of its members' /metrics. */
  public readonly metricsJobs: readonly ScrapeJob[];
  /** What its alert rules follow (plain data). */
  public readonly alertPlan: EtcdPlan;

  constructor(name: string, args: LockServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("coordination", "LockService", opts);
    super(token, name, {}, options);
    name = physicalName("LockService", name, args);
    const { members, ttlSeconds } = resolveLockServiceArgs(name, args);
    // Certificates and keys are files of the members, not data: replaceable, never protected.
    const opt = { parent: this, protect: false };
    const key = (role: string) =>
      new tls.PrivateKey(`${name}-${role}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, opt);
    const caKey = key("ca");
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        subject: { commonName: `${name} lock service CA`, organization: "ha-backend" },
        validityPeriodHours: 5 * YEAR_HOURS,
        earlyRenewalHours: 90 * 24,
        allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
      },
      opt,
    );
    const signed = (
      role: string,
      subject: string,
      uses: string[],
      names: { dnsNames?: string[]; ipAddresses?: string[] },
    ) => {
      const k = key(role);
      const csr = new tls.CertRequest(
        `${name}-${role}-csr`,
        {
          privateKeyPem: k.privateKeyPem,
          subject: { commonName: subject, organization: "ha-backend" },
          ...names,
        },
        opt,
      );
      const cert = new tls.LocallySignedCert(
        `${name}-${role}-cert`,
        {
          certRequestPem: csr.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: YEAR_HOURS,
          earlyRenewalHours: 30 * 24,
          allowedUses: ["digital_signature", "key_encipherment", ...uses],
        },
        opt,
      );
      return { cert: cert.certPem, key: pulumi.secret(k.privateKeyPem) };
    };
    const hosts = args.platform.memberHosts(etcdWorkload(name), members);
    // The members' certificate also serves their own health check (client use, on 127.0.0.1).
    const server = signed("server", `${name} etcd`, ["server_auth", "client_auth"], {
      dnsNames: [...hosts, "localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const client = signed("client", `${name} lock client`, ["client_auth"], {});
    const etcd = new EtcdCluster(
      name,
      {
        platform: args.platform,
        members,
        allowFrom: args.allowFrom ?? ["app"],
        storageGi: args.storageGi,
        protect: dataProtection(args, opts),
        resources: args.resources,
        clientTls: { ca: ca.certPem, cert: server.cert, key: server.key },
        metrics: args.metrics,
      },
      opt,
    );
    this.metricsJobs = etcd.metricsJobs;
    this.alertPlan = { component: name, members };
    this.endpoints = etcd.clientUrls;
    this.caCert = ca.certPem;
    this.clientCert = client.cert;
    this.clientKey = client.key;
    this.ttlSeconds = pulumi.output(ttlSeconds);
    this.registerOutputs({ endpoints: this.endpoints, caCert: this.caCert, ttlSeconds: this.ttlSeconds });
  }

  /**
   * What the app needs: endpoints, CA, certificate and TTL (plain environment), and the client
   * key as a credential, for a `ServerCluster`'s `credentials` (the file
   * `/run/secrets/<prefix>CLIENT_KEY_PEM`, named by `<prefix>CLIENT_KEY_PEM_FILE`).
   * {@link EtcdLockClient.fromEnv} reads them all.
   */
  appEnv(prefix = "LOCK_"): {
    env: Record<string, pulumi.Input<string>>;
    credentials: Record<string, pulumi.Input<string>>;
  } {
    return {
      env: {
        [`${prefix}ENDPOINTS`]: this.endpoints.apply((e) => e.join(",")),
        [`${prefix}CA_PEM`]: this.caCert,
        [`${prefix}CLIENT_CERT_PEM`]: this.clientCert,
        [`${prefix}TTL_SECONDS`]: this.ttlSeconds.apply(String),
      },
      credentials: { [`${prefix}CLIENT_KEY_PEM`]: this.clientKey },
    };
  }
}
