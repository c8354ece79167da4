import { createHash, createHmac } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import type { HealthCheck, ImageBuild, TaskSpec, WorkloadSpec } from "./types";
import { checkInput, invalidArg } from "../errors";
import { compareStrings } from "../validation";

/** Kubernetes object names and port names double as DNS labels: keep both platforms to that rule. */
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** Kubernetes port names: at most 15 characters (IANA_SVC_NAME). */
const PORT_NAME = /^[a-z]([-a-z0-9]{0,13}[a-z0-9])?$/;
/** POSIX-portable environment variable names. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Health-check timing defaults, shared so Docker and Kubernetes probe the same way. */
export const HEALTH_DEFAULTS = {
  intervalSeconds: 5,
  timeoutSeconds: 3,
  failureThreshold: 3,
  startPeriodSeconds: 10,
} as const;

export type ResolvedHealthCheck = HealthCheck & {
  readonly intervalSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
  readonly startPeriodSeconds: number;
};

/** Fills the timing defaults of a health check (`??`, so an explicit 0 is kept and then rejected). */
export function resolveHealthCheck(h: HealthCheck): ResolvedHealthCheck {
  return {
    ...h,
    intervalSeconds: h.intervalSeconds ?? HEALTH_DEFAULTS.intervalSeconds,
    timeoutSeconds: h.timeoutSeconds ?? HEALTH_DEFAULTS.timeoutSeconds,
    failureThreshold: h.failureThreshold ?? HEALTH_DEFAULTS.failureThreshold,
    startPeriodSeconds: h.startPeriodSeconds ?? HEALTH_DEFAULTS.startPeriodSeconds,
  };
}

/**
 * Seconds a platform waits for a newly started member to report healthy before it calls the
 * update failed: the start period, then every allowed failure, plus a minute of slack for
 * pulling and starting. A volume adds time for a copy from a peer (a base backup or a full
 * state transfer) at a conservative 100 MB/s.
 */
export function healthWaitSeconds(h: ResolvedHealthCheck, volumeGi = 0): number {
  return (
    h.startPeriodSeconds + (h.intervalSeconds + h.timeoutSeconds) * h.failureThreshold + 60 + volumeGi * 10
  );
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("Workload", name, field, rule, value, fix);
}

function isPort(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
}

/**
 * Files and secret files (of a workload or a task): absolute paths, each in one of the two only,
 * so a secret file can never be shadowed by (or mounted over) a plain one.
 */
function validateFiles(
  kind: "Workload" | "Task",
  name: string,
  spec: Pick<WorkloadSpec, "files" | "secretFiles" | "fileOwner">,
): void {
  for (const path of [...Object.keys(spec.files ?? {}), ...Object.keys(spec.secretFiles ?? {})]) {
    if (!path.startsWith("/") || path.endsWith("/") || path.includes("..")) {
      invalidArg(
        kind,
        name,
        "files",
        "be keyed by absolute file paths",
        path,
        "Use a path such as /etc/app/app.conf.",
      );
    }
    if (
      spec.files !== undefined &&
      spec.secretFiles !== undefined &&
      path in spec.files &&
      path in spec.secretFiles
    ) {
      invalidArg(
        kind,
        name,
        "secretFiles",
        "not repeat a path that files also sets",
        path,
        "Put the file in one of the two only.",
      );
    }
  }
  if (spec.fileOwner !== undefined && (!Number.isInteger(spec.fileOwner) || spec.fileOwner < 0)) {
    invalidArg(
      kind,
      name,
      "fileOwner",
      "be a numeric user id (0 or more)",
      spec.fileOwner,
      "Use the uid of the image's daemon user, or leave it unset (runAsUser, else root).",
    );
  }
}

/** Checks a one-shot task before a platform creates anything for it. */
export function validateTaskSpec(name: string, spec: TaskSpec): void {
  if (!DNS_LABEL.test(name) || name.length > 52) {
    // 52: a Job's pods append a 5-character suffix, and labels stop at 63.
    invalidArg(
      "Task",
      name,
      "the task name",
      "be a DNS label of at most 52 characters (a-z, 0-9, '-')",
      name,
      "Shorten the component's name.",
    );
  }
  if (spec.command.length === 0) {
    invalidArg("Task", name, "command", "not be empty", spec.command, "Give the command line to run.");
  }
  if (!Number.isInteger(spec.timeoutSeconds) || spec.timeoutSeconds < 1) {
    invalidArg(
      "Task",
      name,
      "timeoutSeconds",
      "be a whole number of at least 1",
      spec.timeoutSeconds,
      "Give the longest run you accept.",
    );
  }
  validateFiles("Task", name, spec);
}

