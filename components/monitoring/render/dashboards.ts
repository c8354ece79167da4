import { createHash } from "node:crypto";
import { compareStrings } from "../../validation";
import * as g from "../../render-guard";
import { jobName, type ExporterKind, type MonitoringPlan, type RouterPlan } from "./plan";
import { ALERT_DEFAULTS } from "./rules";

/**
 * One Grafana dashboard per stack, rendered from the same {@link MonitoringPlan} as the alert rules
 * and the scrape config, so its panels select exactly the jobs Prometheus scrapes. Rows follow a
 * request's path: edge → app → databases → caches → locks. A panel appears only when the plan
 * scrapes the job it reads, so no panel can be empty by construction. Every metric was read off
 * the real exporter (Debian 12's HAProxy 2.6, nginx exporter 0.11, blackbox exporter,
 * postgres_exporter 0.11, mysqld_exporter 0.14, redis_exporter 1.45, Patroni 3.0.2, etcd 3.4)
 * or, for memcached_exporter 0.15, its source. Plain data in, a dashboard model out; no Pulumi
 * import, deterministic.
 */

/** The dashboard JSON model version this renderer writes (Grafana 10.4/11 read it as is). */
export const DASHBOARD_SCHEMA_VERSION = 39;

/** Grafana's grid is 24 columns wide. */
export const GRID_COLUMNS = 24;

/** The rows' tiers in request-path order; each row title starts with `<tier>: `. */
export const DASHBOARD_TIERS = ["Edge", "App", "Database", "Cache", "Locks"] as const;
export type DashboardTier = (typeof DASHBOARD_TIERS)[number];

/** The data source every panel queries: the dashboard's `datasource` variable. */
export interface DatasourceRef {
  readonly type: "prometheus";
  readonly uid: string;
}

export interface GridPos {
  readonly h: number;
  readonly w: number;
  readonly x: number;
  readonly y: number;
}

export interface PanelTarget {
  readonly refId: string;
  readonly datasource: DatasourceRef;
  readonly expr: string;
  readonly legendFormat: string;
  readonly range: boolean;
  readonly instant: boolean;
}

export interface ThresholdStep {
  readonly color: string;
  /** `null` is the base step (everything below the first value). */
  readonly value: number | null;
}

/** A value mapping: a state's number shown as a word (Grafana's `type: "value"` mapping). */
export interface ValueMapping {
  readonly type: "value";
  readonly options: Readonly<
    Record<string, { readonly text: string; readonly color: string; readonly index: number }>
  >;
}

export interface FieldDefaults {
  readonly unit: string;
  readonly min?: number;
  readonly decimals?: number;
  readonly color: { readonly mode: "thresholds" | "palette-classic" };
  readonly thresholds: { readonly mode: "absolute"; readonly steps: readonly ThresholdStep[] };
  readonly mappings: readonly ValueMapping[];
}

export interface TimeseriesOptions {
  readonly legend: {
    readonly displayMode: "list";
    readonly placement: "bottom";
    readonly showLegend: true;
    readonly calcs: readonly string[];
  };
  readonly tooltip: { readonly mode: "multi"; readonly sort: "none" };
}

export interface StatOptions {
  readonly reduceOptions: {
    readonly calcs: readonly ["lastNotNull"];
    readonly fields: "";
    readonly values: false;
  };
  readonly colorMode: "value";
  readonly graphMode: "none" | "area";
  readonly justifyMode: "auto";
  readonly orientation: "auto";
  /** `name`: only the series' legend is shown (a role, an address), not its value. */
  readonly textMode: "auto" | "name";
}

export interface RowPanel {
  readonly type: "row";
  readonly id: number;
  readonly title: string;
  readonly collapsed: false;
  readonly gridPos: GridPos;
  readonly panels: readonly [];
}

export interface DataPanel {
  readonly type: "timeseries" | "stat";
  readonly id: number;
  readonly title: string;
  readonly description: string;
  readonly datasource: DatasourceRef;
  readonly gridPos: GridPos;
  readonly fieldConfig: { readonly defaults: FieldDefaults; readonly overrides: readonly [] };
  readonly options: TimeseriesOptions | StatOptions;
  readonly targets: readonly PanelTarget[];
}

export type DashboardPanel = RowPanel | DataPanel;

/** The `datasource` template variable: any Prometheus data source of the Grafana it is loaded in. */
export interface DatasourceVariable {
  readonly type: "datasource";
  readonly name: "datasource";
  readonly label: string;
  readonly query: "prometheus";
  readonly current: Readonly<Record<string, never>>;
  readonly hide: 0;
  readonly refresh: 1;
  readonly regex: "";
  readonly options: readonly [];
}

export interface GrafanaDashboard {
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly timezone: "browser";
  readonly editable: boolean;
  /** 1: a shared crosshair, so a moment lines up across the tiers. */
  readonly graphTooltip: 1;
  readonly schemaVersion: number;
  readonly version: 1;
  readonly time: { readonly from: "now-1h"; readonly to: "now" };
  readonly refresh: "30s";
  readonly templating: { readonly list: readonly DatasourceVariable[] };
  readonly annotations: { readonly list: readonly [] };
  readonly links: readonly [];
  readonly panels: readonly DashboardPanel[];
}

