import { exportersOn, scrapeJob, type MetricsArgs } from "../monitoring/exporters";
import type { ScrapeJob } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import { checkResources, invalidArg } from "../errors";
import type { Platform, ResourceSpec } from "../platform/types";
import { componentToken, physicalName, dataProtection, type DataArgs, type NamingArgs } from "../resource";

/** The upstream etcd image, pinned. It has no shell: every setting is an ETCD_* variable. */
export const ETCD_IMAGE = "gcr.io/etcd-development/etcd:v3.5.17";

const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const DATA_DIR = "/var/lib/etcd";
/** The distroless base image's `nonroot` user: etcd needs no privilege at all. */
const ETCD_UID = 65532;
/** Where the client TLS files land in the container. */
export const ETCD_TLS_PATHS = {
  ca: "/etc/ha-backend/etcd/tls/ca.pem",
  cert: "/etc/ha-backend/etcd/tls/server.pem",
  key: "/etc/ha-backend/etcd/tls/server-key.pem",
} as const;

/** Client TLS: clients must present a certificate signed by `ca` (their credential). */
export interface EtcdClientTls {
  readonly ca: pulumi.Input<string>;
  /** The members' certificate: valid for every member's host name and 127.0.0.1, server and client use. */
  readonly cert: pulumi.Input<string>;
  readonly key: pulumi.Input<string>;
}

export interface EtcdClusterArgs extends NamingArgs, DataArgs {
  readonly platform: Platform;
  /** Members: 1 (dev), 3 or 5. An even count adds no fault tolerance. @default 3 */
  readonly members?: number;
  /** Tiers that may use the client port (Patroni, the lock users). */
  readonly allowFrom: string[];
  /** Data volume per member in GiB. @default 2 */
  readonly storageGi?: number;
  readonly resources?: ResourceSpec;
  /** Serve clients over TLS and admit only those with a certificate signed by its CA. @default plain HTTP */
  readonly clientTls?: EtcdClientTls;
  /**
   * Metrics: etcd's own /metrics on a port of its own (plain HTTP, read-only, even with client
   * TLS), open to the platform's scraper. @default on
   */
  readonly metrics?: MetricsArgs;
}

/** etcd's metrics listener (`--listen-metrics-urls`): /metrics and /health only. */
export const ETCD_METRICS_PORT = 2381;

/** The workload an EtcdCluster of this name deploys (its members are `<workload>-<i>`). */
export function etcdWorkload(cluster: string): string {
  return `${cluster}-etcd`;
}

/** `host:2379` of each member of an EtcdCluster of this name, known before it is deployed. */
export function etcdClientHosts(platform: Platform, cluster: string, members: number): string[] {
  return platform.memberHosts(etcdWorkload(cluster), members).map((h) => `${h}:${CLIENT_PORT}`);
}

/**
 * The environment every member shares, given the members' names and hosts in order. With
 * `tls` (paths of the CA, the members' certificate and key), clients speak HTTPS and must
 * present a certificate the CA signed; peers stay on the platform's internal network.
 */
export function etcdEnvironment(
  cluster: string,
  members: readonly { name: string; host: string }[],
  tls?: { readonly ca: string; readonly cert: string; readonly key: string },
): Record<string, string> {
  return {
    ETCD_DATA_DIR: DATA_DIR,
    ETCD_LISTEN_CLIENT_URLS: `${tls ? "https" : "http"}://0.0.0.0:${CLIENT_PORT}`,
    ...(tls
      ? {
          ETCD_CERT_FILE: tls.cert,
          ETCD_KEY_FILE: tls.key,
          ETCD_TRUSTED_CA_FILE: tls.ca,
          ETCD_CLIENT_CERT_AUTH: "true",
        }
      : {}),
    ETCD_LISTEN_PEER_URLS: `http://0.0.0.0:${PEER_PORT}`,
    ETCD_INITIAL_CLUSTER: members.map((m) => `${m.name}=http://${m.host}:${PEER_PORT}`).join(","),
    ETCD_INITIAL_CLUSTER_STATE: "new",
    ETCD_INITIAL_CLUSTER_TOKEN: cluster,
    // Keep one hour of history; without compaction the database grows until its quota stops writes.
    ETCD_AUTO_COMPACTION_MODE: "periodic",
    ETCD_AUTO_COMPACTION_RETENTION: "1h",
  };
}

/** What differs per member; the platform fills in `{name}` and `{host}`. */
export function etcdMemberEnv(tls = false): Record<string, string> {
  return {
    ETCD_NAME: "{name}",
    ETCD_INITIAL_ADVERTISE_PEER_URLS: `http://{host}:${PEER_PORT}`,
    ETCD_ADVERTISE_CLIENT_URLS: `${tls ? "https" : "http"}://{host}:${CLIENT_PORT}`,
  };
}

/** {@link etcdMemberEnv} for plain HTTP clients. */
export const ETCD_MEMBER_ENV: Readonly<Record<string, string>> = etcdMemberEnv(false);

