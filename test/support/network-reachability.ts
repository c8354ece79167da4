/**
 * A NetworkPolicy evaluator over plain manifest objects: which workload may open a connection to
 * which workload port, with the semantics of
 * https://kubernetes.io/docs/concepts/services-networking/network-policies/ — no cluster, no CNI.
 *
 * Endpoints are workloads (each pod template, with its template labels and container ports), the
 * cluster DNS (a pseudo-pod in kube-system labelled `k8s-app: kube-dns`, serving 53/UDP and
 * 53/TCP), and addresses outside the cluster (a sample address per "external world", matched
 * only by `ipBlock` peers). Not modelled: traffic from the pod's own node (always allowed), a
 * pod talking to itself (always allowed; a workload → same workload cell means replica to
 * replica), and any source NAT a Service or load balancer does.
 */
import { extractPodTemplates, type Manifest, type PodTemplate } from "./pod-security";

export type LabelsLike = Readonly<Record<string, string>>;

export type Protocol = "TCP" | "UDP" | "SCTP";

/** A port an endpoint listens on; `name` is what named ports in a policy resolve against. */
export interface EndpointPort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** Something that opens or accepts connections. */
export interface NetworkEndpoint {
  /** Row / column name: the workload's name (`<namespace>/<name>` outside the model's namespace). */
  readonly id: string;
  readonly kind: "workload" | "dns" | "external";
  /** Namespace of a pod; undefined for an external address. */
  readonly namespace?: string;
  /** Pod labels (empty for an external address). */
  readonly labels: LabelsLike;
  /** Addresses `ipBlock` peers are matched against: none for pods unless given. */
  readonly ips: readonly string[];
  readonly ports: readonly EndpointPort[];
}

/** An address outside the cluster, e.g. `{ name: "internet", ip: "203.0.113.7", ports: [443] }`. */
export interface ExternalEndpoint {
  readonly name: string;
  readonly ip: string;
  /**
   * Ports it serves, as matrix columns (TCP unless `protocol` says otherwise).
   * @default [443]
   */
  readonly ports?: readonly (number | { readonly port: number; readonly protocol?: Protocol })[];
}

export interface NetworkModelOptions {
  /**
   * Namespace of manifests without `metadata.namespace`.
   * @default the first `metadata.namespace` among the manifests, else "default"
   */
  readonly namespace?: string;
  /**
   * Addresses outside the cluster: sources (rows) and destinations (columns).
   * @default [{ name: "internet", ip: "203.0.113.7", ports: [443] }] (an RFC 5737 sample address)
   */
  readonly external?: readonly ExternalEndpoint[];
  /**
   * In-cluster IPs by endpoint id, for `ipBlock` peers; pods have none by default.
   * @default {}
   */
  readonly podIPs?: Readonly<Record<string, readonly string[]>>;
  /**
   * Whether the cluster DNS pseudo-destination `kube-dns` is part of the model.
   * @default true
   */
  readonly dns?: boolean;
}

/** Everything the evaluator needs, resolved from manifests. */
export interface NetworkModel {
  readonly namespace: string;
  readonly endpoints: readonly NetworkEndpoint[];
  readonly policies: readonly NetworkPolicy[];
  /** Labels per namespace, including the automatic `kubernetes.io/metadata.name`. */
  readonly namespaceLabels: ReadonlyMap<string, LabelsLike>;
}

/** The outcome for one connection; `allowed` needs both sides. */
export interface ConnectionVerdict {
  readonly allowed: boolean;
  /** The source's egress lets it out (always true for a non-isolated source or an external one). */
  readonly egress: boolean;
  /** The destination's ingress lets it in (always true for a non-isolated or external destination). */
  readonly ingress: boolean;
}

/** One column of the matrix: a destination endpoint and one of its ports. */
export interface MatrixColumn {
  readonly destination: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly portName?: string;
  /** `app:8080` for TCP, `kube-dns:53/UDP` otherwise. */
  readonly label: string;
}

export interface ReachabilityMatrix {
  readonly sources: readonly string[];
  readonly columns: readonly MatrixColumn[];
  /**
   * `allowed[i][j]`: `sources[i]` may open a connection to `columns[j]`; `null` from an external
   * address to another one (no NetworkPolicy governs it) or to the cluster DNS (a ClusterIP
   * service outside the model's namespace, there to check DNS egress).
   */
  readonly allowed: readonly (readonly (boolean | null)[])[];
}

