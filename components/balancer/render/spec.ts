import * as g from "../../render-guard";

/**
 * What both balancer renderers take: plain data, engine-neutral. The LoadBalancer component
 * fills it from its args; tests fill it directly (with loopback addresses).
 */

/** How requests are spread over the primary servers. */
export type Algorithm = "round-robin" | "least-conn" | "ip-hash";

/** One upstream server with a stable address. */
export interface BalancerBackend {
  /** Server name in the config and in logs/metrics, e.g. `shop-app-0`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Relative share of requests (1–256). */
  readonly weight: number;
  /** Takes traffic only when every primary server is down. */
  readonly backup: boolean;
  /**
   * nginx: failures that take this server out, instead of `passive.maxFails`. 0 never takes it
   * out: for a Service's virtual IP, which stands for every ready pod (one pod's failure must not
   * take all of them out). HAProxy checks servers actively and ignores it.
   */
  readonly maxFails?: number;
}

/**
 * Members found through DNS (a Kubernetes headless Service), re-resolved at run time, for tiers
 * whose members have no stable address.
 */
export interface BalancerDiscovery {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Most members the name can resolve to (HAProxy pre-allocates this many server slots). */
  readonly slots: number;
  readonly backup: boolean;
}

export interface BalancerRenderSpec {
  /** Address the public listeners bind; tests pin a loopback address. @default all */
  readonly listenAddress?: string;
  /** Plain HTTP port inside the container (unprivileged: ≥ 1024). */
  readonly httpPort: number;
  /** HTTPS port; set together with `tls`. */
  readonly httpsPort?: number;
  /** Internal port for stats/metrics and the balancer's own health check; never published. */
  readonly statsPort: number;
  /** Address the stats listener binds. @default all (reachable inside the platform network only) */
  readonly statsAddress?: string;
  readonly algorithm: Algorithm;
  /** Servers with stable addresses (Docker members, explicit hosts). */
  readonly backends: readonly BalancerBackend[];
  /** DNS-discovered members (Kubernetes). */
  readonly discovery: readonly BalancerDiscovery[];
  /**
   * Resolve server names again at run time (containers and pods get new addresses when they
   * are recreated). nginx: needs ≥ 1.27.3 for `resolve` in open-source builds.
   */
  readonly dynamicDns?: { readonly resolvers: readonly string[] };
  /** Active checks (HAProxy) on this path; nginx uses passive checks only. */
  readonly health: {
    readonly path: string;
    readonly intervalMs: number;
    readonly timeoutMs: number;
    /** Consecutive failures before a server is marked down. */
    readonly fall: number;
    /** Consecutive successes before it is back. */
    readonly rise: number;
  };
  /** Passive checks: failures within `failTimeoutS` that take a server out for `failTimeoutS`. */
  readonly passive: { readonly maxFails: number; readonly failTimeoutS: number };
  /** Tries on other servers after a failure (connection refused, reset, 502/503/504 on idempotent requests). */
  readonly retries: number;
  readonly timeouts: { readonly connectMs: number; readonly clientMs: number; readonly serverMs: number };
  /** Idle connections kept open to the upstreams (per worker for nginx). */
  readonly keepaliveConnections: number;
  /** Most concurrent connections per server; 0 = unlimited. */
  readonly maxConnsPerServer: number;
  /**
   * TLS termination: the certificate chain at `certPath`, its key at `${certPath}.key`. Plain
   * HTTP redirects to `https://<host>:<redirectPort>` (the port clients use, e.g. a host port).
   */
  readonly tls?: { readonly certPath: string; readonly hstsMaxAgeS: number; readonly redirectPort: number };
  /** Requests per second per client IP, with a burst allowance; over it clients get 429. */
  readonly rateLimit?: { readonly perSecond: number; readonly burst: number };
  /**
   * Keep a client on one server with this cookie. HAProxy names listed servers in it; servers
   * found through DNS get a dynamic cookie (a hash of their address and a secret key) instead,
   * with the key read from the environment variable `dynamicKeyEnv`, so it never lands in the
   * config file.
   */
  readonly sticky?: { readonly cookie: string; readonly dynamicKeyEnv?: string };
  readonly securityHeaders: boolean;
  /** Where access logs go (`/dev/stdout` in containers), or false for none. */
  readonly accessLog: string | false;
  /** Where the error log goes: a path, or `stderr` (nginx writes to its own fd 2). */
  readonly errorLog: string;
  /** Writable directory for pid and temp files (nginx). */
  readonly tmpDir: string;
}

