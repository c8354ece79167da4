import { stringify } from "yaml";
import { compareStrings, escapeRegex } from "../../validation";
import { jobName, type ExporterKind, type MonitoringPlan, type RouterPlan } from "./plan";

/**
 * Prometheus alert rules generated from the stack's settings: the same timings the configs are
 * rendered from decide when an alert may fire (a Patroni cluster is "without a leader" only after
 * its failover budget ran out; a Sentinel failover is reported once Sentinel did it). Plain data
 * in, rule groups out; the same groups go into Prometheus's rule file (Docker) and into a
 * PrometheusRule (Kubernetes). Checked with Debian's promtool 2.42 (`check rules`, `test rules`).
 */

/** One alerting rule, in Prometheus's rule-file shape. */
export interface AlertRule {
  readonly alert: AlertName;
  readonly expr: string;
  readonly for: string;
  /**
   * The severity, and the component the group watches (every series it selects carries the same
   * `ha_component` already; a rule of the stack-wide target group keeps each series' own).
   */
  readonly labels: { readonly severity: Severity; readonly ha_component?: string; readonly job?: string };
  readonly annotations: {
    readonly summary: string;
    readonly description: string;
    readonly runbook_url: string;
  };
}

export interface RuleGroup {
  readonly name: string;
  readonly interval: string;
  readonly rules: readonly AlertRule[];
}

export type Severity = "critical" | "warning" | "info";

/**
 * Every alert ha-backend can generate, with the section of `docs/runbooks.md` that says what to
 * do (a test checks each has one).
 */
export const ALERTS = [
  "ScrapeTargetDown",
  "ScrapeTargetsMissing",
  "ExporterCannotReachService",
  "BalancerBackendDown",
  "BalancerNoBackendUp",
  "EdgeHigh5xxRate",
  "EdgeCertificateExpiring",
  "PostgresLeaderChanged",
  "PostgresNoLeader",
  "PostgresReplicationLagHigh",
  "PostgresSyncStandbyMissing",
  "PostgresConnectionsHigh",
  "GaleraClusterSizeLow",
  "GaleraNodeNotSynced",
  "MysqlReplicationStopped",
  "MysqlReplicationLagHigh",
  "MysqlConnectionsHigh",
  "RedisSentinelFailover",
  "RedisPrimaryWithoutReplicas",
  "RouterNoWriter",
  "EtcdNoLeader",
  "EtcdMemberDown",
  "VolumeNearlyFull",
] as const;
export type AlertName = (typeof ALERTS)[number];

/** The runbook section's anchor (GitHub's heading anchor: the name in lower case). */
export function runbookAnchor(alert: AlertName): string {
  return alert.toLowerCase();
}

/** Defaults for the thresholds a stack may leave unset (see {@link MonitoringPlan}). */
export const ALERT_DEFAULTS = {
  volumeFullRatio: 0.85,
  connectionsRatio: 0.8,
  edgeErrorRatio: 0.05,
  certificateDays: 14,
  mysqlLagSeconds: 30,
  runbookBase: "docs/runbooks.md",
} as const;

/**
 * How long a Kubernetes job may have fewer targets than members: a first rollout or a rolling
 * update recreates pods one at a time, each gone for a restart.
 */
const MISSING_TARGETS_SECONDS = 300;
/** How long a Galera node may be Joining/Donor (a state transfer) before it is worth a look. */
const GALERA_NOT_SYNCED_SECONDS = 300;
/**
 * Docker: node_exporter sees each data volume mounted read-only under this directory (and the
 * container's own file systems, which are left out).
 */
export const VOLUME_MOUNT_ROOT = "/volumes";
const VOLUME_MATCHER = `mountpoint=~${q(`${VOLUME_MOUNT_ROOT}/.+`)}`;

/** The window a leader change or a Sentinel failover stays reported in. */
const CHANGE_WINDOW = "10m";
/** The window the edge's error ratio is computed over. */
const ERROR_WINDOW = "5m";

