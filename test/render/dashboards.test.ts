import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  DASHBOARD_TIERS,
  GRID_COLUMNS,
  dashboardMetrics,
  dashboardQueries,
  dashboardUid,
  renderDashboard,
  renderDashboardJson,
  type DashboardPanel,
  type DataPanel,
  type GrafanaDashboard,
  type RowPanel,
} from "../../components/monitoring/render/dashboards";
import { type ExporterKind, type MonitoringPlan } from "../../components/monitoring/render/plan";
import { binary, check, tempDir } from "../support/daemons";
import { expectGolden } from "../support/golden";
import { SAMPLE_PLANS, sampleJob } from "../support/monitoring-plans";

const haproxyDocker = SAMPLE_PLANS["docker-haproxy"];
const nginxKubernetes = SAMPLE_PLANS["kubernetes-nginx"];

/**
 * Branches the sample plans leave out, derived here so the shared plans stay as they are:
 * memcached behind HAProxy with nothing else (no database, cache-only, no lock row, no TLS, no
 * edge probe, a backup server), and HAProxy on Kubernetes with Redis but no Sentinel.
 */
const VARIANTS: Record<string, MonitoringPlan> = {
  "docker-haproxy-memcached": {
    ...haproxyDocker,
    name: "pages-dev",
    topology: "pages",
    jobs: [sampleJob("pages-lb", "haproxy", 2, 8404), sampleJob("pages", "memcached", 3, 9150)],
    balancer: { component: "pages-lb", engine: "haproxy", backends: 2, backups: 1, tls: false },
    app: { component: "pages-app", replicas: 3 },
    postgres: [],
    mysql: [],
    redis: undefined,
    memcached: { component: "pages", members: 3 },
    etcd: [],
    volumes: false,
  },
  "kubernetes-haproxy": {
    ...nginxKubernetes,
    name: "shop-stage",
    jobs: [
      sampleJob("shop-lb", "haproxy", 2, 8404),
      ...nginxKubernetes.jobs.filter((j) => j.kind !== "nginx" && j.kind !== "sentinel"),
    ],
    balancer: { ...nginxKubernetes.balancer, engine: "haproxy" },
    redis: { ...nginxKubernetes.redis!, sentinels: 0 },
  },
};

const PLANS: Record<string, MonitoringPlan> = { ...SAMPLE_PLANS, ...VARIANTS };
const plans = Object.entries(PLANS);

/**
 * The metrics each exporter really emits, as read off its /metrics output (Debian 12's packages,
 * started on loopback with a real server behind each): HAProxy 2.6.12's built-in exporter,
 * nginx-prometheus-exporter 0.11.0, blackbox_exporter (http_2xx and https_edge probes),
 * postgres_exporter 0.11.1 on PostgreSQL 15, mysqld_exporter 0.14.0 on MariaDB 10.11 (a replica
 * and a Galera node), redis_exporter 1.45.0 on Redis 7.0 and a Sentinel, Patroni 3.0.2 and etcd
 * 3.4.23; memcached_exporter 0.15 (not packaged) from its source, pkg/exporter/exporter.go. The
 * routers' (`router`): the same HAProxy exporter under the PostgreSQL, MySQL (replication and
 * Galera) and Redis routers' rendered configs, with health-check fakes up and then down (proxy
 * labels `primary`, `rw`, `redis`). MySQL 8.4's replica_* column names (read with `or`, beside
 * MariaDB's) from mysqld_exporter's source (collector/slave_status.go: `slave_status_` and the
 * column in lower case), MySQL 8.4 not being packaged here. Only the names the dashboard reads
 * are listed: a new panel's metric must be checked and added here.
 */
