import { renderHaproxy } from "../../components/balancer/render/haproxy";
import { renderNginx } from "../../components/balancer/render/nginx";
import type { BalancerRenderSpec } from "../../components/balancer/render/spec";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { binary, check, haproxyCheck, nginxTest, selfSignedCert, tempDir } from "../support/daemons";
import { expectGolden } from "../support/golden";

const tlsDir = tempDir("balancer-tls");
const cert = selfSignedCert(tlsDir);

/** Containers-style spec: member names, all addresses, the container's own paths. */
const base: BalancerRenderSpec = {
  httpPort: 8080,
  statsPort: 8404,
  algorithm: "round-robin",
  backends: [
    { name: "shop-app-0", host: "shop-app-0", port: 8080, weight: 1, backup: false },
    { name: "shop-app-1", host: "shop-app-1", port: 8080, weight: 1, backup: false },
  ],
  discovery: [],
  health: { path: "/healthz", intervalMs: 2000, timeoutMs: 1000, fall: 3, rise: 2 },
  passive: { maxFails: 1, failTimeoutS: 4 },
  retries: 2,
  timeouts: { connectMs: 2000, clientMs: 30_000, serverMs: 30_000 },
  keepaliveConnections: 64,
  maxConnsPerServer: 0,
  securityHeaders: true,
  accessLog: "/dev/stdout",
  errorLog: "/dev/stderr",
  tmpDir: "/tmp",
};
const hosts = {
  "shop-app-0": "127.0.0.2",
  "shop-app-1": "127.0.0.3",
  "shop-app-2": "127.0.0.4",
  "shop-app.ns.svc.cluster.local": "127.0.0.5",
};
const backup = { name: "shop-app-2", host: "shop-app-2", port: 8080, weight: 1, backup: true };
const tls = { certPath: cert, hstsMaxAgeS: 31_536_000, redirectPort: 8443 };
/** Kubernetes with nginx: the app Service's virtual IP once per try, never marked down. */
const viaService = [0, 1, 2, 3].map((i) => ({
  name: `g0-try${i}`,
  host: "shop-app.ns.svc.cluster.local",
  port: 8080,
  weight: 1,
  backup: false,
  maxFails: 0,
}));
/** Kubernetes with HAProxy: the pods behind the headless Service, found at run time. */
const discovered = {
  backends: [],
  discovery: [
    { name: "g0", host: "shop-app-headless.ns.svc.cluster.local", port: 8080, slots: 6, backup: false },
    {
      name: "b1",
      host: "shop-standby-app-headless.ns.svc.cluster.local",
      port: 8080,
      slots: 3,
      backup: true,
    },
  ],
  dynamicDns: { resolvers: [] },
};
const dynamicSticky = { cookie: "SRV", dynamicKeyEnv: "HA_BACKEND_COOKIE_KEY" };

describe("renderNginx", () => {
  it("matches the golden file, with the settings that make failover work", () => {
    const conf = renderNginx({ ...base, backends: [...base.backends, backup] });
    expectGolden("balancer.nginx.conf", conf);
    expect(conf).toContain("    zone app 256k;\n");
    expect(conf).toContain("server shop-app-2:8080 max_fails=1 fail_timeout=4s backup;");
    expect(conf).toContain("proxy_next_upstream error timeout http_502 http_503 http_504;\n");
    expect(conf).not.toContain("non_idempotent");
    expect(conf).toContain("keepalive 64;");
    expect(conf).toContain('proxy_set_header Connection "";');
    expect(conf).toContain("proxy_http_version 1.1;");
    expect(conf).toContain("stub_status;");
  });

  it("sorts servers, so argument order never changes the file", () => {
    const a = renderNginx(base);
    const b = renderNginx({ ...base, backends: [...base.backends].reverse() });
    expect(b).toBe(a);
  });
});