// ---- NetworkPolicy, as far as the evaluator reads it. ----

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  readonly values?: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels?: LabelsLike;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

export interface NetworkPolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}

export interface NetworkPolicyPort {
  readonly protocol?: Protocol;
  readonly port?: number | string;
  readonly endPort?: number;
}

export interface NetworkPolicySpec {
  readonly podSelector?: LabelSelector;
  readonly policyTypes?: readonly ("Ingress" | "Egress")[];
  readonly ingress?: readonly {
    readonly from?: readonly NetworkPolicyPeer[];
    readonly ports?: readonly NetworkPolicyPort[];
  }[];
  readonly egress?: readonly {
    readonly to?: readonly NetworkPolicyPeer[];
    readonly ports?: readonly NetworkPolicyPort[];
  }[];
}

export interface NetworkPolicy {
  readonly name: string;
  readonly namespace: string;
  readonly spec: NetworkPolicySpec;
}

const DNS_ID = "kube-dns";
const DEFAULT_EXTERNAL: readonly ExternalEndpoint[] = [{ name: "internet", ip: "203.0.113.7", ports: [443] }];
const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * Resolves manifests (workloads, NetworkPolicies, Namespaces; other kinds are ignored) into a
 * model. Throws on a malformed policy peer or selector, which the API server would reject too.
 */
export function networkModel(
  manifests: readonly Manifest[],
  options: NetworkModelOptions = {},
): NetworkModel {
  const namespace =
    options.namespace ?? manifests.find((m) => m.metadata?.namespace)?.metadata?.namespace ?? "default";
  const podIPs = options.podIPs ?? {};
  const nsOf = (m: { namespace?: string }) => m.namespace ?? namespace;

  const workloads: NetworkEndpoint[] = extractPodTemplates(manifests).map((ref) => {
    const ns = nsOf(ref);
    const id = ns === namespace ? ref.name : `${ns}/${ref.name}`;
    return {
      id,
      kind: "workload",
      namespace: ns,
      labels: ref.template.metadata?.labels ?? {},
      ips: podIPs[id] ?? [],
      ports: containerPorts(ref.template),
    };
  });
  const seen = new Set<string>();
  for (const w of workloads) {
    if (seen.has(w.id)) {
      throw new Error(`networkModel: workload ids must be unique, but "${w.id}" appears twice. Rename one.`);
    }
    seen.add(w.id);
  }
  workloads.sort((a, b) => compare(a.id, b.id));

  const dns: NetworkEndpoint[] =
    (options.dns ?? true)
      ? [
          {
            id: DNS_ID,
            kind: "dns",
            namespace: "kube-system",
            labels: { "k8s-app": "kube-dns" },
            ips: podIPs[DNS_ID] ?? [],
            // The port names of the CoreDNS Deployment kubeadm and most distributions install.
            ports: [
              { name: "dns", port: 53, protocol: "UDP" },
              { name: "dns-tcp", port: 53, protocol: "TCP" },
            ],
          },
        ]
      : [];

  const external: NetworkEndpoint[] = (options.external ?? DEFAULT_EXTERNAL).map((e) => {
    parseIp(e.ip, `external "${e.name}"`);
    return {
      id: e.name,
      kind: "external",
      labels: {},
      ips: [e.ip],
      ports: (e.ports ?? [443]).map((p) =>
        typeof p === "number"
          ? { port: p, protocol: "TCP" }
          : { port: p.port, protocol: p.protocol ?? "TCP" },
      ),
    };
  });

  const policies: NetworkPolicy[] = manifests
    .filter((m) => m.kind === "NetworkPolicy")
    .map((m) => ({
      name: m.metadata?.name ?? "",
      namespace: nsOf(m.metadata ?? {}),
      spec: (m.spec ?? {}) as NetworkPolicySpec,
    }));
  policies.forEach(validatePolicy);

  const namespaceLabels = new Map<string, LabelsLike>();
  const endpoints = [...workloads, ...dns, ...external];
  const namespaces = new Set([
    namespace,
    ...endpoints.flatMap((e) => (e.namespace ? [e.namespace] : [])),
    ...policies.map((p) => p.namespace),
  ]);
  const declared = manifests.filter((m) => m.kind === "Namespace" && m.metadata?.name);
  for (const m of declared) namespaces.add(m.metadata?.name as string);
  for (const ns of namespaces) {
    const labels = declared.find((m) => m.metadata?.name === ns)?.metadata?.labels ?? {};
    // Set by the API server on every namespace since v1.22, so selectors can name a namespace.
    namespaceLabels.set(ns, { ...labels, [NAMESPACE_NAME_LABEL]: ns });
  }

  return { namespace, endpoints, policies, namespaceLabels };
}

