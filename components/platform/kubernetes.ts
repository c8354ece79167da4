import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import {
  builtImageTag,
  configDigest,
  dockerBuild,
  fileKey,
  healthWaitSeconds,
  resolveHealthCheck,
  sidecarValues,
  checkProbes,
  compareStrings,
  sortedEntries,
  statefulMemberNames,
  validateTaskSpec,
  validateWorkloadSpec,
} from "./spec";
import type {
  HealthCheck,
  ImageBuild,
  MemberAddress,
  MonitorsSpec,
  Platform,
  PlatformStateStore,
  SidecarSpec,
  TaskSpec,
  Workload,
  WorkloadSpec,
} from "./types";

import Inputs = k8s.types.input.core.v1;
import { componentToken } from "../resource";
import { invalidArg } from "../errors";
import { cidrProblem, escapeRegex, isDnsLabel, SYSTEM_NAMESPACES } from "../validation";

export interface KubernetesPlatformArgs {
  /** Namespace every workload goes into; created by the platform. */
  readonly namespace: string;
  /**
   * Allows a namespace Kubernetes owns (default, kube-system, kube-public, kube-node-lease).
   * @default false
   */
  readonly allowSystemNamespace?: boolean;
  /** StorageClass for persistent volumes. @default the cluster's default class */
  readonly storageClass?: string;
  /** Cluster DNS domain used in member addresses. @default "cluster.local" */
  readonly clusterDomain?: string;
  /**
   * Registry (and path) images built by `pulumi up` are pushed to, e.g. `registry.example.com/shop`;
   * the machine running `pulumi up` needs Docker and a `docker login` to it. Unset: workloads
   * that need a built image must be given a prebuilt one.
   */
  readonly imageRegistry?: string;
  /**
   * The pod network's ranges, for allow lists inside servers (pg_hba); NetworkPolicies still
   * decide which pods get through. @default the private ranges 10/8, 172.16/12, 192.168/16
   */
  readonly podNetworks?: readonly string[];
  /**
   * How the public ports are exposed: `LoadBalancer` (a cloud load balancer), `NodePort` (every
   * node's port; kind, minikube, bare metal) or `ClusterIP` (an ingress or a port-forward in
   * front). @default "LoadBalancer"
   */
  readonly serviceType?: PublicServiceType;
  /**
   * How long `pulumi up` waits for the public Service (a cloud load balancer's address) before
   * it fails instead of hanging. @default 10
   */
  readonly serviceTimeoutMinutes?: number;
  /**
   * Where the API server listens (e.g. the `kubernetes` Service's endpoints), for the egress
   * rule of workloads that use the API. @default anywhere (0.0.0.0/0), on ports 443 and 6443
   */
  readonly apiServerCidrs?: readonly string[];
  /**
   * The Prometheus that scrapes the stack (the Prometheus Operator's, typically): its namespace
   * and pod labels. Every workload's NetworkPolicy admits these pods to its metrics ports, and
   * nothing else. Unset: no scraper is admitted (the metrics ports stay closed).
   */
  readonly scraper?: ScraperSelector;
}

/** Where the scraping Prometheus runs on a cluster. */
export interface ScraperSelector {
  /** e.g. `monitoring` */
  readonly namespace: string;
  /** e.g. `{ "app.kubernetes.io/name": "prometheus" }` */
  readonly podLabels: Readonly<Record<string, string>>;
}

/** CPU and memory of an exporter sidecar that sets none: exporters are small. */
export const SIDECAR_DEFAULT_RESOURCES = { cpu: "50m", memory: "64Mi" } as const;

export const PUBLIC_SERVICE_TYPES = ["LoadBalancer", "NodePort", "ClusterIP"] as const;
export type PublicServiceType = (typeof PUBLIC_SERVICE_TYPES)[number];

/** Pod Security admission: every namespace enforces (and warns and audits) the restricted profile. */
export const POD_SECURITY_LABELS = {
  "pod-security.kubernetes.io/enforce": "restricted",
  "pod-security.kubernetes.io/enforce-version": "latest",
  "pod-security.kubernetes.io/warn": "restricted",
  "pod-security.kubernetes.io/warn-version": "latest",
  "pod-security.kubernetes.io/audit": "restricted",
  "pod-security.kubernetes.io/audit-version": "latest",
} as const;

/** Where the cluster DNS runs on nearly every cluster (kube-dns or CoreDNS keep this label). */
export const CLUSTER_DNS = { namespace: "kube-system", labels: { "k8s-app": "kube-dns" } } as const;

/** The API server's ports (443 behind the `kubernetes` Service, 6443 on the control plane nodes). */
const API_SERVER_PORTS = [443, 6443] as const;

/** Label on a workload's pods for each tier that may connect to them; egress rules select it. */
export const allowFromLabel = (tier: string): string => `allow-from.ha-backend/${tier}`;

/** Where pod addresses come from on nearly every cluster (RFC 1918). */
export const PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] as const;

/** Label keys shared by every object, so `kubectl get -l app.kubernetes.io/part-of=ha-backend` finds them. */
const PART_OF = "app.kubernetes.io/part-of";
const NAME = "app.kubernetes.io/name";
const TIER = "ha-backend/tier";
/**
 * On the pods of a workload that probes others' public ports from inside (`probes`): published
 * workloads admit it there whatever the Service type (an `ipBlock` may not match pod addresses).
 */
const PROBER = "ha-backend/prober";
const DIGEST = "ha-backend/config-digest";
/** Annotation on a workload's ConfigMap: JSON map from data key to the file's path in the container. */
export const PATHS = "ha-backend/file-paths";

