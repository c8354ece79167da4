/**
 * The Pod Security Standards (Baseline and Restricted) as a pure check over plain manifest
 * objects: no cluster, no Pulumi. Rules follow the control tables of
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the Restricted profile
 * includes every Baseline control); where the tables leave a case open (what a container inherits
 * from the pod), the built-in Pod Security Admission controller's reading is used.
 *
 * Each defect is reported once, under the most specific rule: a hostPath volume is a
 * `hostPathVolumes` finding (not also `volumeTypes`), `seccompProfile: Unconfined` a `seccomp`
 * finding (not also `seccompRestricted`), an added `SYS_ADMIN` a `capabilities` finding.
 */

/** The profiles this module checks; `restricted` includes every `baseline` control. */
export type PodSecurityLevel = "baseline" | "restricted";

/** One rule per control of the Pod Security Standards, in the order the documentation lists them. */
export const POD_SECURITY_RULES = {
  hostProcess: { level: "baseline", control: "HostProcess" },
  hostNamespaces: { level: "baseline", control: "Host Namespaces" },
  privileged: { level: "baseline", control: "Privileged Containers" },
  capabilities: { level: "baseline", control: "Capabilities" },
  hostPathVolumes: { level: "baseline", control: "HostPath Volumes" },
  hostPorts: { level: "baseline", control: "Host Ports" },
  hostProbes: { level: "baseline", control: "Host Probes / Lifecycle Hooks" },
  appArmor: { level: "baseline", control: "AppArmor" },
  seLinux: { level: "baseline", control: "SELinux" },
  procMount: { level: "baseline", control: "/proc Mount Type" },
  seccomp: { level: "baseline", control: "Seccomp" },
  sysctls: { level: "baseline", control: "Sysctls" },
  volumeTypes: { level: "restricted", control: "Volume Types" },
  allowPrivilegeEscalation: { level: "restricted", control: "Privilege Escalation" },
  runAsNonRoot: { level: "restricted", control: "Running as Non-root" },
  runAsUser: { level: "restricted", control: "Running as Non-root user" },
  seccompRestricted: { level: "restricted", control: "Seccomp (restricted)" },
  capabilitiesRestricted: { level: "restricted", control: "Capabilities (restricted)" },
} as const satisfies Record<string, { level: PodSecurityLevel; control: string }>;

export type PodSecurityRule = keyof typeof POD_SECURITY_RULES;

/** One field that breaks a rule. */
export interface PodSecurityViolation {
  readonly rule: PodSecurityRule;
  /** The profile that introduces the rule. */
  readonly level: PodSecurityLevel;
  /** Path of the offending field, relative to the pod (`spec.containers[0].securityContext.privileged`). */
  readonly path: string;
  /** What is wrong, with the value found and how to fix it. */
  readonly message: string;
}

// ---- The slice of the Kubernetes object model the checks read (all optional: plain input). ----

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface SeccompProfile {
  readonly type?: string;
  readonly localhostProfile?: string;
}

export interface SELinuxOptions {
  readonly type?: string;
  readonly user?: string;
  readonly role?: string;
  readonly level?: string;
}

interface CommonSecurityContext {
  readonly runAsNonRoot?: boolean;
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  readonly seccompProfile?: SeccompProfile;
  readonly appArmorProfile?: { readonly type?: string; readonly localhostProfile?: string };
  readonly seLinuxOptions?: SELinuxOptions;
  readonly windowsOptions?: { readonly hostProcess?: boolean };
}

export interface SecurityContext extends CommonSecurityContext {
  readonly privileged?: boolean;
  readonly allowPrivilegeEscalation?: boolean;
  readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  readonly procMount?: string;
  readonly readOnlyRootFilesystem?: boolean;
}

export interface PodSecurityContext extends CommonSecurityContext {
  readonly fsGroup?: number;
  readonly supplementalGroups?: readonly number[];
  readonly sysctls?: readonly { readonly name: string; readonly value?: string }[];
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly hostPort?: number;
  readonly protocol?: string;
}

/** Probes and lifecycle handlers share the `httpGet` / `tcpSocket` shape the Host check reads. */
export interface Handler {
  readonly httpGet?: { readonly host?: string; readonly port?: number | string; readonly path?: string };
  readonly tcpSocket?: { readonly host?: string; readonly port?: number | string };
}

