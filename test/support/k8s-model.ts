/**
 * A model of Kubernetes service routing built from real parts, for live tests of the balancer
 * configs that the program renders for Kubernetes. Everything runs in a private network namespace
 * (only `lo`, no route out), so the model uses fixed addresses and ports, clashes with nothing and
 * leaves nothing behind: the namespace, its iptables rules and its sockets go with its processes.
 *
 * - Pods: `backend-server.js` processes on their own 127.10.x.y addresses; each can be told to
 *   answer 503 or to refuse connections (its control port), and the test kills, stops and
 *   continues them.
 * - A ClusterIP Service as kube-proxy's iptables mode builds it: nat `OUTPUT` jumps to
 *   `KUBE-SERVICES`, which sends the "ClusterIP" (a 127.x address) to the service's chain, which
 *   holds one `-m statistic --mode random --probability 1/(n-i)` rule per ready endpoint, each
 *   jumping to that endpoint's DNAT chain (the last one without the match, as kube-proxy does).
 * - The cluster DNS: dnsmasq answering the Services' names from a hosts file (the ClusterIP for
 *   a ClusterIP Service, every ready pod for a headless one), reread on SIGHUP.
 * - The kubelet's readiness prober and the endpoints controller: one process that runs the
 *   Deployment's readiness probe against every pod on its period and, when a pod's readiness
 *   changes, rewrites the Service chains and the DNS answers (an unready pod leaves both).
 * - A client: one process that sends bounded load (HTTPS keep-alive connections, each from its
 *   own client address, cookies kept like a browser's) and single requests for the test's waits.
 *
 * The test process stays outside the namespace and talks to the client process over a Unix
 * socket (a file-system path, which network namespaces do not separate). The controller and the
 * client are this file, run as programs (`node -r ts-node/register/transpile-only k8s-model.ts
 * controller|client <config.json>`); keep its imports light, they load in those processes too.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { Resolver } from "node:dns/promises";
import { existsSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { join } from "node:path";
import { binary, ProcessGroup, signalIfAlive, waitFor, type WaitBound } from "./daemons";

/** A kubelet readiness probe (`httpGet` on a numeric port), as the Deployment declares it. */
export interface ReadinessProbe {
  readonly path: string;
  readonly port: number;
  readonly periodSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
  /** Kubernetes' default, and the only value readiness probes of Deployments here use. */
  readonly successThreshold: number;
}

/** One pod of the model. */
export interface ModelPod {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Where backend-server.js takes `/mode/<mode>`. */
  readonly controlPort: number;
  /** The pods a Service selects: `app` (the primaries) or `standby`. */
  readonly group: string;
}

/** A Service of the model: a ClusterIP (with `clusterIP`) or a headless one. */
export interface ModelService {
  /** Full DNS name, `<service>.<namespace>.svc.cluster.local`. */
  readonly dnsName: string;
  readonly group: string;
  readonly clusterIP?: string;
  readonly port: number;
  readonly targetPort: number;
}

/** What the controller publishes after every change, for the test to read. */
export interface EndpointsState {
  readonly version: number;
  readonly ready: Readonly<Record<string, boolean>>;
  /** Ready endpoints (`host:port`) by Service DNS name. */
  readonly endpoints: Readonly<Record<string, readonly string[]>>;
  /** Readiness changes, with milliseconds since the controller started. */
  readonly events: readonly { readonly atMs: number; readonly pod: string; readonly ready: boolean }[];
}

interface ControllerConfig {
  readonly probe: ReadinessProbe;
  readonly pods: readonly ModelPod[];
  readonly services: readonly ModelService[];
  readonly hostsFile: string;
  readonly statePath: string;
  readonly dnsmasqPid: number;
  /** The controller exits after this long: a bounded loop even if nobody stops it. */
  readonly lifetimeMs: number;
}

interface ClientConfig {
  readonly socket: string;
  readonly lifetimeMs: number;
}

