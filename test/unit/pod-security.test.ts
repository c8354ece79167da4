import {
  checkPodSecurity,
  extractPodTemplates,
  POD_SECURITY_RULES,
  type Container,
  type Manifest,
  type PodSecurityContext,
  type PodSecurityRule,
  type PodSpec,
  type PodTemplate,
  type SecurityContext,
} from "../support/pod-security";

/** A pod that meets Restricted (and so Baseline): the starting point every failing case breaks once. */
const COMPLIANT: PodTemplate = {
  metadata: {
    labels: { app: "web" },
    annotations: { "container.apparmor.security.beta.kubernetes.io/app": "runtime/default" },
  },
  spec: {
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 101,
      fsGroup: 101,
      seccompProfile: { type: "RuntimeDefault" },
      sysctls: [{ name: "net.ipv4.ip_local_port_range", value: "1024 65535" }],
    },
    containers: [
      {
        name: "app",
        image: "nginx:1.28.0-alpine",
        ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
        readinessProbe: { httpGet: { path: "/healthz", port: "http" } },
        securityContext: {
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
          seLinuxOptions: { type: "container_t", level: "s0:c1,c2" },
          appArmorProfile: { type: "RuntimeDefault" },
          procMount: "Default",
        },
      },
    ],
    initContainers: [
      {
        name: "init",
        image: "busybox:1.36",
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
      },
    ],
    volumes: [
      { name: "files", configMap: { name: "web-files" } },
      { name: "secret-files", secret: { secretName: "web-secret" } },
      { name: "data", persistentVolumeClaim: { claimName: "data" } },
      { name: "tmp", emptyDir: {} },
      { name: "token", projected: { sources: [] } },
    ],
  },
};

const APP = COMPLIANT.spec?.containers?.[0] as Container;

/** COMPLIANT with some pod spec fields replaced. */
function withSpec(patch: Partial<PodSpec>): PodTemplate {
  return { ...COMPLIANT, spec: { ...COMPLIANT.spec, ...patch } };
}

/** COMPLIANT with some pod-level securityContext fields replaced (`undefined` unsets one). */
function withPodContext(patch: PodSecurityContext): PodTemplate {
  return withSpec({ securityContext: { ...COMPLIANT.spec?.securityContext, ...patch } });
}

/** COMPLIANT with the app container's securityContext fields (and other fields) replaced. */
function withApp(sc: SecurityContext, extra: Partial<Container> = {}): PodTemplate {
  const app: Container = { ...APP, ...extra, securityContext: { ...APP.securityContext, ...sc } };
  return withSpec({ containers: [app] });
}

function found(pod: PodTemplate | Manifest, level?: "baseline" | "restricted"): [string, string][] {
  return checkPodSecurity(pod, level).map((v) => [v.rule, v.path]);
}