describe("the Kubernetes shapes", () => {
  it("nginx: the Service's address once per try, never marked down, retried on 502/503/504", () => {
    const conf = renderNginx({ ...base, backends: viaService, retries: 3 });
    expectGolden("balancer.k8s.nginx.conf", conf);
    expect(conf.match(/server shop-app\.ns\.svc\.cluster\.local:8080 max_fails=0;/g)).toHaveLength(4);
    expect(conf).not.toContain("fail_timeout");
    expect(conf).toContain("proxy_next_upstream error timeout http_502 http_503 http_504;\n");
    expect(conf).toContain("proxy_next_upstream_tries 4;\n");
    expect(conf).toContain("proxy_next_upstream_timeout 38s;\n");
    // Idle upstream connections last less than a read timeout: a retry after a hung pod never
    // takes one from before the hang (it may lead to the same pod through the Service).
    expect(conf).toContain("    proxy_read_timeout 30s;\n");
    expect(conf).toContain("        keepalive_timeout 15s;\n");
  });

  it("HAProxy: a dynamic sticky cookie per discovered pod, the key from the environment", () => {
    const conf = renderHaproxy({
      ...base,
      ...discovered,
      sticky: dynamicSticky,
      algorithm: "ip-hash",
      // The container's path: the golden file must not name this run's temporary directory.
      tls: { ...tls, certPath: "/etc/ha-backend/lb/tls/server.pem" },
      httpsPort: 8443,
    });
    expectGolden("balancer.k8s.haproxy.cfg", conf);
    expect(conf).toContain("    cookie SRV insert indirect nocache httponly secure dynamic\n");
    expect(conf).toContain('    dynamic-cookie-key "${HA_BACKEND_COOKIE_KEY}"\n');
    expect(conf).toContain("    balance source\n    hash-type consistent\n");
    expect(conf).toContain(
      "    server-template b1- 1-3 shop-standby-app-headless.ns.svc.cluster.local:8080 check init-addr none backup\n",
    );
    // A template's slots are backups too: every standby pod serves once the primaries are down.
    expect(conf).toContain("    option allbackups\n");
  });

  it("HAProxy reads the key from the environment: with it set, the check is clean; without, a notice", () => {
    const dir = tempDir("haproxy-cookie-key");
    const file = join(dir, "haproxy.cfg");
    writeFileSync(file, renderHaproxy({ ...base, ...discovered, sticky: dynamicSticky }));
    const withKey = check("env", ["HA_BACKEND_COOKIE_KEY=k3y", binary("haproxy"), "-c", "-f", file]);
    expect(withKey.output).not.toMatch(/NOTICE.*HA_BACKEND_COOKIE_KEY|WARNING|ALERT/);
    expect(withKey.code).toBe(0);
    const without = check("env", ["-u", "HA_BACKEND_COOKIE_KEY", binary("haproxy"), "-c", "-f", file]);
    expect(without.output).toContain("HA_BACKEND_COOKIE_KEY is not set");
    expect(without.output).not.toMatch(/WARNING|ALERT/);
    expect(without.code).toBe(0);
  });
});

describe("renderHaproxy", () => {
  it("matches the golden file, with active checks, retries and no replayed POST", () => {
    const conf = renderHaproxy({
      ...base,
      backends: [...base.backends, backup],
      dynamicDns: { resolvers: [] },
    });
    expectGolden("balancer.haproxy.cfg", conf);
    expect(conf).toContain("    option httpchk\n    http-check send meth GET uri /healthz ver HTTP/1.1");
    expect(conf).toContain("observe layer4 error-limit 1 on-error mark-down");
    expect(conf).toContain("    retry-on all-retryable-errors\n");
    expect(conf).toContain("    http-request disable-l7-retry if !idempotent\n");
    expect(conf).toContain("    option redispatch 1\n");
    expect(conf).toContain("server shop-app-2 shop-app-2:8080 check weight 1 backup");
    expect(conf).toContain("    parse-resolv-conf\n");
    expect(conf).toContain("http-request use-service prometheus-exporter if { path /metrics }");
  });
});

// Every row goes through the real checker of each engine that can express it.
const cases: [string, Partial<BalancerRenderSpec>, ("nginx" | "haproxy")[]][] = [
  ["the plain default", {}, ["nginx", "haproxy"]],
  ["least connections", { algorithm: "least-conn" }, ["nginx", "haproxy"]],
  ["client-IP affinity", { algorithm: "ip-hash" }, ["nginx", "haproxy"]],
  [
    "weights and a connection limit",
    { backends: base.backends.map((b, i) => ({ ...b, weight: i + 2 })), maxConnsPerServer: 100 },
    ["nginx", "haproxy"],
  ],
  ["a backup server", { backends: [...base.backends, backup] }, ["nginx", "haproxy"]],
  [
    "two backups",
    { backends: [...base.backends, backup, { ...backup, name: "b2", host: "shop-app-1" }] },
    ["haproxy"],
  ],
  [
    "ip-hash with a backup (HAProxy only)",
    { algorithm: "ip-hash", backends: [...base.backends, backup] },
    ["haproxy"],
  ],
  ["TLS on 443", { tls: { ...tls, redirectPort: 443 }, httpsPort: 8443 }, ["nginx", "haproxy"]],
  ["TLS on a host port", { tls, httpsPort: 8443 }, ["nginx", "haproxy"]],
  ["a rate limit", { rateLimit: { perSecond: 10, burst: 20 } }, ["nginx", "haproxy"]],
  ["a sticky cookie", { sticky: { cookie: "SRV" } }, ["nginx", "haproxy"]],
  ["sticky with TLS", { sticky: { cookie: "SRV" }, tls, httpsPort: 8443 }, ["nginx", "haproxy"]],
  ["no access log, no headers", { accessLog: false, securityHeaders: false }, ["nginx", "haproxy"]],
  ["zero retries", { retries: 0 }, ["nginx", "haproxy"]],
  ["loopback listeners", { listenAddress: "127.0.0.9", statsAddress: "127.0.0.9" }, ["nginx", "haproxy"]],
  [
    "DNS-discovered members",
    {
      backends: [],
      discovery: [
        { name: "g0", host: "shop-app-headless.ns.svc.cluster.local", port: 8080, slots: 5, backup: false },
      ],
      dynamicDns: { resolvers: [] },
    },
    ["haproxy"],
  ],
  ["an explicit resolver", { dynamicDns: { resolvers: ["127.0.0.11"] } }, ["haproxy"]],
  ["a service address listed once per try", { backends: viaService, retries: 3 }, ["nginx"]],
  [
    "a service address with a backup service",
    {
      backends: [
        ...viaService,
        ...viaService.map((b) => ({ ...b, name: `b1-${b.name}`, host: "shop-app-2", backup: true })),
      ],
      retries: 7,
    },
    ["nginx"],
  ],
  ["a dynamic sticky cookie over discovered pods", { ...discovered, sticky: dynamicSticky }, ["haproxy"]],
  [
    "client-IP hashing over discovered pods, with TLS",
    { ...discovered, algorithm: "ip-hash", sticky: dynamicSticky, tls, httpsPort: 8443 },
    ["haproxy"],
  ],
];