/** The dashboard of a stack: one row per tier and cluster, in request-path order. */
export function renderDashboard(plan: MonitoringPlan): GrafanaDashboard {
  g.wholeNumber("renderDashboard", "scrapeIntervalSeconds", plan.scrapeIntervalSeconds, 1, 3600);
  const b = new PanelBuilder(plan);
  const rows: RowSpec[] = [
    edgeRow(b),
    appRow(b),
    ...plan.postgres.map((pg) => postgresRow(b, pg)),
    ...plan.mysql.map((my) => mysqlRow(b, my)),
    ...(plan.redis ? [redisRow(b, plan.redis)] : []),
    ...(plan.memcached ? [memcachedRow(b, plan.memcached)] : []),
    ...plan.etcd.map((e) => etcdRow(b, e)),
  ];
  return {
    uid: dashboardUid(plan.name),
    title: `HA backend: ${plan.topology} (${plan.name})`,
    description: `Generated by ha-backend from the monitoring plan of ${plan.name} (components/monitoring/render/dashboards.ts); edits are overwritten on the next deployment.`,
    tags: ["ha-backend", plan.topology, plan.platform],
    timezone: "browser",
    editable: false,
    graphTooltip: 1,
    schemaVersion: DASHBOARD_SCHEMA_VERSION,
    version: 1,
    time: { from: "now-1h", to: "now" },
    refresh: "30s",
    templating: {
      list: [
        {
          type: "datasource",
          name: "datasource",
          label: "Data source",
          query: "prometheus",
          current: {},
          hide: 0,
          refresh: 1,
          regex: "",
          options: [],
        },
      ],
    },
    annotations: { list: [] },
    links: [],
    panels: layout(rows.filter((r) => r.panels.length > 0)),
  };
}

/** The dashboard as Grafana imports it (a file provisioned on Docker, a ConfigMap on Kubernetes). */
export function renderDashboardJson(plan: MonitoringPlan): string {
  return `${JSON.stringify(renderDashboard(plan), null, 2)}\n`;
}

/** Longest uid Grafana accepts. */
const UID_MAX = 40;
const UID_HASH_CHARS = 8;

/**
 * A uid stable across deployments (links and bookmarks survive) and distinct per stack: the name
 * as a slug, cut to fit, plus a hash of the whole name, so two names that slug alike still differ.
 */
export function dashboardUid(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  const hash = createHash("sha256").update(name).digest("hex").slice(0, UID_HASH_CHARS);
  const room = UID_MAX - "ha-".length - 1 - UID_HASH_CHARS;
  const head = slug.slice(0, room).replace(/-+$/, "");
  return ["ha", head, hash].filter((s) => s !== "").join("-");
}

/** Every panel's queries, each named `<row title> / <panel title>`. */
export function dashboardQueries(d: GrafanaDashboard): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  let row = "";
  for (const p of d.panels) {
    if (p.type === "row") {
      row = p.title;
      continue;
    }
    for (const t of p.targets) out.push({ panel: `${row} / ${p.title}`, expr: t.expr });
  }
  return out;
}

/** Series that only a Kubernetes cluster's own scrapes carry (kube-state-metrics, the kubelet). */
const KUBERNETES_ONLY = /^(kube|kubelet)_/;

/**
 * The metrics the dashboard reads, each with the job it selects: `job="x"` as is, `job=~"a|b"`
 * once per alternative, a metric read under either of two names (`(a{job="x"} or b{job="x"})`)
 * as `a|b`; `up` is left out (Prometheus's own), and the Kubernetes-only series
 * (`kube_*`, `kubelet_*`) come with job `""`, so a live test without a cluster can skip them.
 * `plan` is the one the dashboard was rendered from (the signature matches `ruleMetrics`).
 * Throws on any other metric read without a job: a panel must never mix two stacks' series.
 */
export function dashboardMetrics(
  plan: MonitoringPlan,
  d: GrafanaDashboard,
): { metric: string; job: string; panel: string }[] {
  const out = new Map<string, { metric: string; job: string; panel: string }>();
  const add = (metric: string, job: string, panel: string) => {
    if (!out.has(`${metric} ${job}`)) out.set(`${metric} ${job}`, { metric, job, panel });
  };
  for (const { panel, expr } of dashboardQueries(d)) {
    // One of two names (a column the exporter names per server version) must exist: `a|b`.
    for (const m of expr.matchAll(EITHER)) add(`${m[1]}|${m[3]}`, m[2], panel);
    for (const s of selectors(expr.replace(EITHER, ""))) {
      if (s.metric === "up") continue;
      if (KUBERNETES_ONLY.test(s.metric)) {
        add(s.metric, "", panel);
        continue;
      }
      if (s.jobs.length === 0) {
        throw new Error(
          `dashboardMetrics (${plan.name}): panel "${panel}" reads ${s.metric} without a job selector, but every metric outside Kubernetes' own must select one of the plan's jobs.`,
        );
      }
      for (const job of s.jobs) add(s.metric, job, panel);
    }
  }
  return [...out.values()].sort((a, b) => compareStrings(`${a.metric} ${a.job}`, `${b.metric} ${b.job}`));
}

/**
 * `(a{job="j"} or b{job="j"})`: a metric under either of two names, as {@link PanelBuilder.either}
 * writes it (and the live tests' `ruleMetrics` reads the rules' own).
 */