/** Every rule group of the stack, one per component plus one for the scrape targets. */
export function renderAlertRules(plan: MonitoringPlan): RuleGroup[] {
  const rules = new RuleBuilder(plan);
  const groups: RuleGroup[] = [
    // Targets of every component: each alert keeps its series' own component.
    {
      name: `${plan.name}-targets`,
      interval: seconds(plan.scrapeIntervalSeconds),
      rules: targetRules(plan, rules),
    },
    group(plan, plan.balancer.component, "balancer", balancerRules(plan, rules)),
    ...plan.postgres.map((pg) => group(plan, pg.component, "postgres", postgresRules(pg, rules))),
    ...plan.mysql.map((my) => group(plan, my.component, "mysql", mysqlRules(plan, my, rules))),
    ...(plan.redis ? [group(plan, plan.redis.component, "redis", redisRules(plan.redis, rules))] : []),
    ...plan.etcd.map((e) => group(plan, e.component, "etcd", etcdRules(e, rules))),
    // Docker: only where node_exporter reads the volumes; Kubernetes: the kubelet always does.
    ...(plan.volumes && (plan.platform === "kubernetes" || scrapes(plan, plan.name, "volumes"))
      ? [group(plan, plan.name, "volumes", volumeRules(plan, rules))]
      : []),
  ];
  return groups.filter((g) => g.rules.length > 0);
}

/**
 * The rule file Prometheus loads (`rule_files`), as YAML, of the groups {@link renderAlertRules}
 * returned: a caller that also needs the groups (a PrometheusRule, tests) renders them once.
 */
export function renderRuleFile(groups: readonly RuleGroup[]): string {
  return stringify({ groups }, { lineWidth: 0, sortMapEntries: false });
}

/**
 * A component's group, `<component>.<area>` (a Patroni cluster and its own etcd share a
 * component): its rules name the component, so two clusters' rules never look alike.
 */
function group(plan: MonitoringPlan, component: string, area: string, rules: AlertRule[]): RuleGroup {
  return {
    name: `${component}.${area}`,
    interval: seconds(plan.scrapeIntervalSeconds),
    rules: rules.map((r) => ({ ...r, labels: { ...r.labels, ha_component: component } })),
  };
}

function seconds(n: number): string {
  return `${Math.ceil(n)}s`;
}

/** A PromQL string literal (job and component names are DNS labels; quoted all the same). */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Builds rules with the plan's runbook links and the confirmation delay. */
class RuleBuilder {
  /** Three scrapes: one failed scrape (a slow answer) is not an outage. */
  readonly confirm: number;
  readonly runbookBase: string;

  constructor(readonly plan: MonitoringPlan) {
    this.confirm = 3 * plan.scrapeIntervalSeconds;
    this.runbookBase = plan.runbookBase ?? ALERT_DEFAULTS.runbookBase;
  }

  rule(
    alert: AlertName,
    severity: Severity,
    forSeconds: number,
    expr: string,
    summary: string,
    description: string,
  ): AlertRule {
    return {
      alert,
      expr,
      for: seconds(forSeconds),
      labels: { severity },
      annotations: { summary, description, runbook_url: `${this.runbookBase}#${runbookAnchor(alert)}` },
    };
  }

  /** `{job="<component>-<kind>"}` with extra matchers. */
  sel(component: string, kind: ExporterKind, extra = ""): string {
    return `{job=${q(jobName(component, kind))}${extra === "" ? "" : `,${extra}`}}`;
  }
}

