/**
 * What a change to a synth tree means for the running system: which resources the engine would
 * replace or restart, which of them hold data, which network paths open. Pure functions over the
 * trees `npm run synth` writes; the config diff (scripts/config-diff.ts) builds its report on them.
 *
 * The model follows the providers this program uses:
 * - Docker (the Terraform docker provider under @pulumi/docker): a container is updated in place
 *   only for its restart policy and CPU/memory limits; any other change recreates it. Volumes,
 *   networks and images are replaced on any change.
 * - Kubernetes: a change to a workload's pod template rolls its pods; fields the API server
 *   refuses to change (a StatefulSet's volumeClaimTemplates, selector, serviceName,
 *   podManagementPolicy; a Deployment's selector; a Job's template; a PVC's spec but its size;
 *   a Service's clusterIP) make Pulumi replace the object, as pulumi-kubernetes does for a
 *   ConfigMap's or Secret's data by default.
 * - Generated secrets (random, tls) are replaced, with a new value, when any input changes.
 */

/** One resource as resources.json lists it. */
export interface TreeResource {
  readonly type: string;
  readonly name: string;
  readonly parent: string | null;
  readonly custom: boolean;
  readonly options: {
    readonly protect?: boolean;
    readonly retainOnDelete?: boolean;
    readonly deleteBeforeReplace?: boolean;
    readonly [k: string]: unknown;
  };
  readonly inputs: Record<string, unknown>;
  readonly outputs?: Record<string, unknown>;
  /** The engine's identity of the resource; a changed URN is a delete and a create, unless aliased. */
  readonly urn?: string;
  /** URNs under which the engine finds this resource's earlier state (its aliases, its parent's). */
  readonly aliasUrns?: readonly string[];
}

export const keyOf = (r: { type: string; name: string }): string => `${r.type}::${r.name}`;

/** Container inputs the Docker provider changes in place (everything else recreates the container). */
const DOCKER_IN_PLACE = new Set([
  "restart",
  "maxRetryCount",
  "cpuShares",
  "cpuSet",
  "memory",
  "memorySwap",
  // Provider behaviour, not container settings.
  "mustRun",
  "wait",
  "waitTimeout",
  "destroyGraceSeconds",
  "containerReadRefreshTimeoutMilliseconds",
]);

/** Paths (prefixes) under which a Kubernetes object cannot change: Pulumi replaces it. */
const K8S_IMMUTABLE: Record<string, string[]> = {
  StatefulSet: ["spec.volumeClaimTemplates", "spec.selector", "spec.serviceName", "spec.podManagementPolicy"],
  Deployment: ["spec.selector"],
  Job: ["spec.template", "spec.selector", "spec.completions"],
  PersistentVolumeClaim: [
    "spec.accessModes",
    "spec.storageClassName",
    "spec.volumeMode",
    "spec.volumeName",
    "spec.selector",
    "spec.dataSource",
  ],
  Service: ["spec.clusterIP", "spec.clusterIPs"],
};

/** `alias`: only the URN changed, matched by an alias: the engine renames it in state, nothing else. */
export type Action = "create" | "delete" | "update" | "replace" | "restart" | "alias";

/** The kind of a Kubernetes type token, e.g. `kubernetes:apps/v1:StatefulSet` -> `StatefulSet`. */
export function kindOf(type: string): string {
  return type.split(":").pop() ?? type;
}

/**
 * What the engine does with a resource whose listed input paths changed (`changed` are dotted
 * paths from the inputs' root, `secretChanged` the top-level inputs holding a changed secret).
 * `restart` is an in-place update that restarts the workload's pods (a rolling update).
 */