/** One bounded load run, sent by the client process. */
export interface LoadRequest {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** Each client is one keep-alive connection from this address (rate limits are per client IP). */
  readonly clients: readonly string[];
  /**
   * Requests in all, split evenly over the clients: each sends its share one after another, as
   * a real client would, and never more because another one is stuck (nginx's per-client rate
   * limit would answer such a burst with 429, a failure no real client causes).
   */
  readonly requests: number;
  /** Stop sending after this long (a cap on a stalled run; the test asserts `sent`). */
  readonly maxMs: number;
  readonly requestTimeoutMs: number;
  /** Keep and send back the cookies each client is given, as a browser does. */
  readonly cookies: boolean;
}

export interface LoadReport {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Successful answers per pod. */
  readonly servers: Readonly<Record<string, number>>;
  /** Per client: the pod of its first answer, and its answers per pod. */
  readonly clients: readonly {
    readonly first?: string;
    readonly servers: Readonly<Record<string, number>>;
  }[];
}

/** A single request from inside the namespace. */
export interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

const TS_NODE = require.resolve("ts-node/register/transpile-only");
const BACKEND = join(__dirname, "backend-server.js");

/** The DNS server's address in the namespace. */
export const DNS_ADDRESS = "127.10.0.53";

/**
 * Cap on a process start in the namespace (node with ts-node compiling this file takes about a
 * second here): no timer governs it.
 */
export const MODEL_START: WaitBound = {
  withinMs: 20_000,
  because:
    "process start-up in the namespace (node + ts-node): no timer governs it; a cap for a loaded 2-core machine",
};

/** `p` of a sorted list, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** kube-proxy-style chain name: a prefix and 16 characters of a hash of what it stands for. */
function chain(prefix: string, of: string): string {
  return `${prefix}-${createHash("sha256").update(of).digest("hex").slice(0, 16).toUpperCase()}`;
}

/**
 * The nat rules kube-proxy's iptables mode writes for the ClusterIP Services, as input for
 * `iptables-restore --noflush` (a declared chain is flushed, so each run replaces the previous).
 * Endpoints in order; the i-th of n is taken with probability 1/(n - i), which makes the pick
 * uniform; with none, the chain is empty and a connection to the ClusterIP is refused.
 */