function targetRules(plan: MonitoringPlan, r: RuleBuilder): AlertRule[] {
  const jobs = [...new Set(plan.jobs.map((j) => j.job))].sort();
  if (jobs.length === 0) return [];
  const jobRe = q(jobs.map(escapeRegex).join("|"));
  const reach = plan.jobs.filter((j) => UP_METRIC[j.kind] !== undefined);
  const upMetrics = [...new Set(reach.map((j) => UP_METRIC[j.kind] as string))].sort();
  const rules = [
    r.rule(
      "ScrapeTargetDown",
      "warning",
      r.confirm,
      `up{job=~${jobRe}} == 0`,
      "{{ $labels.job }} on {{ $labels.instance }} does not answer scrapes",
      `Prometheus could not read {{ $labels.job }} metrics from {{ $labels.instance }} for ${r.confirm} s: the member or its exporter is down or unreachable.`,
    ),
  ];
  if (plan.platform === "kubernetes") {
    // Pods that do not exist leave no `up` series at all (the scraper discovers pods): count the
    // targets against the members each job should have.
    for (const j of [...plan.jobs].sort((a, b) => compareStrings(a.job, b.job))) {
      const members = j.expected ?? j.targets.length;
      if (members === 0) continue;
      rules.push({
        ...r.rule(
          "ScrapeTargetsMissing",
          "warning",
          Math.max(MISSING_TARGETS_SECONDS, r.confirm),
          `count by (job) (up{job=${q(j.job)}}) < ${members} or absent(up{job=${q(j.job)}})`,
          `{{ $labels.job }} has fewer than ${members} targets`,
          `Prometheus finds fewer than the ${members} members of {{ $labels.job }} (or none): their pods are gone, pending or not ready to be scraped.`,
        ),
        labels: { severity: "warning", ha_component: j.component, job: j.job },
      });
    }
  }
  if (upMetrics.length > 0) {
    const reachRe = q([...new Set(reach.map((j) => j.job))].sort().map(escapeRegex).join("|"));
    rules.push(
      r.rule(
        "ExporterCannotReachService",
        "critical",
        r.confirm,
        `{__name__=~${q(upMetrics.join("|"))},job=~${reachRe}} == 0`,
        "{{ $labels.job }} on {{ $labels.instance }}: the exporter runs but its server does not answer",
        `The exporter has reported its server down for ${r.confirm} s: it cannot reach or log in to the server on {{ $labels.instance }}.`,
      ),
    );
  }
  return rules;
}

/** The exporters that report whether they reached their server (`<x>_up`). */
export const UP_METRIC: Partial<Record<ExporterKind, string>> = {
  nginx: "nginx_up",
  postgres: "pg_up",
  mysqld: "mysql_up",
  redis: "redis_up",
  sentinel: "redis_up",
  memcached: "memcached_up",
};

/** Whether the plan scrapes a job of `kind` for `component` (probe-based rules need their prober). */
function scrapes(plan: MonitoringPlan, component: string, kind: ExporterKind): boolean {
  return plan.jobs.some((j) => j.job === jobName(component, kind));
}