const EITHER = /\(([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="([^"]+)"\} or ([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="\2"\}\)/g;

/** Every `metric{...}` in a PromQL expression with the jobs its `job=` or `job=~` matcher names. */
function selectors(expr: string): { metric: string; jobs: string[] }[] {
  const out: { metric: string; jobs: string[] }[] = [];
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    const jobs: string[] = [];
    for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      if (l[1] !== "job") continue;
      const value = l[3].replace(/\\(.)/g, "$1");
      if (l[2] === "=") jobs.push(value);
      // Job names are DNS labels: an alternative is a name once its regex escapes are undone.
      if (l[2] === "=~") jobs.push(...value.split("|").map((a) => a.replace(/\\(.)/g, "$1")));
    }
    out.push({ metric: m[1], jobs });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Panels

interface PanelSpec {
  readonly kind: "timeseries" | "stat";
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly { readonly expr: string; readonly legend: string }[];
  readonly min?: number;
  readonly decimals?: number;
  readonly steps?: readonly ThresholdStep[];
  readonly mappings?: readonly ValueMapping[];
  readonly textMode?: StatOptions["textMode"];
}

interface RowSpec {
  readonly title: string;
  readonly panels: readonly PanelSpec[];
}

/** Selectors and windows from the plan, shared by every row. */
class PanelBuilder {
  /** The rate window: four scrapes (a rate needs two samples; four survive a missed scrape). */
  readonly window: string;

  constructor(readonly plan: MonitoringPlan) {
    this.window = `${Math.max(60, 4 * plan.scrapeIntervalSeconds)}s`;
  }

  /** Whether the plan scrapes the component's job of `kind` (a panel without one stays out). */
  has(component: string, kind: ExporterKind): boolean {
    return this.plan.jobs.some((j) => j.job === jobName(component, kind));
  }

  /** How many targets the job has (the replicas a "members up" panel expects). */
  targets(component: string, kind: ExporterKind): number {
    return this.plan.jobs.find((j) => j.job === jobName(component, kind))?.targets.length ?? 0;
  }

  /** `metric{job="<component>-<kind>",extra}`. */
  m(metric: string, component: string, kind: ExporterKind, extra = ""): string {
    return `${metric}{job=${q(jobName(component, kind))}${extra === "" ? "" : `,${extra}`}}`;
  }

  /** `rate(metric{...}[window])`. */
  rate(metric: string, component: string, kind: ExporterKind, extra = ""): string {
    return `rate(${this.m(metric, component, kind, extra)}[${this.window}])`;
  }

  /**
   * `(a{job=…} or b{job=…})`: a metric the exporter names after the server's column, which
   * one server version renamed (MySQL 8.4's replica_* for MariaDB's slave_*), as the rules read it.
   */
  either(metric: string, renamed: string, component: string, kind: ExporterKind): string {
    return `(${this.m(metric, component, kind)} or ${this.m(renamed, component, kind)})`;
  }
}

/** A PromQL string literal. */
function q(s: string): string {
  return JSON.stringify(s);
}

const PANEL_HEIGHT = 8;
/** A stat is a glance (4 per line), a time series a trend (wider, so its legend fits). */
const PANEL_WIDTH = { stat: 6, timeseries: 9 } as const;

/** Rows and their panels top to bottom, each panel left to right, wrapping at 24 columns. */
function layout(rows: readonly RowSpec[]): DashboardPanel[] {
  const out: DashboardPanel[] = [];
  let id = 0;
  let y = 0;
  for (const row of rows) {
    out.push({
      type: "row",
      id: ++id,
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: GRID_COLUMNS, x: 0, y },
      panels: [],
    });
    y += 1;
    let x = 0;
    for (const p of row.panels) {
      const w = PANEL_WIDTH[p.kind];
      if (x + w > GRID_COLUMNS) {
        x = 0;
        y += PANEL_HEIGHT;
      }
      out.push(dataPanel(p, ++id, { h: PANEL_HEIGHT, w, x, y }));
      x += w;
    }
    y += PANEL_HEIGHT;
  }
  return out;
}

const DATASOURCE: DatasourceRef = { type: "prometheus", uid: "${datasource}" };

function dataPanel(p: PanelSpec, id: number, gridPos: GridPos): DataPanel {
  const options: TimeseriesOptions | StatOptions =
    p.kind === "stat"
      ? {
          reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
          colorMode: "value",
          graphMode: "none",
          justifyMode: "auto",
          orientation: "auto",
          textMode: p.textMode ?? "auto",
        }
      : {
          legend: { displayMode: "list", placement: "bottom", showLegend: true, calcs: [] },
          tooltip: { mode: "multi", sort: "none" },
        };
  return {
    type: p.kind,
    id,
    title: p.title,
    description: p.description,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: {
      defaults: {
        unit: p.unit,
        ...(p.min !== undefined ? { min: p.min } : {}),
        ...(p.decimals !== undefined ? { decimals: p.decimals } : {}),
        color: { mode: p.kind === "stat" ? "thresholds" : "palette-classic" },
        thresholds: { mode: "absolute", steps: p.steps ?? [{ color: "green", value: null }] },
        mappings: p.mappings ?? [],
      },
      overrides: [],
    },
    options,
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DATASOURCE,
      expr: t.expr,
      legendFormat: t.legend,
      range: p.kind === "timeseries",
      instant: p.kind === "stat",
    })),
  };
}

/** Value mappings from a state's number to its name (and colour). */
function states(...names: readonly (readonly [number, string, string])[]): ValueMapping[] {
  return [
    {
      type: "value",
      options: Object.fromEntries(
        names.map(([v, text, color], index) => [String(v), { text, color, index }]),
      ),
    },
  ];
}

const UP_DOWN = states([1, "up", "green"], [0, "down", "red"]);

/** Red below `min`, orange up to `want`, green from `want` (orange left out when they meet). */
function atLeast(min: number, want: number): ThresholdStep[] {
  const steps: ThresholdStep[] = [{ color: "red", value: null }];
  if (min < want) steps.push({ color: "orange", value: min });
  steps.push({ color: "green", value: want });
  return steps;
}

/** Green below `limit`, red from it (a lag, a ratio, the alert's own threshold). */
function below(limit: number): ThresholdStep[] {
  return [
    { color: "green", value: null },
    { color: "red", value: limit },
  ];
}

// ---------------------------------------------------------------------------------------------
// Rows

