/**
 * `promtool test rules` cases for every generated alert: for each rule of a stack's rule file, a
 * case where it fires (with the labels and annotations it must carry, the annotations expanded
 * from the rule's own templates with the value the case expects) and one where it stays quiet.
 * The series follow the exporters' real metric names and labels (test/live/monitoring checks
 * those exist), and the selectors come from the plan, so a rule that selects the wrong job, label
 * or threshold fails its case.
 */
import { stringify } from "yaml";
import { jobName, type ExporterKind, type MonitoringPlan } from "../../components/monitoring/render/plan";
import {
  UP_METRIC,
  type AlertName,
  type AlertRule,
  type RuleGroup,
} from "../../components/monitoring/render/rules";

interface Series {
  readonly metric: string;
  readonly labels: Record<string, string>;
  /** promtool's expanding notation, e.g. `1x20 0x40`. */
  readonly values: string;
}

/** One side of a rule's test: the series, and the alerts expected at the end. */
interface Case {
  readonly series: readonly Series[];
  readonly alerts: readonly { readonly labels: Record<string, string>; readonly value: number }[];
}

interface Ctx {
  readonly plan: MonitoringPlan;
  readonly group: RuleGroup;
  readonly rule: AlertRule;
  /** Samples in the test (covers the eval time). */
  readonly n: number;
  /** Samples that cover the rule's `for` and a window of 10 minutes, counted back from the end. */
  readonly tail: number;
  /** When the alerts are evaluated (s from the first sample). */
  readonly evalSeconds: number;
}

/** The alert's component, as the rule's labels name it. */
function component(c: Ctx): string {
  return c.rule.labels.ha_component ?? c.plan.name;
}

function target(c: Ctx, kind: ExporterKind, member = 0): Record<string, string> {
  const comp = component(c);
  return { job: jobName(comp, kind), instance: `${comp}-${member}`, ha_component: comp };
}

/** `before` for the first samples, then `after` for the last `c.tail`. */
function step(c: Ctx, before: number, after: number): string {
  return `${before}x${c.n - c.tail - 1} ${after}x${c.tail}`;
}

function flat(c: Ctx, v: number): string {
  return `${v}x${c.n - 1}`;
}

const s = (metric: string, labels: Record<string, string>, values: string): Series => ({
  metric,
  labels,
  values,
});

/**
 * A Patroni role (`patroni_master`, `patroni_sync_standby`) that member 0 loses: no one takes it
 * over (fires, for the whole component), or member 1 does (quiet).
 */
function roleMoves(c: Ctx, metric: string): { fire: Case; quiet: Case } {
  const a = target(c, "patroni", 0);
  const b = target(c, "patroni", 1);
  return {
    fire: {
      series: [s(metric, a, step(c, 1, 0)), s(metric, b, flat(c, 0))],
      alerts: [{ labels: { ha_component: component(c) }, value: 0 }],
    },
    quiet: { series: [s(metric, a, step(c, 1, 0)), s(metric, b, step(c, 0, 1))], alerts: [] },
  };
}

