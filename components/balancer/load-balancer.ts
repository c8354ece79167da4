import {
  EXPORTER_PORT_NAMES,
  exportersOn,
  nginxExporterSidecar,
  scrapeJob,
  type MetricsArgs,
} from "../monitoring/exporters";
import type { ScrapeJob } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { MemberAddress, Platform, ResourceSpec, WorkloadSpec } from "../platform/types";
import { renderHaproxy } from "./render/haproxy";
import { renderNginx } from "./render/nginx";
import type { Algorithm, BalancerBackend, BalancerDiscovery, BalancerRenderSpec } from "./render/spec";
import { isUrlPath } from "../validation";
import { checkResources, invalidArg } from "../errors";
import { balancerTlsProblems, formatTlsProblem, type TlsProblem } from "./tls-material";
import { componentToken, physicalName, type NamingArgs } from "../resource";

/** Official images, pinned; the configs are checked against the same major lines (nginx 1.22+, HAProxy 2.6). */
export const NGINX_IMAGE = "nginx:1.28.0-alpine";
export const HAPROXY_IMAGE = "haproxy:2.6.23-alpine";
/** The balancer's tier: the only one with public ports. */
const EDGE_TIER = "edge";
/** The images' unprivileged users (nginx: nginx, haproxy: haproxy). */
const RUN_AS: Record<BalancerEngine, number> = { nginx: 101, haproxy: 99 };
const CONFIG_PATH: Record<BalancerEngine, string> = {
  nginx: "/etc/ha-backend/lb/nginx.conf",
  haproxy: "/usr/local/etc/haproxy/haproxy.cfg",
};
const CERT_PATH = "/etc/ha-backend/lb/tls/server.pem";
/** Ports inside the container: unprivileged, so the balancer never runs as root. */
const PORTS = { http: 8080, https: 8443, stats: 8404 } as const;
/** Where the rendered nginx serves stub_status on the stats port. */
const NGINX_STATUS_PATH = "/nginx_status";
/**
 * HAProxy's dynamic-cookie key: the config names this variable (`"${…}"`, which HAProxy expands),
 * so the config file never holds the key. HAProxy reads it only from its environment (no
 * directive reads a file), so the key lands as the secret file {@link COOKIE_KEY_PATH} and the
 * start command ({@link balancerCommand}) exports it into HAProxy's own environment just before
 * exec: never into the container's (`docker inspect`), never onto a command line.
 */
export const COOKIE_KEY_ENV = "HA_BACKEND_COOKIE_KEY";
/** Where the dynamic-cookie key lands: a secret file, readable by the balancer's user only. */
export const COOKIE_KEY_PATH = "/etc/ha-backend/lb/cookie-key";

/**
 * The balancer container's command. With a cookie key (HAProxy only), a shell reads it from
 * {@link COOKIE_KEY_PATH} into {@link COOKIE_KEY_ENV} and execs HAProxy, which stays the
 * container's main process; a missing key file stops the start instead of serving unkeyed cookies.
 */
export function balancerCommand(engine: BalancerEngine, cookieKey: boolean): string[] {
  if (engine === "nginx") return ["nginx", "-g", "daemon off;", "-c", CONFIG_PATH.nginx];
  const haproxy = ["haproxy", "-W", "-db", "-f", CONFIG_PATH.haproxy];
  if (!cookieKey) return haproxy;
  return [
    "/bin/sh",
    "-c",
    `${COOKIE_KEY_ENV}="$(cat ${COOKIE_KEY_PATH})" && export ${COOKIE_KEY_ENV} && exec ${haproxy.join(" ")}`,
  ];
}
/**
 * Through a Service's virtual IP, the share of requests that may fail while one pod fails them
 * all; it sets how often nginx lists the address (see {@link serviceTries}).
 */
export const SERVICE_FAILURE_BUDGET = 0.01;

export type BalancerEngine = "nginx" | "haproxy";