function edgeRow(b: PanelBuilder): RowSpec {
  const plan = b.plan;
  const lb = plan.balancer.component;
  const engine = plan.balancer.engine;
  const panels: PanelSpec[] = [];
  switch (engine) {
    case "haproxy":
      if (b.has(lb, "haproxy")) {
        const pub = `proxy="public"`;
        const ratio = plan.edgeErrorRatio ?? ALERT_DEFAULTS.edgeErrorRatio;
        panels.push(
          {
            kind: "stat",
            title: "Balancer replicas up",
            description: "Balancer replicas whose HAProxy answers Prometheus's scrape of its stats listener.",
            unit: "none",
            targets: [{ expr: `sum(${b.m("up", lb, "haproxy")})`, legend: "replicas" }],
            steps: atLeast(1, b.targets(lb, "haproxy")),
          },
          {
            kind: "timeseries",
            title: "Requests per second",
            description: "HTTP requests the public frontend accepted per second, per balancer replica.",
            unit: "reqps",
            min: 0,
            targets: [
              {
                expr: `sum by (instance) (${b.rate("haproxy_frontend_http_requests_total", lb, "haproxy", pub)})`,
                legend: "{{instance}}",
              },
            ],
          },
          {
            kind: "timeseries",
            title: "5xx ratio",
            description: `Share of the public frontend's responses that were 5xx (HAProxy's own or an app server's). The EdgeHigh5xxRate alert fires above ${Math.round(ratio * 1000) / 10}%.`,
            unit: "percentunit",
            min: 0,
            steps: below(ratio),
            targets: [
              {
                expr: `sum(${b.rate("haproxy_frontend_http_responses_total", lb, "haproxy", `${pub},code="5xx"`)}) / sum(${b.rate("haproxy_frontend_http_requests_total", lb, "haproxy", pub)})`,
                legend: "5xx",
              },
            ],
          },
        );
      }
      break;
    case "nginx":
      if (b.has(lb, "nginx")) {
        panels.push(
          {
            kind: "stat",
            title: "Balancer replicas up",
            description:
              "Balancer replicas whose nginx answers its exporter's stub_status request (nginx_up).",
            unit: "none",
            targets: [{ expr: `sum(${b.m("nginx_up", lb, "nginx")})`, legend: "replicas" }],
            steps: atLeast(1, b.targets(lb, "nginx")),
          },
          {
            kind: "timeseries",
            title: "Requests per second",
            description:
              "HTTP requests nginx handled per second, per balancer replica (stub_status counts every request, the exporter's own included; nginx open source counts no response codes).",
            unit: "reqps",
            min: 0,
            targets: [
              {
                expr: `sum by (instance) (${b.rate("nginx_http_requests_total", lb, "nginx")})`,
                legend: "{{instance}}",
              },
            ],
          },
          {
            kind: "timeseries",
            title: "Active connections",
            description: "Client connections open on each balancer replica, idle keep-alive ones included.",
            unit: "short",
            min: 0,
            targets: [
              {
                expr: `sum by (instance) (${b.m("nginx_connections_active", lb, "nginx")})`,
                legend: "{{instance}}",
              },
            ],
          },
        );
      }
      break;
    default:
      return unreachable(engine);
  }
  if (b.has(lb, "edge-probe")) {
    panels.push({
      kind: "timeseries",
      title: "Edge probes succeeding",
      description:
        engine === "nginx"
          ? `Share of the blackbox exporter's requests to the public endpoint that got a 2xx, over ${b.window}: with nginx, the only view of errors at the edge (one request per scrape).`
          : `Share of the blackbox exporter's requests to the public endpoint that got a 2xx, over ${b.window}: the edge as a client sees it.`,
      unit: "percentunit",
      min: 0,
      targets: [
        {
          expr: `avg by (instance) (avg_over_time(${b.m("probe_success", lb, "edge-probe")}[${b.window}]))`,
          legend: "{{instance}}",
        },
      ],
    });
    if (plan.balancer.tls) {
      const days = plan.certificateDays ?? ALERT_DEFAULTS.certificateDays;
      panels.push({
        kind: "stat",
        title: "Edge certificate expires in",
        description: `Time until the certificate the edge serves expires. The EdgeCertificateExpiring alert fires within ${days} days.`,
        unit: "dtdurations",
        steps: atLeast(days * 86400, 2 * days * 86400),
        targets: [
          {
            expr: `min(${b.m("probe_ssl_earliest_cert_expiry", lb, "edge-probe")}) - time()`,
            legend: "expires in",
          },
        ],
      });
    }
  }
  return { title: `Edge: ${lb} (${engine === "haproxy" ? "HAProxy" : "nginx"})`, panels };
}

function appRow(b: PanelBuilder): RowSpec {
  const plan = b.plan;
  const lb = plan.balancer.component;
  const title = `App: ${plan.app.component} (${plan.app.replicas} servers)`;
  const engine = plan.balancer.engine;
  switch (engine) {
    case "haproxy":
      return { title, panels: b.has(lb, "haproxy") ? haproxyAppPanels(b) : [] };
    case "nginx":
      if (plan.platform === "kubernetes") return { title, panels: kubernetesAppPanels(b) };
      return { title, panels: b.has(lb, "backend-probe") ? probedAppPanels(b) : [] };
    default:
      return unreachable(engine);
  }
}