export interface Container {
  readonly name?: string;
  readonly image?: string;
  readonly ports?: readonly ContainerPort[];
  readonly securityContext?: SecurityContext;
  readonly livenessProbe?: Handler;
  readonly readinessProbe?: Handler;
  readonly startupProbe?: Handler;
  readonly lifecycle?: { readonly postStart?: Handler; readonly preStop?: Handler };
}

/** A volume: its name plus exactly one source field (`configMap`, `hostPath`, `nfs`, ...). */
export interface Volume {
  readonly name?: string;
  readonly [source: string]: unknown;
}

export interface PodSpec {
  readonly os?: { readonly name?: string };
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
  readonly hostUsers?: boolean;
  readonly securityContext?: PodSecurityContext;
  readonly containers?: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly ephemeralContainers?: readonly Container[];
  readonly volumes?: readonly Volume[];
}

/** The pod part of a workload (`spec.template` of a Deployment), or a Pod itself. */
export interface PodTemplate {
  readonly metadata?: ObjectMeta;
  readonly spec?: PodSpec;
}

/** Any Kubernetes object, as parsed from YAML or JSON; `spec` is read per `kind`. */
export interface Manifest {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
  readonly spec?: unknown;
}

/** A pod template found in a manifest, with where it sits in that manifest. */
export interface PodTemplateRef {
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  /** Where the template sits in the manifest: `spec.template`, `spec.jobTemplate.spec.template`, `` for a Pod. */
  readonly templatePath: string;
  readonly template: PodTemplate;
}

/** Where each workload kind keeps its pod template. */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
};

/**
 * Every pod template in `manifests` (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
 * Pod), in input order; other kinds are skipped.
 */
export function extractPodTemplates(manifests: readonly Manifest[]): PodTemplateRef[] {
  const out: PodTemplateRef[] = [];
  for (const m of manifests) {
    const path = m.kind === undefined ? undefined : TEMPLATE_PATHS[m.kind];
    if (path === undefined) continue;
    const template = dig(m, path);
    if (!isObject(template)) continue;
    out.push({
      kind: m.kind as string,
      name: m.metadata?.name ?? "",
      namespace: m.metadata?.namespace,
      templatePath: path.join("."),
      template: template as PodTemplate,
    });
  }
  return out;
}

/**
 * Checks one pod against a Pod Security Standards profile (default: `restricted`, which includes
 * `baseline`). `input` is a pod template (`{metadata, spec}`), a Pod, or a whole workload
 * manifest (its template is checked). Paths are relative to the pod, as the admission controller
 * reports them. Returns every violation, in rule order, then container order; empty when the
 * pod complies.
 */
export function checkPodSecurity(
  input: PodTemplate | Manifest,
  level: PodSecurityLevel = "restricted",
): PodSecurityViolation[] {
  const pod = podOf(input);
  const ctx: CheckContext = {
    meta: pod.metadata ?? {},
    spec: pod.spec ?? {},
    containers: containersOf(pod.spec ?? {}),
  };
  const rules = (Object.keys(CHECKS) as PodSecurityRule[]).filter(
    (r) => level === "restricted" || POD_SECURITY_RULES[r].level === "baseline",
  );
  return rules.flatMap((rule) =>
    CHECKS[rule](ctx).map((f) => ({ rule, level: POD_SECURITY_RULES[rule].level, ...f })),
  );
}

// ---- The checks. ----

interface CheckContext {
  readonly meta: ObjectMeta;
  readonly spec: PodSpec;
  readonly containers: readonly ContainerRef[];
}

interface ContainerRef {
  /** `spec.containers[0]`, `spec.initContainers[1]`, ... */
  readonly path: string;
  /** `container "app"`, for messages. */
  readonly label: string;
  readonly c: Container;
}

type Finding = { readonly path: string; readonly message: string };
type Check = (ctx: CheckContext) => Finding[];

/** The capabilities Baseline lets a container add: the container runtime's default set. */
const BASELINE_CAPABILITIES = new Set([
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
]);

/** Sysctls that are namespaced to the pod, so cannot touch the node (Baseline's "safe" set). */
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);