/** Every rule on the platform's args, before it creates anything (pure; the program's preflight calls it). */
export function validateKubernetesPlatformArgs(name: string, args: KubernetesPlatformArgs): void {
  const fail = (field: string, rule: string, value: unknown, fix: string): never =>
    invalidArg("KubernetesPlatform", name, field, rule, value, fix);
  if (!isDnsLabel(args.namespace)) {
    fail(
      "namespace",
      "be a DNS label (a-z, 0-9, '-', at most 63)",
      args.namespace,
      "Use e.g. ecommerce-prod.",
    );
  }
  if (SYSTEM_NAMESPACES.includes(args.namespace) && args.allowSystemNamespace !== true) {
    fail(
      "namespace",
      `not be a namespace Kubernetes owns (${SYSTEM_NAMESPACES.join(", ")})`,
      args.namespace,
      "Use a namespace of the stack's own, or set allowSystemNamespace: true if you mean it.",
    );
  }
  if (
    args.imageRegistry !== undefined &&
    !/^[a-z0-9.-]+(:[0-9]+)?(\/[a-z0-9._-]+)*$/.test(args.imageRegistry)
  ) {
    fail(
      "imageRegistry",
      "be a registry host with an optional path (lowercase, no tag)",
      args.imageRegistry,
      "Use e.g. registry.example.com/shop.",
    );
  }
  for (const [field, list] of [
    ["podNetworks", args.podNetworks],
    ["apiServerCidrs", args.apiServerCidrs],
  ] as const) {
    for (const cidr of list ?? []) {
      const problem = cidrProblem(cidr);
      if (problem !== undefined) fail(field, problem, cidr, "Use e.g. 10.244.0.0/16.");
    }
  }
  if (args.serviceType !== undefined && !PUBLIC_SERVICE_TYPES.includes(args.serviceType)) {
    fail(
      "serviceType",
      `be one of ${PUBLIC_SERVICE_TYPES.join(", ")}`,
      args.serviceType,
      "Use NodePort on kind, minikube or bare metal.",
    );
  }
  const wait = args.serviceTimeoutMinutes;
  if (wait !== undefined && (!Number.isInteger(wait) || wait < 1 || wait > 60)) {
    fail("serviceTimeoutMinutes", "be a whole number from 1 to 60", wait, "Use e.g. 10.");
  }
}

/**
 * Runs workloads on a Kubernetes cluster: Deployments for stateless tiers and StatefulSets
 * (with a headless Service and one PersistentVolumeClaim per member) for stateful ones, plus
 * Services, PodDisruptionBudgets, NetworkPolicies, ConfigMaps and Secrets.
 */
export class KubernetesPlatform extends pulumi.ComponentResource implements Platform {
  public readonly kind = "kubernetes" as const;
  /** Sidecars run in the member's pod. */
  public readonly sidecarsShareLoopback = true;
  public readonly canBuildImages: boolean;
  public readonly memberNetworks: readonly string[];
  /** The namespace name, as an output so every object waits for the namespace to exist. */
  public readonly namespace: pulumi.Output<string>;
  private readonly args: KubernetesPlatformArgs;
  private readonly domain: string;
  /** Keys the config digest on pod templates (see `configDigest`). */
  private readonly digestKey: pulumi.Output<string>;
  /**
   * The cluster every object goes to, and the engine images are built on: the platform's own
   * providers (its `provider`/`providers` options), passed explicitly because workloads are
   * parented under the components that deploy them, which may inherit other ones.
   */
  private readonly k8sProvider: pulumi.ProviderResource | undefined;
  private readonly dockerProvider: pulumi.ProviderResource | undefined;
  private readonly builtImages = new Map<string, pulumi.Output<string>>();
  /** Tiers deployed with public ports, for `probes`. */
  private readonly publishedTiers = new Set<string>();

  /**
   * The labels that make a pod a member of `tier` for the NetworkPolicies: a pod in
   * {@link namespace} with them (another stack's workers) reaches what the tier reaches.
   */
  public labelsOf(tier: string): Record<string, string> {
    return { [TIER]: tier };
  }

  constructor(name: string, args: KubernetesPlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("platform", "KubernetesPlatform", opts);
    super(token, name, {}, options);
    validateKubernetesPlatformArgs(name, args);
    this.args = args;
    this.canBuildImages = args.imageRegistry !== undefined;
    this.memberNetworks = [...(args.podNetworks ?? PRIVATE_NETWORKS)];
    this.domain = args.clusterDomain ?? "cluster.local";
    this.k8sProvider = this.getProvider("kubernetes:core/v1:Namespace");
    this.dockerProvider = this.getProvider("docker:index/image:Image");
    const own = { parent: this, provider: this.k8sProvider, protect: false };
    // A namespace Kubernetes owns (allowed on purpose) exists already and holds the cluster's own
    // pods: the platform neither creates it (nor deletes it on destroy) nor relabels it, and its
    // default deny covers the stack's pods only, never CoreDNS and the rest.
    const system = SYSTEM_NAMESPACES.includes(args.namespace);
    this.namespace = system
      ? pulumi.output(args.namespace)
      : new k8s.core.v1.Namespace(
          `${name}-namespace`,
          { metadata: { name: args.namespace, labels: { [PART_OF]: "ha-backend", ...POD_SECURITY_LABELS } } },
          own,
        ).metadata.name;
    // Nothing gets in or out of a pod unless a workload's own policy allows it.
    new k8s.networking.v1.NetworkPolicy(
      `${name}-default-deny`,
      {
        metadata: { name: "default-deny", namespace: this.namespace, labels: { [PART_OF]: "ha-backend" } },
        spec: {
          podSelector: system ? { matchLabels: { [PART_OF]: "ha-backend" } } : {},
          policyTypes: ["Ingress", "Egress"],
        },
      },
      own,
    );
    this.digestKey = pulumi.secret(
      new random.RandomPassword(
        `${name}-config-digest-key`,
        { length: 32, special: false },
        { parent: this, protect: false },
      ).result,
    );
    this.registerOutputs({ namespace: this.namespace });
  }

