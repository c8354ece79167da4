import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { COOKIE_KEY_PATH } from "../../components/balancer/load-balancer";
import type { ProgramRun } from "../../scripts/mock-engine";
import { runProgramWithMocks } from "../../scripts/mock-engine";
import { readStackFile } from "../../scripts/stack-file";
import { BALANCER_START } from "../support/balancer";
import {
  binary,
  KILL_MS,
  selfSignedCert,
  SLOW_MACHINE_FACTOR,
  tempDir,
  waitFor,
  type WaitBound,
} from "../support/daemons";
import { one, plain } from "../support/engine";
import {
  K8sModel,
  MODEL_START,
  type LoadReport,
  type ModelPod,
  type ModelService,
  type ReadinessProbe,
} from "../support/k8s-model";

/**
 * The balancer configs the program renders for the Kubernetes prod stacks (nginx from
 * ecommerce-prod, HAProxy from blog-prod), run by the real daemons against a model of Kubernetes
 * service routing built from real parts (test/support/k8s-model.ts): four app pods, kube-proxy's
 * iptables rules for the ClusterIP, a DNS server for the headless Services, and a kubelet-style
 * prober running the Deployment's own readiness probe that takes an unready pod out of both. One
 * fault at a time, both engines under load at once: a pod answering 503, a pod refusing
 * connections, a pod killed (and taken out by its readiness), a pod hung.
 */

const CONTAINER_CERT = "/etc/ha-backend/lb/tls/server.pem";
const APP_PODS = 4;
/** Requests per engine and fault phase, and client connections (each its own address) per engine. */
const REQUESTS = 1000;
const CLIENTS = 16;
/** A cap on a load run that stalls (1000 requests took 0.4-1.2 s here); every run asserts `sent`. */
const LOAD_CAP_MS = 30_000;
/** Jest's own work around the bounded steps of a test (assertions, logging). */
const SLACK_MS = 10_000;
/** The share of requests that may fail while a pod answers 503 and is still an endpoint. */
const FAILURE_BUDGET = 0.01;
/**
 * A cap on one client request, above what either balancer may take with one bad pod (checked
 * against the rendered timeouts in beforeAll): the tests' own timeouts are built on it.
 */
const MAX_REQUEST_MS = 120_000;
/** A test's cap: a load run to its cap and its last requests in flight, per load. */
const loadsMs = (loads: number) => loads * (LOAD_CAP_MS + MAX_REQUEST_MS);

const LB = { nginx: "127.10.0.11", haproxy: "127.10.0.12", hash: "127.10.0.13" } as const;
type Balancer = keyof typeof LB;
const HTTPS = 8443;
const STATS = 8404;

/** Runs the program for a stack file, with balancer settings changed (`{}`: the file as it is). */
async function runStackWith(stack: string, balancer: Record<string, unknown>): Promise<ProgramRun> {
  const file = readStackFile(stack);
  const key = "ha-backend:balancer";
  const config = { ...file.config, [key]: JSON.stringify({ ...JSON.parse(file.config[key]), ...balancer }) };
  const { defineStack } = await import("../../infra/program");
  return runProgramWithMocks({ ...file, config, stack, program: defineStack });
}

/** A number from a config line (`pattern` with one group), so every bound follows the file that runs. */
function setting(config: string, pattern: RegExp): number {
  const m = pattern.exec(config);
  if (m === null) throw new Error(`the rendered config has no ${pattern}`);
  return Number(m[1]);
}

/** `text` with every match replaced; fails when the count is not what the mapping expects. */
function mapped(text: string, pattern: RegExp, to: string, count: number): string {
  const found = text.match(pattern)?.length ?? 0;
  if (found !== count)
    throw new Error(`expected ${count} matches of ${pattern} in the config, found ${found}`);
  return text.replace(pattern, to);
}

/** The Deployment's readiness probe, its named port resolved to the container's number. */
function readinessOf(run: ProgramRun, deployment: string): ReadinessProbe {
  const c = plain(one(run, "kubernetes:apps/v1:Deployment", `${deployment}-deployment`)).spec.template.spec
    .containers[0];
  const r = c.readinessProbe;
  const port = (c.ports as { name: string; containerPort: number }[]).find((p) => p.name === r.httpGet.port);
  if (port === undefined) throw new Error(`${deployment}: no container port named ${r.httpGet.port}`);
  return {
    path: r.httpGet.path,
    port: port.containerPort,
    periodSeconds: r.periodSeconds,
    timeoutSeconds: r.timeoutSeconds,
    failureThreshold: r.failureThreshold,
    successThreshold: r.successThreshold ?? 1,
  };
}