const SELINUX_TYPES = new Set([
  "",
  "container_t",
  "container_init_t",
  "container_kvm_t",
  "container_engine_t",
]);
const CONFINED_PROFILES = new Set(["RuntimeDefault", "Localhost"]);
/** The only volume sources Restricted admits (hostPath is reported by `hostPathVolumes`). */
const RESTRICTED_VOLUME_SOURCES = [
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
];
const APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/";

const CHECKS: Readonly<Record<PodSecurityRule, Check>> = {
  hostProcess: ({ spec, containers }) =>
    [podLevel(spec), ...containers]
      .filter((x) => x.c.securityContext?.windowsOptions?.hostProcess === true)
      .map((x) =>
        finding(
          x,
          "securityContext.windowsOptions.hostProcess",
          "must not be true (HostProcess containers get privileged access to the Windows host)",
          true,
          "Remove it.",
        ),
      ),

  hostNamespaces: ({ spec }) =>
    (["hostNetwork", "hostPID", "hostIPC"] as const)
      .filter((f) => spec[f] === true)
      .map((f) => ({
        path: `spec.${f}`,
        message: `pod: ${f} must be false or unset (sharing the node's namespaces), but true was provided. Remove it.`,
      })),

  privileged: ({ containers }) =>
    containers
      .filter((x) => x.c.securityContext?.privileged === true)
      .map((x) => finding(x, "securityContext.privileged", "must be false or unset", true, "Remove it.")),

  capabilities: ({ containers }) =>
    containers.flatMap((x) =>
      (x.c.securityContext?.capabilities?.add ?? []).flatMap((cap, i) =>
        BASELINE_CAPABILITIES.has(cap)
          ? []
          : [
              finding(
                x,
                `securityContext.capabilities.add[${i}]`,
                "may only add the runtime's default capabilities",
                cap,
                "Remove it from capabilities.add.",
              ),
            ],
      ),
    ),

  hostPathVolumes: ({ spec }) =>
    (spec.volumes ?? []).flatMap((v, i) =>
      v.hostPath === undefined || v.hostPath === null
        ? []
        : [
            {
              path: `spec.volumes[${i}].hostPath`,
              message: `volume "${v.name ?? i}": hostPath volumes are forbidden. Use an emptyDir, configMap, secret or a persistentVolumeClaim.`,
            },
          ],
    ),

  hostPorts: ({ containers }) =>
    containers.flatMap((x) =>
      (x.c.ports ?? []).flatMap((p, i) =>
        p.hostPort === undefined || p.hostPort === 0
          ? []
          : [
              finding(
                x,
                `ports[${i}].hostPort`,
                "must be 0 or unset",
                p.hostPort,
                "Expose it with a Service.",
              ),
            ],
      ),
    ),

  // Kubernetes v1.34+: a probe or hook with a host could reach the node or anything else.
  hostProbes: ({ containers }) =>
    containers.flatMap((x) => {
      const handlers: [string, Handler | undefined][] = [
        ["livenessProbe", x.c.livenessProbe],
        ["readinessProbe", x.c.readinessProbe],
        ["startupProbe", x.c.startupProbe],
        ["lifecycle.postStart", x.c.lifecycle?.postStart],
        ["lifecycle.preStop", x.c.lifecycle?.preStop],
      ];
      return handlers.flatMap(([name, h]) =>
        (["httpGet", "tcpSocket"] as const)
          .filter((kind) => (h?.[kind]?.host ?? "") !== "")
          .map((kind) =>
            finding(x, `${name}.${kind}.host`, "must be empty or unset", h?.[kind]?.host, "Remove it."),
          ),
      );
    }),

  appArmor: ({ meta, spec, containers }) => [
    ...[podLevel(spec), ...containers]
      .filter((x) => {
        const type = x.c.securityContext?.appArmorProfile?.type;
        return type !== undefined && !CONFINED_PROFILES.has(type);
      })
      .map((x) =>
        finding(
          x,
          "securityContext.appArmorProfile.type",
          "must be RuntimeDefault, Localhost or unset",
          x.c.securityContext?.appArmorProfile?.type,
          "Remove it or use RuntimeDefault.",
        ),
      ),
    ...Object.entries(meta.annotations ?? {})
      .filter(([k]) => k.startsWith(APPARMOR_ANNOTATION))
      .filter(([, v]) => v !== "" && v !== "runtime/default" && !v.startsWith("localhost/"))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => ({
        path: `metadata.annotations["${k}"]`,
        message: `pod: annotation ${k} must be runtime/default or localhost/<profile>, but "${v}" was provided. Remove it.`,
      })),
  ],

  seLinux: ({ spec, containers }) =>
    [podLevel(spec), ...containers].flatMap((x) => {
      const o = x.c.securityContext?.seLinuxOptions;
      if (o === undefined) return [];
      const out: Finding[] = [];
      if (!SELINUX_TYPES.has(o.type ?? "")) {
        const rule = "must be container_t, container_init_t, container_kvm_t, container_engine_t or unset";
        out.push(finding(x, "securityContext.seLinuxOptions.type", rule, o.type, "Remove it."));
      }
      for (const f of ["user", "role"] as const) {
        if ((o[f] ?? "") !== "") {
          out.push(finding(x, `securityContext.seLinuxOptions.${f}`, "must be unset", o[f], "Remove it."));
        }
      }
      return out;
    }),

  procMount: ({ containers }) =>
    containers
      .filter((x) => (x.c.securityContext?.procMount ?? "Default") !== "Default")
      .map((x) =>
        finding(
          x,
          "securityContext.procMount",
          "must be Default or unset (keeping /proc masked)",
          x.c.securityContext?.procMount,
          "Remove it.",
        ),
      ),

  seccomp: ({ spec, containers }) =>
    [podLevel(spec), ...containers]
      .filter((x) => {
        const type = x.c.securityContext?.seccompProfile?.type;
        return type !== undefined && !CONFINED_PROFILES.has(type);
      })
      .map((x) =>
        finding(
          x,
          "securityContext.seccompProfile.type",
          "must be RuntimeDefault or Localhost",
          x.c.securityContext?.seccompProfile?.type,
          "Use RuntimeDefault.",
        ),
      ),

  sysctls: ({ spec }) =>
    (spec.securityContext?.sysctls ?? []).flatMap((s, i) =>
      SAFE_SYSCTLS.has(s.name)
        ? []
        : [
            {
              path: `spec.securityContext.sysctls[${i}].name`,
              message: `pod: sysctl "${s.name}" is not in the safe (pod-namespaced) set. Remove it or set it on the node.`,
            },
          ],
    ),

  volumeTypes: ({ spec }) =>
    (spec.volumes ?? []).flatMap((v, i) => {
      if (RESTRICTED_VOLUME_SOURCES.some((s) => v[s] !== undefined && v[s] !== null)) return [];
      if (v.hostPath !== undefined && v.hostPath !== null) return [];
      const source = Object.keys(v).find((k) => k !== "name") ?? "no source";
      return [
        {
          path: `spec.volumes[${i}]`,
          message: `volume "${v.name ?? i}": type ${source} is not allowed; only ${RESTRICTED_VOLUME_SOURCES.join(", ")} are. Mount it through a persistentVolumeClaim.`,
        },
      ];
    }),

  allowPrivilegeEscalation: ({ spec, containers }) =>
    isWindows(spec)
      ? []
      : containers
          .filter((x) => x.c.securityContext?.allowPrivilegeEscalation !== false)
          .map((x) =>
            finding(
              x,
              "securityContext.allowPrivilegeEscalation",
              "must be false",
              x.c.securityContext?.allowPrivilegeEscalation,
              "Set allowPrivilegeEscalation: false.",
            ),
          ),

  // A container inherits the pod's runAsNonRoot: true; an explicit false anywhere is a violation.
  // When the pod itself says false, only that is reported: fixing it fixes the containers too.
  runAsNonRoot: ({ spec, containers }) => {
    const pod = spec.securityContext?.runAsNonRoot;
    if (pod === false) {
      return [
        finding(podLevel(spec), "securityContext.runAsNonRoot", "must be true", false, "Set it to true."),
      ];
    }
    return containers
      .filter((x) => {
        const own = x.c.securityContext?.runAsNonRoot;
        return own === false || (own === undefined && pod !== true);
      })
      .map((x) =>
        finding(
          x,
          "securityContext.runAsNonRoot",
          "must be true (here or in the pod's securityContext)",
          x.c.securityContext?.runAsNonRoot,
          "Set runAsNonRoot: true in the pod's securityContext.",
        ),
      );
  },

  runAsUser: ({ spec, containers }) =>
    [podLevel(spec), ...containers]
      .filter((x) => x.c.securityContext?.runAsUser === 0)
      .map((x) =>
        finding(x, "securityContext.runAsUser", "must not be 0 (root)", 0, "Use a non-zero UID or unset it."),
      ),

  // Unconfined (or any other explicit value) is a `seccomp` finding already; this adds the
  // Restricted demand that a profile be set, on the pod or on every container.
  seccompRestricted: ({ spec, containers }) =>
    isWindows(spec) || spec.securityContext?.seccompProfile?.type !== undefined
      ? []
      : containers
          .filter((x) => x.c.securityContext?.seccompProfile?.type === undefined)
          .map((x) =>
            finding(
              x,
              "securityContext.seccompProfile.type",
              "must be RuntimeDefault or Localhost (here or in the pod's securityContext)",
              undefined,
              "Set seccompProfile: {type: RuntimeDefault} in the pod's securityContext.",
            ),
          ),

  // Capabilities outside the runtime's default set are `capabilities` findings already.
  capabilitiesRestricted: ({ spec, containers }) =>
    isWindows(spec)
      ? []
      : containers.flatMap((x) => {
          const caps = x.c.securityContext?.capabilities;
          const out: Finding[] = [];
          if (!(caps?.drop ?? []).includes("ALL")) {
            out.push(
              finding(
                x,
                "securityContext.capabilities.drop",
                'must include "ALL"',
                caps?.drop,
                'Set capabilities.drop: ["ALL"].',
              ),
            );
          }
          (caps?.add ?? []).forEach((cap, i) => {
            if (cap !== "NET_BIND_SERVICE" && BASELINE_CAPABILITIES.has(cap)) {
              out.push(
                finding(
                  x,
                  `securityContext.capabilities.add[${i}]`,
                  "may only add NET_BIND_SERVICE",
                  cap,
                  "Remove it from capabilities.add.",
                ),
              );
            }
          });
          return out;
        }),
};