/** HAProxy's own view of its `app` backend: every balancer replica checks on its own, the worst counts. */
function haproxyAppPanels(b: PanelBuilder): PanelSpec[] {
  const lb = b.plan.balancer.component;
  const app = `proxy="app"`;
  const backups = b.plan.balancer.backups;
  return [
    {
      kind: "stat",
      title: "App servers up",
      description: `App servers passing HAProxy's health checks, on the balancer replica that sees the fewest (${b.plan.balancer.backends} take traffic${backups > 0 ? `, ${backups} backup` : ""}).`,
      unit: "none",
      steps: atLeast(1, b.plan.balancer.backends),
      targets: [
        { expr: `min(${b.m("haproxy_backend_active_servers", lb, "haproxy", app)})`, legend: "active" },
        ...(backups > 0
          ? [{ expr: `min(${b.m("haproxy_backend_backup_servers", lb, "haproxy", app)})`, legend: "backup" }]
          : []),
      ],
    },
    {
      kind: "stat",
      title: "Server state",
      description:
        "Each app server as HAProxy's health checks see it (DOWN if any balancer replica marks it down).",
      unit: "none",
      mappings: states([1, "UP", "green"], [0, "DOWN", "red"]),
      steps: atLeast(1, 1),
      targets: [
        {
          expr: `min by (server) (${b.m("haproxy_server_status", lb, "haproxy", `${app},state="UP"`)})`,
          legend: "{{server}}",
        },
      ],
    },
    {
      kind: "timeseries",
      title: "Sessions per second per server",
      description:
        "New sessions HAProxy sent to each app server per second, all balancer replicas together: the load balancing as it happens.",
      unit: "ops",
      min: 0,
      targets: [
        {
          expr: `sum by (server) (${b.rate("haproxy_server_sessions_total", lb, "haproxy", app)})`,
          legend: "{{server}}",
        },
      ],
    },
    {
      kind: "timeseries",
      title: "Response time per server",
      description:
        "Each app server's average response time over its last 1024 requests, on the slowest balancer replica.",
      unit: "s",
      min: 0,
      targets: [
        {
          expr: `max by (server) (${b.m("haproxy_server_response_time_average_seconds", lb, "haproxy", app)})`,
          legend: "{{server}}",
        },
      ],
    },
    {
      kind: "timeseries",
      title: "5xx per second per server",
      description:
        "5xx responses each app server returned per second: which server the edge's errors come from.",
      unit: "reqps",
      min: 0,
      targets: [
        {
          expr: `sum by (server) (${b.rate("haproxy_server_http_responses_total", lb, "haproxy", `${app},code="5xx"`)})`,
          legend: "{{server}}",
        },
      ],
    },
  ];
}

/** nginx on Docker: the blackbox exporter probes each app server's health path. */
function probedAppPanels(b: PanelBuilder): PanelSpec[] {
  const lb = b.plan.balancer.component;
  return [
    {
      kind: "stat",
      title: "App servers up",
      description:
        "Each app server's health path as the blackbox exporter sees it from the balancer's network (nginx itself keeps no per-server state).",
      unit: "none",
      mappings: UP_DOWN,
      steps: atLeast(1, 1),
      targets: [
        { expr: `max by (instance) (${b.m("probe_success", lb, "backend-probe")})`, legend: "{{instance}}" },
      ],
    },
    {
      kind: "timeseries",
      title: "Health path latency",
      description:
        "How long each app server's health path took to answer the probe (connection and response).",
      unit: "s",
      min: 0,
      targets: [
        {
          expr: `max by (instance) (${b.m("probe_duration_seconds", lb, "backend-probe")})`,
          legend: "{{instance}}",
        },
      ],
    },
  ];
}

/** nginx on Kubernetes: its upstream is the app Service, so the Deployment's readiness is the view. */
function kubernetesAppPanels(b: PanelBuilder): PanelSpec[] {
  const plan = b.plan;
  const dep = `{namespace=${q(plan.namespace ?? "")},deployment=${q(plan.app.deployment ?? plan.app.component)}}`;
  const available = `kube_deployment_status_replicas_available${dep}`;
  const unavailable = `kube_deployment_status_replicas_unavailable${dep}`;
  return [
    {
      kind: "stat",
      title: "App pods ready",
      description: `Pods of the app Deployment passing their readiness probe (of ${plan.app.replicas}), from kube-state-metrics: nginx's upstream Service sends traffic to these only.`,
      unit: "none",
      steps: atLeast(1, plan.app.replicas),
      targets: [{ expr: `sum(${available})`, legend: "ready" }],
    },
    {
      kind: "timeseries",
      title: "App pods ready and not ready",
      description:
        "Ready and not-ready pods of the app Deployment over time: a rollout or a failing probe shows as a dip.",
      unit: "short",
      min: 0,
      targets: [
        { expr: `sum(${available})`, legend: "ready" },
        { expr: `sum(${unavailable})`, legend: "not ready" },
      ],
    },
  ];
}