  /**
   * The Prometheus Operator's objects: a PodMonitor per job (pods of the job's workload, its named
   * port, relabelled so `job`, `ha_component` and `instance` (the pod's name) are the labels the
   * rules and dashboards use on every platform) and one PrometheusRule with every rule group.
   */
  monitors(name: string, spec: MonitorsSpec, opts?: pulumi.ComponentResourceOptions): pulumi.Resource[] {
    const parent = opts?.parent ?? this;
    const labels = { [PART_OF]: "ha-backend", "app.kubernetes.io/managed-by": "pulumi", ...spec.labels };
    const interval = `${spec.scrapeIntervalSeconds}s`;
    const monitors = [...spec.jobs]
      .sort((a, b) => compareStrings(a.job, b.job))
      .map(
        (j) =>
          new k8s.apiextensions.CustomResource(
            `${j.job}-podmonitor`,
            {
              apiVersion: "monitoring.coreos.com/v1",
              kind: "PodMonitor",
              metadata: { name: j.job, namespace: this.namespace, labels },
              spec: {
                selector: { matchLabels: { [NAME]: j.workload, [PART_OF]: "ha-backend" } },
                podMetricsEndpoints: [
                  {
                    port: j.port,
                    path: j.path,
                    interval,
                    relabelings: [
                      { action: "replace", targetLabel: "job", replacement: j.job },
                      { action: "replace", targetLabel: "ha_component", replacement: j.component },
                      {
                        action: "replace",
                        sourceLabels: ["__meta_kubernetes_pod_name"],
                        targetLabel: "instance",
                      },
                    ],
                  },
                ],
              },
            },
            this.childOpts(parent),
          ),
      );
    const probes = [...(spec.probes ?? [])]
      .sort((a, b) => compareStrings(a.job, b.job))
      .map(
        (p) =>
          new k8s.apiextensions.CustomResource(
            `${p.job}-probe`,
            {
              apiVersion: "monitoring.coreos.com/v1",
              kind: "Probe",
              metadata: { name: p.job, namespace: this.namespace, labels },
              spec: {
                jobName: p.job,
                interval,
                module: p.module,
                prober: { url: p.prober, path: "/probe" },
                targets: {
                  staticConfig: {
                    static: p.targets.map((t) => t.url),
                    labels: { ha_component: p.component },
                    // The operator sets `instance` to the URL probed: the member's name instead,
                    // as on Docker, so alerts name what they are about.
                    relabelingConfigs: p.targets.map((t) => ({
                      action: "replace",
                      sourceLabels: ["__param_target"],
                      regex: escapeRegex(t.url),
                      targetLabel: "instance",
                      replacement: t.instance,
                    })),
                  },
                },
              },
            },
            this.childOpts(parent),
          ),
      );
    const rule = new k8s.apiextensions.CustomResource(
      `${name}-rules`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { name: `${name}-rules`, namespace: this.namespace, labels },
        spec: { groups: spec.ruleGroups },
      },
      this.childOpts(parent),
    );
    const dashboards =
      Object.keys(spec.dashboards ?? {}).length === 0
        ? []
        : [
            new k8s.core.v1.ConfigMap(
              `${name}-dashboards`,
              {
                // The label kube-prometheus-stack's Grafana sidecar loads dashboards by.
                metadata: {
                  name: `${name}-dashboards`,
                  namespace: this.namespace,
                  labels: { ...labels, grafana_dashboard: "1" },
                },
                data: Object.fromEntries(sortedEntries(spec.dashboards)),
              },
              this.childOpts(parent),
            ),
          ];
    return [...monitors, ...probes, rule, ...dashboards];
  }

  /**
   * Options for an object of a deployed workload: under the deploying component, on this
   * platform's cluster, and never protected (only the StatefulSet holding data is, below).
   */
  private childOpts(parent: pulumi.Resource): pulumi.CustomResourceOptions {
    return { parent, provider: this.k8sProvider, protect: false };
  }

  /** The Secret `<name>-env` holding secret environment, when there is any. */
  private envSecret(
    name: string,
    secretEnv: WorkloadSpec["secretEnv"],
    metadata: k8s.types.input.meta.v1.ObjectMeta,
    parent: pulumi.Resource,
  ): k8s.core.v1.Secret | undefined {
    if (Object.keys(secretEnv ?? {}).length === 0) return undefined;
    return new k8s.core.v1.Secret(
      `${name}-env`,
      {
        metadata,
        type: "Opaque",
        // Each value secret on its own: keys stay readable in a diff, values never.
        stringData: Object.fromEntries(sortedEntries(secretEnv).map(([k, v]) => [k, pulumi.secret(v)])),
      },
      this.childOpts(parent),
    );
  }

  /** The Secret `<name>-secret-files` holding secret files by {@link fileKey}, when there are any. */
  private fileSecret(
    name: string,
    secretFiles: WorkloadSpec["secretFiles"],
    metadata: k8s.types.input.meta.v1.ObjectMeta,
    parent: pulumi.Resource,
  ): k8s.core.v1.Secret | undefined {
    if (Object.keys(secretFiles ?? {}).length === 0) return undefined;
    return new k8s.core.v1.Secret(
      `${name}-secret-files`,
      {
        // The paths are not secret: like the ConfigMap's, they let a reader (and synth) place each file.
        metadata: {
          ...metadata,
          annotations: {
            [PATHS]: JSON.stringify(
              Object.fromEntries(sortedEntries(secretFiles).map(([p]) => [fileKey(p), p])),
            ),
          },
        },
        type: "Opaque",
        stringData: Object.fromEntries(
          sortedEntries(secretFiles).map(([p, c]) => [fileKey(p), pulumi.secret(c)]),
        ),
      },
      this.childOpts(parent),
    );
  }

  /** A ServiceAccount with a Role of exactly `spec.apiAccess`, in the namespace; returns its name. */
  private apiAccess(
    name: string,
    spec: WorkloadSpec,
    meta: (suffix: string) => {
      name: string;
      namespace: pulumi.Output<string>;
      labels: Record<string, string>;
    },
    parent: pulumi.Resource,
  ): pulumi.Resource[] {
    const account = new k8s.core.v1.ServiceAccount(
      `${name}-account`,
      { metadata: meta(""), automountServiceAccountToken: false },
      this.childOpts(parent),
    );
    const role = new k8s.rbac.v1.Role(
      `${name}-role`,
      {
        metadata: meta(""),
        rules: (spec.apiAccess ?? []).map((r) => ({
          apiGroups: [""],
          resources: [...r.resources],
          verbs: [...r.verbs],
        })),
      },
      this.childOpts(parent),
    );
    const binding = new k8s.rbac.v1.RoleBinding(
      `${name}-rolebinding`,
      {
        metadata: meta(""),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: account.metadata.name, namespace: this.args.namespace }],
      },
      this.childOpts(parent),
    );
    return [account, role, binding];
  }

  memberHosts(name: string, replicas: number): string[] {
    // StatefulSet pods are addressable through the headless Service: <pod>.<service>.<ns>.svc.<domain>.
    return statefulMemberNames(name, replicas).map(
      (pod) => `${pod}.${name}-headless.${this.args.namespace}.svc.${this.domain}`,
    );
  }

  /** ConfigMaps and pod annotations in the platform's namespace, found by the pods' labels. */
  stateStore(): PlatformStateStore {
    return {
      kind: "kubernetes",
      namespace: this.args.namespace,
      labels: { [PART_OF]: "ha-backend" },
      nameLabel: NAME,
    };
  }

  /**
   * A built image, pushed to the registry; pods pull it by digest once the push has one. `image`
   * is the plain tag (see {@link builtImageTag}): it keys the one build and names the pushed image.
   */
  private builtImage(
    name: string,
    spec: { readonly image: string; readonly build?: ImageBuild },
    parent: pulumi.Resource,
  ): pulumi.Output<string> {
    // One build and push per image, shared by every workload and task that runs it.
    const built = this.builtImages.get(spec.image);
    if (built !== undefined) return built;
    const registry = this.args.imageRegistry;
    if (registry === undefined || spec.build === undefined) {
      throw new Error(
        `KubernetesPlatform: workload "${name}" needs its image built, but no imageRegistry was given. ` +
          "Set the platform's imageRegistry (and docker login to it), or give the workload a prebuilt image.",
      );
    }
    const image = new docker.Image(
      `${name}-image`,
      {
        imageName: `${registry}/${spec.image}`,
        build: { ...dockerBuild(spec.build), platform: "linux/amd64" },
      },
      { parent, provider: this.dockerProvider, protect: false },
    );
    const ref = pulumi.all([image.repoDigest, image.imageName]).apply(([digest, named]) => digest || named);
    this.builtImages.set(spec.image, ref);
    return ref;
  }

  runTask(name: string, spec: TaskSpec, opts?: pulumi.ComponentResourceOptions): pulumi.Output<string> {
    validateTaskSpec(name, spec);
    const parent = opts?.parent ?? this;
    const image = spec.build ? this.builtImage(name, spec, parent) : spec.image;
    const selector = { [NAME]: name, [PART_OF]: "ha-backend" };
    const labels = { ...selector, ...this.labelsOf(spec.tier), "app.kubernetes.io/managed-by": "pulumi" };
    const meta = (suffix: string) => ({ name: `${name}${suffix}`, namespace: this.namespace, labels });
    const files = sortedEntries(spec.files);
    const configMap =
      files.length === 0
        ? undefined
        : new k8s.core.v1.ConfigMap(
            `${name}-files`,
            {
              metadata: meta("-files"),
              data: pulumi
                .output(spec.files ?? {})
                .apply((f) => Object.fromEntries(sortedEntries(f).map(([p, c]) => [fileKey(p), c]))),
            },
            this.childOpts(parent),
          );
    const secret = this.envSecret(name, spec.secretEnv, meta("-env"), parent);
    const fileSecret = this.fileSecret(name, spec.secretFiles, meta("-secret-files"), parent);
    // Out: DNS and the pods that admit this tier (their own policies pick the ports). In: nothing.
    new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      {
        metadata: meta(""),
        spec: {
          podSelector: { matchLabels: selector },
          policyTypes: ["Ingress", "Egress"],
          ingress: [],
          egress: networkPolicySpec(
            { kind: "stateless", replicas: 1, image: spec.image, ports: {}, tier: spec.tier },
            selector,
            { serviceType: "ClusterIP", apiServerCidrs: [] },
          ).egress,
        },
      },
      this.childOpts(parent),
    );
    const nonRoot = spec.runAsUser !== undefined;
    const timeout = `${Math.ceil(spec.timeoutSeconds / 60) + 1}m`;
    const job = new k8s.batch.v1.Job(
      name,
      {
        metadata: meta(""),
        spec: {
          // A failed run is retried twice (a member restarting), all within the deadline.
          backoffLimit: 2,
          activeDeadlineSeconds: spec.timeoutSeconds,
          template: {
            metadata: { labels },
            spec: {
              restartPolicy: "Never",
              automountServiceAccountToken: false,
              securityContext: {
                seccompProfile: { type: "RuntimeDefault" },
                runAsNonRoot: true,
                ...(nonRoot ? { runAsUser: spec.runAsUser, runAsGroup: spec.runAsUser } : {}),
              },
              containers: [
                {
                  name: "task",
                  image,
                  command: [...spec.command],
                  env: [
                    ...sortedEntries(spec.env).map(([k, v]) => ({ name: k, value: v })),
                    ...sortedEntries(spec.secretEnv).map(([k]) => ({
                      name: k,
                      valueFrom: { secretKeyRef: { name: `${name}-env`, key: k } },
                    })),
                  ],
                  volumeMounts: [
                    ...files.map(([path]) => ({
                      name: "files",
                      mountPath: path,
                      subPath: fileKey(path),
                      readOnly: true,
                    })),
                    ...secretFileMounts(spec.secretFiles),
                  ],
                  resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "128Mi" } },
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ["ALL"] },
                    runAsNonRoot: true,
                    readOnlyRootFilesystem: true,
                  },
                },
              ],
              volumes: [
                ...(configMap ? [{ name: "files", configMap: { name: `${name}-files` } }] : []),
                ...(fileSecret ? [secretFilesVolume(name)] : []),
              ],
            },
          },
        },
      },
      // The provider waits for the Job to succeed and fails the update when it fails.
      {
        ...this.childOpts(parent),
        dependsOn: [
          ...[configMap, secret, fileSecret].filter(
            (r): r is k8s.core.v1.ConfigMap | k8s.core.v1.Secret => r !== undefined,
          ),
          ...(spec.after ?? []),
        ],
        customTimeouts: { create: timeout, update: timeout },
      },
    );
    return job.metadata.name;
  }

  deploy(name: string, given: WorkloadSpec, opts?: pulumi.ComponentResourceOptions): Workload {
    // An Output image comes back carrying its check: every use below is of this spec.
    const spec = validateWorkloadSpec(name, given);
    checkProbes(name, spec, this.publishedTiers);
    if ((spec.publicPorts ?? []).length > 0) this.publishedTiers.add(spec.tier);
    const parent = opts?.parent ?? this;
    const image = spec.build
      ? this.builtImage(name, { image: builtImageTag(name, spec.image), build: spec.build }, parent)
      : spec.image;
    const ns = this.args.namespace;
    const selector = { [NAME]: name, [PART_OF]: "ha-backend" };
    const labels = {
      ...selector,
      ...this.labelsOf(spec.tier),
      ...((spec.probes ?? []).length > 0 ? { [PROBER]: "true" } : {}),
      "app.kubernetes.io/managed-by": "pulumi",
    };
    const meta = (suffix: string) => ({ name: `${name}${suffix}`, namespace: this.namespace, labels });
    const ports = sortedEntries(spec.ports);
    const headless = `${name}-headless`;

    const files = pulumi.output(spec.files ?? {});
    const configMap =
      Object.keys(spec.files ?? {}).length === 0
        ? undefined
        : new k8s.core.v1.ConfigMap(
            `${name}-files`,
            {
              // Key -> path, so a reader (and `npm run synth`) can tell where each file lands.
              metadata: {
                ...meta("-files"),
                annotations: {
                  [PATHS]: JSON.stringify(
                    Object.fromEntries(sortedEntries(spec.files).map(([p]) => [fileKey(p), p])),
                  ),
                },
              },
              data: files.apply((f) => Object.fromEntries(sortedEntries(f).map(([p, c]) => [fileKey(p), c]))),
            },
            this.childOpts(parent),
          );
    const secret = this.envSecret(name, spec.secretEnv, meta("-env"), parent);

    // The sidecars' credential files live in the workload's Secret too; each container mounts its own.
    const allSecretFiles: Record<string, pulumi.Input<string>> = { ...spec.secretFiles };
    for (const sc of spec.sidecars ?? []) {
      for (const [path, content] of Object.entries(sc.secretFiles ?? {})) {
        allSecretFiles[path] = pulumi.output(content).apply((t) => sidecarValues(t, "127.0.0.1"));
      }
    }
    const fileSecret = this.fileSecret(name, allSecretFiles, meta("-secret-files"), parent);

    const memberVar = "HA_BACKEND_MEMBER";
    const env: Inputs.EnvVar[] = [
      // The pod's name is the member's name; later values may refer to it as $(HA_BACKEND_MEMBER).
      ...(spec.memberEnv
        ? [{ name: memberVar, valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }]
        : []),
      ...sortedEntries(spec.env).map(([k, v]) => ({ name: k, value: v })),
      ...sortedEntries(spec.memberEnv).map(([k, v]) => ({
        name: k,
        value: v
          .split("{host}")
          .join(`$(${memberVar}).${headless}.${ns}.svc.${this.domain}`)
          .split("{name}")
          .join(`$(${memberVar})`),
      })),
      // References only: the value lives in the Secret, so the pod spec stays reviewable.
      ...sortedEntries(spec.secretEnv).map(([k]) => ({
        name: k,
        valueFrom: { secretKeyRef: { name: `${name}-env`, key: k } },
      })),
    ];
    const mounts: Inputs.VolumeMount[] = sortedEntries(spec.files).map(([path]) => ({
      name: "files",
      mountPath: path,
      subPath: fileKey(path),
      readOnly: true,
    }));
    mounts.push(...secretFileMounts(spec.secretFiles));
    if (spec.volume) mounts.push({ name: "data", mountPath: spec.volume.mountPath });
    // A known image gets a read-only root and an empty scratch directory per path it writes.
    const scratch = spec.writablePaths === undefined ? [] : ["/tmp", ...spec.writablePaths];
    scratch.forEach((path, i) => mounts.push({ name: `scratch-${i}`, mountPath: path }));

    const health = spec.healthCheck ? resolveHealthCheck(spec.healthCheck) : undefined;
    const nonRoot = spec.runAsUser !== undefined;
    const resources = spec.resources ?? spec.defaultResources;
    const container: Inputs.Container = {
      name,
      image,
      command: spec.command ? [...spec.command] : undefined,
      args: spec.args ? [...spec.args] : undefined,
      ports: ports.map(([portName, port]) => ({ name: portName, containerPort: port, protocol: "TCP" })),
      env,
      volumeMounts: mounts,
      readinessProbe: health && probe(health, health.failureThreshold, 0),
      // Liveness restarts the container: give it twice the readiness budget and the start period,
      // so a slow member is taken out of rotation long before it is killed.
      livenessProbe:
        health &&
        probe(
          health.httpGet && health.livenessPath
            ? { ...health, httpGet: { ...health.httpGet, path: health.livenessPath } }
            : health,
          health.failureThreshold * 2,
          health.startPeriodSeconds,
        ),
      // Memory request = limit (no OOM surprises under pressure); no CPU limit, which only throttles.
      resources: resources && {
        requests: { cpu: resources.cpu, memory: resources.memory },
        limits: { memory: resources.memory },
      },
      // Pod Security "restricted": unprivileged, nothing to escalate to, no capabilities.
      securityContext: {
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        runAsNonRoot: true,
        ...(nonRoot ? { runAsUser: spec.runAsUser, runAsGroup: spec.runAsUser } : {}),
        readOnlyRootFilesystem: spec.writablePaths !== undefined,
      },
    };

    const published = (spec.publicPorts ?? []).length > 0;
    const allowFrom = [...new Set(spec.allowFrom ?? [])].sort();
    const volumes: Inputs.Volume[] = [
      ...(configMap ? [{ name: "files", configMap: { name: `${name}-files` } }] : []),
      ...(fileSecret ? [secretFilesVolume(name)] : []),
      ...scratch.map((_, i) => ({ name: `scratch-${i}`, emptyDir: {} })),
    ];
    // Only workloads that use the API get a token, and only for the rules they asked for.
    const access = spec.apiAccess ? this.apiAccess(name, spec, meta, parent) : [];
    const podSpec: Inputs.PodSpec = {
      serviceAccountName: access.length > 0 ? name : undefined,
      automountServiceAccountToken: access.length > 0,
      containers: [container, ...(spec.sidecars ?? []).map(sidecarContainer)],
      volumes,
      securityContext: {
        seccompProfile: { type: "RuntimeDefault" },
        // A user's image without a known uid must declare a numeric non-root USER itself.
        runAsNonRoot: true,
        // The volume (and scratch directories) belong to the member's group; chowned only when
        // the top directory does not match, so a large volume does not delay every start.
        ...(nonRoot
          ? {
              runAsUser: spec.runAsUser,
              runAsGroup: spec.runAsUser,
              fsGroup: spec.runAsUser,
              fsGroupChangePolicy: "OnRootMismatch",
            }
          : {}),
      },
      affinity: {
        // Preferred, not required: a small cluster still schedules every member.
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                topologyKey: "kubernetes.io/hostname",
                labelSelector: { matchLabels: selector },
              },
            },
          ],
        },
      },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "topology.kubernetes.io/zone",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: selector },
        },
        // The public entry point with externalTrafficPolicy Local answers only on nodes that run
        // a replica: never pile them onto one node while others are free.
        ...(published
          ? [
              {
                maxSkew: 1,
                topologyKey: "kubernetes.io/hostname",
                whenUnsatisfiable: "DoNotSchedule",
                labelSelector: { matchLabels: selector },
              },
            ]
          : []),
      ],
    };
    // Everything a pod reads at start: a change to any of them changes the pod template, which
    // rolls the pods (subPath mounts and env never refresh in a running pod).
    const digest = pulumi
      .all([this.digestKey, files, pulumi.output(allSecretFiles), pulumi.output(spec.secretEnv ?? {})])
      .apply(([key, f, sf, se]) => configDigest(key, { files: f, secretFiles: sf, secretEnv: se }));
    const template = {
      metadata: {
        // Tiers allowed in carry their label here, so their egress policies can select these pods.
        labels: { ...labels, ...Object.fromEntries(allowFrom.map((t) => [allowFromLabel(t), "true"])) },
        // An HMAC under a generated key: safe in the clear, so the template stays reviewable.
        annotations: { [DIGEST]: pulumi.unsecret(digest) },
      },
      spec: podSpec,
    };
    const dependsOn = [
      ...[configMap, secret, fileSecret].filter(
        (r): r is k8s.core.v1.ConfigMap | k8s.core.v1.Secret => r !== undefined,
      ),
      // Pods of a workload with API access must not start before their account and its rights.
      ...access,
    ];

    const servicePorts = ports.map(([portName, port]) => ({ name: portName, port, targetPort: portName }));
    new k8s.core.v1.Service(
      `${name}-headless`,
      {
        metadata: meta("-headless"),
        spec: {
          clusterIP: "None",
          selector,
          ports: servicePorts,
          // Stateful peers must find each other before they are ready (cluster bootstrap).
          publishNotReadyAddresses: spec.kind === "stateful",
        },
      },
      this.childOpts(parent),
    );
    new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: meta(""),
        spec: {
          type: "ClusterIP",
          selector,
          ports: servicePorts,
        },
      },
      this.childOpts(parent),
    );

    let owner: pulumi.Resource;
    if (spec.kind === "stateless") {
      owner = new k8s.apps.v1.Deployment(
        `${name}-deployment`,
        {
          metadata: meta(""),
          spec: {
            replicas: spec.replicas,
            selector: { matchLabels: selector },
            // Never fewer ready members than asked for during a rollout.
            strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
            minReadySeconds: 5,
            revisionHistoryLimit: 5,
            template,
          },
        },
        { ...this.childOpts(parent), dependsOn },
      );
    } else {
      const volume = spec.volume;
      const rollout = `${statefulRolloutMinutes(spec)}m`;
      owner = new k8s.apps.v1.StatefulSet(
        `${name}-statefulset`,
        {
          metadata: meta(""),
          spec: {
            replicas: spec.replicas,
            serviceName: headless,
            // OrderedReady starts member k+1 only once member k is ready: a member that needs a
            // quorum to be ready would wait forever for members that are never started.
            podManagementPolicy: spec.startTogether ? "Parallel" : "OrderedReady",
            selector: { matchLabels: selector },
            updateStrategy: { type: "RollingUpdate" },
            template,
            volumeClaimTemplates: volume
              ? [
                  {
                    metadata: { name: "data", labels: selector },
                    spec: {
                      accessModes: ["ReadWriteOnce"],
                      storageClassName: volume.storageClass ?? this.args.storageClass,
                      resources: { requests: { storage: `${volume.sizeGi}Gi` } },
                    },
                  },
                ]
              : undefined,
            persistentVolumeClaimRetentionPolicy: {
              whenDeleted: volume?.protect ? "Retain" : "Delete",
              whenScaled: "Retain",
            },
          },
        },
        // Protected data: `pulumi destroy` stops here instead of deleting the claims' owner, and
        // a delete leaves the StatefulSet's claims (Retain above) and the object itself in place.
        // Rollouts of a large volume copy data (base backups, state transfers): sized timeouts.
        {
          ...this.childOpts(parent),
          dependsOn,
          protect: volume?.protect ?? false,
          retainOnDelete: volume?.protect ?? false,
          customTimeouts: { create: rollout, update: rollout },
        },
      );
    }

    if (spec.replicas >= 2) {
      new k8s.policy.v1.PodDisruptionBudget(
        `${name}-pdb`,
        { metadata: meta(""), spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
        this.childOpts(parent),
      );
    }

    new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      {
        metadata: meta(""),
        spec: networkPolicySpec(spec, selector, {
          serviceType: this.args.serviceType ?? "LoadBalancer",
          apiServerCidrs: this.args.apiServerCidrs ?? ["0.0.0.0/0"],
          scraper: this.args.scraper,
        }),
      },
      this.childOpts(parent),
    );

    const publicAddresses: Record<string, pulumi.Output<string>> = {};
    const publicPorts = spec.publicPorts ?? [];
    if (publicPorts.length > 0) {
      const type = this.args.serviceType ?? "LoadBalancer";
      const timeout = `${this.args.serviceTimeoutMinutes ?? 10}m`;
      const pub = new k8s.core.v1.Service(
        `${name}-public`,
        {
          metadata: meta("-public"),
          spec: {
            type,
            // Local: traffic goes only to replicas on the node it arrived at, so the balancer sees
            // the client's own address (per-client rate limits, logs); Cluster would show a node's.
            externalTrafficPolicy: type === "ClusterIP" ? undefined : "Local",
            selector,
            ports: publicPorts.map((p) => ({ name: p.target, port: p.port, targetPort: p.target })),
          },
        },
        // A cloud that never assigns an address fails `pulumi up` after this, instead of hanging.
        { ...this.childOpts(parent), customTimeouts: { create: timeout, update: timeout } },
      );
      for (const p of publicPorts) {
        publicAddresses[p.target] =
          type === "LoadBalancer"
            ? pub.status.apply((st) => {
                const ingress = st?.loadBalancer?.ingress?.[0];
                // Known only once the cloud has provisioned the load balancer.
                return `${ingress?.hostname ?? ingress?.ip ?? "pending"}:${p.port}`;
              })
            : type === "NodePort"
              ? pub.spec.ports.apply(
                  (ps) => `<node address>:${ps?.find((x) => x.name === p.target)?.nodePort ?? "pending"}`,
                )
              : pulumi.output(`${name}-public.${ns}.svc.${this.domain}:${p.port}`);
      }
    }

    const svc = `${ns}.svc.${this.domain}`;
    const names = statefulMemberNames(name, spec.replicas);
    const members: MemberAddress[] =
      spec.kind === "stateful"
        ? this.memberHosts(name, spec.replicas).map((host, i) => ({ name: names[i], host }))
        : [];
    return {
      name,
      serviceHost: `${name}.${svc}`,
      discoveryHost: `${headless}.${svc}`,
      members,
      ports: { ...spec.ports },
      publicAddresses,
      resources: [owner],
      // Kubernetes members are found by Service/DNS at run time; nothing to restart a balancer for.
      membersRevision: pulumi.output(""),
      // The scraper discovers the pods (PodMonitor): no static targets.
      metrics: {},
    };
  }
}

