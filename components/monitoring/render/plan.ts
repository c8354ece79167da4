/**
 * What a stack's monitoring knows about the stack: its scrape jobs (who exports what, where) and
 * the settings of every tier that its alert thresholds follow. Plain data, no Pulumi import: the
 * components fill it in, and the rule, scrape-config and dashboard renderers read it.
 */

/**
 * Where a job's metrics come from. Each is an exporter (its own image, next to the daemon), or
 * the daemon's own endpoint (HAProxy, Patroni, etcd).
 */
export type ExporterKind =
  | "haproxy" // HAProxy's built-in Prometheus exporter (the stats listener's /metrics)
  | "router" // the same exporter on a database's or Redis's HAProxy router (its stats port)
  | "nginx" // nginx-prometheus-exporter reading stub_status
  | "patroni" // Patroni's REST API /metrics
  | "postgres" // postgres_exporter, logged in as a pg_monitor user
  | "mysqld" // mysqld_exporter, logged in as a PROCESS, REPLICATION CLIENT, SELECT user
  | "redis" // redis_exporter on a Redis member
  | "sentinel" // redis_exporter on a Sentinel
  | "memcached" // memcached_exporter
  | "etcd" // etcd's own /metrics
  | "edge-probe" // blackbox_exporter probing the public endpoint (availability, TLS expiry)
  | "backend-probe" // blackbox_exporter probing each app server's health path (nginx balancers)
  | "volumes"; // node_exporter's filesystem collector on the data volumes (Docker)

/** One scrape target: a member and the address its metrics are read from. */
export interface ScrapeTarget {
  /** The member's name (`orders-0-pg-1`): the `instance` label, so alerts name members. */
  readonly instance: string;
  /** `host:port` of the metrics endpoint; for probes, the URL or `host:port` probed. */
  readonly address: string;
}

/** One Prometheus job. Rules select on `job`, dashboards on `job` and `ha_component`. */
export interface ScrapeJob {
  /** `<component>-<kind>`, see {@link jobName}. */
  readonly job: string;
  /** The component it belongs to (`orders-0`, `shop-lb`): the `ha_component` label. */
  readonly component: string;
  readonly kind: ExporterKind;
  /** @default "/metrics" */
  readonly path?: string;
  readonly targets: readonly ScrapeTarget[];
  /** Probes only: the blackbox module (`http_2xx`, `tls_edge`). */
  readonly probeModule?: string;
  /** Probes only: `host:port` of the blackbox exporter that runs the probe. */
  readonly prober?: string;
  /** The workload whose pods serve it (Kubernetes: the PodMonitor selects them by name). */
  readonly workload?: string;
  /** The named port it is read from (Kubernetes: the PodMonitor's endpoint). */
  readonly port?: string;
  /**
   * How many targets it should have (its members) where the scraper discovers them (Kubernetes).
   * @default the number of `targets`
   */
  readonly expected?: number;
}

/** The name of a component's job of `kind`: what rules and dashboards select on. */
export function jobName(component: string, kind: ExporterKind): string {
  return `${component}-${kind}`;
}

export interface BalancerPlan {
  readonly component: string;
  readonly engine: "nginx" | "haproxy";
  /** App servers that take traffic (not counting backups). */
  readonly backends: number;
  /** Backup app servers (used only when every other one is down). */
  readonly backups: number;
  /** Whether the edge terminates TLS (then its certificate's expiry is watched). */
  readonly tls: boolean;
}

/**
 * The HAProxy router in front of a data tier (PostgresCluster, MysqlCluster, RedisCache): what
 * RouterNoWriter and the router panels read from its job (`<component>-router`).
 */
export interface RouterPlan {
  /**
   * The proxy that carries the writes, as HAProxy's exporter labels it (`proxy`): the backend or
   * `listen` section the write port sends to — `primary` (Patroni), `rw` (MySQL), `redis`.
   * Its active and backup servers that are UP are where a write can go: none, and writes fail.
   */
  readonly writeProxy: string;
}

