/**
 * Monitoring plans that between them take every branch of the rule renderer: both balancers on
 * both platforms, TLS on and off, PostgreSQL in synchronous and asynchronous mode, MySQL
 * replication and Galera, Redis as a store and as a cache, memcached, one and three etcd members,
 * the data tiers' routers (scraped, and one of Redis's that is not).
 */
import {
  jobName,
  type ExporterKind,
  type MonitoringPlan,
  type ScrapeJob,
} from "../../components/monitoring/render/plan";

/** A job of `members` targets `<component>-<i>:<port>`, as the sample plans and tests build them. */
export function sampleJob(component: string, kind: ExporterKind, members: number, port: number): ScrapeJob {
  return {
    job: jobName(component, kind),
    component,
    kind,
    targets: Array.from({ length: members }, (_, i) => ({
      instance: `${component}-${i}`,
      address: `${component}-${i}:${port}`,
    })),
  };
}

export const SAMPLE_PLANS: Record<string, MonitoringPlan> = {
  "docker-haproxy": {
    name: "shop-dev",
    topology: "ecommerce",
    platform: "docker",
    scrapeIntervalSeconds: 15,
    jobs: [
      sampleJob("shop-lb", "haproxy", 2, 8404),
      sampleJob("catalog", "patroni", 3, 8008),
      sampleJob("catalog", "postgres", 3, 9187),
      sampleJob("catalog", "router", 2, 8404),
      sampleJob("orders-0", "mysqld", 2, 9104),
      sampleJob("orders-0", "router", 2, 8404),
      sampleJob("cache", "redis", 3, 9121),
      sampleJob("cache", "sentinel", 3, 9121),
      sampleJob("cache", "router", 2, 8404),
      sampleJob("locks", "etcd", 1, 2379),
      sampleJob("shop-dev", "volumes", 1, 9100),
      { ...sampleJob("shop-lb", "edge-probe", 1, 443), probeModule: "https_edge", prober: "probe:9115" },
    ],
    balancer: { component: "shop-lb", engine: "haproxy", backends: 2, backups: 0, tls: true },
    app: { component: "shop", replicas: 2 },
    postgres: [
      {
        component: "catalog",
        members: 3,
        synchronousMode: true,
        loopWaitSeconds: 2,
        maximumLagOnFailoverBytes: 1_048_576,
        failoverBudgetSeconds: 13,
        router: { writeProxy: "primary" },
      },
    ],
    mysql: [
      {
        component: "orders-0",
        members: 2,
        mode: "replication",
        // As MysqlCluster says: no automatic failover, so an empty write proxy is wrong at once.
        failoverBudgetSeconds: 0,
        router: { writeProxy: "rw" },
      },
    ],
    redis: {
      component: "cache",
      mode: "store",
      replicas: 2,
      sentinels: 3,
      failoverBudgetSeconds: 9,
      router: { writeProxy: "redis" },
    },
    etcd: [{ component: "locks", members: 1 }],
    volumes: true,
  },
  "kubernetes-nginx": {
    name: "shop-prod",
    topology: "ecommerce",
    platform: "kubernetes",
    namespace: "shop-prod",
    scrapeIntervalSeconds: 30,
    jobs: [
      sampleJob("shop-lb", "nginx", 3, 9113),
      sampleJob("orders-0", "mysqld", 3, 9104),
      sampleJob("orders-1", "mysqld", 3, 9104),
      // The scraper discovers the pods: no static targets, two routers expected.
      { ...sampleJob("orders-0", "router", 0, 8404), expected: 2 },
      { ...sampleJob("orders-1", "router", 0, 8404), expected: 2 },
      sampleJob("cache", "redis", 3, 9121),
      sampleJob("cache", "sentinel", 3, 9121),
      sampleJob("locks", "etcd", 3, 2379),
      { ...sampleJob("shop-lb", "edge-probe", 1, 443), probeModule: "https_edge", prober: "probe:9115" },
    ],
    balancer: { component: "shop-lb", engine: "nginx", backends: 4, backups: 0, tls: true },
    app: { component: "shop", replicas: 4, deployment: "shop-app" },
    postgres: [],
    mysql: [
      {
        component: "orders-0",
        members: 3,
        mode: "galera",
        failoverBudgetSeconds: 8,
        router: { writeProxy: "rw" },
      },
      {
        component: "orders-1",
        members: 3,
        mode: "galera",
        failoverBudgetSeconds: 8,
        router: { writeProxy: "rw" },
      },
    ],
    // Its router is in the plan but not scraped: no router rule, no router panel.
    redis: {
      component: "cache",
      mode: "cache",
      replicas: 2,
      sentinels: 3,
      failoverBudgetSeconds: 9,
      router: { writeProxy: "redis" },
    },
    etcd: [{ component: "locks", members: 3 }],
    volumes: true,
    certificateDays: 21,
  },
  "docker-nginx": {
    name: "blog-dev",
    topology: "blog",
    platform: "docker",
    scrapeIntervalSeconds: 5,
    jobs: [
      sampleJob("blog-lb", "nginx", 2, 9113),
      sampleJob("blog-lb", "backend-probe", 2, 8080),
      { ...sampleJob("blog-lb", "edge-probe", 1, 80), probeModule: "http_2xx", prober: "probe:9115" },
      sampleJob("blog", "patroni", 2, 8008),
      sampleJob("blog", "postgres", 2, 9187),
      sampleJob("blog", "router", 1, 8404),
      sampleJob("blog-etcd", "etcd", 3, 2379),
      sampleJob("pages", "memcached", 2, 9150),
    ],
    balancer: { component: "blog-lb", engine: "nginx", backends: 2, backups: 1, tls: false },
    app: { component: "blog", replicas: 3 },
    postgres: [
      {
        component: "blog",
        members: 2,
        synchronousMode: false,
        loopWaitSeconds: 10,
        maximumLagOnFailoverBytes: 4_194_304,
        failoverBudgetSeconds: 41,
        router: { writeProxy: "primary" },
      },
    ],
    mysql: [],
    memcached: { component: "pages", members: 2 },
    etcd: [{ component: "blog-etcd", members: 3 }],
    volumes: true,
    edgeErrorRatio: 0.1,
    connectionsRatio: 0.9,
  },
};
