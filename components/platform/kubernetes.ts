import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  dockerBuild,
  fileKey,
  filesDigest,
  resolveHealthCheck,
  sortedEntries,
  statefulMemberNames,
  validateWorkloadSpec,
} from "./spec";
import type {
  HealthCheck,
  MemberAddress,
  Platform,
  PlatformStateStore,
  Workload,
  WorkloadSpec,
} from "./types";

import Inputs = k8s.types.input.core.v1;

export interface KubernetesPlatformArgs {
  /** Namespace every workload goes into; created by the platform. */
  readonly namespace: string;
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
}

/** Where pod addresses come from on nearly every cluster (RFC 1918). */
export const PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] as const;

/** Label keys shared by every object, so `kubectl get -l app.kubernetes.io/part-of=ha-backend` finds them. */
const PART_OF = "app.kubernetes.io/part-of";
const NAME = "app.kubernetes.io/name";
const TIER = "ha-backend/tier";
const DIGEST = "ha-backend/config-digest";
/** Annotation on a workload's ConfigMap: JSON map from data key to the file's path in the container. */
export const PATHS = "ha-backend/file-paths";

/**
 * Runs workloads on a Kubernetes cluster: Deployments for stateless tiers and StatefulSets
 * (with a headless Service and one PersistentVolumeClaim per member) for stateful ones, plus
 * Services, PodDisruptionBudgets, NetworkPolicies, ConfigMaps and Secrets.
 */
export class KubernetesPlatform extends pulumi.ComponentResource implements Platform {
  public readonly kind = "kubernetes" as const;
  public readonly canBuildImages: boolean;
  public readonly memberNetworks: readonly string[];
  /** The namespace name, as an output so every object waits for the namespace to exist. */
  public readonly namespace: pulumi.Output<string>;
  private readonly args: KubernetesPlatformArgs;
  private readonly domain: string;

