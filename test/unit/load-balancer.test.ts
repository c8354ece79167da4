import * as pulumi from "@pulumi/pulumi";
import {
  balancerCommand,
  COOKIE_KEY_ENV,
  COOKIE_KEY_PATH,
  HAPROXY_IMAGE,
  groupServers,
  LoadBalancer,
  NGINX_IMAGE,
  resolveLoadBalancerArgs,
  serviceTries,
  type BackendGroup,
  type LoadBalancerArgs,
} from "../../components/balancer/load-balancer";
import { ServerCluster } from "../../components/cluster/server-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import { redactSecrets } from "../../scripts/mock-engine";
import {
  expectRejectedBeforeAnyResource,
  expectSecretsHidden,
  isWrappedSecret,
  ofType,
  one,
  plain,
  runComponents,
} from "../support/engine";

const CONTAINER = "docker:index/container:Container";
const KEY = "-----BEGIN PRIVATE KEY-----\nsuper-secret-key\n-----END PRIVATE KEY-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\npublic-cert\n-----END CERTIFICATE-----\n";

function shopOn(
  platform: Platform,
  withTls: boolean,
  engine: "nginx" | "haproxy" = "nginx",
  extra: Partial<LoadBalancerArgs> = {},
) {
  const app = new ServerCluster("shop", { platform, replicas: 2 });
  const standby = new ServerCluster("shop-standby", { platform, replicas: 1 });
  const lb = new LoadBalancer("shop-lb", {
    platform,
    engine,
    backends: [{ group: app }, { group: standby, backup: true }],
    healthCheckPath: "/healthz",
    httpPort: 8080,
    httpsPort: 8443,
    tls: withTls ? { certificate: CERT, privateKey: pulumi.secret(KEY) } : undefined,
    ...extra,
  });
  return { url: lb.url, httpsUrl: lb.httpsUrl, config: lb.config };
}