describe.each(cases)("%s", (_label, patch, engines) => {
  const spec = { ...base, ...patch };
  if (engines.includes("nginx")) {
    it("passes nginx -t", () => {
      const r = nginxTest(renderNginx(spec), hosts);
      expect(r.output).toBe("");
      expect(r.code).toBe(0);
    });
  }
  if (engines.includes("haproxy")) {
    it("passes haproxy -c without warnings", () => {
      const r = haproxyCheck(renderHaproxy(spec), hosts);
      expect(r.output).not.toMatch(/WARNING|ALERT/);
      expect(r.output).toContain("Configuration file is valid");
      expect(r.code).toBe(0);
    });
  }
});

describe("what the engines cannot express is refused before rendering", () => {
  it.each<[string, "nginx" | "haproxy", Partial<BalancerRenderSpec>, string]>([
    [
      "nginx: ip-hash with a backup",
      "nginx",
      { algorithm: "ip-hash", backends: [...base.backends, backup] },
      "backup servers cannot be combined with ip-hash or sticky",
    ],
    [
      "nginx: sticky with a backup",
      "nginx",
      { sticky: { cookie: "S" }, backends: [...base.backends, backup] },
      "backup servers cannot be combined",
    ],
    [
      "nginx: DNS discovery without resolve",
      "nginx",
      { discovery: [{ name: "g", host: "x", port: 1, slots: 2, backup: false }] },
      "need dynamicDns",
    ],
    [
      "only backups",
      "haproxy",
      { backends: [backup] },
      "at least one primary (non-backup) server is required",
    ],
    ["tls without an https port", "haproxy", { tls }, "tls and httpsPort go together"],
    [
      "nginx: ip-hash over one Service address (kube-proxy picks the pod)",
      "nginx",
      { algorithm: "ip-hash", backends: viaService },
      "nginx: ip-hash or sticky balancing over servers that share one address (shop-app.ns.svc.cluster.local:8080) keeps no client on one member",
    ],
    [
      "nginx: sticky over one Service address",
      "nginx",
      { sticky: { cookie: "S" }, backends: viaService },
      "share one address",
    ],
    [
      "HAProxy: sticky over discovered pods without a key (the cookie would be empty)",
      "haproxy",
      { ...discovered, sticky: { cookie: "S" } },
      "haproxy: sticky cookies over DNS-discovered servers need sticky.dynamicKeyEnv",
    ],
  ])("%s", (_label, engine, patch, message) => {
    const render = engine === "nginx" ? renderNginx : renderHaproxy;
    expect(() => render({ ...base, ...patch })).toThrow(message);
  });

  it("and the checkers catch a broken file (so the rows above can fail)", () => {
    expect(nginxTest(renderNginx(base).replace("keepalive 64;", "keepalive sixty;"), hosts).code).not.toBe(0);
    expect(haproxyCheck(renderHaproxy(base).replace("balance roundrobin", "balance fastest")).code).not.toBe(
      0,
    );
    // nginx refuses a name it cannot resolve: the host mapping is what makes the rows pass.
    expect(nginxTest(renderNginx(base), { "other-host": "127.0.0.2" }).code).not.toBe(0);
  });
});