/**
 * Whether `source` may open a connection to `destination` on `port` (a number, or a port name of
 * the destination). Allowed iff the source's egress and the destination's ingress both allow it.
 */
export function canConnect(
  model: NetworkModel,
  source: string,
  destination: string,
  port: number | string,
  protocol: Protocol = "TCP",
): ConnectionVerdict {
  const src = endpoint(model, source);
  const dst = endpoint(model, destination);
  if (src.kind === "external" && dst.kind === "external") {
    throw new Error(
      `canConnect: one end must be a pod, but ${source} and ${destination} are both external addresses, which no NetworkPolicy governs.`,
    );
  }
  const number =
    typeof port === "number" ? port : dst.ports.find((p) => p.name === port && p.protocol === protocol)?.port;
  if (number === undefined) {
    throw new Error(
      `canConnect: port must be a number or one of ${destination}'s port names (${dst.ports.map((p) => p.name ?? p.port).join(", ")}), but "${port}" was provided.`,
    );
  }
  const egress = allowedBy(model, src, "Egress", dst, number, protocol);
  const ingress = allowedBy(model, dst, "Ingress", src, number, protocol);
  return { allowed: egress && ingress, egress, ingress };
}

/**
 * Every source (workloads, then external addresses) against every destination port (workload
 * ports, then DNS, then external addresses), in a stable order.
 */
export function reachabilityMatrix(model: NetworkModel): ReachabilityMatrix {
  const sources = model.endpoints.filter((e) => e.kind !== "dns").map((e) => e.id);
  const columns: MatrixColumn[] = model.endpoints.flatMap((e) =>
    [...e.ports]
      .sort((a, b) => a.port - b.port || compare(a.protocol, b.protocol))
      .map((p) => ({
        destination: e.id,
        port: p.port,
        protocol: p.protocol,
        ...(p.name === undefined ? {} : { portName: p.name }),
        label: `${e.id}:${p.port}${p.protocol === "TCP" ? "" : `/${p.protocol}`}`,
      })),
  );
  const kinds = new Map(model.endpoints.map((e) => [e.id, e.kind]));
  const allowed = sources.map((s) =>
    columns.map((c) =>
      kinds.get(s) === "external" && kinds.get(c.destination) !== "workload"
        ? null
        : canConnect(model, s, c.destination, c.port, c.protocol).allowed,
    ),
  );
  return { sources, columns, allowed };
}

/**
 * One cell of the matrix; throws on an unknown source or column (so a typo cannot pass as
 * "blocked") and on an external-to-external cell.
 */
export function isReachable(matrix: ReachabilityMatrix, source: string, column: string): boolean {
  const i = matrix.sources.indexOf(source);
  const j = matrix.columns.findIndex((c) => c.label === column);
  if (i < 0) {
    throw new Error(
      `isReachable: source must be one of ${matrix.sources.join(", ")}, but "${source}" was provided.`,
    );
  }
  if (j < 0) {
    const labels = matrix.columns.map((c) => c.label).join(", ");
    throw new Error(`isReachable: column must be one of ${labels}, but "${column}" was provided.`);
  }
  const cell = matrix.allowed[i][j];
  if (cell === null) {
    throw new Error(
      `isReachable: ${source} → ${column} is outside the model (an external source to a non-workload).`,
    );
  }
  return cell;
}

/**
 * The matrix as a markdown table for the README: sources as rows, destination ports as columns,
 * ✓ where a connection is allowed, blank where blocked, – where outside the model (an external
 * source to DNS or to another external address). Trailing newline.
 */
export function renderReachabilityTable(matrix: ReachabilityMatrix): string {
  const header = `| from \\ to | ${matrix.columns.map((c) => c.label).join(" | ")} |`;
  const rule = `|---|${matrix.columns.map(() => ":-:").join("|")}|`;
  const rows = matrix.sources.map(
    (s, i) => `| ${s} | ${matrix.allowed[i].map((ok) => (ok === null ? "–" : ok ? "✓" : " ")).join(" | ")} |`,
  );
  return [header, rule, ...rows, ""].join("\n");
}

// ---- Evaluation. ----

type Direction = "Ingress" | "Egress";