/**
 * Checks a workload spec before a platform creates anything for it. Both platforms call this,
 * so a spec that works on Docker cannot fail later on Kubernetes for a naming rule. An Output
 * `image` is checked when it resolves (see {@link checkInput}): deploy the returned spec, which
 * is `spec` itself when the image is a plain string and otherwise carries that check.
 */
export function validateWorkloadSpec(name: string, spec: WorkloadSpec): WorkloadSpec {
  if (!DNS_LABEL.test(name) || name.length > 52) {
    // 52: StatefulSet pods append "-<ordinal>" and a controller hash label to a 63-character limit.
    fail(
      name,
      "the workload name",
      "be a DNS label of at most 52 characters (a-z, 0-9, '-')",
      name,
      "Rename the component to lowercase letters, digits and dashes.",
    );
  }
  if (!Number.isInteger(spec.replicas) || spec.replicas < 1) {
    fail(name, "replicas", "be a whole number of at least 1", spec.replicas, "Set replicas to 1 or more.");
  }
  const image = checkInput(spec.image, (ref) => {
    if (typeof ref !== "string" || ref.trim() === "" || !ref.includes(":") || ref.endsWith(":latest")) {
      fail(
        name,
        "image",
        "be pinned by a tag other than latest (name:tag)",
        ref,
        "Give the image with an explicit version tag, e.g. nginx:1.28.0-alpine.",
      );
    }
  });
  if (!DNS_LABEL.test(spec.tier)) {
    fail(
      name,
      "tier",
      "be a DNS label (a-z, 0-9, '-')",
      spec.tier,
      "Use a short lowercase name such as app or db.",
    );
  }
  for (const t of spec.allowFrom ?? []) {
    if (!DNS_LABEL.test(t)) {
      fail(
        name,
        "allowFrom",
        "list tier names that are DNS labels",
        t,
        "Use the tier names other workloads declare.",
      );
    }
  }
  const portNames = Object.keys(spec.ports);
  if (portNames.length === 0) {
    fail(name, "ports", "name at least one port", spec.ports, "Add e.g. { http: 8080 }.");
  }
  for (const [portName, port] of Object.entries(spec.ports)) {
    if (!PORT_NAME.test(portName)) {
      fail(
        name,
        `ports.${portName}`,
        "have a name of at most 15 characters (a-z, 0-9, '-')",
        portName,
        "Rename the port, e.g. http or metrics.",
      );
    }
    if (!isPort(port)) {
      fail(name, `ports.${portName}`, "be a whole number from 1 to 65535", port, "Use a valid TCP port.");
    }
  }
  for (const key of [...Object.keys(spec.env ?? {}), ...Object.keys(spec.secretEnv ?? {})]) {
    if (!ENV_NAME.test(key)) {
      fail(
        name,
        "env",
        "use variable names of letters, digits and '_' (not starting with a digit)",
        key,
        "Rename the variable.",
      );
    }
  }
  for (const key of Object.keys(spec.secretEnv ?? {})) {
    if (spec.env !== undefined && key in spec.env) {
      fail(
        name,
        "secretEnv",
        "not repeat a name that env also sets",
        key,
        "Set the variable in one of the two only.",
      );
    }
  }
  validateFiles("Workload", name, spec);
  if (spec.healthCheck !== undefined) validateHealthCheck(name, spec.healthCheck, spec.ports);
  if (spec.volume !== undefined) {
    if (spec.kind !== "stateful") {
      fail(
        name,
        "volume",
        "only be set on stateful workloads",
        spec.kind,
        "Set kind: stateful, or drop the volume (stateless members are replaceable).",
      );
    }
    if (!Number.isInteger(spec.volume.sizeGi) || spec.volume.sizeGi < 1) {
      fail(
        name,
        "volume.sizeGi",
        "be a whole number of at least 1",
        spec.volume.sizeGi,
        "Set a size in GiB.",
      );
    }
    if (!spec.volume.mountPath.startsWith("/")) {
      fail(name, "volume.mountPath", "be an absolute path", spec.volume.mountPath, "Use e.g. /var/lib/data.");
    }
  }
  const published = new Set<number>();
  for (const p of spec.publicPorts ?? []) {
    if (!(p.target in spec.ports)) {
      fail(
        name,
        "publicPorts.target",
        `name one of the ports (${portNames.join(", ")})`,
        p.target,
        "Use a key of ports.",
      );
    }
    if (!isPort(p.port) || published.has(p.port)) {
      fail(
        name,
        "publicPorts.port",
        "be a distinct whole number from 1 to 65535",
        p.port,
        "Use one valid TCP port per target.",
      );
    }
    published.add(p.port);
  }
  if (spec.memberEnv !== undefined && spec.kind !== "stateful") {
    fail(
      name,
      "memberEnv",
      "only be set on stateful workloads (only their members have stable names)",
      spec.kind,
      "Set kind: stateful, or use env.",
    );
  }
  for (const key of Object.keys(spec.memberEnv ?? {})) {
    if (!ENV_NAME.test(key) || key in (spec.env ?? {}) || key in (spec.secretEnv ?? {})) {
      fail(
        name,
        "memberEnv",
        "use valid variable names that env and secretEnv do not also set",
        key,
        "Rename the variable.",
      );
    }
  }
  for (const port of spec.peerPorts ?? []) {
    if (!(port in spec.ports)) {
      fail(name, "peerPorts", `name one of the ports (${portNames.join(", ")})`, port, "Use a key of ports.");
    }
  }
  for (const path of spec.writablePaths ?? []) {
    if (!path.startsWith("/") || path === "/" || path === "/tmp") {
      fail(
        name,
        "writablePaths",
        "list absolute directories other than / and /tmp (always writable)",
        path,
        "Use e.g. /run/mysqld.",
      );
    }
  }
  for (const t of spec.probes ?? []) {
    if (!DNS_LABEL.test(t)) {
      fail(name, "probes", "list tier names that are DNS labels", t, "Use the tier of a published workload.");
    }
  }
  if (spec.runAsUser !== undefined && (!Number.isInteger(spec.runAsUser) || spec.runAsUser < 1)) {
    fail(
      name,
      "runAsUser",
      "be a non-root numeric user id (1 or more)",
      spec.runAsUser,
      "Use the image's unprivileged user id, or leave it unset.",
    );
  }
  if (spec.build !== undefined && !spec.build.context.startsWith("/")) {
    fail(
      name,
      "build.context",
      "be an absolute directory path",
      spec.build.context,
      "Resolve it, e.g. path.join(__dirname, 'image').",
    );
  }
  if (spec.build !== undefined) builtImageTag(name, spec.image);
  for (const rule of spec.apiAccess ?? []) {
    const words = [...rule.resources, ...rule.verbs];
    if (rule.resources.length === 0 || rule.verbs.length === 0 || words.some((w) => !/^[a-z]+$/.test(w))) {
      fail(
        name,
        "apiAccess",
        "list lowercase resources and verbs (at least one of each), never *",
        rule,
        'Write e.g. { resources: ["configmaps"], verbs: ["get", "watch"] }.',
      );
    }
  }
  validateSidecars(name, spec);
  return image === spec.image ? spec : { ...spec, image };
}