/**
 * The Services a balancer config names (`<service>.<namespace>.svc.cluster.local:<port>`), as the
 * program declares them: ClusterIP or headless, and the app pods or the standby's (a backup line).
 */
function servicesOf(run: ProgramRun, config: string, clusterIPs: string[]): ModelService[] {
  const lines = config.split("\n").filter((l) => /^\s+server(-template)? /.test(l));
  const found = new Map<string, ModelService>();
  for (const line of lines) {
    const m = / ([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)/.exec(line);
    // nginx lists a Service once per try: one model Service each.
    if (m === null || found.has(m[0].slice(1).split(":")[0])) continue;
    const [dnsName, name, namespace, port] = [m[0].slice(1).split(":")[0], m[1], m[2], Number(m[3])];
    const svc = run.resources
      .filter((r) => r.type === "kubernetes:core/v1:Service")
      .map((r) => plain(r))
      .find((s) => s.metadata.name === name && s.metadata.namespace === namespace);
    if (svc === undefined) throw new Error(`the config names ${dnsName}, which the program does not declare`);
    const headless = svc.spec.clusterIP === "None";
    // The Service's target port is the pods' named port: the number is the container's.
    const target = (svc.spec.ports as { port: number; targetPort: string | number }[]).find(
      (p) => p.port === port,
    );
    const containers = plain(
      one(run, "kubernetes:apps/v1:Deployment", `${svc.spec.selector["app.kubernetes.io/name"]}-deployment`),
    ).spec.template.spec.containers as { ports: { name: string; containerPort: number }[] }[];
    const targetPort =
      typeof target?.targetPort === "number"
        ? target.targetPort
        : containers[0].ports.find((p) => p.name === target?.targetPort)?.containerPort;
    if (targetPort === undefined) throw new Error(`${dnsName}: no target port for ${port}`);
    found.set(dnsName, {
      dnsName,
      group: / backup\b/.test(line) ? "standby" : "app",
      clusterIP: headless ? undefined : clusterIPs.shift(),
      port,
      targetPort,
    });
  }
  return [...found.values()];
}

/** Request outcomes of one fault phase, both engines, for the table printed at the end. */
interface Row {
  readonly fault: string;
  readonly engine: string;
  readonly r: LoadReport;
  /** HAProxy with cookies: the share of answers on the client's first pod, that pod up. */
  readonly affinity?: number;
  /** Requests the balancer's access log shows with more than one try (they met the fault). */
  readonly retried: number;
}

/** Where a balancer's output (its access log too) goes. */
const logOf = (dir: string, lb: Balancer) => join(dir, "logs", `${lb}.log`);

/** The size of a balancer's log now, to read what a load adds to it. */
function logMark(dir: string, lb: Balancer): number {
  const path = logOf(dir, lb);
  return existsSync(path) ? statSync(path).size : 0;
}

/**
 * Requests since `from` that took more than one try, from the access log: nginx lists every try
 * in `upstream_status` ("503, 200"); HAProxy's httplog counts them in the last field of
 * actconn/feconn/beconn/srv_conn/retries ("+1" when redispatched).
 */
function retriedSince(dir: string, lb: Balancer, from: number): number {
  const text = readFileSync(logOf(dir, lb)).subarray(from).toString();
  const lines = text.split("\n");
  if (lb === "nginx") return lines.filter((l) => /upstream_status="[^"]*,/.test(l)).length;
  // `<termination state> <actconn>/<feconn>/<beconn>/<srv_conn>/<retries>`, e.g. `---- 1/1/0/0/+1`.
  return lines.filter((l) => / [-A-Za-z]{4} \d+\/\d+\/\d+\/\d+\/\+?[1-9]\d* /.test(l)).length;
}

/**
 * The share of the answers a client got from its first pod, over the clients whose first pod is
 * not `faulty` (a client of the faulty pod must move).
 */
function stickiness(r: LoadReport, faulty?: string): number {
  let kept = 0;
  let all = 0;
  for (const c of r.clients) {
    if (c.first === undefined || c.first === faulty) continue;
    kept += c.servers[c.first] ?? 0;
    all += Object.values(c.servers).reduce((a, b) => a + b, 0);
  }
  return all === 0 ? 0 : kept / all;
}