describe("checkPodSecurity", () => {
  it("passes a compliant pod with no violations, at both levels", () => {
    expect(checkPodSecurity(COMPLIANT)).toEqual([]);
    expect(checkPodSecurity(COMPLIANT, "baseline")).toEqual([]);
  });

  it("passes a minimally specified pod at Baseline, and names each Restricted gap for it", () => {
    // GIVEN a pod that sets nothing security-related (Baseline "allows the default pod")
    const bare: PodTemplate = { spec: { containers: [{ name: "app", image: "nginx" }] } };
    // THEN Baseline is met, and Restricted asks for exactly its four opt-ins
    expect(checkPodSecurity(bare, "baseline")).toEqual([]);
    expect(found(bare)).toEqual([
      ["allowPrivilegeEscalation", "spec.containers[0].securityContext.allowPrivilegeEscalation"],
      ["runAsNonRoot", "spec.containers[0].securityContext.runAsNonRoot"],
      ["seccompRestricted", "spec.containers[0].securityContext.seccompProfile.type"],
      ["capabilitiesRestricted", "spec.containers[0].securityContext.capabilities.drop"],
    ]);
  });

  // Each manifest breaks one control once; it must produce that rule's violations and no other.
  const FAILING: [string, PodSecurityRule, PodTemplate, string[]][] = [
    [
      "hostProcess on the pod",
      "hostProcess",
      withPodContext({ windowsOptions: { hostProcess: true } }),
      ["spec.securityContext.windowsOptions.hostProcess"],
    ],
    [
      "hostProcess on a container",
      "hostProcess",
      withApp({ windowsOptions: { hostProcess: true } }),
      ["spec.containers[0].securityContext.windowsOptions.hostProcess"],
    ],
    ["hostNetwork", "hostNamespaces", withSpec({ hostNetwork: true }), ["spec.hostNetwork"]],
    ["hostPID", "hostNamespaces", withSpec({ hostPID: true }), ["spec.hostPID"]],
    ["hostIPC", "hostNamespaces", withSpec({ hostIPC: true }), ["spec.hostIPC"]],
    [
      "a privileged container",
      "privileged",
      withApp({ privileged: true }),
      ["spec.containers[0].securityContext.privileged"],
    ],
    [
      "a privileged init container",
      "privileged",
      withSpec({
        initContainers: [
          {
            ...COMPLIANT.spec?.initContainers?.[0],
            securityContext: { ...COMPLIANT.spec?.initContainers?.[0].securityContext, privileged: true },
          },
        ],
      }),
      ["spec.initContainers[0].securityContext.privileged"],
    ],
    [
      "a privileged ephemeral container",
      "privileged",
      withSpec({
        ephemeralContainers: [
          {
            name: "debug",
            image: "busybox",
            securityContext: {
              allowPrivilegeEscalation: false,
              capabilities: { drop: ["ALL"] },
              privileged: true,
            },
          },
        ],
      }),
      ["spec.ephemeralContainers[0].securityContext.privileged"],
    ],
    [
      "SYS_ADMIN added (outside the runtime default set)",
      "capabilities",
      withApp({ capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE", "SYS_ADMIN"] } }),
      ["spec.containers[0].securityContext.capabilities.add[1]"],
    ],
    [
      "a hostPath volume",
      "hostPathVolumes",
      withSpec({
        volumes: [
          ...(COMPLIANT.spec?.volumes ?? []),
          { name: "docker", hostPath: { path: "/var/run/docker.sock" } },
        ],
      }),
      ["spec.volumes[5].hostPath"],
    ],
    [
      "a host port",
      "hostPorts",
      withApp({}, { ports: [{ name: "http", containerPort: 8080, hostPort: 80 }] }),
      ["spec.containers[0].ports[0].hostPort"],
    ],
    [
      "a probe aimed at another host",
      "hostProbes",
      withApp({}, { readinessProbe: { httpGet: { path: "/", port: 8080, host: "169.254.169.254" } } }),
      ["spec.containers[0].readinessProbe.httpGet.host"],
    ],
    [
      "a lifecycle hook aimed at another host",
      "hostProbes",
      withApp({}, { lifecycle: { preStop: { tcpSocket: { port: 80, host: "10.0.0.1" } } } }),
      ["spec.containers[0].lifecycle.preStop.tcpSocket.host"],
    ],
    [
      "AppArmor Unconfined on the pod",
      "appArmor",
      withPodContext({ appArmorProfile: { type: "Unconfined" } }),
      ["spec.securityContext.appArmorProfile.type"],
    ],
    [
      "AppArmor Unconfined on a container",
      "appArmor",
      withApp({ appArmorProfile: { type: "Unconfined" } }),
      ["spec.containers[0].securityContext.appArmorProfile.type"],
    ],
    [
      "the AppArmor annotation set to unconfined",
      "appArmor",
      {
        ...COMPLIANT,
        metadata: { annotations: { "container.apparmor.security.beta.kubernetes.io/app": "unconfined" } },
      },
      ['metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"]'],
    ],
    [
      "a custom SELinux type",
      "seLinux",
      withApp({ seLinuxOptions: { type: "spc_t" } }),
      ["spec.containers[0].securityContext.seLinuxOptions.type"],
    ],
    [
      "an SELinux user and role on the pod",
      "seLinux",
      withPodContext({ seLinuxOptions: { user: "system_u", role: "system_r" } }),
      ["spec.securityContext.seLinuxOptions.user", "spec.securityContext.seLinuxOptions.role"],
    ],
    [
      "an unmasked /proc",
      "procMount",
      withApp({ procMount: "Unmasked" }),
      ["spec.containers[0].securityContext.procMount"],
    ],
    [
      "seccomp Unconfined on the pod",
      "seccomp",
      withPodContext({ seccompProfile: { type: "Unconfined" } }),
      ["spec.securityContext.seccompProfile.type"],
    ],
    [
      "seccomp Unconfined on a container",
      "seccomp",
      withApp({ seccompProfile: { type: "Unconfined" } }),
      ["spec.containers[0].securityContext.seccompProfile.type"],
    ],
    [
      "an unsafe sysctl",
      "sysctls",
      withPodContext({
        sysctls: [
          { name: "kernel.shm_rmid_forced", value: "1" },
          { name: "kernel.msgmax", value: "65536" },
        ],
      }),
      ["spec.securityContext.sysctls[1].name"],
    ],
    [
      "an nfs volume",
      "volumeTypes",
      withSpec({ volumes: [{ name: "share", nfs: { server: "nas", path: "/export" } }] }),
      ["spec.volumes[0]"],
    ],
    [
      "a gitRepo volume",
      "volumeTypes",
      withSpec({ volumes: [{ name: "src", gitRepo: { repository: "https://example.com/x.git" } }] }),
      ["spec.volumes[0]"],
    ],
    [
      "allowPrivilegeEscalation left unset",
      "allowPrivilegeEscalation",
      withApp({ allowPrivilegeEscalation: undefined }),
      ["spec.containers[0].securityContext.allowPrivilegeEscalation"],
    ],
    [
      "allowPrivilegeEscalation: true",
      "allowPrivilegeEscalation",
      withApp({ allowPrivilegeEscalation: true }),
      ["spec.containers[0].securityContext.allowPrivilegeEscalation"],
    ],
    [
      "runAsNonRoot set nowhere (every container is flagged)",
      "runAsNonRoot",
      withPodContext({ runAsNonRoot: undefined }),
      [
        "spec.containers[0].securityContext.runAsNonRoot",
        "spec.initContainers[0].securityContext.runAsNonRoot",
      ],
    ],
    [
      "runAsNonRoot: false on the pod",
      "runAsNonRoot",
      withPodContext({ runAsNonRoot: false }),
      ["spec.securityContext.runAsNonRoot"],
    ],
    [
      "runAsNonRoot: false on a container, even under a pod-level true",
      "runAsNonRoot",
      withApp({ runAsNonRoot: false }),
      ["spec.containers[0].securityContext.runAsNonRoot"],
    ],
    [
      "runAsUser: 0 on the pod",
      "runAsUser",
      withPodContext({ runAsUser: 0 }),
      ["spec.securityContext.runAsUser"],
    ],
    [
      "runAsUser: 0 on a container",
      "runAsUser",
      withApp({ runAsUser: 0 }),
      ["spec.containers[0].securityContext.runAsUser"],
    ],
    [
      "no seccomp profile anywhere",
      "seccompRestricted",
      withPodContext({ seccompProfile: undefined }),
      [
        "spec.containers[0].securityContext.seccompProfile.type",
        "spec.initContainers[0].securityContext.seccompProfile.type",
      ],
    ],
    [
      "a seccomp profile on some containers only",
      "seccompRestricted",
      (() => {
        const pod = withPodContext({ seccompProfile: undefined });
        const app = {
          ...APP,
          securityContext: {
            ...APP.securityContext,
            seccompProfile: { type: "Localhost", localhostProfile: "app.json" },
          },
        };
        return { ...pod, spec: { ...pod.spec, containers: [app] } };
      })(),
      ["spec.initContainers[0].securityContext.seccompProfile.type"],
    ],
    [
      "capabilities not dropped",
      "capabilitiesRestricted",
      withApp({ capabilities: { add: ["NET_BIND_SERVICE"] } }),
      ["spec.containers[0].securityContext.capabilities.drop"],
    ],
    [
      "a default capability other than NET_BIND_SERVICE added",
      "capabilitiesRestricted",
      withApp({ capabilities: { drop: ["ALL"], add: ["CHOWN"] } }),
      ["spec.containers[0].securityContext.capabilities.add[0]"],
    ],
  ];

  it("has a failing case for every rule", () => {
    expect(new Set(FAILING.map(([, rule]) => rule))).toEqual(new Set(Object.keys(POD_SECURITY_RULES)));
  });

  it.each(FAILING)("catches %s as %s", (_title, rule, pod, paths) => {
    expect(found(pod)).toEqual(paths.map((p) => [rule, p]));
    // Baseline rules fire at Baseline too; Restricted rules only at Restricted.
    const atBaseline = POD_SECURITY_RULES[rule].level === "baseline" ? paths.map((p) => [rule, p]) : [];
    expect(found(pod, "baseline")).toEqual(atBaseline);
  });

  it("explains each violation: who, which field, the value found and the fix", () => {
    expect(checkPodSecurity(withApp({ privileged: true }))).toEqual([
      {
        rule: "privileged",
        level: "baseline",
        path: "spec.containers[0].securityContext.privileged",
        message:
          'container "app": securityContext.privileged must be false or unset, but true was provided. Remove it.',
      },
    ]);
    const [v] = checkPodSecurity(withSpec({ hostNetwork: true }));
    expect(v.message).toContain("hostNetwork must be false or unset");
  });

  describe("pod-level and container-level settings", () => {
    it("accepts runAsNonRoot and seccomp set on every container instead of the pod", () => {
      const perContainer = (c: Container): Container => ({
        ...c,
        securityContext: {
          ...c.securityContext,
          runAsNonRoot: true,
          seccompProfile: { type: "RuntimeDefault" },
        },
      });
      const pod = withSpec({
        securityContext: { runAsUser: 101 },
        containers: (COMPLIANT.spec?.containers ?? []).map(perContainer),
        initContainers: (COMPLIANT.spec?.initContainers ?? []).map(perContainer),
      });
      expect(checkPodSecurity(pod)).toEqual([]);
    });

    it("lets a container confine seccomp further than the pod, but never unconfine it", () => {
      expect(
        checkPodSecurity(withApp({ seccompProfile: { type: "Localhost", localhostProfile: "p.json" } })),
      ).toEqual([]);
      expect(found(withApp({ seccompProfile: { type: "Unconfined" } }))).toEqual([
        ["seccomp", "spec.containers[0].securityContext.seccompProfile.type"],
      ]);
    });

    it("reports a pod-level runAsNonRoot: false once, not again for each inheriting container", () => {
      expect(found(withPodContext({ runAsNonRoot: false }))).toEqual([
        ["runAsNonRoot", "spec.securityContext.runAsNonRoot"],
      ]);
    });

    it("flags runAsUser: 0 on the pod even when every container sets its own UID", () => {
      // The pod-level field is itself restricted: 0 there is a violation whatever containers say.
      const pod = withApp({ runAsUser: 101 });
      const rootPod = {
        ...pod,
        spec: { ...pod.spec, securityContext: { ...pod.spec?.securityContext, runAsUser: 0 } },
      };
      const initless = { ...rootPod, spec: { ...rootPod.spec, initContainers: [] } };
      expect(found(initless)).toEqual([["runAsUser", "spec.securityContext.runAsUser"]]);
    });
  });

  it("relaxes privilege escalation, seccomp and capabilities for Windows pods only", () => {
    // GIVEN a pod without those three settings
    const linux = withSpec({
      securityContext: { runAsNonRoot: true },
      containers: [{ name: "app", image: "x" }],
      initContainers: [],
    });
    const windows = { ...linux, spec: { ...linux.spec, os: { name: "windows" } } };
    // THEN Linux is asked for all three, Windows for none
    expect(found(linux).map(([rule]) => rule)).toEqual([
      "allowPrivilegeEscalation",
      "seccompRestricted",
      "capabilitiesRestricted",
    ]);
    expect(checkPodSecurity(windows)).toEqual([]);
  });

  it("checks the template of a whole workload manifest, with paths relative to the pod", () => {
    const deployment: Manifest = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: { replicas: 2, template: withApp({ privileged: true }) },
    };
    expect(found(deployment)).toEqual([["privileged", "spec.containers[0].securityContext.privileged"]]);
    const pod: Manifest = { apiVersion: "v1", kind: "Pod", metadata: { name: "web" }, spec: COMPLIANT.spec };
    expect(checkPodSecurity(pod)).toEqual([]);
  });

  it("refuses a manifest that holds no pod", () => {
    expect(() => checkPodSecurity({ kind: "Service", metadata: { name: "web" }, spec: {} })).toThrow(
      "checkPodSecurity: input must be a pod template or a workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), but kind Service was provided.",
    );
  });
});

describe("extractPodTemplates", () => {
  it("finds the pod template of every workload kind and skips the rest", () => {
    const t = (name: string): PodTemplate => ({
      metadata: { labels: { app: name } },
      spec: { containers: [] },
    });
    const manifests: Manifest[] = [
      { kind: "Deployment", metadata: { name: "web", namespace: "shop" }, spec: { template: t("web") } },
      { kind: "Service", metadata: { name: "web" }, spec: { selector: { app: "web" } } },
      { kind: "StatefulSet", metadata: { name: "db" }, spec: { template: t("db") } },
      { kind: "DaemonSet", metadata: { name: "agent" }, spec: { template: t("agent") } },
      { kind: "Job", metadata: { name: "migrate" }, spec: { template: t("migrate") } },
      {
        kind: "CronJob",
        metadata: { name: "backup" },
        spec: { jobTemplate: { spec: { template: t("backup") } } },
      },
      { kind: "Pod", metadata: { name: "debug", labels: { app: "debug" } }, spec: { containers: [] } },
      { kind: "ConfigMap", metadata: { name: "files" } },
    ];
    const refs = extractPodTemplates(manifests);
    expect(refs.map((r) => [r.kind, r.name, r.templatePath])).toEqual([
      ["Deployment", "web", "spec.template"],
      ["StatefulSet", "db", "spec.template"],
      ["DaemonSet", "agent", "spec.template"],
      ["Job", "migrate", "spec.template"],
      ["CronJob", "backup", "spec.jobTemplate.spec.template"],
      ["Pod", "debug", ""],
    ]);
    expect(refs[0].namespace).toBe("shop");
    expect(refs[4].template.metadata?.labels).toEqual({ app: "backup" });
    expect(refs[5].template.metadata?.labels).toEqual({ app: "debug" });
  });
});