const EMITTED: Record<ExporterKind, readonly string[]> = {
  haproxy: [
    "haproxy_frontend_http_requests_total",
    "haproxy_frontend_http_responses_total",
    "haproxy_backend_active_servers",
    "haproxy_backend_backup_servers",
    "haproxy_server_status",
    "haproxy_server_sessions_total",
    "haproxy_server_response_time_average_seconds",
    "haproxy_server_http_responses_total",
  ],
  router: [
    "haproxy_backend_active_servers",
    "haproxy_backend_backup_servers",
    "haproxy_frontend_current_sessions",
  ],
  nginx: ["nginx_up", "nginx_http_requests_total", "nginx_connections_active"],
  "edge-probe": ["probe_success", "probe_ssl_earliest_cert_expiry"],
  "backend-probe": ["probe_success", "probe_duration_seconds"],
  patroni: [
    "patroni_master",
    "patroni_replica",
    "patroni_sync_standby",
    "patroni_postgres_timeline",
    "patroni_xlog_location",
    "patroni_xlog_replayed_location",
  ],
  postgres: ["pg_stat_database_xact_commit", "pg_stat_activity_count", "pg_settings_max_connections"],
  mysqld: [
    "mysql_up",
    "mysql_global_status_queries",
    "mysql_global_status_threads_connected",
    "mysql_global_variables_max_connections",
    "mysql_global_status_wsrep_cluster_size",
    "mysql_global_status_wsrep_local_state",
    "mysql_slave_status_seconds_behind_master",
    "mysql_slave_status_slave_io_running",
    "mysql_slave_status_slave_sql_running",
    "mysql_slave_status_seconds_behind_source",
    "mysql_slave_status_replica_io_running",
    "mysql_slave_status_replica_sql_running",
  ],
  redis: [
    "redis_up",
    "redis_instance_info",
    "redis_connected_slaves",
    "redis_commands_processed_total",
    "redis_connected_clients",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
  ],
  sentinel: [
    "redis_sentinel_master_status",
    "redis_sentinel_master_ok_slaves",
    "redis_sentinel_master_ok_sentinels",
  ],
  memcached: [
    "memcached_up",
    "memcached_commands_total",
    "memcached_current_items",
    "memcached_current_bytes",
    "memcached_limit_bytes",
    "memcached_items_evicted_total",
  ],
  etcd: [
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_mvcc_db_total_size_in_bytes",
  ],
  volumes: [],
};

/** kube-state-metrics series the dashboard reads on Kubernetes (the cluster's own scrape). */
const KUBERNETES_SERIES = [
  "kube_deployment_status_replicas_available",
  "kube_deployment_status_replicas_unavailable",
];

function isRow(p: DashboardPanel): p is RowPanel {
  return p.type === "row";
}

function dataPanels(d: GrafanaDashboard): DataPanel[] {
  return d.panels.filter((p): p is DataPanel => p.type !== "row");
}

function rows(d: GrafanaDashboard): RowPanel[] {
  return d.panels.filter(isRow);
}

function tierOf(title: string): string {
  return title.split(":")[0];
}

/** The panel under `row` (a title prefix) named `title`. */
function panel(d: GrafanaDashboard, row: string, title: string): DataPanel {
  let current = "";
  for (const p of d.panels) {
    if (isRow(p)) current = p.title;
    else if (current.startsWith(row) && p.title === title) return p;
  }
  throw new Error(`no panel "${title}" under a row "${row}…"`);
}

/** Each row's panel titles, in order. */
function panelTitles(d: GrafanaDashboard): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let current = "";
  for (const p of d.panels) {
    if (isRow(p)) out[(current = p.title)] = [];
    else out[current].push(p.title);
  }
  return out;
}

/** Every job a selector names, read straight from the text (not through dashboardMetrics). */
function selectedJobs(expr: string): string[] {
  const exact = [...expr.matchAll(/\bjob="([^"]*)"/g)].map((m) => m[1]);
  const alternatives = [...expr.matchAll(/\bjob=~"([^"]*)"/g)].flatMap((m) => m[1].split("|"));
  return [...exact, ...alternatives];
}