describe("LoadBalancer on Docker", () => {
  it("runs two nginx replicas on the edge, publishing HTTP and HTTPS on the first", async () => {
    const run = await runComponents(() => shopOn(new DockerPlatform("docker", { prefix: "dev" }), true));
    const lbs = ofType(run, CONTAINER).filter((c) => c.parent === "ha-backend:index:LoadBalancer::shop-lb");
    expect(lbs.map((c) => c.name).sort()).toEqual(["shop-lb-nginx-0", "shop-lb-nginx-1"]);
    const first = plain(one(run, CONTAINER, "shop-lb-nginx-0"));
    expect(first.image).toBe(`sha256:mock-${NGINX_IMAGE}`);
    expect(first.user).toBe("101");
    expect(first.ports).toEqual([
      { internal: 8080, external: 8080, ip: "127.0.0.1" },
      { internal: 8443, external: 8443, ip: "127.0.0.1" },
    ]);
    expect(plain(one(run, CONTAINER, "shop-lb-nginx-1")).ports).toEqual([]);
    expect(first.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-app-from-edge",
      "dev-public",
    ]);
    // The app servers' network admits the edge tier, so only the balancer tier (and peers) reach them.
    const app = plain(one(run, CONTAINER, "shop-app-0"));
    expect(app.networksAdvanced.map((n: { name: string }) => n.name)).toEqual(["dev-app-from-edge"]);
    expect(run.outputs.url).toBe("http://localhost:8080");
    expect(run.outputs.httpsUrl).toBe("https://localhost:8443");
  });

  it("uploads the config and certificate in the clear and only the key as a secret", async () => {
    const run = await runComponents(() => shopOn(new DockerPlatform("docker", { prefix: "dev" }), true));
    const c = one(run, CONTAINER, "shop-lb-nginx-0");
    const uploads = c.inputs.uploads as { file: string; content: unknown }[];
    expect(uploads.map((u) => [u.file, isWrappedSecret(u.content)])).toEqual([
      ["/etc/ha-backend/lb/nginx.conf", false],
      ["/etc/ha-backend/lb/tls/server.pem", false],
      ["/etc/ha-backend/lb/tls/server.pem.key", true],
    ]);
    const config = uploads[0].content as string;
    expect(config).toContain("server shop-app-0:8080 max_fails=1");
    expect(config).toContain("server shop-standby-app-0:8080 max_fails=1 fail_timeout=4s backup;");
    expect(config).toContain("return 301 https://$host:8443$request_uri;");
    // Recreated app containers change this line, which restarts nginx (it resolves names at start).
    expect(config).toMatch(/# members revision: shop-app-0-id,shop-app-1-id shop-standby-app-0-id\n$/);
    // With every secret hidden (what state and previews show), the key is nowhere.
    expect(
      run.resources.filter((r) => JSON.stringify(plain(r)).includes("super-secret-key")).length,
    ).toBeGreaterThan(0);
    for (const r of run.resources) {
      expect([r.name, JSON.stringify(redactSecrets(r.inputs)).includes("super-secret-key")]).toEqual([
        r.name,
        false,
      ]);
    }
  });

  it("runs HAProxy with run-time DNS for the members", async () => {
    const run = await runComponents(() =>
      shopOn(new DockerPlatform("docker", { prefix: "dev" }), false, "haproxy"),
    );
    const c = plain(one(run, CONTAINER, "shop-lb-haproxy-0"));
    expect(c.image).toBe(`sha256:mock-${HAPROXY_IMAGE}`);
    expect(c.entrypoints).toEqual(["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]);
    expect(c.user).toBe("99");
    expect(c.ports).toEqual([{ internal: 8080, external: 8080, ip: "127.0.0.1" }]);
    expect(c.uploads[0].content).toContain("resolvers dns init-addr last,libc,none");
    expect(c.uploads[0].content).toContain(
      "server shop-standby-app-0 shop-standby-app-0:8080 check weight 1 backup",
    );
    expect(c.healthcheck.tests).toEqual([
      "CMD",
      "wget",
      "-q",
      "-O",
      "/dev/null",
      "http://127.0.0.1:8404/lb-health",
    ]);
  });
});

describe("LoadBalancer on Kubernetes", () => {
  it("HAProxy discovers the app pods through the headless Service", async () => {
    const run = await runComponents(() =>
      shopOn(new KubernetesPlatform("k8s", { namespace: "shop" }), true, "haproxy"),
    );
    const cfg = plain(one(run, "kubernetes:core/v1:ConfigMap", "shop-lb-haproxy-files")).data;
    const text = cfg["usr_local_etc_haproxy_haproxy.cfg"] as string;
    expect(text).toContain(
      "server-template group0- 1-4 shop-app-headless.shop.svc.cluster.local:8080 check init-addr none",
    );
    expect(text).toContain(
      "server-template backup1- 1-3 shop-standby-app-headless.shop.svc.cluster.local:8080 check init-addr none backup",
    );
    expect(cfg["etc_ha-backend_lb_tls_server.pem"]).toBe(CERT);
    const secret = one(run, "kubernetes:core/v1:Secret", "shop-lb-haproxy-secret-files");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    expect(plain(secret).stringData).toEqual({ "etc_ha-backend_lb_tls_server.pem.key": KEY });
    const svc = plain(one(run, "kubernetes:core/v1:Service", "shop-lb-haproxy-public")).spec;
    expect(svc).toMatchObject({
      type: "LoadBalancer",
      ports: [
        { name: "http", port: 8080 },
        { name: "https", port: 8443 },
      ],
    });
    expect(plain(one(run, "kubernetes:apps/v1:Deployment", "shop-lb-haproxy-deployment")).spec.replicas).toBe(
      2,
    );
    expect(one(run, "kubernetes:policy/v1:PodDisruptionBudget", "shop-lb-haproxy-pdb")).toBeDefined();
  });

  it("nginx goes through the Service's virtual IP, never marked down, once per try it may need", async () => {
    const run = await runComponents(() =>
      shopOn(new KubernetesPlatform("k8s", { namespace: "shop" }), false),
    );
    const text = plain(one(run, "kubernetes:core/v1:ConfigMap", "shop-lb-nginx-files")).data[
      "etc_ha-backend_lb_nginx.conf"
    ] as string;
    const servers = text.split("\n").filter((l) => l.trim().startsWith("server shop"));
    // Two app pods: 7 tries keep one failing pod under 1% ((1/2)^7); the one standby pod: retries + 1.
    expect(servers).toEqual([
      ...[0, 1, 2].map(
        (i) =>
          `        server shop-standby-app.shop.svc.cluster.local:8080 max_fails=0 backup;  # backup1-try${i}`,
      ),
      ...[0, 1, 2, 3, 4, 5, 6].map(
        (i) => `        server shop-app.shop.svc.cluster.local:8080 max_fails=0;  # group0-try${i}`,
      ),
    ]);
    // A request may walk every entry, the standby's after the app's; never a POST that was sent.
    expect(text).toContain("proxy_next_upstream_tries 10;\n");
    expect(text).toContain("proxy_next_upstream_timeout 50s;\n"); // 10 x connect 2 s + server 30 s
    expect(text).toContain("proxy_next_upstream error timeout http_502 http_503 http_504;\n");
    expect(text).not.toContain("non_idempotent");
    expect(text).not.toContain("fail_timeout");
  });

  it("HAProxy gives each pod its own sticky cookie, with the key in a secret file, not in the config or env", async () => {
    const run = await runComponents(() =>
      shopOn(new KubernetesPlatform("k8s", { namespace: "shop" }), true, "haproxy", {
        stickyCookie: "SRV",
        algorithm: "ip-hash",
      }),
    );
    const text = plain(one(run, "kubernetes:core/v1:ConfigMap", "shop-lb-haproxy-files")).data[
      "usr_local_etc_haproxy_haproxy.cfg"
    ] as string;
    expect(text).toContain(
      [
        "    cookie SRV insert indirect nocache httponly secure dynamic",
        `.if defined(${COOKIE_KEY_ENV})`,
        `    dynamic-cookie-key "\${${COOKIE_KEY_ENV}}"`,
        ".else",
      ].join("\n"),
    );
    // Clients without the cookie: their IP hashed over the pods, consistently.
    expect(text).toContain("    balance source\n    hash-type consistent\n");
    expect(text).toContain(
      "server-template group0- 1-4 shop-app-headless.shop.svc.cluster.local:8080 check init-addr none\n",
    );
    // GIVEN one generated key WHEN it reaches the pods THEN only as a file of the mounted Secret,
    // which the start command exports into HAProxy's own environment (never the container's).
    const key = one(run, "random:index/randomPassword:RandomPassword", "shop-lb-cookie-key");
    expect(plain(key)).toMatchObject({ length: 32, special: false });
    const files = plain(one(run, "kubernetes:core/v1:Secret", "shop-lb-haproxy-secret-files"))
      .stringData as Record<string, string>;
    const entry = Object.entries(files).find(([, v]) => v === "mock-password-for-shop-lb-cookie-key");
    const container = plain(one(run, "kubernetes:apps/v1:Deployment", "shop-lb-haproxy-deployment")).spec
      .template.spec.containers[0];
    expect(container.volumeMounts).toContainEqual({
      name: "secret-files",
      mountPath: COOKIE_KEY_PATH,
      subPath: entry?.[0],
      readOnly: true,
    });
    expect(
      container.env.filter((e: { valueFrom?: object }) => "secretKeyRef" in (e.valueFrom ?? {})),
    ).toEqual([]);
    expect(container.command).toEqual(balancerCommand("haproxy", true));
    expect(container.command).toEqual([
      "/bin/sh",
      "-c",
      `${COOKIE_KEY_ENV}="$(cat ${COOKIE_KEY_PATH})" && export ${COOKIE_KEY_ENV} && exec haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg`,
    ]);
    expectSecretsHidden(run, ["mock-password-for-shop-lb-cookie-key"]);
  });

  it.each<[string, Partial<LoadBalancerArgs>, string]>([
    [
      "nginx with a sticky cookie",
      { stickyCookie: "SRV" },
      'LoadBalancer "shop-lb": stickyCookie must not be set when nginx runs on Kubernetes (nginx reaches the pods through the Service\'s virtual IP, where kube-proxy picks the pod), but "SRV" was provided. Use engine: haproxy, which balances over the individual pods with a cookie per pod, or drop stickyCookie.',
    ],
    [
      "nginx with ip-hash",
      { algorithm: "ip-hash" },
      'LoadBalancer "shop-lb": algorithm must not be ip-hash when nginx runs on Kubernetes (nginx reaches the pods through the Service\'s virtual IP, where kube-proxy picks the pod), but "ip-hash" was provided. Use engine: haproxy, which hashes client IPs over the individual pods, or algorithm round-robin or least-conn.',
    ],
  ])("refuses %s before creating anything", async (_label, extra, message) => {
    await expectRejectedBeforeAnyResource(() => {
      // The app's own resources are not the balancer's: its group is given as plain addresses.
      const app: BackendGroup = {
        members: [],
        serviceHost: "shop-app.shop.svc.cluster.local",
        discoveryHost: "shop-app-headless.shop.svc.cluster.local",
        port: 8080,
        replicas: 2,
      };
      new LoadBalancer("shop-lb", {
        platform: new KubernetesPlatform("k8s", { namespace: "shop" }),
        engine: "nginx",
        backends: [{ group: app }],
        healthCheckPath: "/healthz",
        ...extra,
      });
    }, message);
  });
});

describe("serviceTries", () => {
  // (1/replicas)^tries <= 1%, and never fewer than retries + 1.
  it.each([
    [4, 2, 4], // (1/4)^4 = 0.39%; (1/4)^3 = 1.6% is too many
    [3, 2, 5], // 0.41%
    [2, 2, 7], // 0.78%
    [5, 2, 3], // 0.8%
    [10, 0, 2], // exactly 1%
    [10, 4, 5], // retries + 1
    [1, 2, 3], // one pod: no number of tries helps
  ])("%i pods, %i retries: %i tries", (replicas, retries, tries) => {
    expect(serviceTries(replicas, retries)).toBe(tries);
    if (replicas > 1 && tries > retries + 1) {
      // In whole numbers: replicas^tries >= 100 > replicas^(tries - 1).
      expect(replicas ** tries).toBeGreaterThanOrEqual(100);
      expect(replicas ** (tries - 1)).toBeLessThan(100);
    }
  });
});

describe("resolveLoadBalancerArgs", () => {
  const group: BackendGroup = { members: [], serviceHost: "a", discoveryHost: "a", port: 8080, replicas: 2 };
  const docker = { kind: "docker" } as Platform;
  const base: LoadBalancerArgs = {
    platform: docker,
    engine: "nginx",
    backends: [{ group }],
    healthCheckPath: "/healthz",
  };

  it("defaults to two replicas, round-robin, ports 80/443, 2 s checks, 2 retries", () => {
    expect(resolveLoadBalancerArgs("lb", base)).toEqual({
      replicas: 2,
      algorithm: "round-robin",
      httpPort: 80,
      httpsPort: 443,
      health: { intervalMs: 2000, timeoutMs: 1000, fall: 3, rise: 2 },
      retries: 2,
      maxConnsPerServer: 0,
      hstsMaxAgeSeconds: 31_536_000,
    });
  });

  it.each<[string, Partial<LoadBalancerArgs>, string]>([
    [
      "no primary",
      { backends: [{ group, backup: true }] },
      'LoadBalancer "lb": backends must include at least one primary (backup: false), but "only backups" was provided.',
    ],
    [
      "no backends",
      { backends: [] },
      'LoadBalancer "lb": backends must include at least one primary (backup: false), but [] was provided.',
    ],
    [
      "an unknown engine",
      { engine: "traefik" as "nginx" },
      'LoadBalancer "lb": engine must be nginx or haproxy, but "traefik" was provided.',
    ],
    [
      "zero replicas",
      { replicas: 0 },
      'LoadBalancer "lb": replicas must be a whole number from 1 to 20, but 0 was provided.',
    ],
    [
      "a check timeout longer than the interval",
      { health: { intervalMs: 1000, timeoutMs: 1500 } },
      "health.timeoutMs must be a whole number from 50 to 1000, but 1500 was provided.",
    ],
    [
      "a weight of 0",
      { backends: [{ group, weights: [0, 1] }] },
      "backends[0].weights must be a whole number from 1 to 256, but 0 was provided.",
    ],
    [
      "weights on Kubernetes",
      { platform: { kind: "kubernetes" } as Platform, backends: [{ group, weights: [2, 1] }] },
      "backends[0].weights must only be set where members have stable addresses (Docker)",
    ],
    [
      "nginx with ip-hash and a backup",
      { algorithm: "ip-hash", backends: [{ group }, { group, backup: true }] },
      "backends must not include backups when nginx balances by client IP or sticky cookie (nginx rejects it)",
    ],
    [
      "the same port for HTTP and HTTPS",
      { tls: { certificate: CERT, privateKey: KEY }, httpPort: 443 },
      "httpsPort must differ from httpPort (443), but 443 was provided.",
    ],
    [
      "a cookie name with a space",
      { stickyCookie: "my cookie" },
      'stickyCookie must be a cookie name of letters, digits and _ (at most 32), but "my cookie" was provided.',
    ],
  ])("rejects %s", (_label, patch, message) => {
    expect(() => resolveLoadBalancerArgs("lb", { ...base, ...patch })).toThrow(message);
  });

  it("lets HAProxy combine ip-hash with a backup", () => {
    expect(() =>
      resolveLoadBalancerArgs("lb", {
        ...base,
        engine: "haproxy",
        algorithm: "ip-hash",
        backends: [{ group }, { group, backup: true }],
      }),
    ).not.toThrow();
  });

  it("creates nothing when the args are bad", async () => {
    let created = -1;
    await expect(
      runComponents(() => {
        new LoadBalancer("lb", { ...base, platform: new DockerPlatform("d", { prefix: "p" }), replicas: 0 });
      }).then((r) => (created = ofType(r, CONTAINER).length)),
    ).rejects.toThrow("replicas must be a whole number from 1 to 20");
    expect(created).toBe(-1);
  });

  it("refuses weights that do not match the members (checked when the members are known)", () => {
    const members = [0, 1, 2].map((i) => ({ name: `app-${i}`, host: `app-${i}` }));
    const resolved = {
      members,
      serviceHost: "app",
      discoveryHost: "app",
      port: 8080,
      replicas: 3,
      revision: "",
    };
    expect(() => groupServers("nginx", resolved, { group, weights: [1, 2] }, 0, 2)).toThrow(
      "weights has 2 entries for 3 members",
    );
    expect(
      groupServers("nginx", resolved, { group, weights: [1, 2, 3] }, 0, 2).backends.map((b) => b.weight),
    ).toEqual([1, 2, 3]);
  });
});
