/**
 * Monitoring plans that between them take every branch of the rule renderer: both balancers on
 * both platforms, TLS on and off, PostgreSQL in synchronous and asynchronous mode, MySQL
 * replication and Galera, Redis as a store and as a cache, memcached, one and three etcd members.
 */
import {
  jobName,
  type ExporterKind,
  type MonitoringPlan,
  type ScrapeJob,
} from "../../components/monitoring/render/plan";

function job(component: string, kind: ExporterKind, members: number, port: number): ScrapeJob {
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
      job("shop-lb", "haproxy", 2, 8404),
      job("catalog", "patroni", 3, 8008),
      job("catalog", "postgres", 3, 9187),
      job("orders-0", "mysqld", 2, 9104),
      job("cache", "redis", 3, 9121),
      job("cache", "sentinel", 3, 9121),
      job("locks", "etcd", 1, 2379),
      job("shop-dev", "volumes", 1, 9100),
      { ...job("shop-lb", "edge-probe", 1, 443), probeModule: "https_edge", prober: "probe:9115" },
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
      },
    ],
    mysql: [{ component: "orders-0", members: 2, mode: "replication", failoverBudgetSeconds: 20 }],
    redis: { component: "cache", mode: "store", replicas: 2, sentinels: 3, failoverBudgetSeconds: 9 },
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
      job("shop-lb", "nginx", 3, 9113),
      job("orders-0", "mysqld", 3, 9104),
      job("orders-1", "mysqld", 3, 9104),
      job("cache", "redis", 3, 9121),
      job("cache", "sentinel", 3, 9121),
      job("locks", "etcd", 3, 2379),
      { ...job("shop-lb", "edge-probe", 1, 443), probeModule: "https_edge", prober: "probe:9115" },
    ],
    balancer: { component: "shop-lb", engine: "nginx", backends: 4, backups: 0, tls: true },
    app: { component: "shop", replicas: 4, deployment: "shop-app" },
    postgres: [],
    mysql: [
      { component: "orders-0", members: 3, mode: "galera", failoverBudgetSeconds: 8 },
      { component: "orders-1", members: 3, mode: "galera", failoverBudgetSeconds: 8 },
    ],
    redis: { component: "cache", mode: "cache", replicas: 2, sentinels: 3, failoverBudgetSeconds: 9 },
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
      job("blog-lb", "nginx", 2, 9113),
      job("blog-lb", "backend-probe", 2, 8080),
      { ...job("blog-lb", "edge-probe", 1, 80), probeModule: "http_2xx", prober: "probe:9115" },
      job("blog", "patroni", 2, 8008),
      job("blog", "postgres", 2, 9187),
      job("blog-etcd", "etcd", 3, 2379),
      job("pages", "memcached", 2, 9150),
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