describe("renderDashboard: structure", () => {
  it.each(plans)("%s: the JSON round-trips, ends with one newline and renders the same twice", (_, plan) => {
    const text = renderDashboardJson(plan);
    expect(text.endsWith("}\n")).toBe(true);
    expect(JSON.parse(text)).toEqual(renderDashboard(plan));
    expect(renderDashboardJson(plan)).toBe(text);
  });

  it.each(plans)("%s: rows follow the request path, one per tier and cluster the plan has", (_, plan) => {
    const d = renderDashboard(plan);
    const tiers = rows(d).map((r) => tierOf(r.title));
    const order = tiers.map((t) => (DASHBOARD_TIERS as readonly string[]).indexOf(t));
    expect(order).not.toContain(-1);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    const hasApp =
      plan.balancer.engine === "haproxy" ||
      plan.platform === "kubernetes" ||
      plan.jobs.some((j) => j.kind === "backend-probe");
    expect(tiers).toEqual([
      "Edge",
      ...(hasApp ? ["App"] : []),
      ...Array<string>(plan.postgres.length + plan.mysql.length).fill("Database"),
      ...Array<string>((plan.redis ? 1 : 0) + (plan.memcached ? 1 : 0)).fill("Cache"),
      ...Array<string>(plan.etcd.length).fill("Locks"),
    ]);
    // Each database row names its cluster, PostgreSQL first, in the plan's order.
    const databases = rows(d).filter((r) => tierOf(r.title) === "Database");
    expect(databases.map((r) => r.title.split(" ")[1])).toEqual([
      ...plan.postgres.map((p) => p.component),
      ...plan.mysql.map((m) => m.component),
    ]);
    for (const r of rows(d)) expect(r.collapsed).toBe(false);
  });

  it.each(plans)("%s: panels tile the 24-column grid without overlaps, each below its row", (_, plan) => {
    const d = renderDashboard(plan);
    const boxes = d.panels.map((p) => p.gridPos);
    for (const g of boxes) {
      expect(g.x).toBeGreaterThanOrEqual(0);
      expect(g.y).toBeGreaterThanOrEqual(0);
      expect(g.w).toBeGreaterThan(0);
      expect(g.h).toBeGreaterThan(0);
      expect(g.x + g.w).toBeLessThanOrEqual(GRID_COLUMNS);
    }
    const overlaps: string[] = [];
    boxes.forEach((a, i) =>
      boxes.slice(i + 1).forEach((b, k) => {
        if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
          overlaps.push(`${d.panels[i].title} / ${d.panels[i + 1 + k].title}`);
        }
      }),
    );
    expect(overlaps).toEqual([]);
    // A row spans the grid; its panels lie between it and the next row, in reading order.
    let rowY = -1;
    let last = { x: -1, y: -1 };
    for (const p of d.panels) {
      if (isRow(p)) {
        expect(p.gridPos).toMatchObject({ x: 0, w: GRID_COLUMNS, h: 1 });
        expect(p.gridPos.y).toBeGreaterThan(rowY);
        rowY = p.gridPos.y;
        last = { x: -1, y: rowY };
        continue;
      }
      expect(p.gridPos.y).toBeGreaterThan(rowY);
      expect(p.gridPos.y > last.y || p.gridPos.x > last.x).toBe(true);
      last = p.gridPos;
    }
    const nextRows = d.panels.filter(isRow).map((r) => r.gridPos.y);
    for (const p of dataPanels(d)) {
      const row = Math.max(...nextRows.filter((y) => y < p.gridPos.y));
      const next = Math.min(...nextRows.filter((y) => y > row), Infinity);
      expect(p.gridPos.y + p.gridPos.h).toBeLessThanOrEqual(next);
    }
  });

  it.each(plans)(
    "%s: every panel has a title, description, unit, the ${datasource} source and queries with refIds",
    (_, plan) => {
      const d = renderDashboard(plan);
      const ds = { type: "prometheus", uid: "${datasource}" };
      expect(dataPanels(d).length).toBeGreaterThan(0);
      for (const p of dataPanels(d)) {
        expect(["timeseries", "stat"]).toContain(p.type);
        expect(p.title.trim()).not.toBe("");
        expect(p.description.length).toBeGreaterThan(20);
        expect(p.fieldConfig.defaults.unit).toMatch(/^[a-z]+$/);
        expect(p.datasource).toEqual(ds);
        expect(p.targets.length).toBeGreaterThan(0);
        expect(p.targets.map((t) => t.refId)).toEqual(["A", "B", "C", "D"].slice(0, p.targets.length));
        for (const t of p.targets) {
          expect(t.datasource).toEqual(ds);
          expect(t.expr.trim()).not.toBe("");
          expect(t.legendFormat).not.toBe("");
        }
      }
      // Titles are unique within a row (dashboardQueries names a panel by row and title).
      const names = dashboardQueries(d).map((x) => x.panel);
      const perPanel = dataPanels(d).length;
      expect(new Set(names).size).toBe(perPanel);
    },
  );

  it.each(plans)("%s: ids are unique, the uid and title name the stack", (_, plan) => {
    const d = renderDashboard(plan);
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(d.uid).toBe(dashboardUid(plan.name));
    expect(d.title).toContain(plan.topology);
    expect(d.title).toContain(plan.name);
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.time).toEqual({ from: "now-1h", to: "now" });
    expect(d.refresh).toBe("30s");
    expect(d.templating.list).toEqual([
      expect.objectContaining({ type: "datasource", name: "datasource", query: "prometheus" }),
    ]);
  });
});