function balancerRules(plan: MonitoringPlan, r: RuleBuilder): AlertRule[] {
  const b = plan.balancer;
  const c = b.component;
  const edgeProbed = scrapes(plan, c, "edge-probe");
  const edge = r.sel(c, "edge-probe");
  const ratio = plan.edgeErrorRatio ?? ALERT_DEFAULTS.edgeErrorRatio;
  const rules: AlertRule[] = [];
  if (b.engine === "haproxy") {
    const app = `proxy="app"`;
    rules.push(
      r.rule(
        "BalancerBackendDown",
        "warning",
        r.confirm,
        // HAProxy's own checks already waited for `fall` failures; every balancer replica
        // checks on its own, so the worst view counts.
        `max by (ha_component, server) (haproxy_server_status${r.sel(c, "haproxy", `${app},state="DOWN"`)}) == 1`,
        "App server {{ $labels.server }} is down behind {{ $labels.ha_component }}",
        "HAProxy's health checks mark {{ $labels.server }} DOWN: the balancer sends it no traffic. The others carry the load.",
      ),
      r.rule(
        "BalancerNoBackendUp",
        "critical",
        r.confirm,
        `min by (ha_component) (haproxy_backend_active_servers${r.sel(c, "haproxy", app)} + haproxy_backend_backup_servers${r.sel(c, "haproxy", app)}) == 0`,
        "{{ $labels.ha_component }} has no app server up",
        "A balancer replica has no server in its app backend that passes health checks: every request gets 503.",
      ),
      r.rule(
        "EdgeHigh5xxRate",
        "critical",
        r.confirm,
        `sum by (ha_component) (rate(haproxy_frontend_http_responses_total${r.sel(c, "haproxy", `proxy="public",code="5xx"`)}[${ERROR_WINDOW}])) / sum by (ha_component) (rate(haproxy_frontend_http_requests_total${r.sel(c, "haproxy", `proxy="public"`)}[${ERROR_WINDOW}])) > ${ratio}`,
        "More than " + pct(ratio) + " of requests at {{ $labels.ha_component }} end in 5xx",
        `{{ $value | humanizePercentage }} of the edge's responses over ${ERROR_WINDOW} were 5xx (threshold ${pct(ratio)}).`,
      ),
    );
  } else if (plan.platform === "kubernetes") {
    // nginx (open source) keeps no per-server state: the app Deployment's readiness is the view.
    const dep = `{namespace=${q(plan.namespace ?? "")},deployment=${q(plan.app.deployment ?? plan.app.component)}}`;
    rules.push(
      r.rule(
        "BalancerBackendDown",
        "warning",
        r.confirm,
        `label_replace(kube_deployment_status_replicas_unavailable${dep}, "ha_component", ${q(c)}, "", "") > 0`,
        "{{ $value }} app servers of {{ $labels.deployment }} are not ready",
        "Pods of the app Deployment fail their readiness probe: nginx's upstream (the Service) leaves them out.",
      ),
      r.rule(
        "BalancerNoBackendUp",
        "critical",
        r.confirm,
        `label_replace(kube_deployment_status_replicas_available${dep}, "ha_component", ${q(c)}, "", "") == 0`,
        "{{ $labels.deployment }} has no ready app server",
        "No pod of the app Deployment is ready: every request through the balancer fails.",
      ),
    );
  } else if (scrapes(plan, c, "backend-probe")) {
    const probe = r.sel(c, "backend-probe");
    rules.push(
      r.rule(
        "BalancerBackendDown",
        "warning",
        r.confirm,
        `probe_success${probe} == 0`,
        "App server {{ $labels.instance }} is down behind {{ $labels.ha_component }}",
        "The app server's health path fails from the balancer's network: nginx retries its requests on the others (proxy_next_upstream).",
      ),
      r.rule(
        "BalancerNoBackendUp",
        "critical",
        r.confirm,
        `max by (ha_component) (probe_success${probe}) == 0`,
        "{{ $labels.ha_component }} has no app server up",
        "No app server answers its health path: every request through the balancer fails.",
      ),
    );
  }
  if (b.engine === "nginx" && edgeProbed) {
    rules.push(
      r.rule(
        "EdgeHigh5xxRate",
        "critical",
        r.confirm,
        // nginx (open source) counts no response codes: the edge is probed each scrape instead.
        `1 - min by (ha_component) (avg_over_time(probe_success${edge}[${ERROR_WINDOW}])) > ${ratio}`,
        "More than " + pct(ratio) + " of probes through {{ $labels.ha_component }} fail",
        `{{ $value | humanizePercentage }} of the edge probes over ${ERROR_WINDOW} got a 5xx or no answer (threshold ${pct(ratio)}). nginx counts no response codes, so this is sampled, one request per scrape.`,
      ),
    );
  }
  if (b.tls && edgeProbed) {
    const days = plan.certificateDays ?? ALERT_DEFAULTS.certificateDays;
    rules.push(
      r.rule(
        "EdgeCertificateExpiring",
        "warning",
        r.confirm,
        `min by (ha_component) (probe_ssl_earliest_cert_expiry${edge}) - time() < ${days * 86400}`,
        `The edge certificate of {{ $labels.ha_component }} expires within ${days} days`,
        "The certificate the edge serves expires in {{ $value | humanizeDuration }}: renew it and set tlsCertificate/tlsKey.",
      ),
    );
  }
  return rules;
}

