import * as pulumi from "@pulumi/pulumi";

/**
 * The platform-neutral description of one workload (a tier of identical members). Components
 * build it; a {@link Platform} turns it into Docker containers or Kubernetes objects. Plain
 * data wherever a value decides *which* resources exist; `pulumi.Input` where a value is only
 * passed through.
 */
export interface WorkloadSpec {
  /**
   * `stateless`: interchangeable members (Kubernetes Deployment). `stateful`: members with a
   * stable identity and address (`<name>-0`, `<name>-1`, …) and their own volume (StatefulSet).
   */
  readonly kind: "stateless" | "stateful";
  /** Number of members; at least 1. */
  readonly replicas: number;
  /**
   * Container image, pinned by tag (`nginx:1.28.0-alpine`). May be an Output (another stack's
   * output, a CI build's tag): a plain value is validated before anything is created, an Output
   * when it resolves, with the same message. With `build` it must be a plain string (it decides
   * which image resource is built, and names it).
   */
  readonly image: pulumi.Input<string>;
  /** Replaces the image's entrypoint. */
  readonly command?: readonly string[];
  /** Arguments to the entrypoint. */
  readonly args?: readonly string[];
  /** Plain environment; never put credentials here (use `secretFiles`). */
  readonly env?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Secret environment, only for an image that reads a credential nowhere else (prefer
   * `secretFiles`: `docker inspect` shows a container's environment). Docker: marked secret in
   * state. Kubernetes: stored in a `Secret` and referenced with `secretKeyRef`.
   */
  readonly secretEnv?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Config files by absolute path in the container; the content must not hold secrets. */
  readonly files?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Files that hold secrets (TLS keys), by absolute path. Docker: uploaded with the content
   * marked secret. Kubernetes: a `Secret` mounted read-only.
   */
  readonly secretFiles?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Named ports the members listen on, e.g. `{ http: 8080 }`. */
  readonly ports: Readonly<Record<string, number>>;
  /** How the platform decides a member is ready and alive. */
  readonly healthCheck?: HealthCheck;
  /** A persistent volume per member (stateful workloads only). */
  readonly volume?: VolumeSpec;
  /** CPU and memory per member. */
  readonly resources?: ResourceSpec;
  /**
   * The network tier this workload belongs to (`app`, `edge`, `db`…). Other workloads name it
   * in `allowFrom`.
   */
  readonly tier: string;
  /** Tiers whose members may open connections to this workload. Members always reach their peers. */
  readonly allowFrom?: readonly string[];
  /** Named ports exposed to clients outside the platform. */
  readonly publicPorts?: readonly PublicPort[];
  /** Numeric user id to run as when the image supports running unprivileged. */
  readonly runAsUser?: number;
  /**
   * The uid that owns uploaded secret files (the image's daemon user, e.g. when the container
   * starts as root and the daemon drops to its own user). Docker: `secretFiles` are uploaded with
   * mode 0400, owned by this uid and group.
   * @default `runAsUser`, else 0 (root)
   */
  readonly fileOwner?: number;
  /**
   * Environment that differs per member (stateful workloads): `{name}` stands for the member's
   * name and `{host}` for its address. Docker fills them in per container; Kubernetes takes the
   * pod name from the downward API and the kubelet expands the rest.
   */
  readonly memberEnv?: Readonly<Record<string, string>>;
  /**
   * Build `image` from this context instead of pulling it (check `Platform.canBuildImages`
   * first); `image` must then be a plain string. Docker: built on the engine. Kubernetes: built
   * and pushed to the platform's registry.
   */
  readonly build?: ImageBuild;
  /**
   * Members use the platform's own API with these permissions, in their namespace only (only
   * where `Platform.stateStore` returns a store). Kubernetes: a ServiceAccount, a Role with
   * exactly these rules and a RoleBinding; every other workload gets no API token at all.
   */
  readonly apiAccess?: readonly ApiRule[];
  /**
   * Members become ready only together (a quorum, a primary component), so none may wait for
   * another's readiness before it starts. Kubernetes: `podManagementPolicy: Parallel` (rolling
   * updates stay one member at a time). Docker starts every member at once anyway.
   */
  readonly startTogether?: boolean;
  /**
   * Ports (by name) only the workload's own members reach: peer and replication traffic (etcd's
   * 2380, Galera's 4567/4568/4444). Tiers in `allowFrom` reach every other port.
   */
  readonly peerPorts?: readonly string[];
  /**
   * The image writes only to its volume and to these directories (besides /tmp): the root file
   * system is then read-only and each gets an empty scratch directory. Unset: the image is not
   * known (a user's app), its root file system stays writable.
   */
  readonly writablePaths?: readonly string[];
  /**
   * CPU and memory used where `resources` is unset on platforms that schedule by them
   * (Kubernetes); Docker leaves such members unlimited.
   */
  readonly defaultResources?: ResourceSpec;
  /**
   * Containers beside each member, for a metrics exporter (see {@link SidecarSpec}): Kubernetes
   * runs them in the member's pod, Docker as containers of their own on the member's networks.
   */
  readonly sidecars?: readonly SidecarSpec[];
  /**
   * The named ports (of the member or of a sidecar) that serve Prometheus metrics, and their
   * paths. The platform admits its scraper to them (Kubernetes: a NetworkPolicy rule from the
   * scraper's pods to these ports only; Docker: the scraper's tier joins the workload's
   * networks) and reports their addresses in {@link Workload.metrics}.
   */
  readonly metricsPorts?: readonly MetricsPortSpec[];
  /**
   * Tiers whose public ports this workload connects to from inside the platform, as a client
   * outside would (a blackbox prober probing the edge); each must have been deployed with
   * `publicPorts`. Kubernetes: an egress rule to those tiers' pods, and the pods carry the label
   * published workloads admit on their public ports (whatever the Service type). Docker: the
   * probed tier must already admit this workload's tier (a scraper's tier is admitted by every
   * scraped workload), whose network it reaches them on: never the `public` network, which would
   * put it beside every published container.
   */
  readonly probes?: readonly string[];
}

/** What {@link Platform.monitors} declares. */
export interface MonitorsSpec {
  /** One per job: the workload whose pods serve it, the named port and path, and its labels. */
  readonly jobs: readonly {
    readonly job: string;
    readonly component: string;
    readonly workload: string;
    readonly port: string;
    readonly path: string;
  }[];
  /**
   * Blackbox probes (the operator's Probe objects): `prober` (`host:port` of a blackbox exporter)
   * requests each target URL with `module`; each target's series carry `instance`.
   */
  readonly probes?: readonly {
    readonly job: string;
    readonly component: string;
    readonly module: string;
    readonly prober: string;
    readonly targets: readonly { readonly instance: string; readonly url: string }[];
  }[];
  /** Rule groups in Prometheus's rule-file shape. */
  readonly ruleGroups: readonly unknown[];
  readonly scrapeIntervalSeconds: number;
  /** Labels the operator's Prometheus selects monitors and rules by (e.g. `release: prometheus`). */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Grafana dashboards by file name (JSON), for a Grafana that loads them from labelled
   * ConfigMaps (kube-prometheus-stack's dashboard sidecar: `grafana_dashboard: "1"`).
   */
  readonly dashboards?: Readonly<Record<string, string>>;
}

/** A port that serves Prometheus metrics. */
export interface MetricsPortSpec {
  /** A named port of the workload or of one of its sidecars. */
  readonly port: string;
  /** @default "/metrics" */
  readonly path?: string;
}

/**
 * A container beside each member: a metrics exporter, run from its project's own image. On
 * Kubernetes it shares the member's pod (and so its network namespace: `{self}` is 127.0.0.1). On
 * Docker it is a container of its own, `<member>-<name>` (`{self}` is the member's host name), on
 * one network with the member, the scraper's (`<tier>-from-<scraper tier>`), and only where the
 * platform admits a scraper (`scraperTier`): nothing else could reach it there.
 */
export interface SidecarSpec {
  /** Names the container (`metrics`): a DNS label. */
  readonly name: string;
  /** Container image, pinned by tag. */
  readonly image: string;
  /** Arguments to the image's entrypoint; `{self}` is the member's address as the sidecar reaches it. */
  readonly args?: readonly string[];
  /** Plain environment, never credentials (use `secretFiles`); `{self}` as in `args`. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Credential files by absolute path (`{self}` as in `args`): Docker uploads them 0400;
   * Kubernetes mounts a Secret.
   */
  readonly secretFiles?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Named ports the sidecar listens on (`{ metrics: 9187 }`); names unique across the pod. */
  readonly ports: Readonly<Record<string, number>>;
  /** Numeric user id to run as (exporters run unprivileged). */
  readonly runAsUser: number;
  /** CPU and memory of the sidecar. @default 50m and 64Mi on Kubernetes; unlimited on Docker */
  readonly resources?: ResourceSpec;
}

/**
 * A one-shot command that runs to completion once per name: a new name (carry a digest of what
 * it does in it) runs it again. For changes a running workload must be told about through its
 * own API, such as Patroni's settings in the DCS.
 */
export interface TaskSpec {
  /** Container image, pinned by tag; the same image as the workload it talks to is typical. */
  readonly image: string;
  /** Build the image from this context (as {@link WorkloadSpec.build}). */
  readonly build?: ImageBuild;
  /** The command line (replaces the image's entrypoint). */
  readonly command: readonly string[];
  /** Plain environment; never put credentials here (use `secretFiles`). */
  readonly env?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Secret environment (as {@link WorkloadSpec.secretEnv}), for an image that reads a credential
   * only from its environment; prefer `secretFiles`, which `docker inspect` does not show.
   */
  readonly secretEnv?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Files by absolute path; the content must not hold secrets. */
  readonly files?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Files that hold credentials, by absolute path (as {@link WorkloadSpec.secretFiles}). Docker:
   * uploaded with the content marked secret, mode 0400, owned by `fileOwner`. Kubernetes: a
   * `Secret` mounted read-only, so the Job's spec never holds the value.
   */
  readonly secretFiles?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * The uid that owns uploaded secret files (as {@link WorkloadSpec.fileOwner}).
   * @default `runAsUser`, else 0 (root)
   */
  readonly fileOwner?: number;
  /**
   * The task's network tier: the workloads it talks to list it in `allowFrom`, exactly as for a
   * client tier. It reaches nothing else.
   */
  readonly tier: string;
  /** Numeric user id to run as. */
  readonly runAsUser?: number;
  /** Seconds the task may run before the update fails. */
  readonly timeoutSeconds: number;
  /** Resources that must be up before the task starts (a workload's {@link Workload.resources}). */
  readonly after?: readonly pulumi.Resource[];
}

/** An image built from a directory with a Dockerfile. */
export interface ImageBuild {
  /** Absolute path of the build context. */
  readonly context: string;
  /** The Dockerfile, relative to the context. @default "Dockerfile" */
  readonly dockerfile?: string;
}

/** Verbs on resources of the core API group (`configmaps`, `pods`, …). */
export interface ApiRule {
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * Shared state kept in the platform's own API (Kubernetes: ConfigMaps and pod annotations in
 * the namespace), for members that coordinate without a separate store (Patroni's DCS).
 */
export interface PlatformStateStore {
  readonly kind: "kubernetes";
  readonly namespace: string;
  /** Labels every pod of the workload carries, besides `nameLabel`. */
  readonly labels: Readonly<Record<string, string>>;
  /** The label whose value on every pod is the workload's name. */
  readonly nameLabel: string;
}

/** A readiness/liveness check. Exactly one of `httpGet`, `exec` or `tcpPort` is set. */
export interface HealthCheck {
  /** HTTP GET on a named port; any 2xx/3xx is healthy. */
  readonly httpGet?: { readonly path: string; readonly port: string };
  /**
   * With `httpGet`: a different path for liveness (Kubernetes restarts a member that fails it),
   * for servers that say "busy but alive" apart from "ready" (Patroni during a base backup).
   * @default the `httpGet` path
   */
  readonly livenessPath?: string;
  /** A command run inside the container; exit 0 is healthy. */
  readonly exec?: readonly string[];
  /** A TCP connect to a named port. */
  readonly tcpPort?: string;
  /**
   * Docker has no built-in HTTP check: this command runs instead of `httpGet` there.
   * @default `wget -q -O /dev/null http://127.0.0.1:<port><path>` (busybox/alpine images have it)
   */
  readonly dockerCommand?: readonly string[];
  /** @default 5 */
  readonly intervalSeconds?: number;
  /** @default 3 */
  readonly timeoutSeconds?: number;
  /** Consecutive failures before a member is marked unhealthy. @default 3 */
  readonly failureThreshold?: number;
  /** Grace period after start during which failures do not count. @default 10 */
  readonly startPeriodSeconds?: number;
}

/** A persistent volume mounted into each member. */
export interface VolumeSpec {
  readonly mountPath: string;
  /** Requested size (Kubernetes). Docker volumes are not size-limited. */
  readonly sizeGi: number;
  /** Kubernetes StorageClass. @default the cluster default */
  readonly storageClass?: string;
  /**
   * Keep the data when the stack is destroyed or the workload replaced: `protect` and
   * `retainOnDelete` on what holds it (Docker volumes; the StatefulSet, with its claims retained).
   * @default false
   */
  readonly protect?: boolean;
}

/**
 * CPU and memory per member. Kubernetes: memory's request equals its limit (no overcommit
 * surprises), CPU is a request without a limit (a limit only throttles). Docker: both are caps
 * (`memory`, `cpus`). Either may be an Output: components check them with `checkResources`, a
 * plain value before anything is created, an Output when it resolves, with the same message.
 */
export interface ResourceSpec {
  /** Kubernetes quantity, e.g. `250m` or `1`. */
  readonly cpu: pulumi.Input<string>;
  /** Kubernetes quantity, e.g. `256Mi`. */
  readonly memory: pulumi.Input<string>;
}

/** A port published to clients outside the platform. */
export interface PublicPort {
  /** Named port of the workload. */
  readonly target: string;
  /** Port clients connect to (Docker host port, Kubernetes Service port). */
  readonly port: number;
  /**
   * Docker: published on 127.0.0.1 whatever the platform's `bindAddress` (an operator's UI that
   * must not reach the network). @default false
   */
  readonly local?: boolean;
}

/** One member's stable address. */
export interface MemberAddress {
  /** Member name, e.g. `shop-app-0`. */
  readonly name: string;
  /** Host name other workloads on the platform use to reach this member. */
  readonly host: string;
}

/** What a platform returns for a deployed workload. */
export interface Workload {
  /** The workload's name as given to `deploy`. */
  readonly name: string;
  /** One host name that reaches any ready member (Kubernetes Service; Docker network alias). */
  readonly serviceHost: string;
  /**
   * A DNS name that resolves to every ready member's address, for balancers that discover
   * members (Kubernetes headless Service; on Docker the shared alias does the same).
   */
  readonly discoveryHost: string;
  /**
   * Per-member addresses where members have a stable identity: every Docker member, and
   * Kubernetes StatefulSet members. Empty for Kubernetes Deployments (use `discoveryHost`).
   */
  readonly members: readonly MemberAddress[];
  /** The named ports, as given. */
  readonly ports: Readonly<Record<string, number>>;
  /** Address (`host:port`) outside clients use for each public port, by target port name. */
  readonly publicAddresses: Readonly<Record<string, pulumi.Output<string>>>;
  /**
   * What runs the members (Docker: the containers; Kubernetes: the Deployment or StatefulSet):
   * a `dependsOn` on them waits until the members are up and healthy.
   */
  readonly resources: readonly pulumi.Resource[];
  /**
   * Changes whenever members are re-created (Docker: container ids). A balancer that resolves
   * member names once at start renders it into its config, so it restarts with the members.
   */
  readonly membersRevision: pulumi.Output<string>;
  /**
   * Each metrics port's scrape targets, by port name: one per member, named after it, at the
   * address a scraper on the platform reads it from (Docker: the member's or its sidecar's host
   * name). Empty on Kubernetes, where the scraper discovers pods (PodMonitor).
   */
  readonly metrics: Readonly<
    Record<string, readonly { readonly instance: string; readonly address: string; readonly path: string }[]>
  >;
}

/**
 * Where workloads run. A component hands a {@link WorkloadSpec} to `deploy` and gets addresses
 * back; it never imports a provider SDK. A new platform is one new class.
 */
export interface Platform {
  /** `docker` or `kubernetes`: for outputs and messages, never for branching in components. */
  readonly kind: PlatformKind;
  deploy(name: string, spec: WorkloadSpec, opts?: pulumi.ComponentResourceOptions): Workload;
  /**
   * Runs `spec` once to completion under `name`; `pulumi up` fails when it fails or overruns.
   * Docker: a container run attached (its exit code checked). Kubernetes: a Job (its own
   * NetworkPolicy, the restricted pod profile, no API token). Returns the name once the task
   * succeeded: put it among the calling component's registered outputs, so a failure fails
   * the update.
   */
  runTask(name: string, spec: TaskSpec, opts?: pulumi.ComponentResourceOptions): pulumi.Output<string>;
  /**
   * The objects that tell the platform's own Prometheus what to scrape and which rules to
   * evaluate (Kubernetes with the Prometheus Operator: a PodMonitor per job and a
   * PrometheusRule). A platform without such an operator refuses.
   */
  monitors(name: string, spec: MonitorsSpec, opts?: pulumi.ComponentResourceOptions): pulumi.Resource[];
  /**
   * The host names `deploy` will give the members of a stateful workload of this name, known
   * before it exists (a database's config names its peers).
   */
  memberHosts(name: string, replicas: number): string[];
  /**
   * Address ranges (CIDRs) members connect to each other from, for a server's own allow list
   * (pg_hba). Undefined on Docker, where a server shares a network only with its peers and the
   * tiers it admits (one network per service and client tier): "the same network" says it exactly.
   */
  readonly memberNetworks?: readonly string[];
  /**
   * The scraper's tier on this platform, when one is admitted to metrics ports (Docker: the tier
   * of the Prometheus container, `monitoring`); undefined where the scraper is found otherwise
   * (Kubernetes: by namespace and pod labels) or where there is none.
   */
  readonly scraperTier?: string;
  /**
   * Whether a member's sidecars share its loopback (Kubernetes: one pod, one network namespace),
   * so a server may admit its exporter from 127.0.0.1 only; else they reach it over its networks.
   */
  readonly sidecarsShareLoopback: boolean;
  /** Whether `deploy` can build images (`WorkloadSpec.build`); Kubernetes needs a registry. */
  readonly canBuildImages: boolean;
  /**
   * The store a stateful workload of this name can keep shared state in through the platform's
   * API, or undefined where there is none (Docker: use an EtcdCluster).
   */
  stateStore(name: string): PlatformStateStore | undefined;
}

export type PlatformKind = "docker" | "kubernetes";