describe("renderDashboard: queries", () => {
  it.each(plans)("%s: promtool check rules accepts every panel's query (as a recording rule)", (_, plan) => {
    const queries = dashboardQueries(renderDashboard(plan));
    const file = join(tempDir("dashboard-promql"), "queries.yml");
    writeFileSync(
      file,
      stringify({
        groups: [
          {
            name: "dashboard-check",
            rules: queries.map((x, i) => ({ record: `dashboard:check:${i}`, expr: x.expr })),
          },
        ],
      }),
    );
    const r = check(binary("promtool"), ["check", "rules", file]);
    expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.code).toBe(0);
  });

  it("promtool rejects a broken query: the check can fail", () => {
    const file = join(tempDir("dashboard-promql"), "queries.yml");
    writeFileSync(
      file,
      stringify({
        groups: [{ name: "g", rules: [{ record: "dashboard:check:0", expr: "sum(rate(x[1m])" }] }],
      }),
    );
    expect(check(binary("promtool"), ["check", "rules", file]).code).not.toBe(0);
  });

  it.each(plans)("%s: every job selector names a job of the plan, and every job is shown", (_, plan) => {
    const d = renderDashboard(plan);
    const known = new Set(plan.jobs.map((j) => j.job));
    const selected = dashboardQueries(d).flatMap((x) => selectedJobs(x.expr));
    expect(selected.length).toBeGreaterThan(0);
    expect(selected.filter((j) => !known.has(j))).toEqual([]);
    // The data volumes are the alert rules' business; every other job has a panel.
    const shown = new Set(selected);
    expect(plan.jobs.filter((j) => j.kind !== "volumes" && !shown.has(j.job)).map((j) => j.job)).toEqual([]);
  });

  it.each(plans)("%s: every metric is one the exporter behind its job really emits", (_, plan) => {
    const d = renderDashboard(plan);
    const kinds = new Map(plan.jobs.map((j) => [j.job, j.kind]));
    // `a|b`: a metric read under either name; each must be one the exporter emits.
    const wrong = dashboardMetrics(plan, d).filter((m) =>
      m.job === ""
        ? !KUBERNETES_SERIES.includes(m.metric)
        : !m.metric.split("|").every((name) => EMITTED[kinds.get(m.job)!].includes(name)),
    );
    expect(wrong).toEqual([]);
    // Series only a cluster has are read on Kubernetes only.
    const cluster = dashboardMetrics(plan, d).filter((m) => m.job === "");
    if (plan.platform === "docker") expect(cluster).toEqual([]);
  });

  it("every verified metric is read by some sample dashboard (the list holds no stale names)", () => {
    const read = new Set(
      plans.flatMap(([, p]) => dashboardMetrics(p, renderDashboard(p)).flatMap((m) => m.metric.split("|"))),
    );
    const listed = [...Object.values(EMITTED).flat(), ...KUBERNETES_SERIES];
    expect(listed.filter((m) => !read.has(m))).toEqual([]);
  });
});