/**
 * Whether `pod`'s policies for `direction` let the connection with `peer` through. A pod no
 * policy isolates in that direction (or an external address, which no policy selects) allows all.
 */
function allowedBy(
  model: NetworkModel,
  pod: NetworkEndpoint,
  direction: Direction,
  peer: NetworkEndpoint,
  port: number,
  protocol: Protocol,
): boolean {
  if (pod.kind === "external") return true;
  const applicable = model.policies.filter(
    (p) =>
      p.namespace === pod.namespace &&
      selects(p.spec.podSelector, pod.labels) &&
      policyTypes(p).includes(direction),
  );
  if (applicable.length === 0) return true;
  // Named ports name the destination's container ports, whichever side the policy is on.
  const destination = direction === "Ingress" ? pod : peer;
  return applicable.some((p) => {
    const rules =
      direction === "Ingress"
        ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
        : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    return rules.some(
      (r) =>
        ((r.peers ?? []).length === 0 || (r.peers ?? []).some((x) => peerMatches(model, p, x, peer))) &&
        ((r.ports ?? []).length === 0 ||
          (r.ports ?? []).some((x) => portMatches(x, destination, port, protocol))),
    );
  });
}

/** `policyTypes` defaults to Ingress, plus Egress when the policy has egress rules. */
function policyTypes(p: NetworkPolicy): readonly Direction[] {
  if ((p.spec.policyTypes ?? []).length > 0) return p.spec.policyTypes as readonly Direction[];
  return (p.spec.egress ?? []).length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

/**
 * podSelector alone: pods in the policy's namespace; namespaceSelector alone: every pod in the
 * matching namespaces; both in one peer: pods matching both. ipBlock: the endpoint's addresses.
 */
function peerMatches(
  model: NetworkModel,
  policy: NetworkPolicy,
  peer: NetworkPolicyPeer,
  e: NetworkEndpoint,
): boolean {
  if (peer.ipBlock) {
    const block = peer.ipBlock;
    return e.ips.some((ip) => inCidr(ip, block.cidr) && !(block.except ?? []).some((x) => inCidr(ip, x)));
  }
  if (e.namespace === undefined) return false;
  const nsOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, model.namespaceLabels.get(e.namespace) ?? {})
    : e.namespace === policy.namespace;
  return nsOk && (peer.podSelector === undefined || selects(peer.podSelector, e.labels));
}

/**
 * Protocol defaults to TCP; no port means every port; a named port is looked up in the
 * destination's container ports; `endPort` makes an inclusive range.
 */
function portMatches(
  p: NetworkPolicyPort,
  destination: NetworkEndpoint,
  port: number,
  protocol: Protocol,
): boolean {
  if ((p.protocol ?? "TCP") !== protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === "string") {
    const name = p.port;
    return (
      destination.kind !== "external" &&
      destination.ports.some((c) => c.name === name && c.protocol === protocol && c.port === port)
    );
  }
  return p.endPort === undefined ? port === p.port : port >= p.port && port <= p.endPort;
}

/** A label selector: every matchLabels pair and every matchExpressions requirement; `{}` selects all. */
function selects(selector: LabelSelector | undefined, labels: LabelsLike): boolean {
  const s = selector ?? {};
  const pairsOk = Object.entries(s.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    pairsOk &&
    (s.matchExpressions ?? []).every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const values = r.values ?? [];
      switch (r.operator) {
        case "In":
          return has && values.includes(labels[r.key]);
        // As in the API server's labels package, NotIn also matches objects without the key.
        case "NotIn":
          return !has || !values.includes(labels[r.key]);
        case "Exists":
          return has;
        case "DoesNotExist":
          return !has;
        default:
          return assertNever(r.operator);
      }
    })
  );
}

// ---- Validation: the shapes the API server rejects, so a fixture cannot silently mean nothing. ----

const OPERATORS = new Set(["In", "NotIn", "Exists", "DoesNotExist"]);