function postgresRow(b: PanelBuilder, pg: MonitoringPlan["postgres"][number]): RowSpec {
  const c = pg.component;
  const panels: PanelSpec[] = [];
  if (b.has(c, "patroni")) {
    const p = (metric: string) => b.m(metric, c, "patroni");
    panels.push(
      {
        kind: "stat",
        title: "Role",
        description: `Each member's role in Patroni (of ${pg.members}). No leader for longer than the failover budget (${pg.failoverBudgetSeconds} s) fires PostgresNoLeader.`,
        unit: "none",
        mappings: states([1, "leader", "blue"], [0, "replica", "green"]),
        targets: [{ expr: `max by (instance) (${p("patroni_master")})`, legend: "{{instance}}" }],
      },
      {
        kind: "timeseries",
        title: "Timeline",
        description: "PostgreSQL's timeline on each member: it rises by one at every failover or switchover.",
        unit: "none",
        decimals: 0,
        targets: [{ expr: `max by (instance) (${p("patroni_postgres_timeline")})`, legend: "{{instance}}" }],
      },
      {
        kind: "timeseries",
        title: "Replication lag",
        description: `How far each replica's replay is behind the leader's WAL position. Beyond maximum_lag_on_failover (${pg.maximumLagOnFailoverBytes} bytes) Patroni will not promote it.`,
        unit: "bytes",
        min: 0,
        steps: below(pg.maximumLagOnFailoverBytes),
        targets: [
          {
            // patroni_xlog_location is the leader's position (0 on replicas).
            expr: `scalar(max(${p("patroni_xlog_location")})) - (${p("patroni_xlog_replayed_location")} and on (instance) (${p("patroni_replica")} == 1))`,
            legend: "{{instance}}",
          },
        ],
      },
    );
    if (pg.synchronousMode) {
      panels.push({
        kind: "stat",
        title: "Synchronous standby",
        description:
          "Which replica is the synchronous standby: commits wait for it. None means commits are acknowledged by the leader alone.",
        unit: "none",
        mappings: states([1, "sync", "green"], [0, "-", "text"]),
        targets: [{ expr: `max by (instance) (${p("patroni_sync_standby")})`, legend: "{{instance}}" }],
      });
    }
  }
  if (b.has(c, "postgres")) {
    const x = (metric: string) => b.m(metric, c, "postgres");
    panels.push(
      {
        kind: "timeseries",
        title: "Commits per second",
        description:
          "Transactions committed per second on each member, all databases together (the leader takes the writes).",
        unit: "ops",
        min: 0,
        targets: [
          {
            expr: `sum by (instance) (${b.rate("pg_stat_database_xact_commit", c, "postgres")})`,
            legend: "{{instance}}",
          },
        ],
      },
      {
        kind: "timeseries",
        title: "Connections",
        description:
          "Backends connected to each member against max_connections: near the line, new clients are refused.",
        unit: "short",
        min: 0,
        targets: [
          { expr: `sum by (instance) (${x("pg_stat_activity_count")})`, legend: "{{instance}}" },
          { expr: `max(${x("pg_settings_max_connections")})`, legend: "max_connections" },
        ],
      },
    );
  }
  panels.push(...routerPanels(b, c, pg.router, pg.failoverBudgetSeconds));
  return { title: `Database: ${c} (PostgreSQL, Patroni)`, panels };
}

function mysqlRow(b: PanelBuilder, my: MonitoringPlan["mysql"][number]): RowSpec {
  const c = my.component;
  const title = `Database: ${c} (MySQL, ${my.mode === "galera" ? "Galera" : "replication"})`;
  const router = routerPanels(b, c, my.router, my.failoverBudgetSeconds);
  if (!b.has(c, "mysqld")) return { title, panels: router };
  const m = (metric: string) => b.m(metric, c, "mysqld");
  const panels: PanelSpec[] = [
    {
      kind: "stat",
      title: "Servers up",
      description: `Whether each member's exporter can log in to its server (of ${my.members}).`,
      unit: "none",
      mappings: UP_DOWN,
      steps: atLeast(1, 1),
      targets: [{ expr: `max by (instance) (${m("mysql_up")})`, legend: "{{instance}}" }],
    },
  ];
  const mode = my.mode;
  switch (mode) {
    case "galera": {
      const quorum = Math.floor(my.members / 2) + 1;
      panels.push(
        {
          kind: "stat",
          title: "Galera cluster size",
          description: `Nodes in the cluster, as the node that sees the fewest counts them (of ${my.members}; below ${quorum} the cluster has lost its quorum).`,
          unit: "none",
          steps: atLeast(quorum, my.members),
          targets: [{ expr: `min(${m("mysql_global_status_wsrep_cluster_size")})`, legend: "nodes" }],
        },
        {
          kind: "stat",
          title: "Galera node state",
          description: "Each node's wsrep_local_state: only Synced nodes serve consistent reads and writes.",
          unit: "none",
          mappings: states(
            [1, "Joining", "orange"],
            [2, "Donor/Desynced", "orange"],
            [3, "Joined", "orange"],
            [4, "Synced", "green"],
          ),
          targets: [
            {
              expr: `max by (instance) (${m("mysql_global_status_wsrep_local_state")})`,
              legend: "{{instance}}",
            },
          ],
        },
      );
      break;
    }
    case "replication": {
      const lag = b.plan.mysqlLagSeconds ?? ALERT_DEFAULTS.mysqlLagSeconds;
      /** A replica-status column under MariaDB's (and MySQL 8.0's) name or MySQL 8.4's. */
      const replica = (old: string, renamed: string) =>
        b.either(`mysql_slave_status_${old}`, `mysql_slave_status_${renamed}`, c, "mysqld");
      panels.push(
        {
          kind: "stat",
          title: "Replication threads",
          description:
            "Each replica's IO (fetch) and SQL (apply) threads; the primary has none. A stopped thread fires MysqlReplicationStopped.",
          unit: "none",
          mappings: states([1, "running", "green"], [0, "stopped", "red"]),
          targets: [
            {
              expr: `min by (instance) ${replica("slave_io_running", "replica_io_running")}`,
              legend: "{{instance}} IO",
            },
            {
              expr: `min by (instance) ${replica("slave_sql_running", "replica_sql_running")}`,
              legend: "{{instance}} SQL",
            },
          ],
        },
        {
          kind: "timeseries",
          title: "Replica lag",
          description: `Seconds each replica applies changes after the primary. MysqlReplicationLagHigh fires above ${lag} s.`,
          unit: "s",
          min: 0,
          steps: below(lag),
          targets: [
            {
              expr: `max by (instance) ${replica("seconds_behind_master", "seconds_behind_source")}`,
              legend: "{{instance}}",
            },
          ],
        },
      );
      break;
    }
    default:
      return unreachable(mode);
  }
  panels.push(
    {
      kind: "timeseries",
      title: "Queries per second",
      description:
        "Statements each member executed per second (Questions plus those run inside stored programs).",
      unit: "ops",
      min: 0,
      targets: [
        {
          expr: `sum by (instance) (${b.rate("mysql_global_status_queries", c, "mysqld")})`,
          legend: "{{instance}}",
        },
      ],
    },
    {
      kind: "timeseries",
      title: "Connections",
      description:
        "Client threads connected to each member against max_connections: near the line, new clients are refused.",
      unit: "short",
      min: 0,
      targets: [
        { expr: `max by (instance) (${m("mysql_global_status_threads_connected")})`, legend: "{{instance}}" },
        { expr: `max(${m("mysql_global_variables_max_connections")})`, legend: "max_connections" },
      ],
    },
    ...router,
  );
  return { title, panels };
}