/** A group of app servers to balance over; a `ServerCluster` fits as it is. */
export interface BackendGroup {
  /** Per-member addresses (empty where members have no stable address, e.g. a Kubernetes Deployment). */
  readonly members: pulumi.Input<MemberAddress[]>;
  /** One name that reaches any ready member (a Kubernetes Service). */
  readonly serviceHost: pulumi.Input<string>;
  /** A name that resolves to every ready member (a Kubernetes headless Service). */
  readonly discoveryHost: pulumi.Input<string>;
  readonly port: pulumi.Input<number>;
  readonly replicas: pulumi.Input<number>;
  /** Changes when members are re-created; rendered into the config so the balancer restarts with them. */
  readonly membersRevision?: pulumi.Input<string>;
}

export interface LoadBalancerBackend {
  readonly group: BackendGroup;
  /** Serve only when every primary server is down. @default false */
  readonly backup?: boolean;
  /** Relative weight of each member, by member index (1–256); needs members with stable addresses. */
  readonly weights?: number[];
}

export interface LoadBalancerArgs extends NamingArgs {
  readonly platform: Platform;
  /**
   * Metrics: HAProxy's built-in exporter on the stats port, or nginx-prometheus-exporter beside
   * each nginx replica (reading stub_status), open to the platform's scraper. @default on
   */
  readonly metrics?: MetricsArgs;
  /** `nginx` (passive checks) or `haproxy` (active checks). */
  readonly engine: BalancerEngine;
  /** Primary and backup backends; at least one primary. */
  readonly backends: LoadBalancerBackend[];
  /** Path the app answers 2xx on while healthy (HAProxy's active check). */
  readonly healthCheckPath: string;
  /** Balancer replicas; two or more survive the loss of one. @default 2 */
  readonly replicas?: number;
  /**
   * `ip-hash` keeps a client IP on one server (HAProxy: consistent hashing over the pods; nginx
   * on Kubernetes cannot, see `stickyCookie`). @default "round-robin"
   */
  readonly algorithm?: Algorithm;
  /** Port clients use for plain HTTP (Docker host port, Kubernetes Service port). @default 80 */
  readonly httpPort?: number;
  /** Port clients use for HTTPS when `tls` is set. @default 443 */
  readonly httpsPort?: number;
  /** PEM certificate chain and private key; the key must be a secret. HTTP then redirects to HTTPS. */
  readonly tls?: { readonly certificate: pulumi.Input<string>; readonly privateKey: pulumi.Input<string> };
  /** HSTS max-age in seconds when TLS is on. @default 31536000 (one year) */
  readonly hstsMaxAgeSeconds?: number;
  /** Requests per second per client IP (and burst) before 429. @default none */
  readonly rateLimit?: { readonly perSecond: number; readonly burst: number };
  /**
   * Keep each client on one server with this cookie. HAProxy on Kubernetes gives each pod a
   * dynamic cookie (a hash of its address and a generated secret key). nginx on Kubernetes cannot
   * (it reaches the pods through the Service's virtual IP) and is refused. @default none
   */
  readonly stickyCookie?: string;
  /** Active check cadence (HAProxy). @default 2000 ms interval, 1000 ms timeout, fall 3, rise 2 */
  readonly health?: {
    readonly intervalMs?: number;
    readonly timeoutMs?: number;
    readonly fall?: number;
    readonly rise?: number;
  };
  /**
   * Tries on other servers after a failure. nginx through a Kubernetes Service tries at least as
   * often as {@link serviceTries} says. @default 2
   */
  readonly retries?: number;
  /** Most concurrent connections per app server; 0 = unlimited. @default 0 */
  readonly maxConnsPerServer?: number;
  /** CPU and memory per balancer replica. @default none */
  readonly resources?: ResourceSpec;
}