function validatePolicy(p: NetworkPolicy): void {
  const where = `NetworkPolicy "${p.name}"`;
  const selectors: [string, LabelSelector | undefined][] = [["spec.podSelector", p.spec.podSelector]];
  const peers = [
    ...(p.spec.ingress ?? []).flatMap((r, i) =>
      (r.from ?? []).map((x, j) => [`spec.ingress[${i}].from[${j}]`, x] as const),
    ),
    ...(p.spec.egress ?? []).flatMap((r, i) =>
      (r.to ?? []).map((x, j) => [`spec.egress[${i}].to[${j}]`, x] as const),
    ),
  ];
  for (const [path, peer] of peers) {
    const hasSelector = peer.podSelector !== undefined || peer.namespaceSelector !== undefined;
    if (hasSelector === (peer.ipBlock !== undefined)) {
      throw new Error(
        `${where}: ${path} must set ipBlock or podSelector/namespaceSelector (not both, not neither), but ${JSON.stringify(peer)} was provided.`,
      );
    }
    if (peer.ipBlock) {
      parseCidr(peer.ipBlock.cidr, `${where}: ${path}.ipBlock.cidr`);
      (peer.ipBlock.except ?? []).forEach((x, k) => parseCidr(x, `${where}: ${path}.ipBlock.except[${k}]`));
    }
    selectors.push(
      [`${path}.podSelector`, peer.podSelector],
      [`${path}.namespaceSelector`, peer.namespaceSelector],
    );
  }
  for (const [path, s] of selectors) {
    (s?.matchExpressions ?? []).forEach((r, k) => {
      if (!OPERATORS.has(r.operator)) {
        throw new Error(
          `${where}: ${path}.matchExpressions[${k}].operator must be In, NotIn, Exists or DoesNotExist, but "${r.operator}" was provided.`,
        );
      }
    });
  }
}

// ---- Helpers. ----

/** Container ports (not init containers': nothing connects to those), protocol defaulting to TCP. */
function containerPorts(template: PodTemplate): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const c of template.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      const protocol = (p.protocol ?? "TCP") as Protocol;
      if (out.some((o) => o.port === p.containerPort && o.protocol === protocol)) continue;
      out.push({ ...(p.name === undefined ? {} : { name: p.name }), port: p.containerPort, protocol });
    }
  }
  return out;
}

function endpoint(model: NetworkModel, id: string): NetworkEndpoint {
  const e = model.endpoints.find((x) => x.id === id);
  if (e === undefined) {
    const ids = model.endpoints.map((x) => x.id).join(", ");
    throw new Error(`canConnect: endpoint must be one of ${ids}, but "${id}" was provided.`);
  }
  return e;
}

/** An address as [family bits, value]; IPv4 and IPv6 (with `::` and an embedded IPv4 tail). */
function parseIp(ip: string, where: string): [32 | 128, bigint] {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    if (octets.every((o) => o <= 255)) return [32, octets.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n)];
  } else if (ip.includes(":")) {
    const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
    let text = ip;
    if (tail) {
      const [, v] = parseIp(tail[1], where);
      text = `${ip.slice(0, -tail[1].length)}${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
    }
    const halves = text.split("::");
    const groups = (h: string) => (h === "" ? [] : h.split(":"));
    if (halves.length <= 2) {
      const head = groups(halves[0]);
      const rest = halves.length === 2 ? groups(halves[1]) : [];
      const missing = 8 - head.length - rest.length;
      const all = halves.length === 2 ? [...head, ...Array<string>(missing).fill("0"), ...rest] : head;
      if (
        all.length === 8 &&
        missing >= (halves.length === 2 ? 1 : 0) &&
        all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))
      ) {
        return [128, all.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n)];
      }
    }
  }
  throw new Error(`${where}: "${ip}" must be an IPv4 or IPv6 address.`);
}

function parseCidr(cidr: string, where: string): { bits: 32 | 128; base: bigint; prefix: number } {
  const [addr, len, ...extra] = cidr.split("/");
  const [bits, base] = parseIp(addr, where);
  const prefix = Number(len);
  if (extra.length > 0 || len === undefined || !/^\d+$/.test(len) || prefix > bits) {
    throw new Error(`${where}: "${cidr}" must be a CIDR such as 10.0.0.0/8.`);
  }
  return { bits, base, prefix };
}

/** An address of one family never matches a block of the other. */
function inCidr(ip: string, cidr: string): boolean {
  const [bits, value] = parseIp(ip, "ip");
  const block = parseCidr(cidr, "cidr");
  if (bits !== block.bits) return false;
  const shift = BigInt(bits - block.prefix);
  return value >> shift === block.base >> shift;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}

/** Per source, the columns it may open a connection to (sorted labels). */
export function allowedBySource(matrix: ReachabilityMatrix): Record<string, string[]> {
  return Object.fromEntries(
    matrix.sources.map((src, i) => [
      src,
      matrix.columns
        .filter((_, j) => matrix.allowed[i][j] === true)
        .map((c) => c.label)
        .sort(),
    ]),
  );
}