/** Backends sorted by name, so argument order never changes the file (and the diff). */
export function sortedBackends<T extends { readonly name: string }>(list: readonly T[]): T[] {
  return [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Host and port as an address; IPv6 literals in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The listener address: `port` alone (nginx) or `:port` (HAProxy) for all addresses, else `address:port`. */
export function listenOn(address: string | undefined, port: number, engine: "nginx" | "haproxy"): string {
  if (address !== undefined) return hostPort(address, port);
  return engine === "nginx" ? String(port) : `:${port}`;
}

/** Seconds for directives that take whole seconds (rounded up, never 0). */
export function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Security headers both engines send (names and values; `always` semantics). */
export const SECURITY_HEADERS: readonly [string, string][] = [
  ["X-Content-Type-Options", "nosniff"],
  ["X-Frame-Options", "SAMEORIGIN"],
  ["Referrer-Policy", "strict-origin-when-cross-origin"],
];

/**
 * Mozilla's "intermediate" TLS 1.2 cipher list (TLS 1.3 suites are fixed by OpenSSL): modern
 * clients only, forward secrecy, AEAD.
 */
export const TLS12_CIPHERS =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" +
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/**
 * Every value the balancer file embeds, checked before anything is rendered: a host, a path or a
 * cookie name that could end a directive, open a block or start a comment is refused with the
 * field's name ({@link RenderInputError}).
 */
export function guardRenderSpec(renderer: "renderNginx" | "renderHaproxy", s: BalancerRenderSpec): void {
  const r = renderer;
  const ms = (field: string, v: number) => g.wholeNumber(r, field, v, 1, 86_400_000);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  g.port(r, "httpPort", s.httpPort);
  if (s.httpsPort !== undefined) g.port(r, "httpsPort", s.httpsPort);
  g.port(r, "statsPort", s.statsPort);
  if (s.statsAddress !== undefined) g.ipAddress(r, "statsAddress", s.statsAddress);
  g.oneOf(r, "algorithm", s.algorithm, ["round-robin", "least-conn", "ip-hash"]);
  g.listOf(r, "backends", s.backends, 0, 1000, (f, b) => {
    g.objectName(r, `${f}.name`, b.name);
    g.hostName(r, `${f}.host`, b.host);
    g.port(r, `${f}.port`, b.port);
    g.wholeNumber(r, `${f}.weight`, b.weight, 1, 256);
    if (b.maxFails !== undefined) g.wholeNumber(r, `${f}.maxFails`, b.maxFails, 0, 1000);
  });
  g.listOf(r, "discovery", s.discovery, 0, 100, (f, d) => {
    g.objectName(r, `${f}.name`, d.name);
    g.hostName(r, `${f}.host`, d.host);
    g.port(r, `${f}.port`, d.port);
    g.wholeNumber(r, `${f}.slots`, d.slots, 1, 1000);
  });
  if (s.dynamicDns !== undefined) {
    // HAProxy falls back to resolv.conf; nginx has no such fallback (`resolver ;` is an error).
    const min = renderer === "renderNginx" ? 1 : 0;
    g.listOf(r, "dynamicDns.resolvers", s.dynamicDns.resolvers, min, 16, (f, a) => g.hostName(r, f, a));
  }
  g.urlPath(r, "health.path", s.health.path);
  ms("health.intervalMs", s.health.intervalMs);
  ms("health.timeoutMs", s.health.timeoutMs);
  g.wholeNumber(r, "health.fall", s.health.fall, 1, 1000);
  g.wholeNumber(r, "health.rise", s.health.rise, 1, 1000);
  g.wholeNumber(r, "passive.maxFails", s.passive.maxFails, 0, 1000);
  g.wholeNumber(r, "passive.failTimeoutS", s.passive.failTimeoutS, 1, 86_400);
  g.wholeNumber(r, "retries", s.retries, 0, 100);
  ms("timeouts.connectMs", s.timeouts.connectMs);
  ms("timeouts.clientMs", s.timeouts.clientMs);
  ms("timeouts.serverMs", s.timeouts.serverMs);
  g.wholeNumber(r, "keepaliveConnections", s.keepaliveConnections, 1, 1_000_000);
  g.wholeNumber(r, "maxConnsPerServer", s.maxConnsPerServer, 0, 1_000_000);
  if (s.tls !== undefined) {
    g.filePath(r, "tls.certPath", s.tls.certPath);
    g.wholeNumber(r, "tls.hstsMaxAgeS", s.tls.hstsMaxAgeS, 0, 1_000_000_000);
    g.port(r, "tls.redirectPort", s.tls.redirectPort);
  }
  if (s.rateLimit !== undefined) {
    g.wholeNumber(r, "rateLimit.perSecond", s.rateLimit.perSecond, 1, 1_000_000);
    g.wholeNumber(r, "rateLimit.burst", s.rateLimit.burst, 0, 1_000_000);
  }
  if (s.sticky !== undefined) {
    g.cookieName(r, "sticky.cookie", s.sticky.cookie);
    if (s.sticky.dynamicKeyEnv !== undefined) g.envName(r, "sticky.dynamicKeyEnv", s.sticky.dynamicKeyEnv);
  }
  if (s.accessLog !== false) g.filePath(r, "accessLog", s.accessLog);
  g.logTarget(r, "errorLog", s.errorLog);
  g.filePath(r, "tmpDir", s.tmpDir);
}

/** Checks what neither engine can express; thrown as plain errors (the component words them for users). */
export function checkRenderSpec(engine: "nginx" | "haproxy", s: BalancerRenderSpec): void {
  const primaries = [...s.backends, ...s.discovery].filter((b) => !b.backup).length;
  if (primaries === 0) {
    throw new Error(`${engine}: at least one primary (non-backup) server is required`);
  }
  if ((s.tls === undefined) !== (s.httpsPort === undefined)) {
    throw new Error(`${engine}: tls and httpsPort go together`);
  }
  const hasBackup = [...s.backends, ...s.discovery].some((b) => b.backup);
  if (engine === "nginx" && hasBackup && (s.algorithm === "ip-hash" || s.sticky !== undefined)) {
    // nginx: "invalid parameter "backup"" with hash/ip_hash (ngx_http_upstream_module docs).
    throw new Error("nginx: backup servers cannot be combined with ip-hash or sticky (hash) balancing");
  }
  if (engine === "nginx" && (s.algorithm === "ip-hash" || s.sticky !== undefined)) {
    // A hash over entries that are one address (a Service's virtual IP, listed once per try)
    // picks an entry, not a pod: the Service picks the pod, so affinity would silently do nothing.
    const addresses = s.backends.map((b) => hostPort(b.host, b.port));
    const repeated = addresses.find((a, i) => addresses.indexOf(a) !== i);
    if (repeated !== undefined) {
      throw new Error(
        `nginx: ip-hash or sticky balancing over servers that share one address (${repeated}) keeps no client on one member`,
      );
    }
  }
  if (engine === "haproxy" && s.sticky !== undefined && s.discovery.length > 0) {
    if (s.sticky.dynamicKeyEnv === undefined || !/^[A-Z_][A-Z0-9_]*$/.test(s.sticky.dynamicKeyEnv)) {
      // Without a key HAProxy leaves the cookie of template servers empty (`BLOGSRV=; Expires=1970`).
      throw new Error("haproxy: sticky cookies over DNS-discovered servers need sticky.dynamicKeyEnv");
    }
  }
  if (engine === "nginx" && s.discovery.length > 0 && s.dynamicDns === undefined) {
    throw new Error("nginx: DNS-discovered members need dynamicDns (resolve), or they are fixed at start");
  }
}
