/**
 * A model of Kubernetes' StatefulSet controller and kubelet, run with real daemons on loopback.
 *
 * Input: a StatefulSet the real program synthesized under the mocked engine, read from its
 * manifest (pod management policy, the container's command, environment, mounts and probes,
 * terminationGracePeriodSeconds) together with the ConfigMaps and Secrets its volumes mount.
 *
 * - Controller: `OrderedReady` creates pod k+1 only once pod k is Ready, and scales down in
 *   reverse order, each pod gone before the next is stopped; `Parallel` creates and stops them all
 *   at once. A full restart is a scale to 0 and back: data volumes are kept, emptyDirs are not.
 * - Kubelet: starts the container's command, runs its generated readiness and liveness probes
 *   (exec or HTTP GET, every periodSeconds after initialDelaySeconds, each cut at timeoutSeconds,
 *   failureThreshold failures in a row), restarts a container that exits or fails liveness
 *   (back-off 10 s, 20 s, 40 s… capped at 300 s; bounded here), and stops one with SIGTERM, then
 *   SIGKILL after the grace period.
 *
 * What differs from a cluster, and how it is mapped (each pod is one loopback address):
 * - The pod's filesystem: every mounted path (ConfigMap and Secret files, the data volume,
 *   emptyDirs) and the few paths the image itself writes live under the pod's directory; the
 *   same path mapping is applied to the container's files, environment and probe commands.
 * - The pod's network: a listener on all addresses (`0.0.0.0`) listens on the pod's own loopback
 *   address; a probe's `127.0.0.1` is the pod's address (that is what it reaches in a pod).
 * - Names: each process has its own /etc/hosts (a private mount namespace) mapping every pod's
 *   DNS name (`<pod>.<service>.<ns>.svc.cluster.local`) to its address. Kubernetes publishes a
 *   pod's name only once the pod exists; here all names resolve from the start (a connection to
 *   a pod not yet created is refused at once instead of failing to resolve).
 * - Users: the manifests run every container as an unprivileged user (runAsUser); here MariaDB
 *   runs as `mysql` (the image's uid 999 is its `mysql`) and every other image as the
 *   unprivileged test user (PostgreSQL, Patroni and etcd refuse root).
 * - Image specifics (an {@link ImageModel} each): binaries at the image's paths, the MariaDB
 *   image's entrypoint and health check script, Patroni's DCS.
 */
import { runStackVariant as runEditedStack } from "./stack-variants";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import type { ProgramRun } from "../../scripts/mock-engine";
import {
  httpGet,
  KILL_MS,
  SLOW_MACHINE_FACTOR,
  signalIfAlive,
  waitFor,
  type ProcessGroup,
  type WaitBound,
} from "./daemons";
import { ofType, plain } from "./engine";
import { killPostmaster, PG_USER } from "./postgres";

// ---------------------------------------------------------------------------------------------
// The manifest

export interface Probe {
  readonly exec?: readonly string[];
  readonly httpGet?: { readonly path: string; readonly port: number };
  readonly tcpPort?: number;
  readonly periodSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly initialDelaySeconds: number;
}

/** One environment variable of the container, before the kubelet expands it. */
export interface EnvVar {
  readonly name: string;
  /** A literal value (`$(VAR)` references expanded per pod), or the pod's name (downward API). */
  readonly value?: string;
  readonly podName?: true;
}

export interface StatefulSetManifest {
  readonly name: string;
  readonly namespace: string;
  readonly serviceName: string;
  readonly replicas: number;
  readonly podManagementPolicy: "OrderedReady" | "Parallel";
  readonly image: string;
  /** `command` then `args`, as the kubelet runs them (references not yet expanded). */
  readonly argv: readonly string[];
  readonly env: readonly EnvVar[];
  readonly ports: Readonly<Record<string, number>>;
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly terminationGracePeriodSeconds: number;
  /** Files mounted from ConfigMaps and Secrets, by path in the container. */
  readonly files: ReadonlyMap<string, { readonly content: string; readonly mode: number }>;
  /** The volumeClaimTemplate's mount (kept across pod restarts and re-creation). */
  readonly dataPath?: string;
  /** emptyDir mounts (empty whenever the pod is created). */
  readonly scratchPaths: readonly string[];
}

/** What the manifests carry, loosely typed: the mock engine hands back JSON. */
interface K8sObject {
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: Record<string, unknown>;
}
interface K8sProbe {
  exec?: { command: string[] };
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
  initialDelaySeconds?: number;
}
interface K8sContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
  }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: K8sProbe;
  livenessProbe?: K8sProbe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
}
interface K8sVolume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
}

function objects(run: ProgramRun, kind: string): K8sObject[] {
  return ofType(run, `kubernetes:${kind}`).map((r) => plain(r) as K8sObject);
}