export function serviceRules(
  services: readonly ModelService[],
  pods: readonly ModelPod[],
  ready: ReadonlyMap<string, boolean>,
): string {
  const lines = ["*nat", ":KUBE-SERVICES - [0:0]"];
  const rules: string[] = [];
  for (const svc of services.filter((s) => s.clusterIP !== undefined)) {
    const svcChain = chain("KUBE-SVC", svc.dnsName);
    lines.push(`:${svcChain} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${svc.clusterIP}/32 -p tcp -m comment --comment "${svc.dnsName} cluster IP" ` +
        `-m tcp --dport ${svc.port} -j ${svcChain}`,
    );
    const members = pods.filter((p) => p.group === svc.group);
    const endpoints = members.filter((p) => ready.get(p.name) === true);
    for (const p of members) lines.push(`:${chain("KUBE-SEP", `${svc.dnsName}/${p.name}`)} - [0:0]`);
    endpoints.forEach((p, i) => {
      const sep = chain("KUBE-SEP", `${svc.dnsName}/${p.name}`);
      const left = endpoints.length - i;
      const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(11)} ` : "";
      rules.push(`-A ${svcChain} -m comment --comment "${p.name}" ${pick}-j ${sep}`);
      rules.push(`-A ${sep} -p tcp -m tcp -j DNAT --to-destination ${p.host}:${svc.targetPort}`);
    });
  }
  return [...lines, ...rules, "COMMIT", ""].join("\n");
}

/** The cluster DNS's records: the ClusterIP of a ClusterIP Service, each ready pod of a headless one. */
export function dnsRecords(
  services: readonly ModelService[],
  pods: readonly ModelPod[],
  ready: ReadonlyMap<string, boolean>,
): string {
  const lines: string[] = [];
  for (const svc of services) {
    if (svc.clusterIP !== undefined) lines.push(`${svc.clusterIP} ${svc.dnsName}`);
    else
      for (const p of pods.filter((x) => x.group === svc.group && ready.get(x.name) === true))
        lines.push(`${p.host} ${svc.dnsName}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Writes a file in one step (a reader never sees half of it). */
function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** One HTTP GET from this process, with an overall deadline (a stopped server never answers). */
function probeOnce(host: string, port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, agent: false, headers: { "user-agent": "kube-probe/1.30" } });
    const timer = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => {
        clearTimeout(timer);
        resolve(res.statusCode ?? 0);
      });
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

/**
 * The kubelet's readiness prober and the endpoints controller (with kube-proxy and the DNS
 * server's reload), as one program in the namespace. Every pod is probed at once and then every
 * `periodSeconds` (a ticker: a slow probe does not shift the next); a probe fails on a status
 * outside 200–399, an error, or no answer within `timeoutSeconds`. `failureThreshold` failures in
 * a row make a ready pod unready, `successThreshold` successes an unready one ready (pods start
 * unready). Each change rewrites the Service chains, then the DNS records (SIGHUP to dnsmasq),
 * then the published state.
 */
async function runController(cfg: ControllerConfig): Promise<void> {
  const started = Date.now();
  const ready = new Map(cfg.pods.map((p) => [p.name, false]));
  const streak = new Map(cfg.pods.map((p) => [p.name, { ok: 0, failed: 0 }]));
  const events: { atMs: number; pod: string; ready: boolean }[] = [];
  let version = 0;
  const iptables = (args: string[], input?: string) => {
    const r = spawnSync(binary(args[0]), args.slice(1), { input, encoding: "utf8", timeout: 10_000 });
    if (r.status !== 0) throw new Error(`${args.join(" ")} failed: ${r.stderr}`);
  };
  const apply = () => {
    version++;
    iptables(["iptables-restore", "--noflush"], serviceRules(cfg.services, cfg.pods, ready));
    writeAtomically(cfg.hostsFile, dnsRecords(cfg.services, cfg.pods, ready));
    process.kill(cfg.dnsmasqPid, "SIGHUP");
    const endpoints: Record<string, string[]> = {};
    for (const s of cfg.services)
      endpoints[s.dnsName] = cfg.pods
        .filter((p) => p.group === s.group && ready.get(p.name) === true)
        .map((p) => `${p.host}:${s.targetPort}`);
    const state: EndpointsState = { version, ready: Object.fromEntries(ready), endpoints, events };
    writeAtomically(cfg.statePath, JSON.stringify(state));
  };
  apply();
  // kube-proxy's jump into its chains, once.
  iptables([
    "iptables",
    "-t",
    "nat",
    "-A",
    "OUTPUT",
    "-m",
    "comment",
    "--comment",
    "kubernetes service portals",
    "-j",
    "KUBE-SERVICES",
  ]);
  const p = cfg.probe;
  const probe = async (pod: ModelPod) => {
    let ok: boolean;
    try {
      const status = await probeOnce(pod.host, p.port, p.path, p.timeoutSeconds * 1000);
      ok = status >= 200 && status < 400;
    } catch {
      ok = false;
    }
    const s = streak.get(pod.name) as { ok: number; failed: number };
    s.ok = ok ? s.ok + 1 : 0;
    s.failed = ok ? 0 : s.failed + 1;
    const was = ready.get(pod.name) as boolean;
    const now = was ? s.failed < p.failureThreshold : s.ok >= p.successThreshold;
    if (now !== was) {
      ready.set(pod.name, now);
      events.push({ atMs: Date.now() - started, pod: pod.name, ready: now });
      process.stdout.write(`${Date.now() - started} ms: ${pod.name} ${now ? "ready" : "not ready"}\n`);
      apply();
    }
  };
  for (const pod of cfg.pods) {
    void probe(pod);
    setInterval(() => void probe(pod), p.periodSeconds * 1000);
  }
  setTimeout(() => process.exit(0), cfg.lifetimeMs);
}

function cookieHeader(jar: Map<string, string>): string {
  return [...jar.entries()].map(([k, v]) => `${k}=${v}`).join("; ");
}

/** One GET over a client's own keep-alive connection, keeping the cookies it is given. */
function clientGet(
  agent: HttpsAgent,
  o: { host: string; port: number; path: string; from?: string; timeoutMs: number },
  jar?: Map<string, string>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: o.host,
        port: o.port,
        path: o.path,
        agent,
        localAddress: o.from,
        rejectUnauthorized: false, // the test's throwaway certificate
        headers: jar && jar.size > 0 ? { cookie: cookieHeader(jar) } : {},
        timeout: o.timeoutMs,
      },
      (res: IncomingMessage) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          for (const c of ([] as string[]).concat(res.headers["set-cookie"] ?? [])) {
            const [pair] = c.split(";");
            const eq = pair.indexOf("=");
            if (jar && eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Bounded load: `requests` GETs at most, over one keep-alive connection per client address. */
async function runLoad(o: LoadRequest): Promise<LoadReport> {
  const started = Date.now();
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const servers: Record<string, number> = {};
  const clients = o.clients.map(() => ({
    first: undefined as string | undefined,
    servers: {} as Record<string, number>,
  }));
  let sent = 0;
  let ok = 0;
  const worker = async (i: number) => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
    const jar = o.cookies ? new Map<string, string>() : undefined;
    const share = Math.floor(o.requests / o.clients.length) + (i < o.requests % o.clients.length ? 1 : 0);
    try {
      for (let n = 0; n < share && Date.now() - started < o.maxMs; n++) {
        sent++;
        const t0 = Date.now();
        let why: string | undefined;
        try {
          const r = await clientGet(agent, { ...o, from: o.clients[i], timeoutMs: o.requestTimeoutMs }, jar);
          if (r.status === 200) {
            const server = (JSON.parse(r.body) as { server?: string }).server ?? "?";
            servers[server] = (servers[server] ?? 0) + 1;
            clients[i].first ??= server;
            clients[i].servers[server] = (clients[i].servers[server] ?? 0) + 1;
            ok++;
          } else why = `HTTP ${r.status}`;
        } catch (e) {
          why = (e as Error).message;
        }
        latencies.push(Date.now() - t0);
        if (why !== undefined) failures[why] = (failures[why] ?? 0) + 1;
      }
    } finally {
      agent.destroy();
    }
  };
  await Promise.all(o.clients.map((_, i) => worker(i)));
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    sent,
    ok,
    failed: sent - ok,
    failures,
    elapsedMs: Date.now() - started,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1],
    servers,
    clients,
  };
}