describe("renderDashboard: what each topology shows", () => {
  const exprs = (name: string) =>
    dashboardQueries(renderDashboard(PLANS[name]))
      .map((x) => x.expr)
      .join("\n");

  it.each<[string, string[], string[]]>([
    [
      "docker-haproxy",
      [
        'haproxy_frontend_http_responses_total{job="shop-lb-haproxy",proxy="public",code="5xx"}[60s]',
        'haproxy_server_status{job="shop-lb-haproxy",proxy="app",state="UP"}',
        'patroni_sync_standby{job="catalog-patroni"}',
        'pg_stat_database_xact_commit{job="catalog-postgres"}',
        // MariaDB's column names or MySQL 8.4's, as the rules read them.
        '(mysql_slave_status_seconds_behind_master{job="orders-0-mysqld"} or mysql_slave_status_seconds_behind_source{job="orders-0-mysqld"})',
        '(mysql_slave_status_slave_io_running{job="orders-0-mysqld"} or mysql_slave_status_replica_io_running{job="orders-0-mysqld"})',
        'redis_sentinel_master_status{job="cache-sentinel"}',
        'probe_ssl_earliest_cert_expiry{job="shop-lb-edge-probe"}',
        'etcd_server_has_leader{job="locks-etcd"}',
        // Each router's write proxy, and its client sessions without the stats listener's.
        'haproxy_backend_active_servers{job="catalog-router",proxy="primary"} + haproxy_backend_backup_servers{job="catalog-router",proxy="primary"}',
        'haproxy_backend_backup_servers{job="orders-0-router",proxy="rw"}',
        'haproxy_backend_active_servers{job="cache-router",proxy="redis"}',
        'haproxy_frontend_current_sessions{job="cache-router",proxy!="stats"}',
      ],
      [
        "nginx_",
        "wsrep",
        "memcached_",
        "kube_",
        "backend-probe",
        'haproxy_backend_backup_servers{job="shop-lb-haproxy"',
      ],
    ],
    [
      "kubernetes-nginx",
      [
        'kube_deployment_status_replicas_available{namespace="shop-prod",deployment="shop-app"}',
        'nginx_http_requests_total{job="shop-lb-nginx"}[120s]',
        'mysql_global_status_wsrep_cluster_size{job="orders-0-mysqld"}',
        'mysql_global_status_wsrep_local_state{job="orders-1-mysqld"}',
        'probe_success{job="shop-lb-edge-probe"}',
        'haproxy_backend_active_servers{job="orders-1-router",proxy="rw"}',
      ],
      // Redis's router is in the plan but not scraped.
      [
        'job="shop-lb-haproxy"',
        'job="cache-router"',
        "patroni_",
        "pg_",
        "mysql_slave_status",
        "memcached_",
        "backend-probe",
      ],
    ],
    [
      "docker-nginx",
      [
        'probe_success{job="blog-lb-backend-probe"}',
        'probe_duration_seconds{job="blog-lb-backend-probe"}',
        'memcached_commands_total{job="pages-memcached",command="get",status="hit"}',
        'patroni_xlog_replayed_location{job="blog-patroni"}',
        'haproxy_backend_active_servers{job="blog-router",proxy="primary"}',
      ],
      [
        "kube_",
        "patroni_sync_standby",
        "probe_ssl_earliest_cert_expiry",
        "redis_",
        "mysql_",
        'job="blog-lb-haproxy"',
      ],
    ],
    [
      "docker-haproxy-memcached",
      [
        'haproxy_backend_backup_servers{job="pages-lb-haproxy",proxy="app"}',
        'memcached_up{job="pages-memcached"}',
      ],
      ["patroni_", "pg_", "mysql_", "redis_", "etcd_", "probe_"],
    ],
    [
      "kubernetes-haproxy",
      ['haproxy_backend_active_servers{job="shop-lb-haproxy",proxy="app"}', 'redis_up{job="cache-redis"}'],
      ["redis_sentinel_", "kube_", "nginx_"],
    ],
  ])("%s", (name, present, absent) => {
    const text = exprs(name);
    for (const s of present) expect(text).toContain(s);
    for (const s of absent) expect(text).not.toContain(s);
  });

  it("a tier without its job has no panels, and no empty row is left", () => {
    // GIVEN the blog stack without its backend probes (nginx on Docker then knows nothing of the app servers)
    const plan = PLANS["docker-nginx"];
    const d = renderDashboard({ ...plan, jobs: plan.jobs.filter((j) => j.kind !== "backend-probe") });
    // THEN the app row is gone, and every row still has a panel
    expect(rows(d).map((r) => tierOf(r.title))).not.toContain("App");
    d.panels.forEach((p, i) => {
      if (isRow(p)) expect(d.panels[i + 1]?.type).not.toBe("row");
    });
  });

  it("thresholds and descriptions follow the plan's settings and alert thresholds", () => {
    const d = renderDashboard(haproxyDocker);
    expect(panel(d, "Database: catalog", "Replication lag").fieldConfig.defaults.thresholds.steps).toEqual([
      { color: "green", value: null },
      { color: "red", value: 1_048_576 },
    ]);
    expect(panel(d, "Edge", "5xx ratio").fieldConfig.defaults.thresholds.steps[1]).toEqual({
      color: "red",
      value: 0.05,
    });
    expect(panel(d, "Edge", "Edge certificate expires in").fieldConfig.defaults.thresholds.steps[1]).toEqual({
      color: "orange",
      value: 14 * 86400,
    });
    expect(panel(d, "Database: orders-0", "Replica lag").fieldConfig.defaults.thresholds.steps[1].value).toBe(
      30,
    );
    // One etcd member: its quorum is itself, so there is no orange step.
    expect(panel(d, "Locks", "Members up").fieldConfig.defaults.thresholds.steps).toEqual([
      { color: "red", value: null },
      { color: "green", value: 1 },
    ]);
    const k8s = renderDashboard(nginxKubernetes);
    expect(
      panel(k8s, "Database: orders-1", "Galera cluster size").fieldConfig.defaults.thresholds.steps,
    ).toEqual([
      { color: "red", value: null },
      { color: "orange", value: 2 },
      { color: "green", value: 3 },
    ]);
    expect(panel(k8s, "Edge", "Edge certificate expires in").description).toContain("21 days");
    expect(panel(k8s, "App", "App pods ready").fieldConfig.defaults.thresholds.steps.at(-1)).toEqual({
      color: "green",
      value: 4,
    });
    // The rate window is four scrapes, at least a minute.
    expect(panel(k8s, "Edge", "Requests per second").targets[0].expr).toContain("[120s]");
    const blog = renderDashboard(PLANS["docker-nginx"]);
    expect(panel(blog, "Edge", "Edge probes succeeding").targets[0].expr).toContain("[60s]");
  });
});