/** A firing case and a quiet one for `rule`, by alert name. */
const FIXTURES: Record<AlertName, (c: Ctx) => { fire: Case; quiet: Case }> = {
  ScrapeTargetDown: (c) => {
    const j = c.plan.jobs[0];
    const l = { job: j.job, instance: j.targets[0]?.instance ?? "m-0", ha_component: j.component };
    return {
      fire: { series: [s("up", l, step(c, 1, 0))], alerts: [{ labels: l, value: 0 }] },
      quiet: { series: [s("up", l, flat(c, 1))], alerts: [] },
    };
  },
  ScrapeTargetsMissing: (c) => {
    // Every job's rule shares the alert's name: each job has all its targets but the one tested,
    // which misses one (or has none).
    const count = (j: (typeof c.plan.jobs)[number]) => j.expected ?? j.targets.length;
    const tested = c.rule.labels.job;
    const up = (missing: number) =>
      c.plan.jobs.flatMap((j) =>
        Array.from({ length: count(j) - (j.job === tested ? missing : 0) }, (_, i) =>
          s("up", { job: j.job, instance: `${j.component}-${i}`, ha_component: j.component }, flat(c, 1)),
        ),
      );
    return {
      fire: { series: up(1), alerts: [{ labels: { job: tested ?? "" }, value: 0 }] },
      quiet: { series: up(0), alerts: [] },
    };
  },
  ExporterCannotReachService: (c) => {
    const j = c.plan.jobs.find((x) => UP_METRIC[x.kind] !== undefined)!;
    const l = { job: j.job, instance: j.targets[0]?.instance ?? "m-0", ha_component: j.component };
    const m = UP_METRIC[j.kind]!;
    return {
      fire: { series: [s(m, l, step(c, 1, 0))], alerts: [{ labels: l, value: 0 }] },
      quiet: { series: [s(m, l, flat(c, 1))], alerts: [] },
    };
  },
  BalancerBackendDown: (c) => {
    const comp = component(c);
    if (c.plan.balancer.engine === "haproxy") {
      const l = (server: string, state: string) => ({ ...target(c, "haproxy"), proxy: "app", server, state });
      const series = (down: string) => [
        s("haproxy_server_status", l("app-0", "DOWN"), down),
        s("haproxy_server_status", l("app-1", "DOWN"), flat(c, 0)),
      ];
      return {
        fire: {
          series: series(step(c, 0, 1)),
          alerts: [{ labels: { ha_component: comp, server: "app-0" }, value: 1 }],
        },
        quiet: { series: series(flat(c, 0)), alerts: [] },
      };
    }
    if (c.plan.platform === "kubernetes") {
      const l = {
        namespace: c.plan.namespace ?? "",
        deployment: c.plan.app.deployment ?? c.plan.app.component,
      };
      return {
        fire: {
          series: [s("kube_deployment_status_replicas_unavailable", l, step(c, 0, 1))],
          alerts: [{ labels: { ...l, ha_component: comp }, value: 1 }],
        },
        quiet: { series: [s("kube_deployment_status_replicas_unavailable", l, flat(c, 0))], alerts: [] },
      };
    }
    const l = target(c, "backend-probe");
    return {
      fire: { series: [s("probe_success", l, step(c, 1, 0))], alerts: [{ labels: l, value: 0 }] },
      quiet: { series: [s("probe_success", l, flat(c, 1))], alerts: [] },
    };
  },
  BalancerNoBackendUp: (c) => {
    const comp = component(c);
    if (c.plan.balancer.engine === "haproxy") {
      const l = { ...target(c, "haproxy"), proxy: "app" };
      const series = (active: string) => [
        s("haproxy_backend_active_servers", l, active),
        s("haproxy_backend_backup_servers", l, flat(c, 0)),
      ];
      return {
        fire: { series: series(step(c, 2, 0)), alerts: [{ labels: { ha_component: comp }, value: 0 }] },
        quiet: { series: series(step(c, 2, 1)), alerts: [] },
      };
    }
    if (c.plan.platform === "kubernetes") {
      const l = {
        namespace: c.plan.namespace ?? "",
        deployment: c.plan.app.deployment ?? c.plan.app.component,
      };
      return {
        fire: {
          series: [s("kube_deployment_status_replicas_available", l, step(c, 2, 0))],
          alerts: [{ labels: { ...l, ha_component: comp }, value: 0 }],
        },
        quiet: { series: [s("kube_deployment_status_replicas_available", l, step(c, 2, 1))], alerts: [] },
      };
    }
    const a = target(c, "backend-probe", 0);
    const b = target(c, "backend-probe", 1);
    return {
      fire: {
        series: [s("probe_success", a, step(c, 1, 0)), s("probe_success", b, step(c, 1, 0))],
        alerts: [{ labels: { ha_component: comp }, value: 0 }],
      },
      quiet: {
        series: [s("probe_success", a, step(c, 1, 0)), s("probe_success", b, flat(c, 1))],
        alerts: [],
      },
    };
  },
  EdgeHigh5xxRate: (c) => {
    const comp = component(c);
    if (c.plan.balancer.engine === "haproxy") {
      const l = { ...target(c, "haproxy"), proxy: "public" };
      // 10 requests per sample; the firing case answers 5 of them with 5xx from the start.
      const series = (errorsPerSample: number) => [
        s("haproxy_frontend_http_requests_total", l, `0+10x${c.n - 1}`),
        s("haproxy_frontend_http_responses_total", { ...l, code: "5xx" }, `0+${errorsPerSample}x${c.n - 1}`),
      ];
      return {
        fire: { series: series(5), alerts: [{ labels: { ha_component: comp }, value: 0.5 }] },
        quiet: { series: series(0), alerts: [] },
      };
    }
    // nginx: every probe fails, or every probe succeeds.
    const l = target(c, "edge-probe");
    return {
      fire: {
        series: [s("probe_success", l, flat(c, 0))],
        alerts: [{ labels: { ha_component: comp }, value: 1 }],
      },
      quiet: { series: [s("probe_success", l, flat(c, 1))], alerts: [] },
    };
  },
  EdgeCertificateExpiring: (c) => {
    const comp = component(c);
    const l = target(c, "edge-probe");
    const days = thresholdDays(c.rule);
    // promtool's clock starts at 0: an expiry at (days - 1) days fires, at days + 30 does not.
    return {
      fire: {
        series: [s("probe_ssl_earliest_cert_expiry", l, flat(c, (days - 1) * 86400))],
        alerts: [{ labels: { ha_component: comp }, value: (days - 1) * 86400 - evalSeconds(c) }],
      },
      quiet: { series: [s("probe_ssl_earliest_cert_expiry", l, flat(c, (days + 30) * 86400))], alerts: [] },
    };
  },
  PostgresLeaderChanged: (c) => {
    const comp = component(c);
    const l = target(c, "patroni");
    const other = target(c, "patroni", 1);
    // A restart reports timeline 0 while PostgreSQL is down: not a leader change.
    const restart = `2x${c.n - c.tail - 1} 0x${Math.max(1, Math.floor(c.tail / 2) - 1)} 2x${c.tail}`;
    return {
      fire: {
        series: [s("patroni_postgres_timeline", l, step(c, 1, 2))],
        alerts: [{ labels: { ha_component: comp }, value: 2 }],
      },
      quiet: {
        series: [
          s("patroni_postgres_timeline", l, flat(c, 2)),
          s("patroni_postgres_timeline", other, restart),
        ],
        alerts: [],
      },
    };
  },
  PostgresNoLeader: (c) => roleMoves(c, "patroni_master"),
  PostgresReplicationLagHigh: (c) => {
    const lead = target(c, "patroni", 0);
    const rep = target(c, "patroni", 1);
    const max = thresholdNumber(c.rule);
    const lag = 2 * max + 1024;
    const series = (replayed: number) => [
      s("patroni_xlog_location", lead, flat(c, 10 * max + 4096)),
      s("patroni_xlog_location", rep, flat(c, 0)),
      s("patroni_replica", lead, flat(c, 0)),
      s("patroni_replica", rep, flat(c, 1)),
      s("patroni_xlog_replayed_location", lead, flat(c, 0)),
      s("patroni_xlog_replayed_location", rep, flat(c, replayed)),
    ];
    return {
      fire: { series: series(10 * max + 4096 - lag), alerts: [{ labels: rep, value: lag }] },
      quiet: { series: series(10 * max + 4096), alerts: [] },
    };
  },
  PostgresSyncStandbyMissing: (c) => roleMoves(c, "patroni_sync_standby"),
  PostgresConnectionsHigh: (c) => {
    const l = target(c, "postgres");
    const series = (active: number) => [
      s("pg_stat_activity_count", { ...l, datname: "app", state: "active" }, flat(c, active)),
      s("pg_stat_activity_count", { ...l, datname: "app", state: "idle" }, flat(c, 5)),
      s("pg_settings_max_connections", { ...l, server: "db:5432" }, flat(c, 100)),
    ];
    return {
      fire: {
        series: series(90),
        alerts: [{ labels: { ha_component: l.ha_component, instance: l.instance }, value: 0.95 }],
      },
      quiet: { series: series(20), alerts: [] },
    };
  },
  GaleraClusterSizeLow: (c) => {
    const comp = component(c);
    const members = thresholdNumber(c.rule);
    const series = (after: number) =>
      [0, 1].map((i) =>
        s("mysql_global_status_wsrep_cluster_size", target(c, "mysqld", i), step(c, members, after)),
      );
    return {
      fire: { series: series(members - 1), alerts: [{ labels: { ha_component: comp }, value: members - 1 }] },
      quiet: { series: series(members), alerts: [] },
    };
  },
  GaleraNodeNotSynced: (c) => {
    const l = target(c, "mysqld");
    return {
      fire: {
        series: [s("mysql_global_status_wsrep_local_state", l, step(c, 4, 2))],
        alerts: [{ labels: l, value: 2 }],
      },
      // A short donor state (a state transfer to a joiner) is normal.
      quiet: { series: [s("mysql_global_status_wsrep_local_state", l, `4x${c.n - 8} 2x3 4x3`)], alerts: [] },
    };
  },
  MysqlReplicationStopped: (c) => {
    const l = { ...target(c, "mysqld", 1), master_host: "db-0" };
    const series = (io: string) => [
      s("mysql_slave_status_slave_io_running", l, io),
      s("mysql_slave_status_slave_sql_running", l, flat(c, 1)),
    ];
    return {
      fire: { series: series(step(c, 1, 0)), alerts: [{ labels: l, value: 0 }] },
      quiet: { series: series(flat(c, 1)), alerts: [] },
    };
  },
  MysqlReplicationLagHigh: (c) => {
    const l = { ...target(c, "mysqld", 1), master_host: "db-0" };
    const lag = thresholdNumber(c.rule);
    return {
      fire: {
        // MySQL 8.4's name for the column: the rule reads either.
        series: [s("mysql_slave_status_seconds_behind_source", l, step(c, 0, lag + 10))],
        alerts: [{ labels: l, value: lag + 10 }],
      },
      quiet: { series: [s("mysql_slave_status_seconds_behind_master", l, flat(c, lag))], alerts: [] },
    };
  },
  MysqlConnectionsHigh: (c) => {
    const l = target(c, "mysqld");
    const series = (connected: number) => [
      s("mysql_global_status_threads_connected", l, flat(c, connected)),
      s("mysql_global_variables_max_connections", l, flat(c, 200)),
    ];
    return {
      fire: { series: series(190), alerts: [{ labels: l, value: 0.95 }] },
      quiet: { series: series(40), alerts: [] },
    };
  },
  RedisSentinelFailover: (c) => {
    const comp = component(c);
    const l = (addr: string) => ({
      ...target(c, "sentinel"),
      master_name: comp,
      master_address: addr,
      master_status: "ok",
    });
    const mid = c.n - Math.floor(c.tail / 2);
    return {
      fire: {
        series: [
          s("redis_sentinel_master_status", l("10.0.0.1:6379"), `1x${mid - 1}`),
          s("redis_sentinel_master_status", l("10.0.0.2:6379"), `_x${mid - 1} 1x${c.n - mid - 1}`),
        ],
        alerts: [{ labels: { ha_component: comp }, value: 2 }],
      },
      quiet: { series: [s("redis_sentinel_master_status", l("10.0.0.1:6379"), flat(c, 1))], alerts: [] },
    };
  },
  RedisPrimaryWithoutReplicas: (c) => {
    const l = target(c, "redis");
    const info = { ...l, role: "master", redis_mode: "standalone", redis_version: "7.2.5" };
    const series = (slaves: string) => [
      s("redis_connected_slaves", l, slaves),
      s("redis_instance_info", info, flat(c, 1)),
      // A replica without replicas of its own is fine.
      s("redis_connected_slaves", target(c, "redis", 1), flat(c, 0)),
      s(
        "redis_instance_info",
        { ...target(c, "redis", 1), role: "slave", redis_mode: "standalone", redis_version: "7.2.5" },
        flat(c, 1),
      ),
    ];
    return {
      fire: { series: series(step(c, 2, 0)), alerts: [{ labels: l, value: 0 }] },
      quiet: { series: series(flat(c, 2)), alerts: [] },
    };
  },
  RouterNoWriter: (c) => {
    const proxy = writeProxy(c);
    const l = (member: number) => ({ ...target(c, "router", member), proxy });
    const servers = (member: number, active: string, backup: string) => [
      s("haproxy_backend_active_servers", l(member), active),
      s("haproxy_backend_backup_servers", l(member), backup),
    ];
    // A failover empties the write proxy for a while: the last samples, empty for the whole
    // budget and two scrapes more, just under the rule's `for:` (the budget + 3 scrapes). A `for:`
    // without the budget fires on it wherever the budget is a scrape or more.
    const empty = Math.floor(budgetSeconds(c) / c.plan.scrapeIntervalSeconds) + 2;
    const failover = `1x${c.n - empty - 1} 0x${empty}`;
    return {
      // Router 0 loses its writer for good; router 1 still has one.
      fire: {
        series: [...servers(0, step(c, 1, 0), flat(c, 0)), ...servers(1, flat(c, 1), flat(c, 0))],
        alerts: [{ labels: l(0), value: 0 }],
      },
      // Router 0 in a failover; router 1 on a standing-by writer (Galera's backups) alone.
      quiet: {
        series: [...servers(0, failover, flat(c, 0)), ...servers(1, flat(c, 0), flat(c, 1))],
        alerts: [],
      },
    };
  },
  EtcdNoLeader: (c) => {
    const l = target(c, "etcd");
    return {
      fire: { series: [s("etcd_server_has_leader", l, step(c, 1, 0))], alerts: [{ labels: l, value: 0 }] },
      quiet: { series: [s("etcd_server_has_leader", l, flat(c, 1))], alerts: [] },
    };
  },
  EtcdMemberDown: (c) => {
    const comp = component(c);
    const members = thresholdNumber(c.rule);
    const series = (lastDown: string) =>
      Array.from({ length: members }, (_, i) =>
        s("up", target(c, "etcd", i), i === members - 1 ? lastDown : flat(c, 1)),
      );
    return {
      fire: {
        series: series(step(c, 1, 0)),
        alerts: [{ labels: { ha_component: comp }, value: members - 1 }],
      },
      quiet: { series: series(flat(c, 1)), alerts: [] },
    };
  },
  VolumeNearlyFull: (c) => {
    if (c.plan.platform === "kubernetes") {
      const l = { namespace: c.plan.namespace ?? "", persistentvolumeclaim: "data-orders-0-pg-0" };
      const series = (avail: number) => [
        s("kubelet_volume_stats_available_bytes", l, flat(c, avail)),
        s("kubelet_volume_stats_capacity_bytes", l, flat(c, 1000)),
      ];
      return {
        fire: { series: series(50), alerts: [{ labels: l, value: 0.95 }] },
        quiet: { series: series(500), alerts: [] },
      };
    }
    const l = {
      job: jobName(c.plan.name, "volumes"),
      instance: "volumes",
      ha_component: c.plan.name,
      mountpoint: "/volumes/orders-0-pg-0",
      device: "/dev/sda1",
      fstype: "ext4",
    };
    const other = { ...l, mountpoint: "/" };
    const series = (avail: number) => [
      s("node_filesystem_avail_bytes", l, flat(c, avail)),
      s("node_filesystem_size_bytes", l, flat(c, 1000)),
      // The exporter's own root file system is not a data volume.
      s("node_filesystem_avail_bytes", other, flat(c, 10)),
      s("node_filesystem_size_bytes", other, flat(c, 1000)),
    ];
    return {
      fire: { series: series(50), alerts: [{ labels: l, value: 0.95 }] },
      quiet: { series: series(500), alerts: [] },
    };
  },
};