/** Arguments after defaults and validation. */
export interface ResolvedLoadBalancerArgs {
  /** The members' resources to deploy with, Outputs carrying their check (see `checkResources`). */
  readonly resources?: ResourceSpec;
  readonly replicas: number;
  readonly algorithm: Algorithm;
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly health: { intervalMs: number; timeoutMs: number; fall: number; rise: number };
  readonly retries: number;
  readonly maxConnsPerServer: number;
  readonly hstsMaxAgeSeconds: number;
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("LoadBalancer", name, field, rule, value, fix);
}

function wholeIn(name: string, field: string, v: number, min: number, max: number, fix: string): void {
  if (!Number.isInteger(v) || v < min || v > max)
    fail(name, field, `be a whole number from ${min} to ${max}`, v, fix);
}

/** Defaults and every check that needs no resource, before any child exists (pure). */
export function resolveLoadBalancerArgs(name: string, args: LoadBalancerArgs): ResolvedLoadBalancerArgs {
  if (args.engine !== "nginx" && args.engine !== "haproxy") {
    fail(name, "engine", "be nginx or haproxy", args.engine, "Pick one of the two.");
  }
  const r: ResolvedLoadBalancerArgs = {
    replicas: args.replicas ?? 2,
    algorithm: args.algorithm ?? "round-robin",
    httpPort: args.httpPort ?? 80,
    httpsPort: args.httpsPort ?? 443,
    health: {
      intervalMs: args.health?.intervalMs ?? 2000,
      timeoutMs: args.health?.timeoutMs ?? 1000,
      fall: args.health?.fall ?? 3,
      rise: args.health?.rise ?? 2,
    },
    retries: args.retries ?? 2,
    maxConnsPerServer: args.maxConnsPerServer ?? 0,
    hstsMaxAgeSeconds: args.hstsMaxAgeSeconds ?? 31_536_000,
  };
  wholeIn(name, "replicas", r.replicas, 1, 20, "Use 2 or more for a balancer that survives losing one.");
  wholeIn(name, "httpPort", r.httpPort, 1, 65535, "Use e.g. 80.");
  wholeIn(name, "httpsPort", r.httpsPort, 1, 65535, "Use e.g. 443.");
  if (args.tls !== undefined && r.httpsPort === r.httpPort) {
    fail(name, "httpsPort", `differ from httpPort (${r.httpPort})`, r.httpsPort, "Use e.g. 80 and 443.");
  }
  wholeIn(name, "retries", r.retries, 0, 10, "Use e.g. 2.");
  wholeIn(name, "maxConnsPerServer", r.maxConnsPerServer, 0, 1_000_000, "Use 0 for no limit.");
  wholeIn(name, "health.intervalMs", r.health.intervalMs, 100, 60_000, "Use e.g. 2000.");
  wholeIn(
    name,
    "health.timeoutMs",
    r.health.timeoutMs,
    50,
    r.health.intervalMs,
    "Keep it at most the interval.",
  );
  wholeIn(name, "health.fall", r.health.fall, 1, 20, "Use e.g. 3.");
  wholeIn(name, "health.rise", r.health.rise, 1, 20, "Use e.g. 2.");
  wholeIn(name, "hstsMaxAgeSeconds", r.hstsMaxAgeSeconds, 0, 63_072_000, "Use e.g. 31536000 (one year).");
  if (!isUrlPath(args.healthCheckPath)) {
    fail(
      name,
      "healthCheckPath",
      "be a URL path starting with /",
      args.healthCheckPath,
      "Use e.g. /healthz.",
    );
  }
  if (args.backends.length === 0 || args.backends.every((b) => b.backup === true)) {
    fail(
      name,
      "backends",
      "include at least one primary (backup: false)",
      args.backends.length === 0 ? [] : "only backups",
      "Add the app servers as a primary backend; backups only serve when every primary is down.",
    );
  }
  for (const [i, b] of args.backends.entries()) {
    for (const w of b.weights ?? []) {
      wholeIn(name, `backends[${i}].weights`, w, 1, 256, "Weights are relative shares from 1 to 256.");
    }
    if (b.weights !== undefined && args.platform.kind === "kubernetes") {
      fail(
        name,
        `backends[${i}].weights`,
        "only be set where members have stable addresses (Docker)",
        b.weights,
        "Kubernetes Deployment pods are interchangeable: drop weights, or split the app into groups.",
      );
    }
  }
  if (args.engine === "nginx" && args.platform.kind === "kubernetes") {
    // nginx before 1.27.3 cannot follow the pods (no `resolve`): it goes through the Service's
    // virtual IP, where kube-proxy picks a pod per connection whatever nginx hashed.
    const through =
      "(nginx reaches the pods through the Service's virtual IP, where kube-proxy picks the pod)";
    if (args.stickyCookie !== undefined) {
      fail(
        name,
        "stickyCookie",
        `not be set when nginx runs on Kubernetes ${through}`,
        args.stickyCookie,
        "Use engine: haproxy, which balances over the individual pods with a cookie per pod, or drop stickyCookie.",
      );
    }
    if (r.algorithm === "ip-hash") {
      fail(
        name,
        "algorithm",
        `not be ip-hash when nginx runs on Kubernetes ${through}`,
        r.algorithm,
        "Use engine: haproxy, which hashes client IPs over the individual pods, or algorithm round-robin or least-conn.",
      );
    }
  }
  const hashing = r.algorithm === "ip-hash" || args.stickyCookie !== undefined;
  if (args.engine === "nginx" && hashing && args.backends.some((b) => b.backup === true)) {
    // nginx refuses `backup` with hash and ip_hash balancing ("invalid parameter").
    fail(
      name,
      "backends",
      "not include backups when nginx balances by client IP or sticky cookie (nginx rejects it)",
      "backup",
      "Drop the backup servers, use algorithm round-robin or least-conn, or use engine: haproxy.",
    );
  }
  if (args.stickyCookie !== undefined && !/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(args.stickyCookie)) {
    fail(
      name,
      "stickyCookie",
      "be a cookie name of letters, digits and _ (at most 32)",
      args.stickyCookie,
      "Use e.g. SERVERID.",
    );
  }
  if (args.rateLimit !== undefined) {
    wholeIn(name, "rateLimit.perSecond", args.rateLimit.perSecond, 1, 1_000_000, "Use e.g. 50.");
    wholeIn(name, "rateLimit.burst", args.rateLimit.burst, 0, 1_000_000, "Use e.g. 100.");
  }
  const resources = checkResources("LoadBalancer", name, args.resources, {
    minMemoryMb: 32,
    needs: "nginx or HAProxy needs for its workers and buffers",
  });
  return { ...r, resources };
}