function named(run: ProgramRun, kind: string, name: string): K8sObject {
  const found = objects(run, kind).filter((o) => o.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} named ${name}, found ${found.length}`);
  return found[0];
}

/** Kubernetes' probe defaults, for fields a manifest leaves out. */
function probeOf(p: K8sProbe | undefined, ports: Record<string, number>): Probe | undefined {
  if (p === undefined) return undefined;
  const port = (v: number | string) => {
    const n = typeof v === "number" ? v : ports[v];
    if (n === undefined) throw new Error(`probe port ${v} is not a container port`);
    return n;
  };
  return {
    exec: p.exec?.command,
    httpGet: p.httpGet && { path: p.httpGet.path, port: port(p.httpGet.port) },
    tcpPort: p.tcpSocket && port(p.tcpSocket.port),
    periodSeconds: p.periodSeconds ?? 10,
    timeoutSeconds: p.timeoutSeconds ?? 1,
    failureThreshold: p.failureThreshold ?? 3,
    successThreshold: p.successThreshold ?? 1,
    initialDelaySeconds: p.initialDelaySeconds ?? 0,
  };
}

/** A StatefulSet of a program run (by its Kubernetes name), with everything its pods mount. */
export function statefulSetOf(run: ProgramRun, name: string): StatefulSetManifest {
  const sts = named(run, "apps/v1:StatefulSet", name);
  const spec = sts.spec as {
    replicas: number;
    serviceName: string;
    podManagementPolicy?: "OrderedReady" | "Parallel";
    template: {
      spec: {
        containers: K8sContainer[];
        volumes?: K8sVolume[];
        terminationGracePeriodSeconds?: number;
      };
    };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
  const namespace = (sts.metadata as { namespace?: string }).namespace ?? "default";
  const pod = spec.template.spec;
  // The member's own container, named after the StatefulSet; the others are exporter sidecars,
  // which have no readiness probe (a pod is ready when its member is) and never gate a boot.
  const c = pod.containers.find((x) => x.name === name);
  if (c === undefined) throw new Error(`${name}: no container named after the StatefulSet`);
  const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const claims = new Set((spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name));
  const files = new Map<string, { content: string; mode: number }>();
  const scratchPaths: string[] = [];
  let dataPath: string | undefined;
  for (const m of c.volumeMounts ?? []) {
    if (claims.has(m.name)) {
      dataPath = m.mountPath;
      continue;
    }
    const v = volumes.get(m.name);
    if (v === undefined) throw new Error(`${name}: mount ${m.mountPath} names no volume`);
    if (v.emptyDir !== undefined) {
      scratchPaths.push(m.mountPath);
    } else if (v.configMap !== undefined || v.secret !== undefined) {
      const source = v.configMap
        ? named(run, "core/v1:ConfigMap", v.configMap.name).data
        : named(run, "core/v1:Secret", v.secret?.secretName as string).stringData;
      if (m.subPath === undefined) throw new Error(`${name}: the model mounts files by subPath only`);
      const content = source?.[m.subPath];
      if (content === undefined) throw new Error(`${name}: ${m.subPath} is in no ConfigMap or Secret`);
      // ConfigMap files are 0644 by default; Secrets get their defaultMode.
      files.set(m.mountPath, { content, mode: v.secret?.defaultMode ?? 0o644 });
    } else {
      throw new Error(`${name}: volume ${m.name} is of a kind the model does not mount`);
    }
  }
  const env: EnvVar[] = (c.env ?? []).map((e) => {
    if (e.valueFrom?.fieldRef !== undefined) {
      if (e.valueFrom.fieldRef.fieldPath !== "metadata.name")
        throw new Error(`${name}: env ${e.name} uses ${e.valueFrom.fieldRef.fieldPath}`);
      return { name: e.name, podName: true };
    }
    if (e.valueFrom?.secretKeyRef !== undefined) {
      const ref = e.valueFrom.secretKeyRef;
      const value = named(run, "core/v1:Secret", ref.name).stringData?.[ref.key];
      if (value === undefined) throw new Error(`${name}: env ${e.name}: no key ${ref.key} in ${ref.name}`);
      return { name: e.name, value };
    }
    return { name: e.name, value: e.value ?? "" };
  });
  return {
    name,
    namespace,
    serviceName: spec.serviceName,
    replicas: spec.replicas,
    podManagementPolicy: spec.podManagementPolicy ?? "OrderedReady",
    image: c.image,
    argv: [...(c.command ?? []), ...(c.args ?? [])],
    env,
    ports,
    readinessProbe: probeOf(c.readinessProbe, ports),
    livenessProbe: probeOf(c.livenessProbe, ports),
    terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds ?? 30,
    files,
    dataPath,
    scratchPaths,
  };
}

/** Runs the program for a stack file with some `ha-backend:*` keys replaced (objects as JSON). */
export async function runStackVariant(stack: string, replace: Record<string, unknown>): Promise<ProgramRun> {
  return runEditedStack(stack, (config) => {
    for (const [k, v] of Object.entries(replace))
      config[`ha-backend:${k}`] = v as Record<string, unknown> | string;
  });
}

/** A pod's DNS names through the StatefulSet's headless Service. */
export function podNames(m: StatefulSetManifest, ordinal: number): string[] {
  const pod = `${m.name}-${ordinal}`;
  const fqdn = `${pod}.${m.serviceName}.${m.namespace}.svc.cluster.local`;
  return [fqdn, `${pod}.${m.serviceName}.${m.namespace}`, `${pod}.${m.serviceName}`, pod];
}

// ---------------------------------------------------------------------------------------------
// A pod on this host

export interface PodContext {
  readonly name: string;
  readonly ordinal: number;
  readonly ip: string;
  readonly fqdn: string;
  /** The pod's directory: its mapped filesystem under `root`, logs and test files next to it. */
  readonly dir: string;
  readonly root: string;
  readonly manifest: StatefulSetManifest;
  /** Where a container path lives on this host (under `root`). */
  hostPath(containerPath: string): string;
  /** Every mapped container path in `text` replaced by its host path. */
  mapPaths(text: string): string;
}

/** How one image's container runs on this host. */
export interface ImageModel {
  /** The host user the container's processes run as (see the file comment), and that owns its files. */
  readonly user: "mysql" | typeof PG_USER;
  /** Paths the image writes outside any mount: each pod gets its own, empty when it is created. */
  readonly imagePaths?: readonly string[];
  /** Mounted file content as this host needs it (after path mapping and `0.0.0.0`). */
  file?(pod: PodContext, path: string, content: string): string;
  /** Environment the host needs besides the manifest's (documented test hooks). */
  env?(pod: PodContext): Record<string, string>;
  /** Set-up when the pod is created, after its files are in place. */
  create?(pod: PodContext): void;
  /** A command (the container's or an exec probe's) as this host runs it, after path mapping. */
  argv?(pod: PodContext, argv: readonly string[], use: "container" | "probe"): string[];
  /** Processes of the container outside its process group: a pod's end takes them all. */
  killRest?(pod: PodContext): void;
  /** Why a container exited, where the image logs it (its output's last line otherwise). */
  exitReason?(pod: PodContext): string | undefined;
  /** The start-up of one container no timer governs, for the controller's Ready waits. */
  readonly startCap: { readonly ms: number; readonly because: string };
}

/** Expands `$(VAR)` as the kubelet does: earlier variables of the list only; `$$` escapes. */
function expand(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string | undefined) =>
    v === undefined ? "$" : (vars[v] ?? m),
  );
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `/usr/local/bin/etcd` (the image's place) → `etcd` on this host's PATH. */
function hostBinary(arg: string): string {
  const m = /^\/usr\/local\/bin\/([\w.-]+)$/.exec(arg);
  if (m === null) return arg;
  return spawnSync("sh", ["-c", `command -v ${m[1]}`]).status === 0 ? m[1] : arg;
}

const CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Arguments for `unshare` that run `argv` as a pod's process: in a private mount namespace with
 * `hostsFile` as /etc/hosts and the host's root filesystem read-only except `writable` (the
 * pods' directories; like a read-only root filesystem, and no process of the model can write
 * anywhere else on this host), with a clean environment, as `user`. Every step execs in place,
 * so the started PID is the program's.
 */
function inPodNamespace(
  hostsFile: string,
  writable: string,
  user: ImageModel["user"],
  env: Record<string, string>,
  argv: readonly string[],
): string[] {
  const asUser = ["setpriv", `--reuid=${user}`, `--regid=${user}`, "--init-groups"];
  return [
    "-m",
    "sh",
    "-c",
    `mount --bind "$0" /etc/hosts && mount --bind "$1" "$1" && mount -o remount,bind,ro / && shift && exec "$@"`,
    hostsFile,
    writable,
    "env",
    "-i",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...asUser,
    ...argv,
  ];
}

interface RunResult {
  readonly code: number | null;
  readonly output: string;
  readonly timedOut: boolean;
}

/** A short command (an exec probe), in a process group of its own, killed with it at `timeoutMs`. */
function runBounded(cmd: string, args: string[], timeoutMs: number, cwd: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], cwd });
    let output = "";
    let timedOut = false;
    const append = (d: Buffer) => {
      if (output.length < 4000) output += d.toString();
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    const timer = setTimeout(() => {
      timedOut = true;
      signalIfAlive(-(child.pid as number), "SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve({ code: -1, output: e.message, timedOut });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      signalIfAlive(-(child.pid as number), "SIGKILL");
      resolve({ code, output, timedOut });
    });
  });
}

function tcpOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port, timeout: timeoutMs });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(false));
  });
}

/** A pause of the kubelet model: unref'd, so a pod's pending probe or back-off never keeps the test process alive. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** The kubelet's back-off before restarting a container: 10 s, doubling, at most 300 s. */
export function restartBackOffMs(restart: number): number {
  return Math.min(10_000 * 2 ** (restart - 1), 300_000);
}
/** Restarts per pod before the model gives up (10+20+40+80+160 s of back-off: past any bound here). */
export const MAX_RESTARTS = 5;

/** One line of a pod's history, relative to the model's epoch (the last scale-up). */
export interface PodEvent {
  readonly atMs: number;
  readonly pod: string;
  readonly what: string;
}

class Pod implements PodContext {
  readonly name: string;
  readonly fqdn: string;
  readonly dir: string;
  readonly root: string;
  phase: "Pending" | "Running" | "Terminating" | "Terminated" = "Pending";
  ready = false;
  restarts = 0;
  container?: ChildProcess;
  /** Bumped on every container start and at termination: stale probe loops and restarts stop. */
  private generation = 0;
  private readonly pattern: RegExp;

  constructor(
    readonly manifest: StatefulSetManifest,
    readonly ordinal: number,
    readonly ip: string,
    private readonly set: StatefulSetModel,
  ) {
    this.name = `${manifest.name}-${ordinal}`;
    this.fqdn = podNames(manifest, ordinal)[0];
    this.dir = join(set.dir, this.name);
    this.root = join(this.dir, "root");
    const mapped = [
      ...manifest.files.keys(),
      ...(manifest.dataPath ? [manifest.dataPath] : []),
      ...new Set([...manifest.scratchPaths, ...this.ownPaths()]),
    ].sort((a, b) => b.length - a.length);
    // One pass, longest first: a replaced path is never looked at again.
    // A path starts after a non-path character (`=`, `:-`, a quote, a space…) and ends at one.
    this.pattern = new RegExp(`(?<![\\w./])(${mapped.map(escapeRegExp).join("|")})(?=$|[^\\w.-])`, "g");
  }

  /** Paths the image writes outside any mount, and /tmp: every container has its own. */
  private ownPaths(): string[] {
    return [...new Set(["/tmp", ...(this.set.image.imagePaths ?? [])])].filter(
      (p) => !this.manifest.scratchPaths.includes(p),
    );
  }

  hostPath(containerPath: string): string {
    return join(this.root, containerPath);
  }

  mapPaths(text: string): string {
    return text.replace(this.pattern, (p) => this.hostPath(p));
  }

  private event(what: string): void {
    this.set.record(this.name, what);
  }

  /** The container's environment, as the kubelet builds it (plus what a runtime and this host add). */
  private environment(): Record<string, string> {
    const vars: Record<string, string> = {};
    for (const e of this.manifest.env) {
      const raw = e.podName ? this.name : (e.value ?? "");
      vars[e.name] = this.set.network(this, this.mapPaths(expand(raw, vars)));
    }
    return {
      PATH: CONTAINER_PATH,
      HOSTNAME: this.name,
      // The container's own /tmp (programs that honour TMPDIR; /tmp in files is mapped too).
      TMPDIR: this.hostPath("/tmp"),
      HOME: this.cwd(),
      ...vars,
      ...(this.set.image.env?.(this) ?? {}),
      // The repeat runner finds what a run left behind by this marker (test plumbing, not the pod's).
      ...(process.env.HA_BACKEND_LIVE_RUN ? { HA_BACKEND_LIVE_RUN: process.env.HA_BACKEND_LIVE_RUN } : {}),
    };
  }

  /** The test user's home (the checkout may be where only root can enter); the pod's directory for `mysql`. */
  private cwd(): string {
    return this.set.image.user === PG_USER ? `/home/${PG_USER}` : this.dir;
  }

  /** The pod is created: its files mounted, its emptyDirs (and the image's own paths) empty. */
  create(): void {
    const image = this.set.image;
    mkdirSync(this.dir, { recursive: true });
    for (const p of [...this.manifest.scratchPaths, ...this.ownPaths()]) {
      rmSync(this.hostPath(p), { recursive: true, force: true });
      mkdirSync(this.hostPath(p), { recursive: true });
    }
    if (this.manifest.dataPath) mkdirSync(this.hostPath(this.manifest.dataPath), { recursive: true });
    for (const [path, f] of this.manifest.files) {
      const host = this.hostPath(path);
      mkdirSync(join(host, ".."), { recursive: true });
      const patch = this.set.fileOverrides[path];
      const content = patch ? patch(f.content) : f.content;
      const mapped = this.set.network(this, this.mapPaths(content));
      writeFileSync(host, image.file ? image.file(this, path, mapped) : mapped);
    }
    if (spawnSync("chown", ["-R", `${image.user}:${image.user}`, this.dir]).status !== 0)
      throw new Error(`chown ${this.dir} failed`);
    // Mounted files are read-only to the container (ConfigMap 0644 and Secret 0444 less write).
    for (const [path, f] of this.manifest.files) chmodSync(this.hostPath(path), f.mode & 0o555);
    if (this.manifest.dataPath) chmodSync(this.hostPath(this.manifest.dataPath), 0o700);
    image.create?.(this);
    this.phase = "Running";
    this.event("created");
    this.startContainer();
  }

  private command(argv: readonly string[], use: "container" | "probe"): string[] {
    const env = this.environment();
    const expanded = argv.map((a) => this.mapPaths(expand(a, env)));
    const local = use === "probe" ? expanded.map((a) => a.split("127.0.0.1").join(this.ip)) : expanded;
    const host = local.map(hostBinary);
    return this.set.image.argv ? this.set.image.argv(this, host, use) : host;
  }

  private startContainer(): void {
    const gen = ++this.generation;
    const argv = this.command(this.manifest.argv, "container");
    const child = this.set.procs.start(
      "unshare",
      inPodNamespace(this.set.hostsFile, this.set.dir, this.set.image.user, this.environment(), argv),
      this.cwd(),
    );
    this.container = child;
    this.ready = false;
    this.event(
      `container started (pid ${child.pid}${this.restarts > 0 ? `, restart ${this.restarts}` : ""})`,
    );
    child.once("exit", (code, signal) => void this.exited(gen, child, code, signal));
    const r = this.manifest.readinessProbe;
    if (r) void this.probeLoop(gen, r, "readiness");
    const l = this.manifest.livenessProbe;
    if (l) void this.probeLoop(gen, l, "liveness");
  }

  private async exited(
    gen: number,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): Promise<void> {
    // The container's other processes go with it (the runtime kills the pod's PID namespace).
    signalIfAlive(-(child.pid as number), "SIGKILL");
    this.set.image.killRest?.(this);
    if (gen !== this.generation || this.phase !== "Running") return;
    this.ready = false;
    const said =
      this.set.image.exitReason?.(this) ??
      (this.set.procs.logs.get(child.pid as number) ?? "").trim().split("\n").pop() ??
      "";
    this.event(`container exited (${signal ?? `code ${code}`})${said ? `: ${said.slice(0, 400)}` : ""}`);
    await this.restartAfterBackOff(gen);
  }

  private async restartAfterBackOff(gen: number): Promise<void> {
    if (this.restarts >= MAX_RESTARTS) {
      this.event(`CrashLoopBackOff: the model gives up after ${MAX_RESTARTS} restarts`);
      return;
    }
    this.restarts++;
    const wait = restartBackOffMs(this.restarts);
    this.event(`restart in ${wait / 1000} s (back-off)`);
    await sleep(wait);
    if (gen !== this.generation || this.phase !== "Running") return;
    this.startContainer();
  }

  /** One probe, as the kubelet runs it: exit 0, HTTP 200–399, or a TCP connect, within the timeout. */
  private async probeOnce(p: Probe): Promise<{ ok: boolean; detail: string }> {
    const timeoutMs = p.timeoutSeconds * 1000;
    if (p.exec) {
      const argv = this.command(p.exec, "probe");
      const r = await runBounded(
        "unshare",
        inPodNamespace(this.set.hostsFile, this.set.dir, this.set.image.user, this.environment(), argv),
        timeoutMs,
        this.cwd(),
      );
      const detail = r.timedOut ? `timed out after ${timeoutMs} ms` : `exit ${r.code}: ${r.output.trim()}`;
      return { ok: !r.timedOut && r.code === 0, detail: detail.slice(0, 300) };
    }
    if (p.httpGet) {
      try {
        const res = await httpGet(this.ip, p.httpGet.port, p.httpGet.path, timeoutMs);
        return { ok: res.status >= 200 && res.status < 400, detail: `HTTP ${res.status}` };
      } catch (e) {
        return { ok: false, detail: (e as Error).message };
      }
    }
    if (p.tcpPort !== undefined) {
      const ok = await tcpOpen(this.ip, p.tcpPort, timeoutMs);
      return { ok, detail: ok ? "connected" : "no connection" };
    }
    return { ok: false, detail: "a probe of no known kind" };
  }

  /**
   * A prober: the first probe after initialDelaySeconds, then one every periodSeconds (a slow
   * probe delays the next, as the kubelet's ticker does). Ends with the container (bounded by its
   * lifetime, and by a cap on probes besides).
   */
  private async probeLoop(gen: number, p: Probe, kind: "readiness" | "liveness"): Promise<void> {
    await sleep(p.initialDelaySeconds * 1000);
    let failures = 0;
    let successes = 0;
    let lastDetail = "";
    for (let i = 0; i < 100_000 && gen === this.generation && this.phase === "Running"; i++) {
      const started = Date.now();
      const r = await this.probeOnce(p);
      if (gen !== this.generation || this.phase !== "Running") return;
      if (r.ok) {
        failures = 0;
        successes++;
        if (kind === "readiness" && !this.ready && successes >= p.successThreshold) {
          this.ready = true;
          this.event("Ready");
        }
      } else {
        successes = 0;
        failures++;
        if (r.detail !== lastDetail) this.set.recordProbe(this.name, kind, r.detail);
        lastDetail = r.detail;
        if (failures >= p.failureThreshold) {
          if (kind === "readiness" && this.ready) {
            this.ready = false;
            this.event(`not Ready (${failures} readiness failures: ${r.detail})`);
          }
          if (kind === "liveness") {
            this.event(`liveness failed ${failures} times (${r.detail}): container killed`);
            const stopped = await this.stopContainer();
            if (this.phase === "Running") await this.restartAfterBackOff(stopped);
            return;
          }
        }
      }
      await sleep(Math.max(0, p.periodSeconds * 1000 - (Date.now() - started)));
    }
  }

  /**
   * SIGTERM to the container's main process, SIGKILL to all of it after the grace period.
   * Resolves with the generation that stopped it (its exit then starts nothing).
   */
  private async stopContainer(): Promise<number> {
    const gen = ++this.generation;
    const c = this.container;
    if (c === undefined) return gen;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.manifest.terminationGracePeriodSeconds * 1000);
        c.once("exit", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      signalIfAlive(c.pid as number, "SIGTERM");
      if (!(await exited))
        this.event(
          `still running after the ${this.manifest.terminationGracePeriodSeconds} s grace period: SIGKILL`,
        );
    }
    await this.set.procs.kill(c, "SIGKILL", KILL_MS);
    this.set.image.killRest?.(this);
    return gen;
  }

  /** The pod is deleted: not Ready at once (as endpoints drop it), then its container stopped. */
  async terminate(): Promise<void> {
    if (this.phase !== "Running") return;
    this.phase = "Terminating";
    this.ready = false;
    this.event("terminating (SIGTERM)");
    const t0 = Date.now();
    await this.stopContainer();
    this.phase = "Terminated";
    this.event(`terminated after ${Date.now() - t0} ms`);
  }

  /** The test ends: everything goes at once. */
  async kill(): Promise<void> {
    this.phase = "Terminated";
    this.generation++;
    if (this.container) await this.set.procs.kill(this.container, "SIGKILL", KILL_MS);
    this.set.image.killRest?.(this);
  }
}

// ---------------------------------------------------------------------------------------------
// The controller

export interface ModelOptions {
  readonly procs: ProcessGroup;
  /** Where the pods' directories go (one per pod, kept across restarts). */
  readonly dir: string;
  /** The pod's loopback address by ordinal. */
  readonly ip: (ordinal: number) => string;
  /** Every name any pod must resolve (all tiers that talk to each other), to loopback addresses. */
  readonly hosts: Readonly<Record<string, string>>;
  /**
   * Container files a test changes (by container path), each change said where it is made: the
   * mock engine's certificates are not real ones, so a test gives real ones here.
   */
  readonly fileOverrides?: Readonly<Record<string, (generated: string) => string>>;
}

export class StatefulSetModel {
  readonly procs: ProcessGroup;
  readonly dir: string;
  readonly hostsFile: string;
  readonly fileOverrides: Readonly<Record<string, (generated: string) => string>>;
  readonly pods: Pod[];
  readonly events: PodEvent[] = [];
  private epoch = Date.now();
  /** Set by {@link kill}: a scale-up still waiting gives up at once. */
  private stopped = false;

  constructor(
    readonly manifest: StatefulSetManifest,
    readonly image: ImageModel,
    opts: ModelOptions,
  ) {
    this.procs = opts.procs;
    this.dir = opts.dir;
    this.fileOverrides = opts.fileOverrides ?? {};
    mkdirSync(this.dir, { recursive: true });
    chmodSync(this.dir, 0o755);
    this.hostsFile = join(this.dir, "hosts");
    writeFileSync(
      this.hostsFile,
      ["127.0.0.1 localhost", ...Object.entries(opts.hosts).map(([h, ip]) => `${ip} ${h}`), ""].join("\n"),
    );
    chmodSync(this.hostsFile, 0o644);
    this.pods = Array.from({ length: manifest.replicas }, (_, i) => new Pod(manifest, i, opts.ip(i), this));
  }

  /** A listener on all addresses listens on the pod's own address (see the file comment). */
  network(pod: PodContext, text: string): string {
    return text.split("0.0.0.0").join(pod.ip);
  }

  record(pod: string, what: string): void {
    this.events.push({ atMs: Date.now() - this.epoch, pod, what });
  }

  /** A failing probe's answer, once per change (so a timeline shows why a pod is not Ready). */
  recordProbe(pod: string, kind: string, detail: string): void {
    this.record(pod, `${kind} probe failed: ${detail}`);
  }

  /** The history since the last scale-up, one line per event. */
  timeline(sinceMs = 0): string {
    return this.events
      .filter((e) => e.atMs >= sinceMs)
      .map((e) => `  +${(e.atMs / 1000).toFixed(1)} s ${e.pod}: ${e.what}`)
      .join("\n");
  }

  /** Milliseconds since the last scale-up, on the timeline's clock. */
  now(): number {
    return Date.now() - this.epoch;
  }

  allReady(): boolean {
    return this.pods.every((p) => p.phase === "Running" && p.ready);
  }

  /**
   * How long one pod may take to become Ready: the image's start-up (no timer governs it), then
   * its first passing readiness probe (the initial delay, one period and the probe's own timeout,
   * with room for a loaded machine).
   */
  podReadyBound(): { ms: number; because: string } {
    const r = this.manifest.readinessProbe;
    const probeMs = r ? (r.initialDelaySeconds + r.periodSeconds + r.timeoutSeconds) * 1000 : 0;
    return {
      ms: this.image.startCap.ms + SLOW_MACHINE_FACTOR * probeMs,
      because:
        `${this.image.startCap.because} (${this.image.startCap.ms} ms), then its readiness probe ` +
        `passes (initialDelaySeconds ${r?.initialDelaySeconds ?? 0} + periodSeconds ` +
        `${r?.periodSeconds ?? 0} + timeoutSeconds ${r?.timeoutSeconds ?? 0}, ×${SLOW_MACHINE_FACTOR})`,
    };
  }

  /** How long the controller waits here for `pod` under OrderedReady (see {@link podReadyBound}). */
  readyBound(pod: string): WaitBound {
    const b = this.podReadyBound();
    return {
      withinMs: b.ms,
      intervalMs: 100,
      because: `OrderedReady creates the next pod only once ${pod} is Ready: ${b.because}`,
    };
  }

  /**
   * Scale from 0 to `replicas`: `Parallel` creates every pod at once; `OrderedReady` creates pod
   * k+1 once pod k is Ready (a bounded wait: a pod that never becomes Ready fails the scale-up and
   * names the pods never created, where Kubernetes would wait forever).
   */
  async scaleUp(): Promise<void> {
    this.epoch = Date.now();
    this.events.length = 0;
    this.stopped = false;
    if (this.manifest.podManagementPolicy === "Parallel") {
      for (const p of this.pods) p.create();
      return;
    }
    for (const [k, p] of this.pods.entries()) {
      p.create();
      if (k === this.pods.length - 1) break;
      // The next pod is created once every pod before it is Running and Ready.
      const before = this.pods.slice(0, k + 1);
      const never = this.pods.slice(k + 1).map((x) => x.name);
      await waitFor(
        `${p.name} Ready (OrderedReady: ${never.join(", ")} not created until then)`,
        async () => {
          if (this.stopped) return true;
          if (p.restarts >= MAX_RESTARTS) throw new Error(`${p.name} is in CrashLoopBackOff`);
          return before.every((x) => x.phase === "Running" && x.ready);
        },
        this.readyBound(p.name),
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${this.manifest.name} so far:\n${this.timeline()}`);
      });
      if (this.stopped) return;
    }
  }

  /**
   * Scale to 0 with the data kept: `Parallel` stops every pod at once; `OrderedReady` from the
   * highest ordinal down, each pod gone before the next is stopped.
   */
  async scaleDown(): Promise<number> {
    const t0 = Date.now();
    if (this.manifest.podManagementPolicy === "Parallel") {
      await Promise.all(this.pods.map((p) => p.terminate()));
    } else {
      for (const p of [...this.pods].reverse()) await p.terminate();
    }
    for (const p of this.pods) p.restarts = 0;
    return Date.now() - t0;
  }

  /** The longest a scale-down may take: every pod's grace period (in turn under OrderedReady) and the kill. */
  scaleDownMs(): number {
    const perPod = this.manifest.terminationGracePeriodSeconds * 1000 + KILL_MS;
    return this.manifest.podManagementPolicy === "Parallel" ? perPod : perPod * this.pods.length;
  }

  /** Everything stopped at once (the test's clean-up, also after a failure). */
  async kill(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.pods.map((p) => p.kill()));
  }

  /** The pods that are Ready, for a wait's failure message. */
  readiness(): string {
    return this.pods.map((p) => `${p.name} ${p.phase}${p.ready ? " Ready" : ""}`).join(", ");
  }
}