/**
 * An exporter beside the member in its pod: it reaches the member over the pod's loopback
 * (`{self}`), reads only its own credential files, and runs under the restricted profile with a
 * read-only root and memory request = limit.
 */
function sidecarContainer(sc: SidecarSpec): Inputs.Container {
  const resources = sc.resources ?? SIDECAR_DEFAULT_RESOURCES;
  return {
    name: sc.name,
    image: sc.image,
    args: sc.args ? sidecarValues([...sc.args], "127.0.0.1") : undefined,
    ports: sortedEntries(sc.ports).map(([portName, port]) => ({
      name: portName,
      containerPort: port,
      protocol: "TCP",
    })),
    env: sortedEntries(sidecarValues(sc.env ?? {}, "127.0.0.1")).map(([k, v]) => ({ name: k, value: v })),
    volumeMounts: secretFileMounts(sc.secretFiles),
    resources: {
      requests: { cpu: resources.cpu, memory: resources.memory },
      limits: { memory: resources.memory },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
      runAsUser: sc.runAsUser,
      runAsGroup: sc.runAsUser,
      readOnlyRootFilesystem: true,
    },
  };
}

/** The port numbers of a workload's metrics ports (its own or its sidecars'), sorted. */
function metricsPortNumbers(spec: WorkloadSpec): number[] {
  const all: Record<string, number> = { ...spec.ports };
  for (const sc of spec.sidecars ?? []) Object.assign(all, sc.ports);
  return [...new Set((spec.metricsPorts ?? []).map((m) => all[m.port]))].sort((a, b) => a - b);
}