/**
 * Sidecars: DNS-label names, pinned images, ports named uniquely across the pod (a scraper finds a
 * port by its name), an unprivileged user; metrics ports that name a port of the pod.
 */
function validateSidecars(name: string, spec: WorkloadSpec): void {
  const podPorts = new Set(Object.keys(spec.ports));
  const portNumbers = new Set(Object.values(spec.ports));
  // Every container's secret files share the pod's Secret (Kubernetes): one path, one owner.
  const paths = new Set([...Object.keys(spec.files ?? {}), ...Object.keys(spec.secretFiles ?? {})]);
  const names = new Set<string>();
  for (const [i, sc] of (spec.sidecars ?? []).entries()) {
    const at = `sidecars[${i}]`;
    if (!DNS_LABEL.test(sc.name) || sc.name.length > 15 || names.has(sc.name)) {
      fail(
        name,
        `${at}.name`,
        "be a unique DNS label of at most 15 characters",
        sc.name,
        "Name it e.g. metrics.",
      );
    }
    names.add(sc.name);
    if (sc.image.trim() === "" || !sc.image.includes(":") || sc.image.endsWith(":latest")) {
      fail(
        name,
        `${at}.image`,
        "be pinned by a tag other than latest (name:tag)",
        sc.image,
        "Give the exporter image with its version tag.",
      );
    }
    if (!Number.isInteger(sc.runAsUser) || sc.runAsUser < 1) {
      fail(
        name,
        `${at}.runAsUser`,
        "be a numeric user id other than root",
        sc.runAsUser,
        "Use the image's own unprivileged uid, e.g. 65534.",
      );
    }
    for (const [portName, port] of Object.entries(sc.ports)) {
      if (!PORT_NAME.test(portName) || podPorts.has(portName)) {
        fail(
          name,
          `${at}.ports.${portName}`,
          "have a name of at most 15 characters not used by another port of the pod",
          portName,
          "Rename the port, e.g. pg-metrics.",
        );
      }
      if (!isPort(port))
        fail(
          name,
          `${at}.ports.${portName}`,
          "be a whole number from 1 to 65535",
          port,
          "Use a valid TCP port.",
        );
      // One network namespace per pod: two containers cannot listen on one port.
      if (portNumbers.has(port)) {
        fail(
          name,
          `${at}.ports.${portName}`,
          "use a port number no other container of the pod listens on",
          port,
          "Pick another port.",
        );
      }
      podPorts.add(portName);
      portNumbers.add(port);
    }
    validateFiles("Workload", name, { secretFiles: sc.secretFiles });
    for (const path of Object.keys(sc.secretFiles ?? {})) {
      if (paths.has(path)) {
        fail(
          name,
          `${at}.secretFiles`,
          "use paths no other container of the workload uses",
          path,
          "Put the file under a directory of the sidecar's own.",
        );
      }
      paths.add(path);
    }
  }
  for (const m of spec.metricsPorts ?? []) {
    if (!podPorts.has(m.port)) {
      fail(
        name,
        "metricsPorts",
        "name a port of the workload or of its sidecars",
        m.port,
        `Use one of ${[...podPorts].sort().join(", ")}.`,
      );
    }
    if (m.path !== undefined && !/^\/[A-Za-z0-9/_.-]*$/.test(m.path)) {
      fail(name, "metricsPorts.path", "be an absolute URL path", m.path, "Use e.g. /metrics.");
    }
  }
}

