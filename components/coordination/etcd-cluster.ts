import * as pulumi from "@pulumi/pulumi";
import { checkResources, invalidArg } from "../errors";
import type { Platform, ResourceSpec } from "../platform/types";

/** The upstream etcd image, pinned. It has no shell: every setting is an ETCD_* variable. */
export const ETCD_IMAGE = "gcr.io/etcd-development/etcd:v3.5.17";

const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const DATA_DIR = "/var/lib/etcd";

export interface EtcdClusterArgs {
  readonly platform: Platform;
  /** Members: 1 (dev), 3 or 5. An even count adds no fault tolerance. @default 3 */
  readonly members?: number;
  /** Tiers that may use the client port (Patroni, the lock users). */
  readonly allowFrom: string[];
  /** Data volume per member in GiB. @default 2 */
  readonly storageGi?: number;
  /** Keep the data volumes on destroy/replace. @default false */
  readonly protect?: boolean;
  readonly resources?: ResourceSpec;
}

/** The workload an EtcdCluster of this name deploys (its members are `<workload>-<i>`). */
export function etcdWorkload(cluster: string): string {
  return `${cluster}-etcd`;
}

/** `host:2379` of each member of an EtcdCluster of this name, known before it is deployed. */
export function etcdClientHosts(platform: Platform, cluster: string, members: number): string[] {
  return platform.memberHosts(etcdWorkload(cluster), members).map((h) => `${h}:${CLIENT_PORT}`);
}

/** The environment every member shares, given the members' names and hosts in order. */
export function etcdEnvironment(
  cluster: string,
  members: readonly { name: string; host: string }[],
): Record<string, string> {
  return {
    ETCD_DATA_DIR: DATA_DIR,
    ETCD_LISTEN_CLIENT_URLS: `http://0.0.0.0:${CLIENT_PORT}`,
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
export const ETCD_MEMBER_ENV: Readonly<Record<string, string>> = {
  ETCD_NAME: "{name}",
  ETCD_INITIAL_ADVERTISE_PEER_URLS: `http://{host}:${PEER_PORT}`,
  ETCD_ADVERTISE_CLIENT_URLS: `http://{host}:${CLIENT_PORT}`,
};

/**
 * etcd members on an internal network: Patroni's DCS on Docker and the lock service. Peer and
 * client traffic stay inside the platform; only the tiers in `allowFrom` reach the client port.
 */
export class EtcdCluster extends pulumi.ComponentResource {
  /** `host:2379` of every member, for clients that take a list (Patroni's etcd3.hosts). */
  public readonly clientEndpoints: pulumi.Output<string[]>;
  public readonly members: pulumi.Output<number>;

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha:coordination:EtcdCluster", name, {}, opts);
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
    checkResources("EtcdCluster", name, args.resources);
    const workload = etcdWorkload(name);
    const hosts = args.platform.memberHosts(workload, members);
    const peers = hosts.map((host, i) => ({ name: `${workload}-${i}`, host }));
    const deployed = args.platform.deploy(
      workload,
      {
        kind: "stateful",
        replicas: members,
        image: ETCD_IMAGE,
        command: ["/usr/local/bin/etcd"],
        env: etcdEnvironment(name, peers),
        memberEnv: ETCD_MEMBER_ENV,
        ports: { client: CLIENT_PORT, peer: PEER_PORT },
        healthCheck: { exec: ["/usr/local/bin/etcdctl", "endpoint", "health"], startPeriodSeconds: 30 },
        volume: { mountPath: DATA_DIR, sizeGi: storageGi, protect: args.protect ?? false },
        resources: args.resources,
        tier: workload,
        allowFrom: args.allowFrom,
      },
      { parent: this },
    );
    this.clientEndpoints = pulumi.output(deployed.members.map((m) => `${m.host}:${CLIENT_PORT}`));
    this.members = pulumi.output(members);
    this.registerOutputs({ clientEndpoints: this.clientEndpoints, members: this.members });
  }
}