// ---- Helpers. ----

/** The pod a manifest describes: its template for workloads, itself for a Pod or a bare template. */
function podOf(input: PodTemplate | Manifest): PodTemplate {
  const kind = (input as Manifest).kind;
  if (kind === undefined || kind === "Pod") return input as PodTemplate;
  const [ref] = extractPodTemplates([input as Manifest]);
  if (ref === undefined) {
    throw new Error(
      `checkPodSecurity: input must be a pod template or a workload (${Object.keys(TEMPLATE_PATHS).join(", ")}), but kind ${kind} was provided.`,
    );
  }
  return ref.template;
}

/** containers, initContainers and ephemeralContainers: every control applies to all three. */
function containersOf(spec: PodSpec): ContainerRef[] {
  return (["containers", "initContainers", "ephemeralContainers"] as const).flatMap((field) =>
    (spec[field] ?? []).map((c, i) => ({
      path: `spec.${field}[${i}]`,
      label: `${field === "containers" ? "container" : field.slice(0, -1)} "${c.name ?? i}"`,
      c,
    })),
  );
}

/** The pod-level securityContext, dressed as a container so one filter serves both levels. */
function podLevel(spec: PodSpec): ContainerRef {
  return { path: "spec", label: "pod", c: { securityContext: spec.securityContext } };
}

/** Privilege escalation, Restricted seccomp and capabilities do not apply to Windows pods. */
function isWindows(spec: PodSpec): boolean {
  return spec.os?.name === "windows";
}

function finding(x: ContainerRef, field: string, rule: string, value: unknown, fix: string): Finding {
  const shown = value === undefined ? "nothing" : JSON.stringify(value);
  return {
    path: `${x.path}.${field}`,
    message: `${x.label}: ${field} ${rule}, but ${shown} was provided. ${fix}`,
  };
}

function dig(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