  constructor(name: string, args: KubernetesPlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha:platform:KubernetesPlatform", name, {}, opts);
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(args.namespace)) {
      throw new Error(
        `KubernetesPlatform "${name}": namespace must be a DNS label (a-z, 0-9, '-', at most 63), but ` +
          `${JSON.stringify(args.namespace)} was provided. Use e.g. ecommerce-prod.`,
      );
    }
    if (
      args.imageRegistry !== undefined &&
      !/^[a-z0-9.-]+(:[0-9]+)?(\/[a-z0-9._-]+)*$/.test(args.imageRegistry)
    ) {
      throw new Error(
        `KubernetesPlatform "${name}": imageRegistry must be a registry host with an optional path ` +
          `(lowercase, no tag), but ${JSON.stringify(args.imageRegistry)} was provided. Use e.g. registry.example.com/shop.`,
      );
    }
    this.args = args;
    this.canBuildImages = args.imageRegistry !== undefined;
    this.memberNetworks = [...(args.podNetworks ?? PRIVATE_NETWORKS)];
    for (const cidr of this.memberNetworks) {
      if (!/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/.test(cidr) && !/^[0-9a-f:]+\/\d{1,3}$/i.test(cidr)) {
        throw new Error(
          `KubernetesPlatform "${name}": podNetworks must list CIDRs, but ${JSON.stringify(cidr)} was provided. Use e.g. 10.244.0.0/16.`,
        );
      }
    }
    this.domain = args.clusterDomain ?? "cluster.local";
    const ns = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      { metadata: { name: args.namespace, labels: { [PART_OF]: "ha-backend" } } },
      { parent: this },
    );
    this.namespace = ns.metadata.name;
    this.registerOutputs({ namespace: this.namespace });
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
      { parent },
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
      { parent },
    );
    const binding = new k8s.rbac.v1.RoleBinding(
      `${name}-rolebinding`,
      {
        metadata: meta(""),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: account.metadata.name, namespace: this.args.namespace }],
      },
      { parent },
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

  /** A built image, pushed to the registry; pods pull it by digest once the push has one. */
  private builtImage(name: string, spec: WorkloadSpec, parent: pulumi.Resource): pulumi.Output<string> {
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
      { parent },
    );
    return pulumi.all([image.repoDigest, image.imageName]).apply(([digest, ref]) => digest || ref);
  }

  deploy(name: string, spec: WorkloadSpec, opts?: pulumi.ComponentResourceOptions): Workload {
    validateWorkloadSpec(name, spec);
    const parent = opts?.parent ?? this;
    const image = spec.build ? this.builtImage(name, spec, parent) : spec.image;
    const ns = this.args.namespace;
    const selector = { [NAME]: name, [PART_OF]: "ha-backend" };
    const labels = { ...selector, [TIER]: spec.tier, "app.kubernetes.io/managed-by": "pulumi" };
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
            { parent },
          );
    const secret =
      Object.keys(spec.secretEnv ?? {}).length === 0
        ? undefined
        : new k8s.core.v1.Secret(
            `${name}-env`,
            {
              metadata: meta("-env"),
              type: "Opaque",
              // Each value secret on its own: keys stay readable in a diff, values never.
              stringData: Object.fromEntries(
                sortedEntries(spec.secretEnv).map(([k, v]) => [k, pulumi.secret(v)]),
              ),
            },
            { parent },
          );

    const secretFiles = sortedEntries(spec.secretFiles);
    const fileSecret =
      secretFiles.length === 0
        ? undefined
        : new k8s.core.v1.Secret(
            `${name}-secret-files`,
            {
              metadata: meta("-secret-files"),
              type: "Opaque",
              stringData: Object.fromEntries(secretFiles.map(([p, c]) => [fileKey(p), pulumi.secret(c)])),
            },
            { parent },
          );

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
    mounts.push(
      ...secretFiles.map(([path]) => ({
        name: "secret-files",
        mountPath: path,
        subPath: fileKey(path),
        readOnly: true,
      })),
    );
    if (spec.volume) mounts.push({ name: "data", mountPath: spec.volume.mountPath });

    const health = spec.healthCheck ? resolveHealthCheck(spec.healthCheck) : undefined;
    const nonRoot = spec.runAsUser !== undefined;
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
      resources: spec.resources && {
        requests: { cpu: spec.resources.cpu, memory: spec.resources.memory },
        limits: { memory: spec.resources.memory },
      },
      securityContext: {
        allowPrivilegeEscalation: false,
        // Images that start as root (database entrypoints chown their data) need their capabilities.
        ...(nonRoot
          ? { runAsNonRoot: true, runAsUser: spec.runAsUser, capabilities: { drop: ["ALL"] } }
          : {}),
      },
    };

    const volumes: Inputs.Volume[] = [
      ...(configMap ? [{ name: "files", configMap: { name: `${name}-files` } }] : []),
      ...(fileSecret
        ? [{ name: "secret-files", secret: { secretName: `${name}-secret-files`, defaultMode: 0o444 } }]
        : []),
    ];
    // Only workloads that use the API get a token, and only for the rules they asked for.
    const access = spec.apiAccess ? this.apiAccess(name, spec, meta, parent) : [];
    const podSpec: Inputs.PodSpec = {
      serviceAccountName: access.length > 0 ? name : undefined,
      automountServiceAccountToken: access.length > 0,
      containers: [container],
      volumes,
      securityContext: {
        seccompProfile: { type: "RuntimeDefault" },
        ...(nonRoot ? { runAsNonRoot: true, runAsUser: spec.runAsUser, fsGroup: spec.runAsUser } : {}),
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
      ],
    };
    const template = {
      // A changed config file changes the digest, which rolls the pods (subPath mounts never refresh).
      metadata: { labels, annotations: { [DIGEST]: files.apply((f) => filesDigest(f)) } },
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
      { parent },
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
      { parent },
    );

    if (spec.kind === "stateless") {
      new k8s.apps.v1.Deployment(
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
        { parent, dependsOn },
      );
    } else {
      const volume = spec.volume;
      new k8s.apps.v1.StatefulSet(
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
        // Protected data: `pulumi destroy` stops here instead of deleting the claims' owner.
        { parent, dependsOn, protect: volume?.protect ?? false },
      );
    }

    if (spec.replicas >= 2) {
      new k8s.policy.v1.PodDisruptionBudget(
        `${name}-pdb`,
        { metadata: meta(""), spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
        { parent },
      );
    }

    new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      { metadata: meta(""), spec: networkPolicySpec(spec, selector) },
      { parent },
    );

    const publicAddresses: Record<string, pulumi.Output<string>> = {};
    const publicPorts = spec.publicPorts ?? [];
    if (publicPorts.length > 0) {
      const pub = new k8s.core.v1.Service(
        `${name}-public`,
        {
          metadata: meta("-public"),
          spec: {
            type: "LoadBalancer",
            selector,
            ports: publicPorts.map((p) => ({ name: p.target, port: p.port, targetPort: p.target })),
          },
        },
        { parent },
      );
      const host = pub.status.apply((st) => {
        const ingress = st?.loadBalancer?.ingress?.[0];
        // Known only once the cloud has provisioned the load balancer.
        return ingress?.hostname ?? ingress?.ip ?? "pending";
      });
      for (const p of publicPorts) publicAddresses[p.target] = pulumi.interpolate`${host}:${p.port}`;
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
      // Kubernetes members are found by Service/DNS at run time; nothing to restart a balancer for.
      membersRevision: pulumi.output(""),
    };
  }
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
 * Default deny for ingress, then: peers of the same workload on any port, the tiers in
 * `allowFrom` on the workload's ports, and anyone on the public port.
 */
function networkPolicySpec(
  spec: WorkloadSpec,
  selector: Record<string, string>,
): k8s.types.input.networking.v1.NetworkPolicySpec {
  const ports = sortedEntries(spec.ports).map(([, port]) => ({ port, protocol: "TCP" }));
  const allowFrom = [...new Set(spec.allowFrom ?? [])].sort();
  const ingress: k8s.types.input.networking.v1.NetworkPolicyIngressRule[] = [
    { from: [{ podSelector: { matchLabels: selector } }] },
  ];
  if (allowFrom.length > 0) {
    ingress.push({
      from: [{ podSelector: { matchExpressions: [{ key: TIER, operator: "In", values: allowFrom }] } }],
      ports,
    });
  }
  if ((spec.publicPorts ?? []).length > 0) {
    ingress.push({
      from: [{ ipBlock: { cidr: "0.0.0.0/0" } }],
      ports: (spec.publicPorts ?? []).map((p) => ({ port: spec.ports[p.target], protocol: "TCP" })),
    });
  }
  return { podSelector: { matchLabels: selector }, policyTypes: ["Ingress"], ingress };
}
