/**
 * The Kubernetes stacks as a cluster would receive them: every pod passes Pod Security
 * "restricted", every workload is sized, every config change rolls the pods that read it, and the
 * network policies allow exactly the intended connections.
 */
import type { ProgramRun } from "../../scripts/mock-engine";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testCa, testCert } from "../support/tls";
import {
  allowedBySource,
  networkModel,
  reachabilityMatrix,
  renderReachabilityTable,
} from "../support/network-reachability";
import { checkPodSecurity, extractPodTemplates, type Manifest } from "../support/pod-security";
import { kubernetesManifests, runStackVariant, SCRAPER, type ConfigEdit } from "../support/stack-variants";

type Config = Parameters<ConfigEdit>[0];
const section = (c: Config, key: string): Record<string, unknown> =>
  c[`ha-backend:${key}`] as Record<string, unknown>;

const postgres: ConfigEdit = (c) => {
  section(c, "database").engine = "postgresql";
  delete section(c, "database").mode;
  delete section(c, "database").semiSync;
  section(c, "kubernetes").imageRegistry = "registry.example.com/shop";
};

// Each stack as shipped, and the other engines a stack may pick on Kubernetes.
const variants: [string, string, ConfigEdit?][] = [
  ["ecommerce-prod", "ecommerce-prod"],
  ["blog-prod", "blog-prod"],
  ["ecommerce-prod on PostgreSQL", "ecommerce-prod", postgres],
  [
    "ecommerce-prod on MySQL",
    "ecommerce-prod",
    (c) =>
      void Object.assign(section(c, "database"), {
        engine: "mysql",
        mode: "replication",
        failover: "manual",
      }),
  ],
  [
    "blog-prod with a Redis cache and nginx",
    "blog-prod",
    (c) => {
      c["ha-backend:cache"] = { engine: "redis", redis: { mode: "cache" } };
      c["ha-backend:balancer"] = {
        ...section(c, "balancer"),
        engine: "nginx",
        stickyCookie: undefined,
        backups: 0,
      };
    },
  ],
];

describe.each(variants)("%s", (_label, stack, edit) => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = kubernetesManifests(await runStackVariant(stack, edit));
  });

  it("runs every pod under Pod Security restricted", () => {
    const templates = extractPodTemplates(manifests);
    expect(templates.length).toBeGreaterThan(5);
    for (const t of templates) expect([t.name, checkPodSecurity(t.template)]).toEqual([t.name, []]);
  });

  it("labels its namespace to enforce, warn about and audit restricted", () => {
    const ns = manifests.filter((m) => m.kind === "Namespace");
    expect(ns).toHaveLength(1);
    for (const mode of ["enforce", "warn", "audit"]) {
      expect(ns[0].metadata?.labels?.[`pod-security.kubernetes.io/${mode}`]).toBe("restricted");
    }
  });

  it("gives every container CPU and memory requests and a memory limit", () => {
    for (const t of extractPodTemplates(manifests)) {
      for (const c of t.template.spec?.containers ?? []) {
        const r = (
          c as { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }
        ).resources;
        expect([t.name, Object.keys(r?.requests ?? {}).sort(), Object.keys(r?.limits ?? {})]).toEqual([
          t.name,
          ["cpu", "memory"],
          ["memory"],
        ]);
      }
    }
  });
});

/** Per workload: what its pods read at start (files, secret files, secret env), and its pod template. */
function workloads(run: ProgramRun): Map<string, { inputs: string; template: string }> {
  const manifests = kubernetesManifests(run);
  const byName = (kind: string, name: string) =>
    manifests.find((m) => m.kind === kind && m.metadata?.name === name) as
      { data?: unknown; stringData?: unknown } | undefined;
  const out = new Map<string, { inputs: string; template: string }>();
  // One-shot Jobs are named after what they do: a change is a new Job, never a roll.
  for (const t of extractPodTemplates(manifests).filter((x) => x.kind !== "Job")) {
    const inputs = [
      byName("ConfigMap", `${t.name}-files`)?.data,
      byName("Secret", `${t.name}-env`)?.stringData,
      byName("Secret", `${t.name}-secret-files`)?.stringData,
    ];
    out.set(t.name, { inputs: JSON.stringify(inputs), template: JSON.stringify(t.template) });
  }
  return out;
}

/**
 * The workloads whose pod template changed from `before` to `after`; fails unless exactly the
 * workloads whose files or secrets changed are among them.
 */
function rolled(before: ProgramRun, after: ProgramRun): string[] {
  const a = workloads(before);
  const b = workloads(after);
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  const changed: string[] = [];
  for (const [name, x] of a) {
    const y = b.get(name)!;
    const inputsChanged = x.inputs !== y.inputs;
    const templateChanged = x.template !== y.template;
    expect({ name, inputsChanged, templateChanged }).toEqual({
      name,
      inputsChanged,
      templateChanged: inputsChanged,
    });
    if (templateChanged) changed.push(name);
  }
  return changed.sort();
}