function redisRow(b: PanelBuilder, redis: NonNullable<MonitoringPlan["redis"]>): RowSpec {
  const c = redis.component;
  const panels: PanelSpec[] = [];
  const sentinel = redis.sentinels > 0 && b.has(c, "sentinel");
  if (b.has(c, "redis")) {
    const r = (metric: string, extra = "") => b.m(metric, c, "redis", extra);
    panels.push({
      kind: "stat",
      title: "Members up",
      description: `Whether each member's exporter reaches its Redis (of ${1 + redis.replicas}).`,
      unit: "none",
      mappings: UP_DOWN,
      steps: atLeast(1, 1),
      targets: [{ expr: `max by (instance) (${r("redis_up")})`, legend: "{{instance}}" }],
    });
    if (redis.replicas > 0) {
      panels.push({
        kind: "stat",
        title: "Replicas of the primary",
        description: `Replicas connected to the member that is primary now (of ${redis.replicas}), labelled with the primary's name.`,
        unit: "none",
        steps: atLeast(1, redis.replicas),
        targets: [
          {
            expr: `max by (instance) (${r("redis_connected_slaves")} and on (instance) ${r("redis_instance_info", `role="master"`)})`,
            legend: "{{instance}}",
          },
        ],
      });
    }
    panels.push(
      {
        kind: "timeseries",
        title: "Commands per second",
        description:
          "Commands each member processed per second (replicas count the primary's writes they apply).",
        unit: "ops",
        min: 0,
        targets: [
          {
            expr: `sum by (instance) (${b.rate("redis_commands_processed_total", c, "redis")})`,
            legend: "{{instance}}",
          },
        ],
      },
      {
        kind: "timeseries",
        title: "Connected clients",
        description: "Client connections on each member (the exporter's, Sentinels' and replicas' included).",
        unit: "short",
        min: 0,
        targets: [{ expr: `max by (instance) (${r("redis_connected_clients")})`, legend: "{{instance}}" }],
      },
      {
        kind: "timeseries",
        title: "Memory used",
        description: `Memory Redis allocated on each member, against maxmemory where one is set (${redis.mode === "cache" ? "a cache evicts keys there" : "a store refuses writes there"}).`,
        unit: "bytes",
        min: 0,
        targets: [
          { expr: `max by (instance) (${r("redis_memory_used_bytes")})`, legend: "{{instance}}" },
          {
            expr: `max by (instance) (${r("redis_memory_max_bytes")}) > 0`,
            legend: "{{instance}} maxmemory",
          },
        ],
      },
    );
  }
  if (sentinel) {
    const s = (metric: string) => b.m(metric, c, "sentinel");
    panels.push(
      {
        kind: "stat",
        title: "Sentinels: primary OK",
        description: `Whether every Sentinel (of ${redis.sentinels}) sees the primary as reachable; down means a failover is due or under way.`,
        unit: "none",
        mappings: states([1, "ok", "green"], [0, "down", "red"]),
        steps: atLeast(1, 1),
        targets: [{ expr: `min(${s("redis_sentinel_master_status")})`, legend: "primary" }],
      },
      {
        kind: "timeseries",
        title: "Sentinels: replicas and Sentinels OK",
        description: `Replicas (of ${redis.replicas}) and Sentinels (of ${redis.sentinels}) the Sentinels see healthy, on the Sentinel that sees the fewest: a failover needs a healthy replica and a Sentinel majority.`,
        unit: "short",
        min: 0,
        decimals: 0,
        targets: [
          { expr: `min(${s("redis_sentinel_master_ok_slaves")})`, legend: "replicas OK" },
          { expr: `min(${s("redis_sentinel_master_ok_sentinels")})`, legend: "Sentinels OK" },
        ],
      },
      {
        kind: "timeseries",
        title: "Primary address (Sentinels)",
        description:
          "The primary's address as Sentinels report it, with how many report it: a new address is a failover.",
        unit: "short",
        min: 0,
        decimals: 0,
        targets: [
          {
            expr: `count by (master_address) (${s("redis_sentinel_master_status")})`,
            legend: "{{master_address}}",
          },
        ],
      },
    );
  }
  panels.push(...routerPanels(b, c, redis.router, redis.failoverBudgetSeconds));
  return { title: `Cache: ${c} (Redis${sentinel ? ", Sentinel" : ""})`, panels };
}

/**
 * A data tier's HAProxy router (the stats port's exporter): whether each router replica has a
 * server for the writes, and the client sessions it holds per port. Only with the router's job.
 */