// ---------------------------------------------------------------------------------------------
// Images

/** A cap on one process start no timer governs, for a loaded 2-core machine. */
const START_CAP = "its start-up: no timer governs it; a cap for a loaded 2-core machine";

/** gcr.io/etcd-development/etcd: the binaries under /usr/local/bin, run as the test user. */
export function etcdImage(): ImageModel {
  return {
    user: PG_USER,
    startCap: { ms: 20_000, because: `etcd ${START_CAP}` },
  };
}

/** redis (alpine): `bind * -::*` (every address of the pod) becomes the pod's own address. */
export function redisImage(): ImageModel {
  return {
    user: PG_USER,
    startCap: { ms: 15_000, because: `redis ${START_CAP}` },
    file: (pod, _path, content) => content.replace(/^bind \* -::\*$/m, `bind ${pod.ip}`),
  };
}

/**
 * The Patroni image on Kubernetes keeps its DCS in the Kubernetes API (the `kubernetes:`
 * section), which this host does not have: the model gives Patroni an etcd at `dcs` instead,
 * as the Patroni live test does (`etcd3:`), and changes nothing else of patroni.yml. PostgreSQL's
 * socket directory (/var/run/postgresql, compiled in) is the pod's own.
 */
export function patroniImage(dcs: string): ImageModel {
  const SOCKETS = "/var/run/postgresql";
  return {
    user: PG_USER,
    imagePaths: [SOCKETS],
    startCap: {
      ms: 120_000,
      because: `initdb or a base backup, PostgreSQL's start and Patroni's first loops: ${START_CAP}`,
    },
    file: (pod, path, content) => {
      if (!path.endsWith("patroni.yml")) return content;
      const doc = parse(content) as Record<string, unknown> & {
        postgresql: { parameters?: Record<string, unknown> };
      };
      if (doc.kubernetes === undefined) throw new Error("patroni.yml has no kubernetes: DCS to replace");
      delete doc.kubernetes;
      doc.etcd3 = { hosts: [dcs] };
      doc.postgresql.parameters = {
        ...doc.postgresql.parameters,
        unix_socket_directories: pod.hostPath(SOCKETS),
      };
      return `# The model's DCS: etcd at ${dcs} instead of the Kubernetes API.\n${stringify(doc)}`;
    },
    env: () => ({ PATH: `/usr/lib/postgresql/15/bin:${CONTAINER_PATH}` }),
    // Patroni starts the postmaster in a session of its own; the pod's end takes it too.
    killRest: (pod) => {
      const yml = [...pod.manifest.files.entries()].find(([p]) => p.endsWith("patroni.yml"))?.[1].content;
      const dataDir = (parse(yml ?? "") as { postgresql?: { data_dir?: string } }).postgresql?.data_dir;
      if (dataDir) killPostmaster(pod.mapPaths(dataDir));
    },
  };
}