export interface PostgresPlan {
  readonly component: string;
  readonly members: number;
  readonly synchronousMode: boolean;
  /** Patroni's loop_wait (s): a standby missing is real after a few loops. */
  readonly loopWaitSeconds: number;
  /** Patroni's maximum_lag_on_failover (bytes): a replica further behind cannot take over. */
  readonly maximumLagOnFailoverBytes: number;
  /** Worst case from a leader's death to a new leader (the stack's failover budget, s). */
  readonly failoverBudgetSeconds: number;
  /** Its router; unset: no router rules or panels. */
  readonly router?: RouterPlan;
}

export interface MysqlPlan {
  readonly component: string;
  readonly members: number;
  readonly mode: "replication" | "galera";
  /**
   * Worst case from a writer's death to writes resuming (the stack's failover budget, s); 0 for
   * replication, whose failover is a person running the promotion script.
   */
  readonly failoverBudgetSeconds: number;
  /** Its router; unset: no router rules or panels. */
  readonly router?: RouterPlan;
}

export interface RedisPlan {
  readonly component: string;
  readonly mode: "cache" | "store";
  readonly replicas: number;
  readonly sentinels: number;
  /** Worst case from a primary's death to a promoted replica (the Sentinel budget, s). */
  readonly failoverBudgetSeconds: number;
  /** Its router; unset: no router rules or panels. */
  readonly router?: RouterPlan;
}

export interface EtcdPlan {
  readonly component: string;
  readonly members: number;
}

/** Everything one stack's monitoring is rendered from. */
export interface MonitoringPlan {
  /** Names the rule groups and the dashboard (the stack's prefix, e.g. `ecommerce-dev`). */
  readonly name: string;
  /** The topology (`ecommerce`, `blog`): the dashboard's title and row order. */
  readonly topology: string;
  readonly platform: "docker" | "kubernetes";
  /** How often Prometheus scrapes and evaluates rules (s); `for:` durations follow it. */
  readonly scrapeIntervalSeconds: number;
  readonly jobs: readonly ScrapeJob[];
  readonly balancer: BalancerPlan;
  /**
   * The app servers (the dashboard's app row). `deployment` (Kubernetes): the Deployment whose
   * available replicas kube-state-metrics reports, the backends' state behind an nginx balancer.
   */
  readonly app: { readonly component: string; readonly replicas: number; readonly deployment?: string };
  /** Kubernetes: the stack's namespace (kube-state-metrics and kubelet series carry it). */
  readonly namespace?: string;
  readonly postgres: readonly PostgresPlan[];
  readonly mysql: readonly MysqlPlan[];
  readonly redis?: RedisPlan;
  readonly memcached?: { readonly component: string; readonly members: number };
  readonly etcd: readonly EtcdPlan[];
  /**
   * Whether any member has a data volume. Kubernetes: watched through the kubelet's
   * `kubelet_volume_stats_*` for the claims in `namespace` (the cluster's Prometheus scrapes the
   * kubelet). Docker: node_exporter on the volumes (job `<name>-volumes`).
   */
  readonly volumes: boolean;
  /** Alert threshold for volume use. @default 0.85 */
  readonly volumeFullRatio?: number;
  /** Alert threshold for connections used of the server's maximum. @default 0.8 */
  readonly connectionsRatio?: number;
  /** Alert threshold for the edge's 5xx ratio over 5 minutes. @default 0.05 */
  readonly edgeErrorRatio?: number;
  /** Alert when the edge certificate expires within this many days. @default 14 */
  readonly certificateDays?: number;
  /** MySQL replica lag alert threshold (s). @default 30 */
  readonly mysqlLagSeconds?: number;
  /** Where runbook links point; a section anchor is appended. @default "docs/runbooks.md" */
  readonly runbookBase?: string;
}