function routerPanels(
  b: PanelBuilder,
  c: string,
  router: RouterPlan | undefined,
  failoverBudgetSeconds: number,
): PanelSpec[] {
  if (router === undefined || !b.has(c, "router")) return [];
  const w = `proxy=${q(router.writeProxy)}`;
  return [
    {
      kind: "stat",
      title: "Router: write servers up",
      description: `Servers each router replica may send writes to (its ${router.writeProxy} proxy's UP servers, standing-by backups included). None for longer than the failover budget (${failoverBudgetSeconds} s) fires RouterNoWriter.`,
      unit: "none",
      decimals: 0,
      steps: atLeast(1, 1),
      targets: [
        {
          expr: `max by (instance) (${b.m("haproxy_backend_active_servers", c, "router", w)} + ${b.m("haproxy_backend_backup_servers", c, "router", w)})`,
          legend: "{{instance}}",
        },
      ],
    },
    {
      kind: "timeseries",
      title: "Router: client sessions",
      description:
        "Client connections open on each router replica, per port (HAProxy frontend); a failover cuts the old writer's sessions and clients reconnect.",
      unit: "short",
      min: 0,
      decimals: 0,
      targets: [
        {
          expr: `sum by (instance, proxy) (${b.m("haproxy_frontend_current_sessions", c, "router", `proxy!="stats"`)})`,
          legend: "{{instance}} {{proxy}}",
        },
      ],
    },
  ];
}

function memcachedRow(b: PanelBuilder, mc: NonNullable<MonitoringPlan["memcached"]>): RowSpec {
  const c = mc.component;
  const title = `Cache: ${c} (memcached)`;
  if (!b.has(c, "memcached")) return { title, panels: [] };
  const m = (metric: string) => b.m(metric, c, "memcached");
  const get = (status: string) =>
    b.rate(
      "memcached_commands_total",
      c,
      "memcached",
      `command="get"${status === "" ? "" : `,status=${q(status)}`}`,
    );
  return {
    title,
    panels: [
      {
        kind: "stat",
        title: "Members up",
        description: `Whether each member's exporter reaches its memcached (of ${mc.members}); a member down loses its share of the keys.`,
        unit: "none",
        mappings: UP_DOWN,
        steps: atLeast(1, 1),
        targets: [{ expr: `max by (instance) (${m("memcached_up")})`, legend: "{{instance}}" }],
      },
      {
        kind: "timeseries",
        title: "Get hit ratio",
        description:
          "Share of gets that found their key, all members together: a drop means a cold or too small cache.",
        unit: "percentunit",
        min: 0,
        targets: [{ expr: `sum(${get("hit")}) / sum(${get("")})`, legend: "hits" }],
      },
      {
        kind: "timeseries",
        title: "Commands per second",
        description: "Commands per second by command, all members together.",
        unit: "ops",
        min: 0,
        targets: [
          {
            expr: `sum by (command) (${b.rate("memcached_commands_total", c, "memcached")})`,
            legend: "{{command}}",
          },
        ],
      },
      {
        kind: "timeseries",
        title: "Memory used",
        description:
          "Bytes of items each member stores, against its memory limit (-m): at the limit it evicts.",
        unit: "bytes",
        min: 0,
        targets: [
          { expr: `max by (instance) (${m("memcached_current_bytes")})`, legend: "{{instance}}" },
          { expr: `max by (instance) (${m("memcached_limit_bytes")})`, legend: "{{instance}} limit" },
        ],
      },
      {
        kind: "timeseries",
        title: "Items and evictions",
        description: "Items each member holds, and valid items it evicted per second to make room.",
        unit: "short",
        min: 0,
        targets: [
          { expr: `max by (instance) (${m("memcached_current_items")})`, legend: "{{instance}} items" },
          {
            expr: `sum by (instance) (${b.rate("memcached_items_evicted_total", c, "memcached")})`,
            legend: "{{instance}} evictions/s",
          },
        ],
      },
    ],
  };
}

function etcdRow(b: PanelBuilder, e: MonitoringPlan["etcd"][number]): RowSpec {
  const c = e.component;
  const title = `Locks: ${c} (etcd)`;
  if (!b.has(c, "etcd")) return { title, panels: [] };
  const m = (metric: string) => b.m(metric, c, "etcd");
  const quorum = Math.floor(e.members / 2) + 1;
  return {
    title,
    panels: [
      {
        kind: "stat",
        title: "Members up",
        description: `etcd members answering scrapes (of ${e.members}; ${quorum} keep the quorum).`,
        unit: "none",
        steps: atLeast(quorum, e.members),
        targets: [{ expr: `sum(${m("up")})`, legend: "members" }],
      },
      {
        kind: "stat",
        title: "Has leader",
        description:
          "Whether each member sees a leader: without one it refuses writes, and locks and Patroni's leader key cannot be taken or renewed through it.",
        unit: "none",
        mappings: states([1, "yes", "green"], [0, "no", "red"]),
        steps: atLeast(1, 1),
        targets: [{ expr: `max by (instance) (${m("etcd_server_has_leader")})`, legend: "{{instance}}" }],
      },
      {
        kind: "timeseries",
        title: "Leader changes",
        description: `Leader elections seen over ${b.window}, by the member that saw the most: more than rarely means members time out on each other.`,
        unit: "none",
        min: 0,
        decimals: 0,
        targets: [
          {
            expr: `max(increase(${m("etcd_server_leader_changes_seen_total")}[${b.window}]))`,
            legend: "leader changes",
          },
        ],
      },
      {
        kind: "timeseries",
        title: "Proposals committed per second",
        description:
          "Raft proposals each member committed per second: the write rate of locks, leases and Patroni's keys.",
        unit: "ops",
        min: 0,
        targets: [
          {
            expr: `sum by (instance) (${b.rate("etcd_server_proposals_committed_total", c, "etcd")})`,
            legend: "{{instance}}",
          },
        ],
      },
      {
        kind: "timeseries",
        title: "Database size",
        description:
          "Size of each member's backend database file (it grows until compaction and defragmentation).",
        unit: "bytes",
        min: 0,
        targets: [
          { expr: `max by (instance) (${m("etcd_mvcc_db_total_size_in_bytes")})`, legend: "{{instance}}" },
        ],
      },
    ],
  };
}

function unreachable(v: never): never {
  throw new Error(`renderDashboard: unhandled variant ${JSON.stringify(v)}`);
}