describe("dashboardUid", () => {
  it("is stable and the same the dashboard carries", () => {
    expect(dashboardUid("shop-dev")).toBe(dashboardUid("shop-dev"));
    expect(renderDashboard(haproxyDocker).uid).toBe(dashboardUid(haproxyDocker.name));
    expect(renderDashboard({ ...haproxyDocker, topology: "other" }).uid).toBe(
      dashboardUid(haproxyDocker.name),
    );
  });

  it.each([["shop-dev"], ["Shop Dev!"], ["ünïcode-stack"], ["x".repeat(200)], [""], ["---"], ["a_b.c/d"]])(
    "%j: at most 40 characters of [a-z0-9-]",
    (name) => {
      expect(dashboardUid(name)).toMatch(/^ha-[a-z0-9-]+[a-z0-9]$/);
      expect(dashboardUid(name).length).toBeLessThanOrEqual(40);
      expect(dashboardUid(name)).not.toContain("--");
    },
  );

  it("differs between names, even ones that slug alike or share a long prefix", () => {
    const names = [
      "shop-dev",
      "shop-prod",
      "Shop-Dev",
      "shop_dev",
      "shop dev",
      `${"a".repeat(60)}-1`,
      `${"a".repeat(60)}-2`,
      ...Object.values(PLANS).map((p) => p.name),
    ];
    const unique = [...new Set(names)];
    expect(new Set(unique.map(dashboardUid)).size).toBe(unique.length);
  });
});