/**
 * The client program: an HTTP server on a Unix socket that runs loads (`POST /load`), single
 * requests (`POST /get`, plain HTTP or HTTPS) and DNS look-ups (`POST /resolve`) from inside the
 * namespace, one JSON body in and out.
 */
function runClient(cfg: ClientConfig): void {
  const handlers: Record<string, (body: never) => Promise<unknown>> = {
    "/ping": async () => "pong",
    "/load": (o: LoadRequest) => runLoad(o),
    "/get": async (o: { host: string; port: number; path: string; tls: boolean; timeoutMs: number }) => {
      if (o.tls) return clientGet(new HttpsAgent({ keepAlive: false }), o);
      return new Promise<Reply>((resolve, reject) => {
        const req = httpRequest(
          { host: o.host, port: o.port, path: o.path, agent: false, timeout: o.timeoutMs },
          (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
          },
        );
        req.on("timeout", () => req.destroy(new Error("client timeout")));
        req.on("error", reject);
        req.end();
      });
    },
    "/resolve": async (o: { server: string; name: string }) => {
      const resolver = new Resolver({ timeout: 1000, tries: 1 });
      resolver.setServers([o.server]);
      return (await resolver.resolve4(o.name)).sort();
    },
  };
  createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const handler = handlers[req.url ?? ""];
      if (handler === undefined) {
        res.writeHead(404).end();
        return;
      }
      handler(JSON.parse(body) as never).then(
        (out) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out)),
        (e: Error) => res.writeHead(502, { "content-type": "text/plain" }).end(e.message),
      );
    });
  }).listen(cfg.socket);
  setTimeout(() => process.exit(0), cfg.lifetimeMs);
}