/** A backend group with its outputs resolved. */
export interface ResolvedGroup {
  members: MemberAddress[];
  serviceHost: string;
  discoveryHost: string;
  port: number;
  replicas: number;
  revision: string;
}

/**
 * How many tries nginx makes through a Service's virtual IP to a group of `replicas` pods: at
 * least `retries + 1`, and enough that while one pod fails every request it gets, at most
 * {@link SERVICE_FAILURE_BUDGET} of requests fail. Each try is at worst a new pick by kube-proxy:
 * nginx closes an upstream connection that failed instead of keeping it (the keepalive module does
 * not cache a peer freed with NGX_PEER_FAILED: errors, timeouts, and the 502/503/504 that
 * `proxy_next_upstream` moves on from), so the next try opens a new connection (a random ready
 * pod) or reuses an idle one, which leads to a pod that answered it last (and, idle for less than
 * a read timeout, never to a pod that has hung since: see the nginx renderer). A request then
 * fails only if every try meets the failing pod: (1/replicas)^tries ≤ budget, e.g. 4 tries for
 * 4 pods (0.4%), 5 for 3, 7 for 2.
 * One pod fails all requests whatever the tries: then `retries + 1`.
 */
export function serviceTries(replicas: number, retries: number): number {
  let tries = 1;
  // Whole numbers only: replicas^tries ≥ 1 / budget.
  while (replicas >= 2 && replicas ** tries * SERVICE_FAILURE_BUDGET < 1) tries++;
  return Math.max(tries, retries + 1);
}