export function actionFor(r: TreeResource, changed: readonly string[]): Action {
  if (changed.length === 0) return "update";
  const top = (p: string) => p.split(/[.[]/)[0];
  if (r.type.startsWith("docker:")) {
    if (r.type === "docker:index/container:Container") {
      return changed.every((p) => DOCKER_IN_PLACE.has(top(p))) ? "update" : "replace";
    }
    return "replace";
  }
  if (r.type.startsWith("random:") || r.type.startsWith("tls:")) return "replace";
  if (r.type.startsWith("kubernetes:")) {
    const kind = kindOf(r.type);
    if (changed.some((p) => p === "metadata.name" || p === "metadata.namespace")) return "replace";
    const immutable = K8S_IMMUTABLE[kind] ?? [];
    // pulumi-kubernetes replaces a ConfigMap or Secret whose data changes, unless the provider
    // sets enableConfigMapMutable / enableSecretMutable (this program does not).
    if (
      (kind === "ConfigMap" || kind === "Secret") &&
      changed.some((p) => /^(data|stringData|binaryData|immutable)(\.|\[|$)/.test(p))
    ) {
      return "replace";
    }
    if (kind === "PersistentVolumeClaim") {
      const onlySize = changed.every((p) => p.startsWith("spec.resources") || p.startsWith("metadata"));
      if (!onlySize) return "replace";
    }
    if (
      changed.some((p) => immutable.some((m) => p === m || p.startsWith(`${m}.`) || p.startsWith(`${m}[`)))
    ) {
      return "replace";
    }
    if (
      (kind === "StatefulSet" || kind === "Deployment" || kind === "DaemonSet") &&
      changed.some((p) => p.startsWith("spec.template"))
    ) {
      return "restart";
    }
    return "update";
  }
  return "update";
}

/** Named volumes a Docker container mounts, or a StatefulSet's claims: what makes a member stateful. */
export function dataVolumes(r: TreeResource): string[] {
  if (r.type === "docker:index/container:Container") {
    const volumes = (r.inputs.volumes ?? []) as { volumeName?: string }[];
    const mounts = (r.inputs.mounts ?? []) as { type?: string; source?: string }[];
    return [
      ...volumes.flatMap((v) => (v.volumeName ? [v.volumeName] : [])),
      ...mounts.flatMap((m) => (m.type === "volume" && m.source ? [m.source] : [])),
    ];
  }
  if (kindOf(r.type) === "StatefulSet") {
    const spec = (r.inputs.spec ?? {}) as { volumeClaimTemplates?: { metadata?: { name?: string } }[] };
    return (spec.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? "data");
  }
  return [];
}

/** True for a resource that is data itself: a Docker volume, a PersistentVolumeClaim. */
export function isVolume(r: TreeResource): boolean {
  return r.type === "docker:index/volume:Volume" || kindOf(r.type) === "PersistentVolumeClaim";
}

/** Component classes by the tier they run, for tokens of the `ha-backend:index:<Class>` form. */
const CLASS_CATEGORY: Readonly<Record<string, "database" | "cache" | "locks" | "platform">> = {
  MysqlCluster: "database",
  PostgresCluster: "database",
  ShardedMysql: "database",
  ShardedPostgres: "database",
  RedisCache: "cache",
  Memcached: "cache",
  EtcdCluster: "locks",
  LockService: "locks",
  DockerPlatform: "platform",
  KubernetesPlatform: "platform",
};

/** Releases before the `index` tokens named the tier in the module (`ha-backend:database:PostgresCluster`). */
const MODULE_CATEGORY: Readonly<Record<string, "database" | "cache" | "locks" | "platform">> = {
  database: "database",
  cache: "cache",
  coordination: "locks",
  platform: "platform",
};

/** What a component token names: one of ours (with its tier, when it has one) or not. */
function componentKind(type: string): "database" | "cache" | "locks" | "platform" | "other" | undefined {
  const [pkg, module, cls] = type.split(":");
  if (pkg !== "ha-backend" && pkg !== "ha") return undefined;
  return (module === "index" ? CLASS_CATEGORY[cls ?? ""] : MODULE_CATEGORY[module ?? ""]) ?? "other";
}

/**
 * The tier a component belongs to, from its type token: `ha-backend:index:PostgresCluster`, or a
 * base side's older `ha-backend:database:PostgresCluster`.
 */
export function categoryOf(componentType: string | undefined): "database" | "cache" | "locks" | "other" {
  const kind = componentType === undefined ? undefined : componentKind(componentType);
  return kind === undefined || kind === "platform" ? "other" : kind;
}

/** The nearest ancestor component (not a platform) of a resource, by `type::name`. */
export function owningComponent(
  key: string,
  byKey: ReadonlyMap<string, TreeResource>,
): TreeResource | undefined {
  let r = byKey.get(key);
  for (let i = 0; r !== undefined && i < 64; i++) {
    if (!r.custom && ![undefined, "platform"].includes(componentKind(r.type))) return r;
    r = r.parent === null ? undefined : byKey.get(r.parent);
  }
  return undefined;
}

// --- network paths -------------------------------------------------------------------------

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: { port?: number | string; protocol?: string; endPort?: number }[];
}

/**
 * A selector as a list of alternatives, each a readable conjunction: `In` expressions expand to
 * one alternative per value, so widening a selector adds a path instead of changing one.
 */
function selectorAlternatives(s: LabelSelector | undefined): string[] {
  if (s === undefined) return ["*"];
  const fixed = Object.entries(s.matchLabels ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`);
  let alternatives: string[][] = [fixed];
  for (const e of s.matchExpressions ?? []) {
    if (e.operator === "In") {
      alternatives = alternatives.flatMap((a) => (e.values ?? []).map((v) => [...a, `${e.key}=${v}`]));
    } else {
      const text = `${e.key} ${e.operator}${e.values ? ` (${[...e.values].sort().join(",")})` : ""}`;
      alternatives = alternatives.map((a) => [...a, text]);
    }
  }
  return alternatives.map((a) => (a.length === 0 ? "all pods" : a.sort().join(",")));
}

function peerAlternatives(p: PolicyPeer): string[] {
  if (p.ipBlock !== undefined) {
    return [
      `ipBlock ${p.ipBlock.cidr}${p.ipBlock.except?.length ? ` except ${p.ipBlock.except.join(",")}` : ""}`,
    ];
  }
  const pods = selectorAlternatives(p.podSelector).map((x) => `pods(${x})`);
  if (p.namespaceSelector === undefined) return pods;
  const namespaces = selectorAlternatives(p.namespaceSelector).map(
    (x) => `namespaces(${x === "all pods" ? "all" : x})`,
  );
  return namespaces.flatMap((n) => pods.map((x) => `${n} ${x}`));
}

function portList(rule: PolicyRule): string[] {
  if (rule.ports === undefined || rule.ports.length === 0) return ["all ports"];
  return rule.ports.map(
    (p) => `${p.port ?? "any"}${p.endPort ? `-${p.endPort}` : ""}/${p.protocol ?? "TCP"}`,
  );
}

/**
 * Every path a NetworkPolicy allows, one readable line each, e.g.
 * `into pods(app=db) from pods(tier=app) on 5432/TCP`.
 */
export function networkPolicyPaths(policy: TreeResource): string[] {
  const meta = (policy.inputs.metadata ?? {}) as { name?: string; namespace?: string };
  const spec = (policy.inputs.spec ?? {}) as {
    podSelector?: LabelSelector;
    ingress?: PolicyRule[];
    egress?: PolicyRule[];
  };
  const targets = selectorAlternatives(spec.podSelector).map((x) => `pods(${x})`);
  const ns = meta.namespace ? `${meta.namespace}/` : "";
  const paths: string[] = [];
  // A direction the policy does not isolate is open as far as this policy goes (Kubernetes:
  // without policyTypes, Ingress always, Egress only when there are egress rules).
  const types = (policy.inputs.spec as { policyTypes?: string[] } | undefined)?.policyTypes;
  const isolates = {
    into: types === undefined ? true : types.includes("Ingress"),
    "out of": types === undefined ? spec.egress !== undefined : types.includes("Egress"),
  };
  for (const direction of ["into", "out of"] as const) {
    if (isolates[direction]) continue;
    const word = direction === "into" ? "from" : "to";
    for (const t of targets)
      paths.push(`${direction} ${ns}${t} ${word} anywhere on all ports (not isolated by this policy)`);
  }
  for (const [direction, rules, word] of [
    ["into", spec.ingress ?? [], "from"],
    ["out of", spec.egress ?? [], "to"],
  ] as const) {
    if (!isolates[direction]) continue;
    for (const rule of rules) {
      const peers = (direction === "into" ? rule.from : rule.to) ?? [];
      const peerTexts = peers.length === 0 ? ["anywhere"] : peers.flatMap(peerAlternatives);
      for (const t of targets) {
        for (const p of peerTexts) {
          for (const port of portList(rule)) paths.push(`${direction} ${ns}${t} ${word} ${p} on ${port}`);
        }
      }
    }
  }
  return paths;
}

/**
 * Every path between Docker containers (two containers on one network reach each other), as
 * `a <-> b` mapped to the networks they share, and from the host (published ports). A path is
 * the pair, not the network: moving a pair to another network opens nothing.
 */
export function dockerPaths(resources: readonly TreeResource[]): Map<string, string[]> {
  const containers = resources.filter((r) => r.type === "docker:index/container:Container");
  const networks = new Map(
    resources
      .filter((r) => r.type === "docker:index/network:Network")
      .map((r) => [String(r.inputs.name ?? r.name), r] as const),
  );
  const members = new Map<string, string[]>();
  const paths = new Map<string, string[]>();
  const add = (path: string, via: string) => paths.set(path, [...(paths.get(path) ?? []), via]);
  for (const c of containers) {
    const name = String(c.inputs.name ?? c.name);
    for (const n of (c.inputs.networksAdvanced ?? []) as { name?: string }[]) {
      if (n.name === undefined) continue;
      members.set(n.name, [...(members.get(n.name) ?? []), name]);
    }
    for (const p of (c.inputs.ports ?? []) as {
      internal?: number;
      external?: number;
      ip?: string;
      protocol?: string;
    }[]) {
      add(
        `host ${p.ip ?? "0.0.0.0"}:${p.external ?? "(any)"} to ${name}:${p.internal}/${(p.protocol ?? "tcp").toUpperCase()}`,
        "published port",
      );
    }
  }
  for (const [network, names] of members) {
    const sorted = [...new Set(names)].sort();
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) add(`${sorted[i]} <-> ${sorted[j]}`, `network ${network}`);
    }
    if (networks.has(network) && networks.get(network)?.inputs.internal !== true) {
      add(`network ${network} reaches outside the host`, "not internal");
    }
  }
  return new Map([...paths.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}