/** Options of {@link K8sModel}. */
export interface K8sModelOptions {
  readonly dir: string;
  readonly pods: readonly ModelPod[];
  readonly services: readonly ModelService[];
  readonly probe: ReadinessProbe;
  /** Every process of the model exits by itself after this long. */
  readonly lifetimeMs: number;
}

/**
 * The model's processes and namespace, owned by one test file. `start` builds it, `stop` removes
 * it (its rules first, then every process by PID: with the last one the namespace is gone).
 */
export class K8sModel {
  readonly procs = new ProcessGroup();
  private holder?: ChildProcess;
  private netns = "";
  private dnsmasq?: ChildProcess;
  private controller?: ChildProcess;
  private readonly pods = new Map<string, ChildProcess>();
  private readonly socket: string;
  private readonly statePath: string;
  private readonly hostsFile: string;

  constructor(readonly o: K8sModelOptions) {
    this.socket = join(o.dir, "client.sock");
    this.statePath = join(o.dir, "endpoints.json");
    this.hostsFile = join(o.dir, "dns-hosts");
  }

  /** The namespace's handle, checked to still be the one the model made (never the host's). */
  private nsPath(): string {
    const pid = this.holder?.pid;
    if (pid === undefined) throw new Error("the model's network namespace is not set up");
    const path = `/proc/${pid}/ns/net`;
    if (this.netns === "" || readlinkSync(path) !== this.netns) {
      throw new Error(`the model's network namespace (${this.netns}) is gone`);
    }
    return path;
  }

  /** `[cmd, args]` that run `cmd` in the namespace (nsenter execs in place: the PID is cmd's). */
  inNamespace(cmd: string, args: readonly string[]): [string, string[]] {
    return [binary("nsenter"), [`--net=${this.nsPath()}`, "--", cmd, ...args]];
  }