/**
 * The volume of a workload's or task's `<name>-secret-files` Secret. The kubelet writes its files
 * owned by root (group `fsGroup` where the pod sets one): 0444 lets the container's own user read
 * them whatever its uid, also a task's pod that sets no `fsGroup`, and the pod's one container
 * runs no other user. Only the files mounted by path appear in the container.
 */
function secretFilesVolume(name: string): Inputs.Volume {
  return { name: "secret-files", secret: { secretName: `${name}-secret-files`, defaultMode: 0o444 } };
}

/** One read-only subPath mount per secret file, at its path. */
function secretFileMounts(secretFiles: WorkloadSpec["secretFiles"]): Inputs.VolumeMount[] {
  return sortedEntries(secretFiles).map(([path]) => ({
    name: "secret-files",
    mountPath: path,
    subPath: fileKey(path),
    readOnly: true,
  }));
}

/**
 * Minutes a StatefulSet rollout may take: every member's health wait (a copy of its volume
 * included), one after another unless members start together; at least Pulumi's default 10.
 */
export function statefulRolloutMinutes(spec: WorkloadSpec): number {
  const health = spec.healthCheck ? resolveHealthCheck(spec.healthCheck) : undefined;
  const perMember = health ? healthWaitSeconds(health, spec.volume?.sizeGi) : 60;
  const members = spec.startTogether ? 1 : spec.replicas;
  return Math.max(10, Math.ceil((perMember * members) / 60));
}