function pct(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}

function postgresRules(pg: MonitoringPlan["postgres"][number], r: RuleBuilder): AlertRule[] {
  const c = pg.component;
  const p = (extra = "") => r.sel(c, "patroni", extra);
  const rules = [
    r.rule(
      "PostgresLeaderChanged",
      "info",
      0,
      // A failover or switchover always starts a new timeline: the highest in the window is above
      // the lowest. A member that restarts reports 0 while PostgreSQL is down (Patroni 3.0): zeros
      // are left out, so a restart or a rolling update is not a leader change.
      `max by (ha_component) (max_over_time(patroni_postgres_timeline${p()}[${CHANGE_WINDOW}])) > min by (ha_component) (min_over_time((patroni_postgres_timeline${p()} > 0)[${CHANGE_WINDOW}:]))`,
      "{{ $labels.ha_component }} has a new leader",
      `Patroni promoted a new leader in the last ${CHANGE_WINDOW} (a new timeline began). Check why the old one went.`,
    ),
    r.rule(
      "PostgresNoLeader",
      "critical",
      // A leader's death leaves the cluster leaderless until its budget ran out: only longer is wrong.
      pg.failoverBudgetSeconds + r.confirm,
      `max by (ha_component) (patroni_master${p()}) < 1 or sum by (ha_component) (up${p()}) == 0`,
      "{{ $labels.ha_component }} has no PostgreSQL leader",
      `No member has been the leader for longer than the failover budget (${pg.failoverBudgetSeconds} s): writes fail.`,
    ),
    r.rule(
      "PostgresReplicationLagHigh",
      "warning",
      r.confirm,
      `max by (ha_component) (patroni_xlog_location${p()}) - on (ha_component) group_right () (patroni_xlog_replayed_location${p()} and on (instance) (patroni_replica${p()} == 1)) > ${pg.maximumLagOnFailoverBytes}`,
      "Replica {{ $labels.instance }} is {{ $value | humanize1024 }}B behind the leader",
      `The replica has replayed less than the leader wrote, by more than maximum_lag_on_failover (${pg.maximumLagOnFailoverBytes} bytes): Patroni will not promote it.`,
    ),
  ];
  if (pg.synchronousMode) {
    rules.push(
      r.rule(
        "PostgresSyncStandbyMissing",
        "warning",
        // Patroni names a new synchronous standby within a loop or two.
        2 * pg.loopWaitSeconds + r.confirm,
        `max by (ha_component) (patroni_sync_standby${p()}) < 1`,
        "{{ $labels.ha_component }} has no synchronous standby",
        "Synchronous mode is on but no replica is the synchronous standby: commits are acknowledged by the leader alone (or wait, in strict mode).",
      ),
    );
  }
  const pgx = (extra = "") => r.sel(c, "postgres", extra);
  rules.push(
    r.rule(
      "PostgresConnectionsHigh",
      "warning",
      r.confirm,
      `sum by (ha_component, instance) (pg_stat_activity_count${pgx()}) / on (ha_component, instance) max by (ha_component, instance) (pg_settings_max_connections${pgx()}) > ${r.plan.connectionsRatio ?? ALERT_DEFAULTS.connectionsRatio}`,
      "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections",
      "Connections are near max_connections: new clients will be refused.",
    ),
    ...routerRules(c, pg.router, pg.failoverBudgetSeconds, r),
  );
  return rules;
}