  /** Runs a command in the namespace to its end; throws with its output if it fails. */
  run(cmd: string, args: readonly string[], input?: string): string {
    const [c, a] = this.inNamespace(binary(cmd), args);
    const r = spawnSync(c, a, { input, encoding: "utf8", timeout: 20_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /** Starts a long-running process in the namespace. */
  spawn(cmd: string, args: readonly string[]): ChildProcess {
    return this.procs.start(...this.inNamespace(cmd, args));
  }

  /**
   * Starts `cmd` in the namespace with the model's DNS server in /etc/resolv.conf (a private
   * mount namespace; the machine's file is untouched) and its output appended to `log`.
   */
  spawnWithClusterDns(cmd: string, args: readonly string[], log: string): ChildProcess {
    // Written once: glibc rereads a changed resolv.conf, so rewriting it could race a lookup.
    const resolv = join(this.o.dir, "resolv.conf");
    if (!existsSync(resolv)) writeFileSync(resolv, `nameserver ${DNS_ADDRESS}\n`);
    return this.spawn(binary("unshare"), [
      "-m",
      "sh",
      "-c",
      'mount --bind "$0" /etc/resolv.conf && log="$1" && shift 2 && exec "$@" >>"$log" 2>&1',
      resolv,
      log,
      "--",
      cmd,
      ...args,
    ]);
  }

  private program(mode: "controller" | "client", config: ControllerConfig | ClientConfig): ChildProcess {
    const file = join(this.o.dir, `${mode}.json`);
    writeFileSync(file, JSON.stringify(config));
    return this.spawn(process.execPath, ["-r", TS_NODE, __filename, mode, file]);
  }

  /** Namespace, DNS server, pods, client and controller; resolves once every pod is ready. */
  async start(): Promise<void> {
    const lifetimeS = Math.ceil(this.o.lifetimeMs / 1000);
    // The namespace lives as long as its holder (or any process in it).
    this.holder = this.procs.start(binary("unshare"), ["--net", "sleep", String(lifetimeS)]);
    const own = readlinkSync("/proc/self/ns/net");
    const pid = this.holder.pid as number;
    await waitFor(
      "the model's network namespace",
      async () => {
        const ns = readlinkSync(`/proc/${pid}/ns/net`);
        // unshare has made its namespace only once it has exec'd sleep.
        if (ns === own || !readlinkSync(`/proc/${pid}/exe`).endsWith("/sleep")) return false;
        this.netns = ns;
        return true;
      },
      { ...MODEL_START, intervalMs: 20 },
    );
    this.run("ip", ["link", "set", "lo", "up"]);
    writeFileSync(this.hostsFile, dnsRecords(this.o.services, this.o.pods, new Map()));
    this.dnsmasq = this.spawn(binary("dnsmasq"), [
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--no-resolv",
      "--no-hosts",
      `--addn-hosts=${this.hostsFile}`,
      // Names under cluster.local come from the hosts file or do not exist (NXDOMAIN).
      "--local=/cluster.local/",
      `--listen-address=${DNS_ADDRESS}`,
      "--bind-interfaces",
      "--port=53",
      "--local-ttl=0",
      "--user=root",
      `--pid-file=${join(this.o.dir, "dnsmasq.pid")}`,
      "--log-facility=-",
      "--log-queries",
    ]);
    for (const p of this.o.pods) this.startPod(p.name);
    this.program("client", { socket: this.socket, lifetimeMs: this.o.lifetimeMs });
    await waitFor(
      "the model's client process",
      async () => existsSync(this.socket) && (await this.call("/ping", {}, 2000)) === "pong",
      MODEL_START,
    );
    // dnsmasq must answer (and so handle SIGHUP: its default action ends a process) before the
    // controller's first reload.
    const fixed = this.o.services.find((s) => s.clusterIP !== undefined);
    if (fixed !== undefined) {
      await waitFor(
        "the cluster DNS",
        async () => (await this.resolve(fixed.dnsName)).includes(fixed.clusterIP as string),
        MODEL_START,
      );
    }
    this.controller = this.program("controller", {
      probe: this.o.probe,
      pods: this.o.pods,
      services: this.o.services,
      hostsFile: this.hostsFile,
      statePath: this.statePath,
      dnsmasqPid: this.dnsmasq.pid as number,
      lifetimeMs: this.o.lifetimeMs,
    });
    const p = this.o.probe;
    await waitFor(
      "every pod ready in the endpoints",
      async () => this.o.pods.every((x) => this.state()?.ready[x.name] === true),
      {
        withinMs: MODEL_START.withinMs + 3 * (p.periodSeconds + p.timeoutSeconds) * 1000,
        because:
          `controller start (${MODEL_START.withinMs} ms cap), then the first probes: the kubelet probes at once and every ` +
          `periodSeconds ${p.periodSeconds}, each within timeoutSeconds ${p.timeoutSeconds}; 3x one period and timeout`,
      },
    );
  }

  /** The pod's (re)start: the kubelet restarting its container, which keeps the pod's address. */
  startPod(name: string): ChildProcess {
    const p = this.pod(name);
    const child = this.spawn(process.execPath, [
      BACKEND,
      p.name,
      p.host,
      String(p.port),
      join(this.o.dir, "posts.log"),
      String(p.controlPort),
    ]);
    this.pods.set(name, child);
    return child;
  }

  pod(name: string): ModelPod {
    const p = this.o.pods.find((x) => x.name === name);
    if (p === undefined) throw new Error(`no pod ${name}`);
    return p;
  }

  /** The pod's process (to kill, stop or continue it). */
  process(name: string): ChildProcess {
    const c = this.pods.get(name);
    if (c === undefined) throw new Error(`pod ${name} was never started`);
    return c;
  }

  /** Switches a pod's behaviour (`ok`, `503`, `refuse`); resolves once it is in force. */
  async setMode(name: string, mode: "ok" | "503" | "refuse"): Promise<void> {
    const p = this.pod(name);
    const r = await this.get(p.host, p.controlPort, `/mode/${mode}`, false, 5000);
    if (r.status !== 200) throw new Error(`pod ${name} did not switch to ${mode}: HTTP ${r.status}`);
  }

  /** The controller's last published state (undefined before its first). */
  state(): EndpointsState | undefined {
    return existsSync(this.statePath)
      ? (JSON.parse(readFileSync(this.statePath, "utf8")) as EndpointsState)
      : undefined;
  }

  /** One request to the client process, which runs it in the namespace. */
  call<T>(path: string, body: unknown, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socket,
          path,
          method: "POST",
          timeout: timeoutMs,
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () =>
            res.statusCode === 200 ? resolve(JSON.parse(text) as T) : reject(new Error(text.split("\n")[0])),
          );
        },
      );
      req.on("timeout", () =>
        req.destroy(new Error(`no answer from the model's client within ${timeoutMs} ms`)),
      );
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  }