/**
 * etcd members on an internal network: Patroni's DCS on Docker and the lock service. Peer and
 * client traffic stay inside the platform; only the tiers in `allowFrom` reach the client port.
 */
export class EtcdCluster extends pulumi.ComponentResource {
  /** `host:2379` of every member, for clients that take a list (Patroni's etcd3.hosts). */
  public readonly clientEndpoints: pulumi.Output<string[]>;
  /** `http(s)://host:2379` of every member. */
  public readonly clientUrls: pulumi.Output<string[]>;
  public readonly members: pulumi.Output<number>;
  /** The scrape job of its members' /metrics (none with `metrics.exporters: false`). */
  public readonly metricsJobs: readonly ScrapeJob[];

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("coordination", "EtcdCluster", opts);
    super(token, name, {}, options);
    name = physicalName("EtcdCluster", name, args);
    const members = args.members ?? 3;
    if (![1, 3, 5, 7].includes(members)) {
      invalidArg(
        "EtcdCluster",
        name,
        "members",
        "be 1, 3, 5 or 7 (a majority must survive; an even count adds nothing)",
        members,
        "Use 3 (survives one loss) or 5 (two); 1 only for development.",
      );
    }
    const storageGi = args.storageGi ?? 2;
    if (!Number.isInteger(storageGi) || storageGi < 1) {
      invalidArg(
        "EtcdCluster",
        name,
        "storageGi",
        "be a whole number of at least 1",
        storageGi,
        "Use e.g. 2.",
      );
    }
    const resources = checkResources("EtcdCluster", name, args.resources, {
      minMemoryMb: 64,
      needs: "etcd needs to start",
    });
    const workload = etcdWorkload(name);
    const metrics = exportersOn(args);
    const hosts = args.platform.memberHosts(workload, members);
    const peers = hosts.map((host, i) => ({ name: `${workload}-${i}`, host }));
    const tls = args.clientTls;
    const health = [
      "/usr/local/bin/etcdctl",
      ...(tls
        ? [
            `--endpoints=https://127.0.0.1:${CLIENT_PORT}`,
            `--cacert=${ETCD_TLS_PATHS.ca}`,
            `--cert=${ETCD_TLS_PATHS.cert}`,
            `--key=${ETCD_TLS_PATHS.key}`,
          ]
        : []),
      "endpoint",
      "health",
    ];
    const deployed = args.platform.deploy(
      workload,
      {
        kind: "stateful",
        replicas: members,
        image: ETCD_IMAGE,
        command: ["/usr/local/bin/etcd"],
        env: {
          ...etcdEnvironment(name, peers, tls ? ETCD_TLS_PATHS : undefined),
          ...(metrics ? { ETCD_LISTEN_METRICS_URLS: `http://0.0.0.0:${ETCD_METRICS_PORT}` } : {}),
        },
        memberEnv: etcdMemberEnv(tls !== undefined),
        files: tls ? { [ETCD_TLS_PATHS.ca]: tls.ca, [ETCD_TLS_PATHS.cert]: tls.cert } : undefined,
        secretFiles: tls ? { [ETCD_TLS_PATHS.key]: pulumi.secret(tls.key) } : undefined,
        ports: { client: CLIENT_PORT, peer: PEER_PORT, ...(metrics ? { metrics: ETCD_METRICS_PORT } : {}) },
        ...(metrics ? { metricsPorts: [{ port: "metrics" }] } : {}),
        // `endpoint health` needs a quorum: a lone member 0 of three is never ready.
        healthCheck: { exec: health, startPeriodSeconds: 30 },
        startTogether: members > 1,
        // Raft between members only: clients (and routers) get the client port alone (and the
        // metrics port: the scraper's).
        peerPorts: ["peer", ...(metrics ? ["metrics"] : [])],
        // The image has no user of its own. Kubernetes hands the volume to this one (fsGroup);
        // Docker has no fsGroup, and a fresh volume there is root's, so etcd stays root there.
        runAsUser: args.platform.kind === "kubernetes" ? ETCD_UID : undefined,
        writablePaths: [],
        defaultResources: { cpu: "100m", memory: "256Mi" },
        volume: { mountPath: DATA_DIR, sizeGi: storageGi, protect: dataProtection(args, opts) },
        resources,
        tier: workload,
        allowFrom: args.allowFrom,
      },
      { parent: this },
    );
    this.clientEndpoints = pulumi.output(deployed.members.map((m) => `${m.host}:${CLIENT_PORT}`));
    this.clientUrls = pulumi.output(
      deployed.members.map((m) => `${tls ? "https" : "http"}://${m.host}:${CLIENT_PORT}`),
    );
    this.members = pulumi.output(members);
    this.metricsJobs = metrics ? [scrapeJob(name, "etcd", deployed, "metrics", members)] : [];
    this.registerOutputs({
      clientEndpoints: this.clientEndpoints,
      clientUrls: this.clientUrls,
      members: this.members,
    });
  }
}