function probe(
  h: HealthCheck & { intervalSeconds: number; timeoutSeconds: number },
  failures: number,
  delay: number,
): Inputs.Probe {
  return {
    httpGet: h.httpGet ? { path: h.httpGet.path, port: h.httpGet.port } : undefined,
    exec: h.exec ? { command: [...h.exec] } : undefined,
    tcpSocket: h.tcpPort ? { port: h.tcpPort } : undefined,
    periodSeconds: h.intervalSeconds,
    timeoutSeconds: h.timeoutSeconds,
    failureThreshold: failures,
    initialDelaySeconds: delay,
  };
}

/**
 * The workload's allow list under the namespace's default deny, both ways. In: members from
 * each other on any port; the tiers in `allowFrom` on every port but the peer ports; anyone on
 * the public ports. Out: the cluster DNS; the members; every pod that admits this tier (labelled
 * `allow-from.ha-backend/<tier>`, the destination's own policy picks the ports); the API server
 * for workloads that use it.
 */
export function networkPolicySpec(
  spec: WorkloadSpec,
  selector: Record<string, string>,
  edge: {
    readonly serviceType: PublicServiceType;
    readonly apiServerCidrs: readonly string[];
    readonly scraper?: ScraperSelector;
  },
): k8s.types.input.networking.v1.NetworkPolicySpec {
  const peerOnly = new Set(spec.peerPorts ?? []);
  const clientPorts = sortedEntries(spec.ports)
    .filter(([name]) => !peerOnly.has(name))
    .map(([, port]) => ({ port, protocol: "TCP" }));
  const allowFrom = [...new Set(spec.allowFrom ?? [])].sort();
  const ingress: k8s.types.input.networking.v1.NetworkPolicyIngressRule[] = [
    { from: [{ podSelector: { matchLabels: selector } }] },
  ];
  if (allowFrom.length > 0 && clientPorts.length > 0) {
    ingress.push({
      from: [{ podSelector: { matchExpressions: [{ key: TIER, operator: "In", values: allowFrom }] } }],
      ports: clientPorts,
    });
  }
  if ((spec.publicPorts ?? []).length > 0) {
    ingress.push({
      // ClusterIP: only what runs in the cluster (an ingress controller, a port-forward) gets here.
      // The stack's prober (in its namespace) always: an ipBlock may not match a pod's address.
      from: [
        edge.serviceType === "ClusterIP" ? { namespaceSelector: {} } : { ipBlock: { cidr: "0.0.0.0/0" } },
        { podSelector: { matchLabels: { [PROBER]: "true" } } },
      ],
      ports: (spec.publicPorts ?? []).map((p) => ({ port: spec.ports[p.target], protocol: "TCP" })),
    });
  }
  const metricsPorts = metricsPortNumbers(spec);
  if (edge.scraper !== undefined && metricsPorts.length > 0) {
    ingress.push({
      // The scraper, and only on the metrics ports.
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": edge.scraper.namespace } },
          podSelector: { matchLabels: { ...edge.scraper.podLabels } },
        },
      ],
      ports: metricsPorts.map((port) => ({ port, protocol: "TCP" })),
    });
  }
  const egress: k8s.types.input.networking.v1.NetworkPolicyEgressRule[] = [
    {
      to: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": CLUSTER_DNS.namespace } },
          podSelector: { matchLabels: { ...CLUSTER_DNS.labels } },
        },
      ],
      ports: [
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ],
    },
    { to: [{ podSelector: { matchLabels: selector } }] },
    { to: [{ podSelector: { matchLabels: { [allowFromLabel(spec.tier)]: "true" } } }] },
  ];
  const probed = [...new Set(spec.probes ?? [])].sort();
  if (probed.length > 0) {
    // A prober: the published tiers' pods (their own policy admits it on the public ports only).
    egress.push({
      to: [{ podSelector: { matchExpressions: [{ key: TIER, operator: "In", values: probed }] } }],
    });
  }
  if (spec.apiAccess !== undefined) {
    // The API server is not a pod and its address differs per cluster: anywhere unless given.
    egress.push({
      to: edge.apiServerCidrs.map((cidr) => ({ ipBlock: { cidr } })),
      ports: API_SERVER_PORTS.map((port) => ({ port, protocol: "TCP" })),
    });
  }
  return { podSelector: { matchLabels: selector }, policyTypes: ["Ingress", "Egress"], ingress, egress };
}