describe("a config change rolls exactly the pods that read it", () => {
  const base: Record<string, ProgramRun> = {};
  beforeAll(async () => {
    base["ecommerce-prod"] = await runStackVariant("ecommerce-prod");
    base["blog-prod"] = await runStackVariant("blog-prod");
    base.postgres = await runStackVariant("ecommerce-prod", postgres);
  });

  it("changes nothing, byte for byte, when nothing changed", async () => {
    for (const stack of ["ecommerce-prod", "blog-prod"]) {
      const again = await runStackVariant(stack);
      expect(JSON.stringify(again.resources)).toBe(JSON.stringify(base[stack].resources));
    }
  });

  // Each setting lands only in a secret file or secret env of the workloads listed.
  it.each<[string, string, ConfigEdit, string[]]>([
    [
      "Redis's memory limit (redis.conf)",
      "ecommerce-prod",
      (c) => void ((section(c, "cache").redis as Record<string, unknown>).maxmemory = "900mb"),
      ["cache-redis"],
    ],
    [
      "Sentinel's down-after (sentinel.conf)",
      "ecommerce-prod",
      (c) => void ((section(c, "cache").redis as Record<string, unknown>).downAfterMs = 3000),
      ["cache-sentinel"],
    ],
    [
      "the balancer's certificate and key (renewed)",
      "blog-prod",
      (c) => {
        // A second real pair: the checks parse both and match the key to the certificate.
        const dir = mkdtempSync(join(tmpdir(), "ha-tls-"));
        try {
          const ca = testCa(dir);
          const renewed = testCert(dir, ca, "blog-prod.local", ["serverAuth"], ["DNS:blog-prod.local"]);
          c["ha-backend:tlsCertificate"] = renewed.cert + ca.cert;
          c["ha-backend:tlsKey"] = renewed.key;
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      ["blog-lb-haproxy"],
    ],
  ])("%s", async (_label, stack, edit, expected) => {
    expect(rolled(base[stack], await runStackVariant(stack, edit))).toEqual(expected);
  });

  it("a Patroni timing (patroni.yml)", async () => {
    const after = await runStackVariant("ecommerce-prod", (c) => {
      postgres(c);
      section(c, "database").postgresql = { ttl: 12 };
    });
    expect(rolled(base.postgres, after)).toEqual(["catalog-pg", "orders-0-pg", "orders-1-pg"]);
    // bootstrap.dcs seeds only a new cluster: a running one gets the change from a new settings
    // Job per cluster (named by the settings' digest), which the old ones never match.
    const jobs = (run: ProgramRun) =>
      run.resources.filter((r) => r.type === "kubernetes:batch/v1:Job").map((r) => r.name);
    const [old, now] = [jobs(base.postgres), jobs(after)];
    expect(now.map((n) => n.replace(/-[0-9a-f]{10}$/, ""))).toEqual([
      "catalog-pg-dcs",
      "orders-0-pg-dcs",
      "orders-1-pg-dcs",
    ]);
    expect(now.filter((n) => old.includes(n))).toEqual([]);
  });

  // Every generated secret, replaced (a rotation): the pods that read it roll, no others. A CA's
  // key reaches pods only through the certificates it signs, which the mocked engine does not
  // re-sign.
  it.each([
    ["ecommerce-prod", /^locks-ca-key$/],
    ["blog-prod", /^$/],
  ] as const)("each generated secret of %s, rotated", async (stack, unread) => {
    const secrets = base[stack].resources
      .filter((r) => /RandomPassword|PrivateKey/.test(r.type) && !r.name.endsWith("config-digest-key"))
      .map((r) => r.name);
    expect(secrets.length).toBeGreaterThan(3);
    const rolledNothing: string[] = [];
    for (const name of secrets) {
      if (rolled(base[stack], await runStackVariant(stack, undefined, [name])).length === 0)
        rolledNothing.push(name);
    }
    expect(rolledNothing).toEqual(secrets.filter((n) => unread.test(n)));
  });
});

const DNS = ["kube-dns:53", "kube-dns:53/UDP"];
/** A Galera node's SQL, state-transfer and group ports, and its exporter's (peers reach all). */
const galera = (db: string) => [3306, 4444, 4567, 4568, 9104].map((p) => `${db}:${p}`);
/** A router's members, its own three ports (peers on any port) and DNS. */
const router = (name: string, db: string) => [
  `${db}:3306`,
  `${name}:3306`,
  `${name}:3307`,
  `${name}:8404`,
  ...DNS,
];

/**
 * The intended connections, source → destination:port. A workload reaches its own members (any
 * port, their exporters' too) and the cluster DNS; beyond that only what its clients need. Peer
 * ports (etcd 2380, Galera 4444/4567/4568) and the stats port 8404 are for members only; the
 * scraper reaches the metrics ports (HAProxy's, balancer's and routers': the stats port) and
 * nothing else; only the balancer's public ports are open
 * to the internet.
 */
const intended: Record<string, Record<string, string[]>> = {
  "ecommerce-prod": {
    "cache-redis": ["cache-redis:6379", "cache-redis:9121", ...DNS],
    "cache-router": ["cache-redis:6379", "cache-router:6379", "cache-router:8404", ...DNS],
    "cache-sentinel": ["cache-redis:6379", "cache-sentinel:26379", "cache-sentinel:9122", ...DNS],
    "catalog-db": [...galera("catalog-db"), ...DNS],
    "catalog-router": router("catalog-router", "catalog-db"),
    "locks-etcd": ["locks-etcd:2379", "locks-etcd:2380", "locks-etcd:2381", ...DNS],
    "orders-0-db": [...galera("orders-0-db"), ...DNS],
    "orders-0-router": router("orders-0-router", "orders-0-db"),
    "orders-1-db": [...galera("orders-1-db"), ...DNS],
    "orders-1-router": router("orders-1-router", "orders-1-db"),
    "shop-app": [
      // Sentinel clients connect to the primary Sentinel names, so the app reaches members too.
      "cache-redis:6379",
      "cache-router:6379",
      "cache-sentinel:26379",
      "catalog-router:3306",
      "catalog-router:3307",
      "locks-etcd:2379",
      "orders-0-router:3306",
      "orders-0-router:3307",
      "orders-1-router:3306",
      "orders-1-router:3307",
      "shop-app:8080",
      ...DNS,
    ],
    "shop-lb-nginx": [
      "shop-app:8080",
      "shop-lb-nginx:8080",
      "shop-lb-nginx:8404",
      "shop-lb-nginx:8443",
      "shop-lb-nginx:9113",
      ...DNS,
    ],
    internet: ["shop-lb-nginx:8080", "shop-lb-nginx:8443"],
    // The scraper: the metrics ports, and nothing else.
    "monitoring/prometheus": [
      "cache-redis:9121",
      "cache-router:8404",
      "cache-sentinel:9122",
      "catalog-db:9104",
      "catalog-router:8404",
      "locks-etcd:2381",
      "orders-0-db:9104",
      "orders-0-router:8404",
      "orders-1-db:9104",
      "orders-1-router:8404",
      "shop-lb-nginx:9113",
    ],
  },
  "blog-prod": {
    "blog-app": ["blog-app:8080", "blog-router:3306", "blog-router:3307", "pages-memcached:11211", ...DNS],
    "blog-db": [...galera("blog-db"), ...DNS],
    "blog-lb-haproxy": [
      "blog-app:8080",
      "blog-lb-haproxy:8080",
      "blog-lb-haproxy:8404",
      "blog-lb-haproxy:8443",
      "blog-standby-app:8080",
      ...DNS,
    ],
    "blog-router": ["blog-db:3306", "blog-router:3306", "blog-router:3307", "blog-router:8404", ...DNS],
    "blog-standby-app": [
      "blog-router:3306",
      "blog-router:3307",
      "blog-standby-app:8080",
      "pages-memcached:11211",
      ...DNS,
    ],
    "pages-memcached": ["pages-memcached:11211", "pages-memcached:9150", ...DNS],
    internet: ["blog-lb-haproxy:8080", "blog-lb-haproxy:8443"],
    // HAProxy (the balancer and the database's router) serves its metrics on the stats port.
    "monitoring/prometheus": [
      "blog-db:9104",
      "blog-lb-haproxy:8404",
      "blog-router:8404",
      "pages-memcached:9150",
    ],
  },
};

describe.each(Object.keys(intended))("the network of %s", (stack) => {
  it("allows exactly the intended connections, in and out", async () => {
    const matrix = reachabilityMatrix(
      networkModel([...kubernetesManifests(await runStackVariant(stack)), ...SCRAPER], { namespace: stack }),
    );
    // The scraper's namespace has no policy of the stack's: only what it reaches in the stack counts.
    const allowed = Object.fromEntries(
      Object.entries(allowedBySource(matrix)).map(([src, dsts]) => [
        src,
        dsts.filter(
          (d) =>
            !d.startsWith("monitoring/") &&
            !(src === "monitoring/prometheus" && /^(internet|kube-dns):/.test(d)),
        ),
      ]),
    );
    const want = Object.fromEntries(Object.entries(intended[stack]).map(([k, v]) => [k, [...v].sort()]));
    expect(allowed).toEqual(want);
    // The README shows this table: `HA_BACKEND_WRITE_MATRIX=DIR` writes it there to paste.
    const dir = process.env.HA_BACKEND_WRITE_MATRIX;
    if (dir) writeFileSync(join(dir, `${stack}.md`), renderReachabilityTable(matrix));
  });
});