describe("dashboardMetrics", () => {
  /** The docker-haproxy dashboard with its panels replaced by one reading `exprs`. */
  function withQueries(exprs: string[]): GrafanaDashboard {
    const d = renderDashboard(haproxyDocker);
    const p = dataPanels(d)[0];
    return {
      ...d,
      panels: [
        {
          ...p,
          title: "Probe",
          targets: exprs.map((expr, i) => ({ ...p.targets[0], refId: String.fromCharCode(65 + i), expr })),
        },
      ],
    };
  }

  it("lists job= once, expands job=~ alternatives, leaves out up, gives cluster series no job", () => {
    const d = withQueries([
      'sum(up{job="locks-etcd"}) + sum(redis_up{job=~"cache-redis|cache-sentinel"})',
      'kube_deployment_status_replicas_available{namespace="shop-dev"} + on () etcd_server_has_leader{job="locks-etcd"}',
      'rate(etcd_server_has_leader{job="locks-etcd"}[1m])',
    ]);
    expect(dashboardMetrics(haproxyDocker, d)).toEqual([
      { metric: "etcd_server_has_leader", job: "locks-etcd", panel: " / Probe" },
      { metric: "kube_deployment_status_replicas_available", job: "", panel: " / Probe" },
      { metric: "redis_up", job: "cache-redis", panel: " / Probe" },
      { metric: "redis_up", job: "cache-sentinel", panel: " / Probe" },
    ]);
  });

  it("lists a metric read under either of two names once, as a|b (one of them must exist)", () => {
    const d = withQueries([
      'max by (instance) (mysql_slave_status_seconds_behind_master{job="orders-0-mysqld"} or mysql_slave_status_seconds_behind_source{job="orders-0-mysqld"}) > on () group_left () mysql_up{job="orders-0-mysqld"}',
    ]);
    expect(dashboardMetrics(haproxyDocker, d)).toEqual([
      {
        metric: "mysql_slave_status_seconds_behind_master|mysql_slave_status_seconds_behind_source",
        job: "orders-0-mysqld",
        panel: " / Probe",
      },
      { metric: "mysql_up", job: "orders-0-mysqld", panel: " / Probe" },
    ]);
  });

  it("refuses a metric read without a job (it would mix stacks)", () => {
    expect(() => dashboardMetrics(haproxyDocker, withQueries(['sum(redis_up{instance="x"})']))).toThrow(
      'dashboardMetrics (shop-dev): panel " / Probe" reads redis_up without a job selector',
    );
  });

  it('on the sample dashboards: sorted, one entry per metric and job, kube_* only with job ""', () => {
    for (const [, plan] of plans) {
      const ms = dashboardMetrics(plan, renderDashboard(plan));
      const keys = ms.map((m) => `${m.metric} ${m.job}`);
      expect(keys).toEqual([...new Set(keys)].sort((a, b) => a.localeCompare(b)));
      expect(ms.filter((m) => m.job === "").every((m) => /^kube(let)?_/.test(m.metric))).toBe(true);
      expect(ms.map((m) => m.metric)).not.toContain("up");
    }
  });
});

