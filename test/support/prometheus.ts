/**
 * Debian's Prometheus for live tests: started on a loopback address with the generated
 * prometheus.yml and rule file, and asked over its HTTP API (targets, instant and range queries,
 * alerts). Also: which metrics each generated rule reads, for the "every metric exists" check.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import type { MonitoringPlan } from "../../components/monitoring/render/plan";
import { renderPrometheusConfig } from "../../components/monitoring/render/prometheus";
import {
  renderAlertRules,
  renderRuleFile,
  UP_METRIC,
  type RuleGroup,
} from "../../components/monitoring/render/rules";
import { binary, httpGet, waitFor, type ProcessGroup, type WaitBound } from "./daemons";

export interface LivePrometheus {
  readonly host: string;
  readonly port: number;
  readonly process: ChildProcess;
}

/**
 * Writes the plan's prometheus.yml and rules into `<parent>/prometheus` and starts Prometheus on
 * them; resolves once it is ready (bounded by `startCapMs`: no timer governs its start).
 */
export async function startPrometheus(
  procs: ProcessGroup,
  parent: string,
  plan: MonitoringPlan,
  host: string,
  port: number,
  startCapMs: number,
): Promise<LivePrometheus> {
  const dir = join(parent, "prometheus");
  mkdirSync(dir, { recursive: true });
  const rules = join(dir, "rules.yml");
  writeFileSync(rules, renderRuleFile(renderAlertRules(plan)));
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    renderPrometheusConfig({
      scrapeIntervalSeconds: plan.scrapeIntervalSeconds,
      jobs: plan.jobs,
      ruleFiles: [rules],
      alertmanagers: [],
    }),
  );
  const process = procs.start(binary("prometheus"), [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=${host}:${port}`,
    "--storage.tsdb.retention.time=1h",
  ]);
  await waitFor("prometheus ready", async () => (await httpGet(host, port, "/-/ready")).status === 200, {
    withinMs: startCapMs,
    because: "Prometheus's start (TSDB, rule files): no timer governs it; a cap for a loaded machine",
  });
  return { host, port, process };
}

async function api<T>(p: LivePrometheus, path: string): Promise<T> {
  const r = await httpGet(p.host, p.port, path, 5_000);
  if (r.status !== 200) throw new Error(`Prometheus ${path}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  const body = JSON.parse(r.body) as { status: string; data: T };
  if (body.status !== "success") throw new Error(`Prometheus ${path}: ${r.body.slice(0, 200)}`);
  return body.data;
}

export interface TargetHealth {
  readonly job: string;
  readonly instance: string;
  readonly health: string;
  readonly lastError: string;
}

/** Every active target and its health. */
export async function targets(p: LivePrometheus): Promise<TargetHealth[]> {
  const data = await api<{
    activeTargets: { labels: Record<string, string>; health: string; lastError: string }[];
  }>(p, "/api/v1/targets?state=active");
  return data.activeTargets.map((t) => ({
    job: t.labels.job,
    instance: t.labels.instance,
    health: t.health,
    lastError: t.lastError,
  }));
}

export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export async function query(p: LivePrometheus, promql: string): Promise<Sample[]> {
  const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    p,
    `/api/v1/query?query=${encodeURIComponent(promql)}`,
  );
  return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** A range query: each series's `[unix seconds, value]` points. */
export async function queryRange(
  p: LivePrometheus,
  promql: string,
  startS: number,
  endS: number,
  stepS: number,
): Promise<{ metric: Record<string, string>; values: [number, number][] }[]> {
  const data = await api<{ result: { metric: Record<string, string>; values: [number, string][] }[] }>(
    p,
    `/api/v1/query_range?query=${encodeURIComponent(promql)}&start=${startS}&end=${endS}&step=${stepS}`,
  );
  return data.result.map((r) => ({ metric: r.metric, values: r.values.map(([t, v]) => [t, Number(v)]) }));
}

export interface ActiveAlert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
  readonly activeAt: string;
}

export async function alerts(p: LivePrometheus): Promise<ActiveAlert[]> {
  return (await api<{ alerts: ActiveAlert[] }>(p, "/api/v1/alerts")).alerts;
}

/**
 * The metrics a rule group reads, each with the job it selects (`job="…"`, or every job of the
 * plan whose kind reports that `<x>_up` for the `__name__` regex of ExporterCannotReachService;
 * `up` and the Kubernetes-only series excepted): what the live test expects to find scraped.
 */
export function ruleMetrics(
  plan: MonitoringPlan,
  groups: readonly RuleGroup[],
): { metric: string; job: string; alert: string }[] {
  const out = new Map<string, { metric: string; job: string; alert: string }>();
  const add = (metric: string, job: string, alert: string) =>
    out.set(`${metric} ${job}`, { metric, job, alert });
  for (const rule of groups.flatMap((g) => g.rules)) {
    // `(a{job="j"} or b{job="j"})`: one of two names (a column the exporter names per server
    // version) must exist, as `a|b`.
    const either =
      /\(([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="([^"]+)"\} or ([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="\2"\}\)/g;
    for (const m of rule.expr.matchAll(either)) add(`${m[1]}|${m[3]}`, m[2], rule.alert);
    const rest = rule.expr.replace(either, "");
    for (const m of rest.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="([^"]+)"/g)) add(m[1], m[2], rule.alert);
    const byName = /\{__name__=~"([^"]+)",job=~"([^"]+)"\}/.exec(rule.expr);
    if (byName) {
      for (const j of plan.jobs) {
        const up = UP_METRIC[j.kind];
        if (up !== undefined && byName[1].split("|").includes(up)) add(up, j.job, rule.alert);
      }
    }
  }
  return [...out.values()]
    .filter((x) => x.metric !== "up")
    .sort((a, b) => `${a.metric} ${a.job}`.localeCompare(`${b.metric} ${b.job}`));
}

/** The `metric{job="…"}` pairs of `wanted` that have no series in Prometheus now, each with `why`. */
export async function missingSeries<W extends { readonly metric: string; readonly job: string }>(
  p: LivePrometheus,
  wanted: readonly W[],
  why: (w: W) => string,
): Promise<string[]> {
  const missing: string[] = [];
  for (const w of wanted) {
    const series = w.metric.includes("|")
      ? `{__name__=~"${w.metric}",job="${w.job}"}`
      : `${w.metric}{job="${w.job}"}`;
    if ((await query(p, `count(${series})`)).length === 0) {
      missing.push(`${w.metric}{job="${w.job}"} (${why(w)})`);
    }
  }
  return missing;
}

/**
 * Polls Prometheus until `alertname` fires with `labels` (bounded); returns when it was seen
 * firing (epoch ms) and Prometheus's `activeAt` (when its condition first held).
 */
export async function firing(
  p: LivePrometheus,
  alertname: string,
  labels: Record<string, string>,
  bound: WaitBound,
): Promise<{ firedAt: number; activeAt: number }> {
  const matches = async () =>
    (await alerts(p)).find(
      (a) =>
        a.state === "firing" &&
        a.labels.alertname === alertname &&
        Object.entries(labels).every(([k, v]) => a.labels[k] === v),
    );
  await waitFor(`${alertname} firing`, async () => (await matches()) !== undefined, {
    intervalMs: 250,
    ...bound,
  });
  const firedAt = Date.now();
  return { firedAt, activeAt: Date.parse((await matches())?.activeAt ?? "") };
}