/** The data tier the alert's component is (its router's write proxy and failover budget). */
function dataTier(c: Ctx): {
  readonly router?: { readonly writeProxy: string };
  readonly failoverBudgetSeconds: number;
} {
  const comp = component(c);
  const tier = [...c.plan.postgres, ...c.plan.mysql, ...(c.plan.redis ? [c.plan.redis] : [])].find(
    (t) => t.component === comp,
  );
  if (tier === undefined) throw new Error(`${c.rule.alert}: ${comp} is no data tier of ${c.plan.name}`);
  return tier;
}

/** The proxy the plan says carries the component's writes: a rule that reads another fails. */
function writeProxy(c: Ctx): string {
  const proxy = dataTier(c).router?.writeProxy;
  if (proxy === undefined) throw new Error(`${c.rule.alert}: ${component(c)} has no router in the plan`);
  return proxy;
}

function budgetSeconds(c: Ctx): number {
  return dataTier(c).failoverBudgetSeconds;
}

/** The number a rule compares with (`… > 1048576`, `… < 3`). */
function thresholdNumber(rule: AlertRule): number {
  const m = /[<>]=? ([0-9.e+]+)$/.exec(rule.expr);
  if (!m) throw new Error(`${rule.alert}: no threshold at the end of ${rule.expr}`);
  return Number(m[1]);
}