describe("golden", () => {
  it("docker-haproxy: the whole dashboard (golden), with its rows and key queries", () => {
    const text = renderDashboardJson(haproxyDocker);
    expectGolden("dashboard-docker-haproxy.json", text);
    const d = JSON.parse(text) as GrafanaDashboard;
    expect(d.uid).toBe(dashboardUid("shop-dev"));
    expect(d.uid).toMatch(/^ha-shop-dev-[0-9a-f]{8}$/);
    expect(d.title).toBe("HA backend: ecommerce (shop-dev)");
    expect(rows(d).map((r) => r.title)).toEqual([
      "Edge: shop-lb (HAProxy)",
      "App: shop (2 servers)",
      "Database: catalog (PostgreSQL, Patroni)",
      "Database: orders-0 (MySQL, replication)",
      "Cache: cache (Redis, Sentinel)",
      "Locks: locks (etcd)",
    ]);
    expect(panel(d, "Edge", "5xx ratio").targets[0].expr).toBe(
      'sum(rate(haproxy_frontend_http_responses_total{job="shop-lb-haproxy",proxy="public",code="5xx"}[60s])) / sum(rate(haproxy_frontend_http_requests_total{job="shop-lb-haproxy",proxy="public"}[60s]))',
    );
    expect(panel(d, "Database: catalog", "Replication lag").targets[0].expr).toBe(
      'scalar(max(patroni_xlog_location{job="catalog-patroni"})) - (patroni_xlog_replayed_location{job="catalog-patroni"} and on (instance) (patroni_replica{job="catalog-patroni"} == 1))',
    );
    expect(panel(d, "Database: catalog", "Connections").targets.map((t) => t.expr)).toEqual([
      'sum by (instance) (pg_stat_activity_count{job="catalog-postgres"})',
      'max(pg_settings_max_connections{job="catalog-postgres"})',
    ]);
    expect(panel(d, "Database: catalog", "Role").fieldConfig.defaults.mappings[0].options["1"].text).toBe(
      "leader",
    );
    expect(panel(d, "Database: catalog", "Router: write servers up").targets[0].expr).toBe(
      'max by (instance) (haproxy_backend_active_servers{job="catalog-router",proxy="primary"} + haproxy_backend_backup_servers{job="catalog-router",proxy="primary"})',
    );
    expect(panel(d, "Database: catalog", "Router: write servers up").description).toContain("(13 s)");
    expect(panel(d, "Database: orders-0", "Replica lag").targets[0].expr).toBe(
      'max by (instance) (mysql_slave_status_seconds_behind_master{job="orders-0-mysqld"} or mysql_slave_status_seconds_behind_source{job="orders-0-mysqld"})',
    );
    expect(panel(d, "App", "App servers up").type).toBe("stat");
    expect(panel(d, "App", "Sessions per second per server").fieldConfig.defaults.unit).toBe("ops");
    expect(panelTitles(d)).toEqual({
      "Edge: shop-lb (HAProxy)": [
        "Balancer replicas up",
        "Requests per second",
        "5xx ratio",
        "Edge probes succeeding",
        "Edge certificate expires in",
      ],
      "App: shop (2 servers)": [
        "App servers up",
        "Server state",
        "Sessions per second per server",
        "Response time per server",
        "5xx per second per server",
      ],
      "Database: catalog (PostgreSQL, Patroni)": [
        "Role",
        "Timeline",
        "Replication lag",
        "Synchronous standby",
        "Commits per second",
        "Connections",
        "Router: write servers up",
        "Router: client sessions",
      ],
      "Database: orders-0 (MySQL, replication)": [
        "Servers up",
        "Replication threads",
        "Replica lag",
        "Queries per second",
        "Connections",
        "Router: write servers up",
        "Router: client sessions",
      ],
      "Cache: cache (Redis, Sentinel)": [
        "Members up",
        "Replicas of the primary",
        "Commands per second",
        "Connected clients",
        "Memory used",
        "Sentinels: primary OK",
        "Sentinels: replicas and Sentinels OK",
        "Primary address (Sentinels)",
        "Router: write servers up",
        "Router: client sessions",
      ],
      "Locks: locks (etcd)": [
        "Members up",
        "Has leader",
        "Leader changes",
        "Proposals committed per second",
        "Database size",
      ],
    });
  });
});
