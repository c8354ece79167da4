/**
 * The data tiers' routers under the mocked engine: PostgresCluster, MysqlCluster and RedisCache
 * each scrape their HAProxy router's stats port (HAProxy's own exporter) where their exporters
 * are on, the platform admits the scraper there (Kubernetes: to the stats port alone; Docker: the
 * scraper's network), client tiers never reach it, and the alert plan names the proxy the
 * router's config really sends the writes to.
 */
import { PostgresCluster } from "../../components/database/postgres-cluster";
import { MysqlCluster } from "../../components/database/mysql-cluster";
import { RedisCache } from "../../components/cache/redis-cache";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import type { RouterPlan, ScrapeJob } from "../../components/monitoring/render/plan";
import { one, plain, runComponents } from "../support/engine";

const CONTAINER = "docker:index/container:Container";
const NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy";
const SCRAPER = { namespace: "monitoring", podLabels: { "app.kubernetes.io/name": "prometheus" } };

type Kind = "postgres" | "mysql" | "redis";

/** What a component built in a test exposes to these assertions. */
interface Built {
  jobs: readonly ScrapeJob[];
  router: RouterPlan | undefined;
}

/** Builds one data tier named `db` on `platform`; `exporters: false` turns its metrics off. */
function build(kind: Kind, platform: Platform, exporters: boolean, out: Built): void {
  const metrics = { exporters };
  switch (kind) {
    case "postgres": {
      const c = new PostgresCluster("db", {
        platform,
        metrics,
        database: "shop",
        user: "shop",
        image: "registry.example.com/patroni:15",
        dcs: platform.kind === "kubernetes" ? "platform" : "etcd",
        etcdMembers: 1,
      });
      out.jobs = c.metricsJobs;
      out.router = c.alertPlan.postgres.router;
      return;
    }
    case "mysql": {
      const c = new MysqlCluster("db", { platform, metrics, database: "shop", user: "shop" });
      out.jobs = c.metricsJobs;
      out.router = c.alertPlan.router;
      return;
    }
    case "redis": {
      const c = new RedisCache("db", { platform, metrics });
      out.jobs = c.metricsJobs;
      out.router = c.alertPlan.router;
      return;
    }
    default:
      throw new Error(`unknown kind ${String(kind satisfies never)}`);
  }
}

/** The section of the router's config that the write port reaches (Patroni's via `frontend rw`). */
const WRITE_SECTION: Record<Kind, string> = {
  postgres: "backend primary",
  mysql: "listen rw",
  redis: "listen redis",
};

const kinds: Kind[] = ["postgres", "mysql", "redis"];

describe.each(kinds)("%s's router on Docker with a scraper tier", (kind) => {
  const run = (exporters: boolean) => {
    const out: Built = { jobs: [], router: undefined };
    return runComponents(() =>
      build(kind, new DockerPlatform("docker", { prefix: "dev", scraperTier: "monitoring" }), exporters, out),
    ).then((r) => ({ run: r, out }));
  };

  it("scrapes each router replica's stats port, on the scraper's network with it", async () => {
    const { run: r, out } = await run(true);
    const job = out.jobs.find((j) => j.kind === "router");
    expect(job).toEqual({
      job: "db-router",
      component: "db",
      kind: "router",
      path: "/metrics",
      workload: "db-router",
      port: "stats",
      expected: 2,
      targets: [
        { instance: "db-router-0", address: "db-router-0:8404" },
        { instance: "db-router-1", address: "db-router-1:8404" },
      ],
    });
    const nets = plain(one(r, CONTAINER, "db-router-0")).networksAdvanced.map(
      (n: { name: string }) => n.name,
    );
    expect(nets).toContain("dev-db-router-from-monitoring");
  });

  it("names the proxy its config sends the writes to", async () => {
    const { run: r, out } = await run(true);
    const config = (
      plain(one(r, CONTAINER, "db-router-0")).uploads as { file: string; content: string }[]
    ).find((u) => u.file.endsWith("haproxy.cfg"))!.content;
    // The proxy the rules and panels select is that section's name, and the config has it.
    expect(WRITE_SECTION[kind].split(" ")[1]).toBe(out.router?.writeProxy);
    expect(config).toMatch(new RegExp(`^${WRITE_SECTION[kind]}$`, "m"));
    if (kind === "postgres")
      expect(config).toContain("frontend rw\n    bind :5432\n    default_backend primary");
  });

  it("without exporters: no router job, and the scraper is not on the router's network", async () => {
    const { run: r, out } = await run(false);
    expect(out.jobs).toEqual([]);
    const nets = plain(one(r, CONTAINER, "db-router-0")).networksAdvanced.map(
      (n: { name: string }) => n.name,
    );
    expect(nets.filter((n: string) => n.includes("monitoring"))).toEqual([]);
  });
});

describe.each(kinds)("%s's router on Kubernetes with a scraper", (kind) => {
  const run = (exporters: boolean) => {
    const out: Built = { jobs: [], router: undefined };
    return runComponents(() =>
      build(
        kind,
        new KubernetesPlatform("k8s", {
          namespace: "prod",
          imageRegistry: "registry.example.com/shop",
          scraper: SCRAPER,
        }),
        exporters,
        out,
      ),
    ).then((r) => ({ run: r, out }));
  };

  it("is discovered by the scraper (two pods expected) and admitted to the stats port alone", async () => {
    const { run: r, out } = await run(true);
    expect(out.jobs.find((j) => j.kind === "router")).toEqual({
      job: "db-router",
      component: "db",
      kind: "router",
      path: "/metrics",
      workload: "db-router",
      port: "stats",
      expected: 2,
      targets: [],
    });
    const ingress = plain(one(r, NETPOL, "db-router-netpol")).spec.ingress as {
      from?: { namespaceSelector?: unknown; podSelector?: { matchExpressions?: unknown } }[];
      ports?: { port: number }[];
    }[];
    const scraper = ingress.filter((i) => i.from?.[0]?.namespaceSelector !== undefined);
    expect(scraper).toEqual([
      {
        from: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
            podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
          },
        ],
        ports: [{ port: 8404, protocol: "TCP" }],
      },
    ]);
    // The client tiers reach the router's own ports, never its stats port.
    const clients = ingress.filter((i) => i.from?.[0]?.podSelector?.matchExpressions !== undefined);
    expect(clients.length).toBeGreaterThan(0);
    for (const c of clients) expect((c.ports ?? []).map((p) => p.port)).not.toContain(8404);
  });

  it("without exporters: no router job, and no rule admits the scraper", async () => {
    const { run: r, out } = await run(false);
    expect(out.jobs).toEqual([]);
    const ingress = plain(one(r, NETPOL, "db-router-netpol")).spec.ingress as {
      from?: { namespaceSelector?: unknown }[];
    }[];
    expect(ingress.filter((i) => i.from?.[0]?.namespaceSelector !== undefined)).toEqual([]);
  });
});