/** `{self}` filled in: the member's address as its sidecars reach it. */
export function sidecarValues<T extends string | readonly string[] | Readonly<Record<string, string>>>(
  v: T,
  self: string,
): T {
  const fill = (x: string) => x.split("{self}").join(self);
  if (typeof v === "string") return fill(v) as T;
  if (Array.isArray(v)) return v.map(fill) as unknown as T;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x as string)])) as T;
}

/**
 * The tag of an image a platform builds (`build` set): `image` itself, which must be a plain
 * string, since it decides which image resource is built and names it (one build per tag).
 */
export function builtImageTag(name: string, image: pulumi.Input<string>): string {
  if (typeof image !== "string") {
    fail(
      name,
      "image",
      "be a plain string when build is set (it names the image that is built)",
      pulumi.Output.isInstance(image) ? "an Output" : "a Promise",
      "Give the tag to build as a string, or drop build and pass a prebuilt image.",
    );
  }
  return image;
}

function validateHealthCheck(name: string, h: HealthCheck, ports: Readonly<Record<string, number>>): void {
  const kinds = [h.httpGet, h.exec, h.tcpPort].filter((k) => k !== undefined).length;
  if (kinds !== 1) {
    fail(
      name,
      "healthCheck",
      "set exactly one of httpGet, exec or tcpPort",
      kinds,
      "Keep one way of checking the member.",
    );
  }
  const port = h.httpGet?.port ?? h.tcpPort;
  if (port !== undefined && !(port in ports)) {
    fail(
      name,
      "healthCheck port",
      `name one of the ports (${Object.keys(ports).join(", ")})`,
      port,
      "Use a key of ports.",
    );
  }
  if (h.httpGet !== undefined && !h.httpGet.path.startsWith("/")) {
    fail(name, "healthCheck.httpGet.path", "start with /", h.httpGet.path, "Use e.g. /healthz.");
  }
  if (h.livenessPath !== undefined && (h.httpGet === undefined || !h.livenessPath.startsWith("/"))) {
    fail(
      name,
      "healthCheck.livenessPath",
      "be a path starting with / beside httpGet",
      h.livenessPath,
      "Use it with an httpGet check, e.g. /liveness.",
    );
  }
  const r = resolveHealthCheck(h);
  for (const key of ["intervalSeconds", "timeoutSeconds", "failureThreshold"] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 1) {
      fail(name, `healthCheck.${key}`, "be a whole number of at least 1", r[key], "Raise it.");
    }
  }
  if (!Number.isInteger(r.startPeriodSeconds) || r.startPeriodSeconds < 0) {
    fail(
      name,
      "healthCheck.startPeriodSeconds",
      "be a whole number of at least 0",
      r.startPeriodSeconds,
      "Use 0 or more.",
    );
  }
  if (r.timeoutSeconds > r.intervalSeconds) {
    fail(
      name,
      "healthCheck.timeoutSeconds",
      `not exceed intervalSeconds (${r.intervalSeconds})`,
      r.timeoutSeconds,
      "Lower the timeout or raise the interval, or checks overlap.",
    );
  }
}