/**
 * The servers of one backend group. Members with stable addresses are listed one by one. Without
 * them (Kubernetes Deployment): HAProxy discovers the pods through the headless Service at run
 * time; nginx (whose open-source builds before 1.27.3 resolve names only at start) goes through
 * the Service's virtual IP, listed once per try ({@link serviceTries}) and never taken out
 * (`max_fails=0`: the address stands for every ready pod, and one pod's failures must not take
 * the others out with it).
 */
export function groupServers(
  engine: BalancerEngine,
  group: ResolvedGroup,
  backend: LoadBalancerBackend,
  index: number,
  retries: number,
): { backends: BalancerBackend[]; discovery: BalancerDiscovery[]; viaService: boolean } {
  const backup = backend.backup ?? false;
  const prefix = backup ? `backup${index}` : `group${index}`;
  if (group.members.length > 0) {
    if (backend.weights !== undefined && backend.weights.length !== group.members.length) {
      throw new Error(`weights has ${backend.weights.length} entries for ${group.members.length} members`);
    }
    return {
      backends: group.members.map((m, i) => ({
        name: m.name,
        host: m.host,
        port: group.port,
        weight: backend.weights?.[i] ?? 1,
        backup,
      })),
      discovery: [],
      viaService: false,
    };
  }
  if (engine === "haproxy") {
    // Room for a rolling update's surge pod, so a new pod gets a slot before an old one leaves.
    const slots = group.replicas + 2;
    return {
      backends: [],
      discovery: [{ name: prefix, host: group.discoveryHost, port: group.port, slots, backup }],
      viaService: false,
    };
  }
  return {
    backends: Array.from({ length: serviceTries(group.replicas, retries) }, (_, i) => ({
      name: `${prefix}-try${i}`,
      host: group.serviceHost,
      port: group.port,
      weight: 1,
      backup,
      maxFails: 0,
    })),
    discovery: [],
    viaService: true,
  };
}

/**
 * The public entry point: 2+ replicas of nginx or HAProxy in front of app servers, with health
 * checks, retries on another server, backups, TLS, rate limits and an internal stats port.
 */
export class LoadBalancer extends pulumi.ComponentResource {
  /** `http://host:port` outside clients use. */
  public readonly url: pulumi.Output<string>;
  /** `https://host:port` when TLS is on. */
  public readonly httpsUrl: pulumi.Output<string | undefined>;
  /** The rendered config file (no secrets in it: the TLS key is a separate secret file). */
  public readonly config: pulumi.Output<string>;
  /** Internal host name of the balancer replicas (for the stats port). */
  public readonly serviceHost: pulumi.Output<string>;
  /** Internal stats/metrics port (never published). */
  public readonly statsPort: pulumi.Output<number>;
  /** The scrape job of its metrics (none with `metrics.exporters: false`). */
  public readonly metricsJobs: readonly ScrapeJob[];
  /**
   * URLs a prober inside the platform requests through the balancer (its app servers' health
   * path), over HTTP and, with TLS, HTTPS: the edge probes of the monitoring; and the
   * balancer's tier, which the prober names in `probes` to be admitted to the public ports.
   */
  public readonly probeUrls: { readonly tier: string; readonly http: string; readonly https?: string };

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("balancer", "LoadBalancer", opts);
    super(token, name, {}, options);
    name = physicalName("LoadBalancer", name, args);
    const r = resolveLoadBalancerArgs(name, args);
    const engine = args.engine;
    const tls = args.tls;
    // One key for every replica, so each computes the same cookie for a pod; a secret file only.
    // (The engine marks random results secret; `pulumi.secret` keeps them so under mocks too.)
    const cookieKey =
      engine === "haproxy" && args.stickyCookie !== undefined
        ? pulumi.secret(
            new random.RandomPassword(`${name}-cookie-key`, { length: 32, special: false }, { parent: this })
              .result,
          )
        : undefined;