/**
 * The official mariadb image (run as its `mysql` user, as the manifest's runAsUser 999 does), as
 * far as the generated start script and probes use it:
 * - `docker-entrypoint.sh` (what the start script execs; `HA_BACKEND_EXEC` is its test hook): a
 *   stand-in written here, not the image's code: on an empty data directory it initialises the
 *   server and runs /docker-entrypoint-initdb.d on a temporary server without networking or
 *   Galera (as the image does), then runs the server. It sets no root password (the image reads
 *   it from the file MARIADB_ROOT_PASSWORD_FILE names): probes and checks log in as root over
 *   the socket.
 * - `healthcheck.sh --connect --innodb_initialized` (the generated probe): the same two queries
 *   the image's script runs (`select @@skip_networking` must say 0; InnoDB listed as available),
 *   as root over the pod's socket instead of the image's `healthcheck` user.
 * - The image's /etc/mysql/my.cnf includes conf.d; this host's per-pod my.cnf does too, then sets
 *   what the pod's own network and filesystem give it (addresses, socket, data directory).
 */
export function mariadbImage(): ImageModel {
  const cnf = (pod: PodContext) => join(pod.dir, "my.cnf");
  const mysql = (pod: PodContext) => ["mariadb", `--defaults-file=${cnf(pod)}`, "-uroot", "-N", "-B"];
  return {
    user: "mysql",
    imagePaths: ["/run/mysqld", "/docker-entrypoint-initdb.d"],
    startCap: {
      ms: 90_000,
      because: `mariadb-install-db, the init scripts on a temporary server, then mariadbd: ${START_CAP}`,
    },
    env: (pod) => ({ HA_BACKEND_EXEC: join(pod.dir, "entrypoint.sh") }),
    exitReason: (pod) => {
      const log = join(pod.dir, "error.log");
      if (!existsSync(log)) return undefined;
      return readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => l.includes("[ERROR]") && !l.endsWith("[ERROR] Aborting"))
        .pop();
    },
    create: (pod) => {
      const confD = pod.hostPath("/etc/mysql/conf.d");
      const confFiles = [...pod.manifest.files.entries()].filter(([p]) => p.startsWith("/etc/mysql/conf.d/"));
      const providerOptions = confFiles
        .map(([, f]) => /wsrep_provider_options = "(.*)"/.exec(f.content)?.[1])
        .find((o) => o !== undefined);
      const data = pod.hostPath(pod.manifest.dataPath ?? "/var/lib/mysql");
      const socket = pod.hostPath("/run/mysqld/mysqld.sock");
      writeFileSync(
        cnf(pod),
        [
          `!includedir ${confD}`,
          "[mysqld]",
          `datadir = ${data}`,
          `socket = ${socket}`,
          `pid-file = ${pod.hostPath("/run/mysqld/mysqld.pid")}`,
          // Outside the pod's emptyDirs, so a failed run still has it.
          `log-error = ${join(pod.dir, "error.log")}`,
          `tmpdir = ${pod.hostPath("/tmp")}`,
          `bind-address = ${pod.ip}`,
          ...(providerOptions
            ? [
                `wsrep_node_address = ${pod.ip}`,
                `wsrep_provider_options = "${providerOptions}; gmcast.listen_addr=tcp://${pod.ip}:4567; ist.recv_addr=${pod.ip}:4568"`,
                `wsrep_sst_receive_address = ${pod.ip}:4444`,
              ]
            : []),
          "[client]",
          `socket = ${socket}`,
          "",
        ].join("\n"),
      );
      const initdb = pod.hostPath("/docker-entrypoint-initdb.d");
      const sql = `mariadb --defaults-file=${cnf(pod)} -uroot`;
      writeFileSync(
        join(pod.dir, "entrypoint.sh"),
        [
          "#!/bin/bash",
          "# Stand-in for the mariadb image's docker-entrypoint.sh (see statefulset-model.ts).",
          "set -euo pipefail",
          'server="$1"; shift',
          `if [ ! -d "${data}/mysql" ]; then`,
          `  mariadb-install-db --no-defaults --datadir="${data}" --auth-root-authentication-method=normal --skip-test-db >/dev/null`,
          `  "$server" --defaults-file=${cnf(pod)} "$@" --skip-networking --wsrep-on=OFF &`,
          "  temp=$!",
          "  up=0",
          "  for _ in $(seq 240); do",
          `    if ${sql} -e 'SELECT 1' >/dev/null 2>&1; then up=1; break; fi`,
          "    sleep 0.25",
          "  done",
          '  if [ "$up" != 1 ]; then echo "entrypoint: the temporary server did not start" >&2; exit 1; fi',
          `  for f in "${initdb}"/*.sql; do [ -e "$f" ] && ${sql} < "$f"; done`,
          '  kill "$temp"',
          '  wait "$temp" || true',
          "fi",
          `exec "$server" --defaults-file=${cnf(pod)} "$@"`,
          "",
        ].join("\n"),
      );
      chmodSync(join(pod.dir, "entrypoint.sh"), 0o755);
    },
    argv: (pod, argv, use) => {
      if (use === "container" || argv[0] !== "healthcheck.sh") return [...argv];
      const checks = argv.slice(1).map((flag) => {
        const q = {
          "--connect": ["select @@skip_networking", "0"],
          "--innodb_initialized": [
            "select 1 from information_schema.ENGINES WHERE engine='innodb' AND support in ('YES', 'DEFAULT', 'ENABLED')",
            "1",
          ],
        }[flag];
        if (q === undefined) throw new Error(`the model does not know healthcheck.sh ${flag}`);
        return `[ "$(${mysql(pod).join(" ")} -e "${q[0]}")" = ${q[1]} ]`;
      });
      return ["bash", "-c", checks.join(" && ")];
    },
  };
}

/** True if every path the model maps exists for a pod (a sanity check for tests). */
export function podFileExists(pod: PodContext, containerPath: string): boolean {
  return existsSync(pod.hostPath(containerPath));
}