function mysqlRules(plan: MonitoringPlan, my: MonitoringPlan["mysql"][number], r: RuleBuilder): AlertRule[] {
  const c = my.component;
  const m = (extra = "") => r.sel(c, "mysqld", extra);
  /** A replica-status column under MariaDB's (and MySQL 8.0's) name or MySQL 8.4's. */
  const either = (old: string, renamed: string) =>
    `mysql_slave_status_${old}${m()} or mysql_slave_status_${renamed}${m()}`;
  const rules: AlertRule[] = [];
  if (my.mode === "galera") {
    rules.push(
      r.rule(
        "GaleraClusterSizeLow",
        "warning",
        // A dead node leaves the survivors' view after the eviction (within the failover budget).
        my.failoverBudgetSeconds + r.confirm,
        `min by (ha_component) (mysql_global_status_wsrep_cluster_size${m()}) < ${my.members}`,
        "{{ $labels.ha_component }} has {{ $value }} of " + `${my.members} Galera nodes`,
        `The Galera cluster has fewer than its ${my.members} members: one more loss may cost the quorum.`,
      ),
      r.rule(
        "GaleraNodeNotSynced",
        "warning",
        GALERA_NOT_SYNCED_SECONDS,
        // wsrep_local_state 4 is Synced; 1-3 are Joining, Donor/Desynced and Joined.
        `mysql_global_status_wsrep_local_state${m()} != 4`,
        "Galera node {{ $labels.instance }} is not Synced (state {{ $value }})",
        `The node has not been Synced for ${GALERA_NOT_SYNCED_SECONDS} s: a state transfer is stuck or the node cannot join.`,
      ),
    );
  } else {
    const lag = plan.mysqlLagSeconds ?? ALERT_DEFAULTS.mysqlLagSeconds;
    rules.push(
      r.rule(
        "MysqlReplicationStopped",
        "critical",
        r.confirm,
        // MySQL 8.4 has only SHOW REPLICA STATUS, whose columns mysqld_exporter names replica_*.
        `(${either("slave_io_running", "replica_io_running")}) == 0 or (${either("slave_sql_running", "replica_sql_running")}) == 0`,
        "Replication on {{ $labels.instance }} has stopped",
        "The replica's IO or SQL thread is not running: it falls behind and cannot take over.",
      ),
      r.rule(
        "MysqlReplicationLagHigh",
        "warning",
        r.confirm,
        `(${either("seconds_behind_master", "seconds_behind_source")}) > ${lag}`,
        "Replica {{ $labels.instance }} is {{ $value }} s behind",
        `The replica applies changes more than ${lag} s after the primary: reads from it are stale.`,
      ),
    );
  }
  rules.push(
    r.rule(
      "MysqlConnectionsHigh",
      "warning",
      r.confirm,
      `mysql_global_status_threads_connected${m()} / mysql_global_variables_max_connections${m()} > ${plan.connectionsRatio ?? ALERT_DEFAULTS.connectionsRatio}`,
      "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections",
      "Connections are near max_connections: new clients will be refused.",
    ),
    // Replication's failover is manual (budget 0): a router without a writer is news at once.
    ...routerRules(c, my.router, my.failoverBudgetSeconds, r),
  );
  return rules;
}

function redisRules(redis: NonNullable<MonitoringPlan["redis"]>, r: RuleBuilder): AlertRule[] {
  const c = redis.component;
  const rules = [
    r.rule(
      "RedisSentinelFailover",
      "warning",
      0,
      // Sentinels report the primary's address: two addresses in the window mean a failover.
      `count by (ha_component) (count by (ha_component, master_address) (last_over_time(redis_sentinel_master_status${r.sel(c, "sentinel")}[${CHANGE_WINDOW}]))) > 1`,
      "Sentinel moved {{ $labels.ha_component }}'s primary",
      `The Sentinels reported more than one primary address in the last ${CHANGE_WINDOW}: a failover happened. Check why the old primary went.`,
    ),
  ];
  if (redis.mode === "store" && redis.replicas > 0) {
    rules.push(
      r.rule(
        "RedisPrimaryWithoutReplicas",
        "critical",
        // Replicas reconnect to a new primary within the Sentinel budget.
        redis.failoverBudgetSeconds + r.confirm,
        `redis_connected_slaves${r.sel(c, "redis")} < 1 and on (instance) redis_instance_info${r.sel(c, "redis", `role="master"`)} == 1`,
        "Redis primary {{ $labels.instance }} has no replica",
        "The store's primary has no connected replica: its data exists once, and losing it loses writes.",
      ),
    );
  }
  // The router takes the promoted replica in (rise × interval) within the Sentinel budget's last
  // second, the one it leaves for clients to ask Sentinel again.
  rules.push(...routerRules(c, redis.router, redis.failoverBudgetSeconds, r));
  return rules;
}