    const groups = args.backends.map((b) =>
      pulumi
        .all([
          b.group.members,
          b.group.serviceHost,
          b.group.discoveryHost,
          b.group.port,
          b.group.replicas,
          b.group.membersRevision ?? "",
        ])
        .apply(([members, serviceHost, discoveryHost, port, replicas, revision]) => ({
          members,
          serviceHost,
          discoveryHost,
          port,
          replicas,
          revision,
        })),
    );
    this.config = pulumi.all(groups).apply((resolved) => {
      const fail = (e: unknown) =>
        new pulumi.ResourceError(`LoadBalancer "${name}": ${(e as Error).message}`, this);
      let servers: ReturnType<typeof groupServers>[];
      try {
        servers = resolved.map((g, i) => groupServers(engine, g, args.backends[i], i, r.retries));
      } catch (e) {
        throw fail(e);
      }
      const backends = servers.flatMap((s) => s.backends);
      // nginx may walk every entry of a Service (the backups' after the primaries'), so it tries
      // as many times as there are such entries.
      const serviceEntries = servers.filter((s) => s.viaService).flatMap((s) => s.backends).length;
      const spec: BalancerRenderSpec = {
        httpPort: PORTS.http,
        httpsPort: tls ? PORTS.https : undefined,
        statsPort: PORTS.stats,
        algorithm: r.algorithm,
        backends,
        discovery: servers.flatMap((s) => s.discovery),
        // HAProxy re-resolves through the platform's DNS (resolv.conf); nginx resolves at start.
        dynamicDns: engine === "haproxy" ? { resolvers: [] } : undefined,
        health: { path: args.healthCheckPath, ...r.health },
        passive: {
          maxFails: 1,
          failTimeoutS: Math.max(1, Math.ceil((r.health.intervalMs * r.health.rise) / 1000)),
        },
        retries: Math.max(r.retries, serviceEntries - 1),
        timeouts: { connectMs: 2000, clientMs: 30_000, serverMs: 30_000 },
        keepaliveConnections: 64,
        maxConnsPerServer: r.maxConnsPerServer,
        tls: tls
          ? { certPath: CERT_PATH, hstsMaxAgeS: r.hstsMaxAgeSeconds, redirectPort: r.httpsPort }
          : undefined,
        rateLimit: args.rateLimit,
        sticky: args.stickyCookie
          ? { cookie: args.stickyCookie, dynamicKeyEnv: cookieKey ? COOKIE_KEY_ENV : undefined }
          : undefined,
        securityHeaders: true,
        accessLog: "/dev/stdout",
        // nginx writes to its own fd 2: no reopening of /dev/stderr, which needs the stdio chown
        // that runc does for the container user.
        errorLog: "stderr",
        tmpDir: "/tmp",
      };
      let text: string;
      try {
        text = engine === "nginx" ? renderNginx(spec) : renderHaproxy(spec);
      } catch (e) {
        throw fail(e);
      }
      // Members resolved once at start (nginx) must restart when they are re-created.
      const revisions = resolved.map((g) => g.revision).filter((x) => x !== "");
      return revisions.length === 0 ? text : `${text}# members revision: ${revisions.join(" ")}\n`;
    });