function thresholdDays(rule: AlertRule): number {
  return thresholdNumber(rule) / 86400;
}

function forSeconds(rule: AlertRule): number {
  return Number(rule.for.replace(/s$/, ""));
}

function evalSeconds(c: Ctx): number {
  return c.evalSeconds;
}

/** promtool's test file for `ruleFile`, with a firing and a quiet test per rule of `groups`. */
export function ruleTests(plan: MonitoringPlan, groups: readonly RuleGroup[], ruleFile: string): string {
  const interval = plan.scrapeIntervalSeconds;
  const tests: unknown[] = [];
  for (const group of groups) {
    for (const rule of group.rules) {
      // Long enough for the rule's `for`, a 10-minute window and a few samples more.
      const evalS = forSeconds(rule) + 600 + 5 * interval;
      const n = Math.ceil(evalS / interval) + 1;
      const tail = Math.ceil((forSeconds(rule) + 2 * interval) / interval) + 2;
      const c: Ctx = { plan, group, rule, n, tail, evalSeconds: evalS };
      const { fire, quiet } = FIXTURES[rule.alert](c);
      for (const [kind, k] of [
        ["fires", fire],
        ["stays quiet", quiet],
      ] as const) {
        tests.push({
          name: `${group.name} ${rule.alert} ${kind}`,
          interval: `${interval}s`,
          input_series: k.series.map((x) => ({ series: seriesName(x), values: x.values })),
          alert_rule_test: [
            {
              eval_time: `${evalS}s`,
              alertname: rule.alert,
              exp_alerts: k.alerts.map((a) => {
                const labels = { ...a.labels, ...rule.labels };
                return {
                  exp_labels: labels,
                  exp_annotations: Object.fromEntries(
                    Object.entries(rule.annotations).map(([key, text]) => [
                      key,
                      expand(text, labels, a.value),
                    ]),
                  ),
                };
              }),
            },
          ],
        });
      }
    }
  }
  return stringify({ rule_files: [ruleFile], evaluation_interval: `${interval}s`, tests }, { lineWidth: 0 });
}