/**
 * A data tier's router without a server to send writes to: none of the write proxy's servers,
 * active or backup (Galera's standing-by writers are backups), is UP on that router replica. A
 * failover empties it from the old writer's `fall` to the new one's `rise`, within the failover
 * budget: only longer is wrong. A router that does not answer at all is ScrapeTargetDown's.
 */
function routerRules(
  component: string,
  router: RouterPlan | undefined,
  failoverBudgetSeconds: number,
  r: RuleBuilder,
): AlertRule[] {
  if (router === undefined || !scrapes(r.plan, component, "router")) return [];
  const w = r.sel(component, "router", `proxy=${q(router.writeProxy)}`);
  return [
    r.rule(
      "RouterNoWriter",
      "critical",
      failoverBudgetSeconds + r.confirm,
      `haproxy_backend_active_servers${w} + haproxy_backend_backup_servers${w} == 0`,
      "Router {{ $labels.instance }} has no server for {{ $labels.ha_component }}'s writes",
      `No server of the router's ${router.writeProxy} proxy has passed its health checks for longer than the failover budget (${failoverBudgetSeconds} s): writes through this router fail.`,
    ),
  ];
}

function etcdRules(e: MonitoringPlan["etcd"][number], r: RuleBuilder): AlertRule[] {
  const c = e.component;
  return [
    r.rule(
      "EtcdNoLeader",
      "critical",
      r.confirm,
      `etcd_server_has_leader${r.sel(c, "etcd")} == 0`,
      "etcd member {{ $labels.instance }} has no leader",
      "The member sees no leader: it refuses writes, and locks (and Patroni's leader key) cannot be taken or renewed through it.",
    ),
    r.rule(
      "EtcdMemberDown",
      e.members >= 3 ? "warning" : "critical",
      r.confirm,
      `sum by (ha_component) (up${r.sel(c, "etcd")}) < ${e.members}`,
      "{{ $labels.ha_component }} has {{ $value }} of " + `${e.members} etcd members up`,
      `Fewer than ${e.members} etcd members answer: ${Math.floor((e.members - 1) / 2)} may be lost before the quorum is.`,
    ),
  ];
}

function volumeRules(plan: MonitoringPlan, r: RuleBuilder): AlertRule[] {
  const ratio = plan.volumeFullRatio ?? ALERT_DEFAULTS.volumeFullRatio;
  const expr =
    plan.platform === "kubernetes"
      ? `1 - kubelet_volume_stats_available_bytes{namespace=${q(plan.namespace ?? "")}} / kubelet_volume_stats_capacity_bytes{namespace=${q(plan.namespace ?? "")}} > ${ratio}`
      : `1 - node_filesystem_avail_bytes${r.sel(plan.name, "volumes", VOLUME_MATCHER)} / node_filesystem_size_bytes${r.sel(plan.name, "volumes", VOLUME_MATCHER)} > ${ratio}`;
  return [
    r.rule(
      "VolumeNearlyFull",
      "warning",
      Math.max(300, r.confirm),
      expr,
      plan.platform === "kubernetes"
        ? "Volume {{ $labels.persistentvolumeclaim }} is {{ $value | humanizePercentage }} full"
        : "The file system of {{ $labels.mountpoint }} is {{ $value | humanizePercentage }} full",
      `More than ${pct(ratio)} of the volume is used: a full volume stops the database's writes.`,
    ),
  ];
}