    // Refused once the values are known (they are often secrets or outputs), each gating its own
    // file: a private key inside the certificate would land in plain text next to the config (a
    // ConfigMap, an upload), and a key of another certificate stops the balancer. The messages
    // never quote either value.
    const refuseTls = (problems: TlsProblem[]) => {
      const [p] = problems;
      if (p === undefined) return;
      const field = p.key === "tlsKey" ? "tls.privateKey" : "tls.certificate";
      throw new pulumi.ResourceError(`LoadBalancer "${name}": ${formatTlsProblem(p, field)}`, this);
    };
    const certificate = tls
      ? pulumi.output(tls.certificate).apply((c) => {
          refuseTls(balancerTlsProblems(c));
          return c;
        })
      : undefined;
    // Secret going in (not wrapped afterwards), so a refusal leaves no promise unobserved.
    const privateKey = tls
      ? pulumi.all([tls.certificate, pulumi.secret(tls.privateKey)]).apply(([c, k]) => {
          refuseTls(balancerTlsProblems(c, k).filter((p) => p.key === "tlsKey"));
          return k;
        })
      : undefined;
    const metricsOn = exportersOn(args);
    const spec: WorkloadSpec = {
      kind: "stateless",
      replicas: r.replicas,
      image: engine === "nginx" ? NGINX_IMAGE : HAPROXY_IMAGE,
      command: balancerCommand(engine, cookieKey !== undefined),
      // The certificate is public and stays reviewable; only its key is a secret file.
      files: certificate
        ? { [CONFIG_PATH[engine]]: this.config, [CERT_PATH]: certificate }
        : { [CONFIG_PATH[engine]]: this.config },
      secretFiles:
        privateKey || cookieKey
          ? {
              ...(privateKey ? { [`${CERT_PATH}.key`]: privateKey } : {}),
              ...(cookieKey ? { [COOKIE_KEY_PATH]: cookieKey } : {}),
            }
          : undefined,
      ports: tls
        ? { http: PORTS.http, https: PORTS.https, stats: PORTS.stats }
        : { http: PORTS.http, stats: PORTS.stats },
      healthCheck: { httpGet: { path: "/lb-health", port: "stats" }, intervalSeconds: 5 },
      resources: r.resources,
      tier: EDGE_TIER,
      publicPorts: [
        { target: "http", port: r.httpPort },
        ...(tls ? [{ target: "https", port: r.httpsPort }] : []),
      ],
      runAsUser: RUN_AS[engine],
      // The key files are read by the balancer's own user (the images start as it).
      fileOwner: RUN_AS[engine],
      // pid and temp files under /tmp (nginx); HAProxy writes nothing.
      writablePaths: [],
      defaultResources: { cpu: "250m", memory: "128Mi" },
      // Stats and metrics are for the kubelet's probes (node traffic), not for client tiers.
      peerPorts: ["stats"],
      ...(metricsOn
        ? engine === "nginx"
          ? {
              sidecars: [nginxExporterSidecar(PORTS.stats, NGINX_STATUS_PATH)],
              metricsPorts: [{ port: EXPORTER_PORT_NAMES.nginx }],
            }
          : { metricsPorts: [{ port: "stats" }] }
        : {}),
    };
    const workload = args.platform.deploy(`${name}-${engine}`, spec, { parent: this });
    this.metricsJobs = metricsOn
      ? [
          engine === "nginx"
            ? scrapeJob(name, "nginx", workload, EXPORTER_PORT_NAMES.nginx, r.replicas)
            : scrapeJob(name, "haproxy", workload, "stats", r.replicas),
        ]
      : [];
    // Inside the platform, through the balancer to an app server's health path.
    this.probeUrls = {
      tier: EDGE_TIER,
      http: `http://${workload.serviceHost}:${PORTS.http}${args.healthCheckPath}`,
      ...(tls ? { https: `https://${workload.serviceHost}:${PORTS.https}${args.healthCheckPath}` } : {}),
    };

    this.url = pulumi.interpolate`http://${workload.publicAddresses.http}`;
    this.httpsUrl = workload.publicAddresses.https
      ? pulumi.interpolate`https://${workload.publicAddresses.https}`
      : pulumi.output(undefined);
    this.serviceHost = pulumi.output(workload.serviceHost);
    this.statsPort = pulumi.output(PORTS.stats);
    this.registerOutputs({
      url: this.url,
      httpsUrl: this.httpsUrl,
      config: this.config,
      serviceHost: this.serviceHost,
      statsPort: this.statsPort,
    });
  }
}