  /** A GET from inside the namespace. */
  get(host: string, port: number, path: string, tls: boolean, timeoutMs: number): Promise<Reply> {
    return this.call<Reply>("/get", { host, port, path, tls, timeoutMs }, timeoutMs + 5000);
  }

  /** A load run from inside the namespace. */
  load(o: LoadRequest): Promise<LoadReport> {
    return this.call<LoadReport>("/load", o, o.maxMs + o.requestTimeoutMs + 10_000);
  }

  /** The A records the cluster DNS gives for `name`. */
  resolve(name: string): Promise<string[]> {
    return this.call<string[]>("/resolve", { server: DNS_ADDRESS, name }, 5000);
  }

  /** HAProxy's servers in `backend`: name, address and status, from its stats CSV. */
  async haproxyServers(
    host: string,
    statsPort: number,
    backend = "app",
  ): Promise<{ name: string; addr: string; status: string; cookie: string }[]> {
    const [header, ...rows] = (await this.get(host, statsPort, "/stats;csv", false, 2000)).body
      .split("\n")
      .filter((l) => l !== "");
    const cols = header.replace(/^# /, "").split(",");
    const at = (f: string[], c: string) => f[cols.indexOf(c)] ?? "";
    return rows
      .map((r) => r.split(","))
      .filter((f) => f[0] === backend && f[1] !== "BACKEND")
      .map((f) => ({ name: f[1], addr: at(f, "addr"), status: at(f, "status"), cookie: at(f, "cookie") }));
  }

  /** Removes the model: rules first, then every process (the namespace goes with the last). */
  async stop(logDir: string): Promise<void> {
    // A stopped (hung) pod is continued first, as the test promises: it then dies like the rest.
    for (const [, child] of this.pods) if (child.pid !== undefined) signalIfAlive(child.pid, "SIGCONT");
    try {
      // The controller first, so it cannot write rules again; then the nat table emptied in one
      // step (iptables-restore without --noflush flushes it and deletes the model's chains).
      if (this.controller !== undefined) await this.procs.kill(this.controller, "SIGKILL");
      if (this.holder?.exitCode === null) this.run("iptables-restore", [], "*nat\nCOMMIT\n");
      if (this.holder?.exitCode === null && this.run("iptables-save", ["-t", "nat"]).includes("KUBE-")) {
        throw new Error("the model's nat rules are still there after the clean-up");
      }
    } finally {
      await this.procs.stopAll(logDir);
    }
  }
}

if (require.main === module) {
  const [mode, file] = process.argv.slice(2);
  const config = JSON.parse(readFileSync(file, "utf8")) as ControllerConfig & ClientConfig;
  if (mode === "controller") void runController(config);
  else if (mode === "client") runClient(config);
  else throw new Error(`unknown mode ${mode}`);
}