/**
 * The command Docker runs for an HTTP check: Docker has no HTTP probe of its own. busybox
 * `wget` ships in the alpine images this project uses by default.
 */
export function dockerHealthCommand(h: HealthCheck, ports: Readonly<Record<string, number>>): string[] {
  if (h.dockerCommand !== undefined) return ["CMD", ...h.dockerCommand];
  if (h.exec !== undefined) return ["CMD", ...h.exec];
  if (h.httpGet !== undefined) {
    return [
      "CMD",
      "wget",
      "-q",
      "-O",
      "/dev/null",
      `http://127.0.0.1:${ports[h.httpGet.port]}${h.httpGet.path}`,
    ];
  }
  // A TCP check without curl/nc in the image: bash's /dev/tcp is not in busybox, so use nc -z.
  return ["CMD", "nc", "-z", "127.0.0.1", String(ports[h.tcpPort as string])];
}

/** SHA-256 over files sorted by path, so a changed config file changes the digest and nothing else does. */
export function filesDigest(files: Readonly<Record<string, string>>): string {
  const hash = createHash("sha256");
  for (const path of Object.keys(files).sort()) {
    hash.update(path).update("\0").update(files[path]).update("\0");
  }
  return hash.digest("hex");
}

/**
 * What a pod mounts or reads at start (files, secret files, secret env), as an HMAC keyed by a
 * generated secret: it changes whenever any of them does, yet tells nothing about secret
 * values (no unsalted hash of a password to test guesses against), so it may sit in a pod
 * template's annotations in the clear.
 */
export function configDigest(
  key: string,
  inputs: {
    readonly files: Readonly<Record<string, string>>;
    readonly secretFiles: Readonly<Record<string, string>>;
    readonly secretEnv: Readonly<Record<string, string>>;
  },
): string {
  const hmac = createHmac("sha256", key);
  for (const [section, entries] of [
    ["files", inputs.files],
    ["secretFiles", inputs.secretFiles],
    ["secretEnv", inputs.secretEnv],
  ] as const) {
    for (const k of Object.keys(entries).sort())
      hmac.update(section).update("\0").update(k).update("\0").update(entries[k]).update("\0");
  }
  return hmac.digest("hex");
}

/** ConfigMap keys allow [-._a-zA-Z0-9]: derive a stable, readable key from a file path. */
export function fileKey(path: string): string {
  return path.replace(/^\/+/, "").replace(/[^-._a-zA-Z0-9]/g, "_");
}

/**
 * Names of a stateful workload's members (`<name>-0`, `<name>-1`, …) on every platform: a
 * StatefulSet's pod names, and Docker's container aliases. Known before deploy, so a config can
 * name its peers.
 */
export function statefulMemberNames(name: string, replicas: number): string[] {
  return Array.from({ length: replicas }, (_, i) => `${name}-${i}`);
}

export { compareStrings };

/**
 * Entries of a record sorted by key ({@link compareStrings}), so generated lists never depend on
 * insertion order.
 */
export function sortedEntries<T>(record: Readonly<Record<string, T>> | undefined): [string, T][] {
  return Object.entries(record ?? {}).sort(([a], [b]) => compareStrings(a, b));
}

/** The Docker provider's build arguments for an {@link ImageBuild}: the Dockerfile as a path. */
export function dockerBuild(build: ImageBuild): { context: string; dockerfile: string } {
  return { context: build.context, dockerfile: `${build.context}/${build.dockerfile ?? "Dockerfile"}` };
}

/**
 * A workload's `probes` name tiers already deployed with public ports on this platform (the
 * prober is admitted there, so what it probes must exist first). Throws before anything is made.
 */
export function checkProbes(name: string, spec: WorkloadSpec, publishedTiers: ReadonlySet<string>): void {
  for (const t of spec.probes ?? []) {
    if (!publishedTiers.has(t)) {
      fail(
        name,
        "probes",
        "name tiers already deployed with publicPorts",
        t,
        `Deploy ${name} after the published workload of tier ${t}, or drop it from probes.`,
      );
    }
  }
}