function seriesName(x: Series): string {
  const labels = Object.entries(x.labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(",");
  return `${x.metric}{${labels}}`;
}

/**
 * Expands the few Go template forms the rules use, as Prometheus does: `{{ $labels.x }}`,
 * `{{ $value }}` and `{{ $value | humanizePercentage | humanize1024 | humanizeDuration }}`.
 */
export function expand(text: string, labels: Record<string, string>, value: number): string {
  return text.replace(
    /\{\{ (\$labels\.([a-z_]+)|\$value(?: \| ([a-zA-Z0-9]+))?) \}\}/g,
    (_, _all, label, fn) => {
      if (label !== undefined) return labels[label] ?? "";
      switch (fn) {
        case undefined:
          return goFloat(value);
        case "humanizePercentage":
          return `${goG4(value * 100)}%`;
        case "humanize1024":
          return humanize1024(value);
        case "humanizeDuration":
          return humanizeDuration(value);
        default:
          throw new Error(`expand: template function ${fn} is not modelled`);
      }
    },
  );
}

/** Go's `%v` of a float64, for the values these cases use (integers and short decimals). */
function goFloat(v: number): string {
  // Go's %v of a float64 is %g at the shortest precision, which takes an exponent from 1e6 on
  // (1.0496e+06, at least two exponent digits).
  if (Math.abs(v) < 1e6) return String(v);
  return v.toExponential().replace(/e\+(\d)$/, "e+0$1");
}

/** Go's `%.4g`. */
function goG4(v: number): string {
  return String(Number(v.toPrecision(4)));
}

function humanize1024(v: number): string {
  if (Math.abs(v) <= 1) return goG4(v);
  const prefixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && i < prefixes.length - 1) {
    x /= 1024;
    i++;
  }
  return `${goG4(x)}${prefixes[i]}`;
}

function humanizeDuration(v: number): string {
  const sign = v < 0 ? "-" : "";
  let t = Math.abs(v);
  if (t >= 1) {
    const d = Math.floor(t / 86400);
    const h = Math.floor(t / 3600) % 24;
    const m = Math.floor(t / 60) % 60;
    const sec = Math.floor(t) % 60;
    if (d > 0) return `${sign}${d}d ${h}h ${m}m ${sec}s`;
    if (h > 0) return `${sign}${h}h ${m}m ${sec}s`;
    if (m > 0) return `${sign}${m}m ${sec}s`;
    t = sec;
    return `${sign}${goG4(t)}s`;
  }
  throw new Error("humanizeDuration below 1 s is not modelled");
}