function describeLoad(r: LoadReport): string {
  const by = Object.entries(r.servers)
    .sort()
    .map(([s, n]) => `${s}=${n}`)
    .join(" ");
  const why = Object.entries(r.failures)
    .map(([w, n]) => `${w}×${n}`)
    .join(", ");
  return `${r.failed}/${r.sent} failed${why ? ` (${why})` : ""}, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ${r.elapsedMs} ms; ${by}`;
}

describe("balancers on Kubernetes service routing (live model)", () => {
  const dir = tempDir("k8s-routing");
  const rows: Row[] = [];
  let model: K8sModel;
  let probe: ReadinessProbe;
  let configs: Record<Balancer, string>;
  /** How long each engine's client waits for one answer: longer than the balancer may take. */
  let requestMs: Record<"nginx" | "haproxy", number>;
  let bounds: {
    removed: WaitBound;
    readyAgain: WaitBound;
    haproxyDown: WaitBound;
    haproxyUp: WaitBound;
    hungP99Ms: Record<"nginx" | "haproxy", number>;
  };
  let loadRun = 0;

  /**
   * Every pod a server UP in HAProxy: as many UP template slots as app pods, and the standby's
   * (its stats do not show addresses, but a slot holds one address the DNS gave and no other slot
   * holds); else throws what it sees.
   */
  async function haproxyAllUp(lb: Balancer): Promise<boolean> {
    const servers = await model.haproxyServers(LB[lb], STATS);
    const up = (prefix: string) =>
      servers.filter((s) => s.name.startsWith(prefix) && s.status === "UP").length;
    const pods = (group: string) => model.o.pods.filter((p) => p.group === group).length;
    if (up("group0-") === pods("app") && up("backup1-") === pods("standby")) return true;
    throw new Error(`servers: ${servers.map((s) => `${s.name}=${s.status}`).join(" ")}`);
  }

  /** Both engines at once, REQUESTS each over CLIENTS connections from fresh client addresses. */
  async function loadBoth(
    fault: string,
    faulty?: string,
    /** More time for a run whose clients may wait out a timeout first. */
    extraMs = 0,
  ): Promise<{ nginx: LoadReport; haproxy: LoadReport }> {
    const run = (engine: "nginx" | "haproxy") => {
      loadRun++;
      return model.load({
        host: LB[engine],
        port: HTTPS,
        path: "/",
        // Fresh addresses per run: nginx's per-client rate limit (100 r/s, burst 200) never bites.
        clients: Array.from({ length: CLIENTS }, (_, i) => `127.20.${loadRun}.${i + 1}`),
        requests: REQUESTS,
        maxMs: LOAD_CAP_MS + extraMs,
        requestTimeoutMs: requestMs[engine],
        cookies: engine === "haproxy",
      });
    };
    const marks = { nginx: logMark(dir, "nginx"), haproxy: logMark(dir, "haproxy") };
    const [nginx, haproxy] = await Promise.all([run("nginx"), run("haproxy")]);
    rows.push({ fault, engine: "nginx", r: nginx, retried: retriedSince(dir, "nginx", marks.nginx) });
    rows.push({
      fault,
      engine: "haproxy",
      r: haproxy,
      affinity: stickiness(haproxy, faulty),
      retried: retriedSince(dir, "haproxy", marks.haproxy),
    });
    console.log(`${fault}\n  nginx:   ${describeLoad(nginx)}\n  haproxy: ${describeLoad(haproxy)}`);
    for (const r of [nginx, haproxy]) expect(r.sent).toBe(REQUESTS);
    // A client whose pod stays up stays on it.
    expect(stickiness(haproxy, faulty)).toBe(1);
    return { nginx, haproxy };
  }

  const isReady = (pod: string) => model.state()?.ready[pod] === true;
  const isEndpoint = (pod: string) => {
    const p = model.pod(pod);
    return Object.values(model.state()?.endpoints ?? {}).some((e) => e.includes(`${p.host}:${p.port}`));
  };

  /** Back to all pods ready and every HAProxy server up, before the next fault. */
  /** When each pod was last told to answer normally again. */
  const answeringSince = new Map<string, number>();
  async function answerOk(pod: string): Promise<void> {
    await model.setMode(pod, "ok");
    answeringSince.set(pod, Date.now());
  }
  async function recovered(pod: string): Promise<void> {
    // A pod that failed probes without reaching failureThreshold stays ready but keeps its failure
    // streak, which only a successful probe resets: the next phase would start part-way to
    // removal. The prober ticks every periodSeconds, so one period and a probe's timeout after
    // the pod answers again, a probe has succeeded (or a failure made it unready, waited for below).
    const resetMs = (probe.periodSeconds + probe.timeoutSeconds) * 1000;
    const since = Date.now() - (answeringSince.get(pod) ?? 0);
    if (since < resetMs) await new Promise((r) => setTimeout(r, resetMs - since));
    await waitFor(`${pod} ready again`, async () => isReady(pod) && isEndpoint(pod), bounds.readyAgain);
    for (const lb of ["haproxy", "hash"] as const)
      await waitFor(`${pod} up again in ${lb}`, () => haproxyAllUp(lb), bounds.haproxyUp);
  }

  beforeAll(
    async () => {
      mkdirSync(join(dir, "logs"), { recursive: true });
      // GIVEN the program's Kubernetes prod stacks, and blog-prod with client-IP hashing.
      const shop = await runStackWith("ecommerce-prod", {});
      const blog = await runStackWith("blog-prod", {});
      const blogHash = await runStackWith("blog-prod", { algorithm: "ip-hash" });
      const file = (run: ProgramRun, name: string, key: string) =>
        plain(one(run, "kubernetes:core/v1:ConfigMap", name)).data[key] as string;
      const rendered = {
        nginx: file(shop, "shop-lb-nginx-files", "etc_ha-backend_lb_nginx.conf"),
        haproxy: file(blog, "blog-lb-haproxy-files", "usr_local_etc_haproxy_haproxy.cfg"),
        hash: file(blogHash, "blog-lb-haproxy-files", "usr_local_etc_haproxy_haproxy.cfg"),
      };
      // The prober runs the Deployment's readiness probe: the shop's and the blog's are the same.
      probe = readinessOf(shop, "shop-app");
      expect(readinessOf(blog, "blog-app")).toEqual(probe);

      const pods: ModelPod[] = [
        ...Array.from({ length: APP_PODS }, (_, i) => ({
          name: `app-${i}`,
          host: `127.10.1.${i + 1}`,
          port: probe.port,
          controlPort: 9090,
          group: "app",
        })),
        { name: "standby-0", host: "127.10.2.1", port: probe.port, controlPort: 9090, group: "standby" },
      ];
      const clusterIPs = ["127.10.0.100", "127.10.0.101", "127.10.0.102"];
      const services = [
        ...servicesOf(shop, rendered.nginx, clusterIPs),
        ...servicesOf(blog, rendered.haproxy, clusterIPs),
      ];
      expect(services.map((s) => [s.dnsName, s.clusterIP !== undefined, s.group])).toEqual([
        ["shop-app.ecommerce-prod.svc.cluster.local", true, "app"],
        ["blog-standby-app-headless.blog-prod.svc.cluster.local", false, "standby"],
        ["blog-app-headless.blog-prod.svc.cluster.local", false, "app"],
      ]);

      // Bounds from the settings that run: the probe, HAProxy's checks and resolver, the timeouts.
      const h = rendered.haproxy;
      const inter = setting(h, /default-server inter (\d+)ms/);
      const rise = setting(h, / rise (\d+)/);
      const checkMs = setting(h, /timeout check (\d+)ms/);
      const resolveMs = setting(h, /timeout resolve (\d+)s/) * 1000;
      const removedMs = (probe.failureThreshold * probe.periodSeconds + probe.timeoutSeconds) * 1000;
      const readyMs = (probe.successThreshold * probe.periodSeconds + probe.timeoutSeconds) * 1000;
      const upMs = resolveMs + (rise + 1) * inter + checkMs;
      const fall = setting(h, / fall (\d+)/);
      const downMs = (fall + 1) * inter + checkMs;
      const n = rendered.nginx;
      const nginxConnect = setting(n, /proxy_connect_timeout (\d+)s;/) * 1000;
      const nginxRead = setting(n, /proxy_read_timeout (\d+)s;/) * 1000;
      const nginxNext = setting(n, /proxy_next_upstream_timeout (\d+)s;/) * 1000;
      const haConnect = setting(h, /timeout connect (\d+)ms/);
      const haServer = setting(h, /timeout server (\d+)ms/);
      const haRetries = setting(h, /^\s+retries (\d+)$/m);
      requestMs = {
        // A try may start just before proxy_next_upstream_timeout and take a connect and a read.
        nginx: nginxNext + nginxConnect + nginxRead + 5_000,
        haproxy: (haRetries + 1) * (haConnect + haServer) + 5_000,
      };
      expect(Math.max(requestMs.nginx, requestMs.haproxy)).toBeLessThanOrEqual(MAX_REQUEST_MS);
      bounds = {
        removed: {
          withinMs: SLOW_MACHINE_FACTOR * removedMs,
          because:
            `kubelet readiness: failureThreshold ${probe.failureThreshold} failed probes, periodSeconds ` +
            `${probe.periodSeconds} apart, the last within timeoutSeconds ${probe.timeoutSeconds} = ${removedMs} ms; ` +
            `then the endpoints (DNAT chain, DNS) are rewritten at once; ${SLOW_MACHINE_FACTOR}x that`,
        },
        readyAgain: {
          withinMs: SLOW_MACHINE_FACTOR * readyMs,
          because:
            `kubelet readiness: successThreshold ${probe.successThreshold} probe within periodSeconds ` +
            `${probe.periodSeconds} + timeoutSeconds ${probe.timeoutSeconds} = ${readyMs} ms; ${SLOW_MACHINE_FACTOR}x that`,
        },
        haproxyDown: {
          withinMs: SLOW_MACHINE_FACTOR * downMs,
          because:
            `HAProxy fall ${fall} failed checks: (fall + 1) x inter ${inter} ms + timeout check ${checkMs} ms = ` +
            `${downMs} ms; ${SLOW_MACHINE_FACTOR}x that`,
        },
        haproxyUp: {
          withinMs: SLOW_MACHINE_FACTOR * upMs,
          because:
            `HAProxy resolvers (timeout resolve ${resolveMs} ms) find the pod, then rise ${rise} checks: ` +
            `(rise + 1) x inter ${inter} ms + timeout check ${checkMs} ms; ${upMs} ms in all; ${SLOW_MACHINE_FACTOR}x that`,
        },
        // A request that meets the hung pod waits one read timeout there, then is retried elsewhere.
        hungP99Ms: { nginx: nginxRead + nginxConnect, haproxy: haServer + haConnect },
      };

      // Two things are mapped, as in the render tests: the certificate path, and where the
      // container's listeners and writable /tmp are (the three balancers share the namespace).
      const cert = selfSignedCert(dir);
      const forModel = (lb: Balancer) => {
        let text = rendered[lb];
        if (lb === "nginx") {
          const tmp = join(dir, "nginx-tmp");
          mkdirSync(tmp, { recursive: true });
          text = mapped(text, /^(\s+listen )(\d+)\b/gm, `$1${LB.nginx}:$2`, 3);
          text = mapped(text, / \/tmp\//g, ` ${tmp}/`, 6);
        } else {
          text = mapped(text, /^(\s+bind ):(\d+)\b/gm, `$1${LB[lb]}:$2`, 3);
        }
        return text.split(CONTAINER_CERT).join(cert);
      };
      configs = { nginx: forModel("nginx"), haproxy: forModel("haproxy"), hash: forModel("hash") };

      model = new K8sModel({ dir, pods, services, probe, lifetimeMs: 10 * 60_000 });
      await model.start();

      // The containers' own commands, with the config and the cookie key file (HAProxy) at their
      // mapped paths: the key as the pod gets it, a file of its Secret that the command reads.
      const deployments: Record<Balancer, [ProgramRun, string]> = {
        nginx: [shop, "shop-lb-nginx"],
        haproxy: [blog, "blog-lb-haproxy"],
        hash: [blogHash, "blog-lb-haproxy"],
      };
      for (const lb of ["nginx", "haproxy", "hash"] as const) {
        const [run, workload] = deployments[lb];
        const container = plain(one(run, "kubernetes:apps/v1:Deployment", `${workload}-deployment`)).spec
          .template.spec.containers[0];
        const path = join(dir, `${lb}.conf`);
        writeFileSync(path, configs[lb]);
        const configPath = /(\/usr\/local)?\/etc\/\S+\.(conf|cfg)\b/.exec(container.command.join(" "))?.[0];
        expect(configPath).toBeDefined();
        const mapping: [string, string][] = [[configPath as string, path]];
        if (lb !== "nginx") {
          // No credential in the environment: the key is a mounted file of the Secret.
          expect(
            container.env.filter((e: { valueFrom?: object }) => "secretKeyRef" in (e.valueFrom ?? {})),
          ).toEqual([]);
          const mount = container.volumeMounts.find(
            (m: { mountPath: string }) => m.mountPath === COOKIE_KEY_PATH,
          );
          expect(mount).toBeDefined();
          const key = plain(one(run, "kubernetes:core/v1:Secret", `${workload}-secret-files`)).stringData[
            mount.subPath
          ] as string;
          const keyFile = join(dir, `${lb}.cookie-key`);
          writeFileSync(keyFile, key, { mode: 0o400 });
          mapping.push([COOKIE_KEY_PATH, keyFile]);
        }
        const [cmd, ...args] = (container.command as string[]).map((a) =>
          mapping.reduce((text, [from, to]) => text.split(from).join(to), a),
        );
        // nginx: its prefix and start-up error log under the test's directory, not /var.
        const extra = cmd === "nginx" ? ["-p", dir, "-e", "stderr"] : [];
        // HAProxy with a cookie key runs under /bin/sh, which finds haproxy on PATH.
        model.spawnWithClusterDns(
          binary("env"),
          [
            `PATH=${dirname(binary("haproxy"))}:${process.env.PATH}`,
            cmd.startsWith("/") ? cmd : binary(cmd),
            ...extra,
            ...args,
          ],
          join(dir, "logs", `${lb}.log`),
        );
      }
      for (const lb of ["nginx", "haproxy", "hash"] as const)
        await waitFor(
          `${lb} serving`,
          async () => (await model.get(LB[lb], HTTPS, "/", true, 2000)).status === 200,
          BALANCER_START,
        );
      for (const lb of ["haproxy", "hash"] as const)
        await waitFor(`every pod up in ${lb}`, () => haproxyAllUp(lb), bounds.haproxyUp);
    },
    // Three program runs, the model (its processes and the first probes), three balancers.
    60_000 + 4 * MODEL_START.withinMs + 3 * BALANCER_START.withinMs + 2 * 3 * 30_000 + SLACK_MS,
  );

  afterAll(async () => {
    const table = [
      "fault                          engine    failed/total   p99 ms   max ms   retried   affinity",
      ...rows.map((x) =>
        [
          x.fault.padEnd(30),
          x.engine.padEnd(9),
          `${x.r.failed}/${x.r.sent}`.padStart(12),
          String(x.r.p99Ms).padStart(8),
          String(x.r.maxMs).padStart(8),
          String(x.retried).padStart(9),
          x.affinity === undefined ? "" : `${(100 * x.affinity).toFixed(1)}%`.padStart(10),
        ].join(" "),
      ),
      "retried: requests with more than one try in the access log; affinity: share of a client's answers from the",
      "pod of its first, over the clients whose pod stayed up (HAProxy: cookie, or client-IP hash where marked).",
    ].join("\n");
    console.log(`Kubernetes routing model, ${REQUESTS} requests per engine and phase:\n${table}`);
    writeFileSync(join(dir, "figures.txt"), `${table}\n`);
    // The repeat runner removes a passed run's TMPDIR: figures across runs go to a file of your choice.
    const keep = process.env.HA_BACKEND_K8S_FIGURES;
    if (keep)
      appendFileSync(
        keep,
        `${JSON.stringify(rows.map((x) => ({ ...x, r: { ...x.r, clients: undefined } })))}\n`,
      );
    // SIGCONT for the hung pod, the rules, then every process: the namespace goes with them.
    if (model !== undefined) await model.stop(join(dir, "logs"));
  }, KILL_MS + 20_000);

  it("routes like Kubernetes: kube-proxy's DNAT chain, the headless Service's DNS, a cookie per pod", async () => {
    // THEN the ClusterIP's chain picks each ready pod with 1/(n-i), as kube-proxy writes it.
    const rules = model.run("iptables-save", ["-t", "nat"]);
    expect(rules.match(/--probability [0-9.]+/g)).toEqual([
      "--probability 0.25000000000",
      "--probability 0.33333333349",
      "--probability 0.50000000000",
    ]);
    expect(rules.match(/-j DNAT --to-destination 127\.10\.1\.\d:8080/g)).toHaveLength(APP_PODS);
    expect(await model.resolve("blog-app-headless.blog-prod.svc.cluster.local")).toEqual(
      model.o.pods.filter((p) => p.group === "app").map((p) => p.host),
    );
    // nginx lists the ClusterIP once per try and never marks it down.
    expect(
      configs.nginx.match(/server shop-app\.ecommerce-prod\.svc\.cluster\.local:8080 max_fails=0;/g),
    ).toHaveLength(4);
    // HAProxy: every pod a server of its own with a non-empty cookie, the standby its backup.
    const servers = await model.haproxyServers(LB.haproxy, STATS);
    const up = servers.filter((s) => s.status === "UP");
    expect(up.filter((s) => s.name.startsWith("group0-"))).toHaveLength(APP_PODS);
    expect(up.filter((s) => s.name.startsWith("backup1-"))).toHaveLength(1);
    // Each pod's cookie, as a fresh client is given it: non-empty, one per pod, the same in the
    // second HAProxy (same key, same address).
    const cookies = new Map<string, Set<string>>();
    for (const lb of ["haproxy", "hash"] as const)
      for (let i = 0; i < 2 * APP_PODS; i++) {
        const r = await model.get(LB[lb], HTTPS, "/", true, requestMs.haproxy);
        const set = ([] as string[]).concat(r.headers["set-cookie"] ?? []).join(";");
        const value = /BLOGSRV=([^;]*)/.exec(set)?.[1] ?? "";
        expect(value).toMatch(/^[0-9a-f]{16}$/);
        const pod = JSON.parse(r.body).server as string;
        cookies.set(pod, new Set([...(cookies.get(pod) ?? []), value]));
      }
    expect([...cookies.values()].every((s) => s.size === 1)).toBe(true);
    expect(new Set([...cookies.values()].flatMap((s) => [...s])).size).toBe(cookies.size);
  }, 60_000);

  it(
    "keeps a client on one pod: HAProxy's sticky cookie and its client-IP hash",
    async () => {
      // GIVEN clients with cookies (blog-prod) and clients without them (blog-prod + ip-hash).
      loadRun++;
      const clients = Array.from({ length: CLIENTS }, (_, i) => `127.20.${loadRun}.${i + 1}`);
      const common = {
        port: HTTPS,
        path: "/",
        clients,
        requests: REQUESTS,
        maxMs: LOAD_CAP_MS,
        requestTimeoutMs: requestMs.haproxy,
      };
      const marks = { haproxy: logMark(dir, "haproxy"), hash: logMark(dir, "hash") };
      const [cookie, hash] = await Promise.all([
        model.load({ ...common, host: LB.haproxy, cookies: true }),
        model.load({ ...common, host: LB.hash, cookies: false }),
      ]);
      rows.push({
        fault: "none (affinity, cookie)",
        engine: "haproxy",
        r: cookie,
        affinity: stickiness(cookie),
        retried: retriedSince(dir, "haproxy", marks.haproxy),
      });
      rows.push({
        fault: "none (affinity, ip-hash)",
        engine: "haproxy",
        r: hash,
        affinity: stickiness(hash),
        retried: retriedSince(dir, "hash", marks.hash),
      });
      console.log(`affinity\n  cookie:  ${describeLoad(cookie)}\n  ip-hash: ${describeLoad(hash)}`);
      for (const r of [cookie, hash]) {
        expect([r.sent, r.failed]).toEqual([REQUESTS, 0]);
        expect(stickiness(r)).toBe(1);
      }
      // The cookies spread the clients over every pod (round-robin for their first request).
      expect(Object.keys(cookie.servers).sort()).toEqual(["app-0", "app-1", "app-2", "app-3"]);
    },
    loadsMs(1) + SLACK_MS,
  );

  it(
    "every app pod answers 503: HAProxy's backup, the standby workload, serves; none fail",
    async () => {
      // GIVEN blog-prod's standby (backups: 1), a Deployment of its own behind its headless Service.
      // WHEN every app pod answers 503 (ecommerce-prod has no backup: nginx is not asked)
      for (const p of model.o.pods.filter((x) => x.group === "app")) await model.setMode(p.name, "503");
      await waitFor(
        "the standby serving through HAProxy",
        async () =>
          JSON.parse((await model.get(LB.haproxy, HTTPS, "/", true, requestMs.haproxy)).body).server ===
          "standby-0",
        bounds.haproxyDown,
      );
      const mark = logMark(dir, "haproxy");
      loadRun++;
      const r = await model.load({
        host: LB.haproxy,
        port: HTTPS,
        path: "/",
        clients: Array.from({ length: CLIENTS }, (_, i) => `127.20.${loadRun}.${i + 1}`),
        requests: REQUESTS,
        maxMs: LOAD_CAP_MS,
        requestTimeoutMs: requestMs.haproxy,
        cookies: true,
      });
      rows.push({
        fault: "every app pod 503 (backup)",
        engine: "haproxy",
        r,
        affinity: stickiness(r),
        retried: retriedSince(dir, "haproxy", mark),
      });
      console.log(`every app pod 503\n  haproxy: ${describeLoad(r)}`);
      // THEN the standby answers every request, and its cookie keeps the clients there.
      expect([r.sent, r.failed, Object.keys(r.servers)]).toEqual([REQUESTS, 0, ["standby-0"]]);
      expect(stickiness(r)).toBe(1);
      for (const p of model.o.pods.filter((x) => x.group === "app")) await answerOk(p.name);
      for (const p of model.o.pods.filter((x) => x.group === "app")) await recovered(p.name);
    },
    loadsMs(1) + 8 * 60_000 + SLACK_MS,
  );

  it(
    "one pod answers 503: at most 1% fail until its readiness takes it out, none after",
    async () => {
      // WHEN app-1 answers 503 to everything, its readiness probe too
      await model.setMode("app-1", "503");
      const before = await loadBoth("503, still an endpoint", "app-1");
      // (still an endpoint when the load ended: the phase measured what it says)
      expect(isEndpoint("app-1")).toBe(true);
      for (const r of [before.nginx, before.haproxy])
        expect(r.failed).toBeLessThanOrEqual(FAILURE_BUDGET * REQUESTS);
      await waitFor("app-1 out of the endpoints", async () => !isEndpoint("app-1"), bounds.removed);
      const after = await loadBoth("503, out of the endpoints", "app-1");
      for (const r of [after.nginx, after.haproxy]) expect(r.failed).toBe(0);
      await answerOk("app-1");
      await recovered("app-1");
    },
    loadsMs(2) + 3 * 60_000 + SLACK_MS,
  );

  it(
    "one pod refuses connections: none fail",
    async () => {
      await model.setMode("app-2", "refuse");
      const r = await loadBoth("refused", "app-2");
      for (const x of [r.nginx, r.haproxy]) expect(x.failed).toBe(0);
      await answerOk("app-2");
      await recovered("app-2");
    },
    loadsMs(1) + 3 * 60_000 + SLACK_MS,
  );

  it(
    "one pod is killed: none fail, before and after its readiness takes it out",
    async () => {
      await model.procs.kill(model.process("app-3"), "SIGKILL");
      const before = await loadBoth("killed, still an endpoint", "app-3");
      // HAProxy balances over the pods and marks the dead one down on the first refused
      // connection: none fail. nginx goes through the Service's virtual IP, where each try is a
      // random pick: what it promises (serviceTries) is the budget, (1/4)^4 per request, not zero
      // (a CPU hog makes fresh connections, hence fresh picks, more frequent: 1 of 1000 seen).
      expect(before.haproxy.failed).toBe(0);
      expect(before.nginx.failed).toBeLessThanOrEqual(FAILURE_BUDGET * REQUESTS);
      await waitFor("app-3 out of the endpoints", async () => !isEndpoint("app-3"), bounds.removed);
      const after = await loadBoth("killed, out of the endpoints", "app-3");
      for (const r of [after.nginx, after.haproxy]) expect(r.failed).toBe(0);
      // The kubelet restarts the container; the pod keeps its address.
      model.startPod("app-3");
      await recovered("app-3");
    },
    loadsMs(2) + 4 * 60_000 + SLACK_MS,
  );

  it(
    "one pod hangs: none fail, and no request waits longer than one read timeout and a connect",
    async () => {
      // WHEN app-0 stops (SIGSTOP): connections are still accepted by the kernel, never answered.
      process.kill(model.process("app-0").pid as number, "SIGSTOP");
      // A client that meets the hung pod waits out a read timeout, then sends the rest of its share.
      const r = await loadBoth("hung", "app-0", Math.max(bounds.hungP99Ms.nginx, bounds.hungP99Ms.haproxy));
      for (const [engine, x] of [
        ["nginx", r.nginx],
        ["haproxy", r.haproxy],
      ] as const) {
        expect([engine, x.failed]).toEqual([engine, 0]);
        expect(x.p99Ms).toBeLessThanOrEqual(bounds.hungP99Ms[engine]);
      }
      // Its readiness took it out meanwhile (SIGCONT comes with the clean-up).
      await waitFor("app-0 out of the endpoints", async () => !isEndpoint("app-0"), bounds.removed);
    },
    loadsMs(1) + MAX_REQUEST_MS + 60_000 + SLACK_MS,
  );
});
