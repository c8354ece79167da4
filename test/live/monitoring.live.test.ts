import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "pg";
import type { BalancerBackend } from "../../components/balancer/render/spec";
import { PG_ROUTER_WRITE_PROXY } from "../../components/database/postgres-cluster";
import { failoverBudgetSeconds, PATRONI_FAST_TIMINGS } from "../../components/database/render/patroni";
import { renderPostgresExporter } from "../../components/monitoring/render/exporters";
import { jobName, type MonitoringPlan } from "../../components/monitoring/render/plan";
import { dashboardMetrics, renderDashboard } from "../../components/monitoring/render/dashboards";
import { renderAlertRules } from "../../components/monitoring/render/rules";
import {
  BALANCER_START,
  balancerCommand,
  FAST_CHECKS,
  loopbackSpec,
  markedDownWithin,
  startBackend,
} from "../support/balancer";
import {
  binary,
  httpGet,
  KILL_MS,
  ProcessGroup,
  SLOW_MACHINE_FACTOR,
  tempDir,
  waitFor,
} from "../support/daemons";
import { CLUSTER_START_TIMEOUT_MS, LivePatroniCluster, ROUTER_CHECK, START_CAP_MS } from "../support/patroni";
import {
  alerts,
  firing,
  missingSeries,
  query,
  queryRange,
  ruleMetrics,
  startPrometheus,
  targets,
  type LivePrometheus,
} from "../support/prometheus";

/**
 * The generated monitoring against real daemons: three Patroni members on etcd behind the
 * generated router, postgres_exporter beside each (logged in as the pg_monitor role the generated
 * post-bootstrap script creates), the generated HAProxy balancer in front of two app servers, and
 * Debian's Prometheus scraping them all with the generated prometheus.yml and alert rules. A
 * leader and an app server are killed with -9; the alerts must fire, and the times are printed.
 * The write throughput Prometheus recorded around the leader kill is plotted to a PNG.
 */
const TIMINGS = PATRONI_FAST_TIMINGS;
const SCRAPE_S = 1;
const BUDGET_S = failoverBudgetSeconds(TIMINGS, ROUTER_CHECK);
const NET = 150;
const LB_HOST = `127.0.0.${NET + 10}`;
const PROM_HOST = `127.0.0.${NET + 15}`;
const PROM_PORT = 19090;
const MONITOR = { user: "metrics", password: "monitor-pass-1" };
/** Where the chart goes: docs/ with `npm run chart:failover`, else the test's directory. */
const CHART_OUT = process.env.HA_BACKEND_CHART_OUT;
/** The write load before the kill and after writes resumed: what the chart shows around them. */
const LOAD_MARGIN_MS = 15_000;
/** Rules and scrapes: a sample reaches a rule within a scrape and an evaluation (each 1 s). */
const PIPELINE_MS = 2 * SCRAPE_S * 1000;

describe("monitoring: exporters, Prometheus and the generated alert rules (live)", () => {
  const dir = tempDir("monitoring");
  const procs = new ProcessGroup();
  const cluster = new LivePatroniCluster({
    name: "monitoring-pg",
    net: NET,
    timings: TIMINGS,
    maximumLagOnFailover: 1_048_576,
    monitor: MONITOR,
  });
  const apps: BalancerBackend[] = [0, 1].map((i) => ({
    name: `shop-${i}`,
    host: `127.0.0.${NET + 11 + i}`,
    port: 18081,
    weight: 1,
    backup: false,
  }));
  const lbDir = join(dir, "lb");
  const lbSpec = loopbackSpec(LB_HOST, lbDir, apps, FAST_CHECKS);
  const backends = new Map<string, ReturnType<ProcessGroup["start"]>>();

  const plan: MonitoringPlan = {
    name: "live",
    topology: "ecommerce",
    platform: "docker",
    scrapeIntervalSeconds: SCRAPE_S,
    jobs: [
      {
        job: jobName("orders", "patroni"),
        component: "orders",
        kind: "patroni",
        targets: cluster.members.map((m) => ({ instance: m.name, address: `${m.host}:8008` })),
      },
      {
        job: jobName("orders", "postgres"),
        component: "orders",
        kind: "postgres",
        targets: cluster.members.map((m) => ({ instance: m.name, address: `${m.host}:9187` })),
      },
      {
        job: jobName("orders", "router"),
        component: "orders",
        kind: "router",
        targets: [{ instance: "orders-router-0", address: `${cluster.router.host}:${cluster.router.stats}` }],
      },
      {
        job: jobName("orders-etcd", "etcd"),
        component: "orders-etcd",
        kind: "etcd",
        targets: [{ instance: "orders-etcd-0", address: `${cluster.etcdHost}:2379` }],
      },
      {
        job: jobName("shop-lb", "haproxy"),
        component: "shop-lb",
        kind: "haproxy",
        targets: [{ instance: "shop-lb-0", address: `${LB_HOST}:${lbSpec.statsPort}` }],
      },
    ],
    balancer: { component: "shop-lb", engine: "haproxy", backends: 2, backups: 0, tls: false },
    app: { component: "shop", replicas: 2 },
    postgres: [
      {
        component: "orders",
        members: 3,
        synchronousMode: true,
        loopWaitSeconds: TIMINGS.loopWait,
        maximumLagOnFailoverBytes: 1_048_576,
        failoverBudgetSeconds: BUDGET_S,
        router: { writeProxy: PG_ROUTER_WRITE_PROXY },
      },
    ],
    mysql: [],
    etcd: [{ component: "orders-etcd", members: 1 }],
    volumes: false,
  };
  const groups = renderAlertRules(plan);
  let prom: LivePrometheus;

  /** Polls Prometheus until `alertname` fires with `labels`; returns when (epoch ms). */
  async function firingAt(
    alertname: string,
    labels: Record<string, string>,
    withinMs: number,
    because: string,
  ): Promise<number> {
    return (await firing(prom, alertname, labels, { withinMs, because })).firedAt;
  }

  beforeAll(
    async () => {
      await cluster.start();
      // The exporters beside each member, as the platform runs them (password from a file).
      const passFile = join(dir, "monitor-password");
      writeFileSync(passFile, MONITOR.password);
      chmodSync(passFile, 0o600);
      for (const m of cluster.members) {
        const e = renderPostgresExporter({
          pgHost: m.host,
          pgPort: 5432,
          user: MONITOR.user,
          passwordFile: passFile,
          listenAddress: m.host,
        });
        procs.start("env", [
          ...Object.entries(e.env).map(([k, v]) => `${k}=${v}`),
          binary("prometheus-postgres-exporter"),
          ...e.args,
        ]);
      }
      mkdirSync(lbDir, { recursive: true });
      for (const a of apps) await startBackend(procs, a, join(dir, "posts.log"), backends);
      procs.start(...balancerCommand("haproxy", lbSpec, lbDir, binary("haproxy")));
      await waitFor(
        "haproxy stats",
        async () => (await httpGet(LB_HOST, lbSpec.statsPort, "/lb-health")).status === 200,
        BALANCER_START,
      );
      prom = await startPrometheus(procs, dir, plan, PROM_HOST, PROM_PORT, START_CAP_MS);
    },
    CLUSTER_START_TIMEOUT_MS + 3 * START_CAP_MS,
  );

  afterAll(
    async () => {
      await procs.stopAll(join(dir, "logs"));
      await cluster.stop();
    },
    3 * KILL_MS + 30_000,
  );

  it("every scrape target is up", async () => {
    const expected = plan.jobs.reduce((n, j) => n + j.targets.length, 0);
    await waitFor(
      "every target up",
      async () => {
        const t = await targets(prom);
        return t.length === expected && t.every((x) => x.health === "up");
      },
      {
        withinMs: SLOW_MACHINE_FACTOR * 10 * SCRAPE_S * 1000,
        because: `the first scrapes (every ${SCRAPE_S} s) of daemons already answering; postgres_exporter logs in on its first scrape`,
      },
    );
    const t = await targets(prom);
    console.log(`monitoring: ${t.length} targets up: ${[...new Set(t.map((x) => x.job))].sort().join(", ")}`);
    expect(t.filter((x) => x.health !== "up")).toEqual([]);
  }, 60_000);

  it("every metric a generated rule reads exists in the scraped data, for the job it selects", async () => {
    const wanted = ruleMetrics(plan, groups);
    expect(wanted.length).toBeGreaterThan(10);
    const missing = await missingSeries(prom, wanted, (w) => w.alert);
    console.log(`monitoring: ${wanted.length - missing.length} of ${wanted.length} rule metrics scraped`);
    expect(missing).toEqual([]);
    // The exporter logged in as the pg_monitor role: replication statistics are visible to it.
    const pgUp = await query(prom, `pg_up{job="orders-postgres"}`);
    expect(pgUp.map((s) => s.value)).toEqual([1, 1, 1]);
  }, 60_000);

  it("every metric a dashboard panel reads exists in the scraped data, for the job it selects", async () => {
    const wanted = dashboardMetrics(plan, renderDashboard(plan)).filter((w) => w.job !== "");
    expect(wanted.length).toBeGreaterThan(10);
    const missing = await missingSeries(prom, wanted, (w) => w.panel);
    console.log(
      `monitoring: ${wanted.length - missing.length} of ${wanted.length} dashboard metrics scraped`,
    );
    expect(missing).toEqual([]);
  }, 60_000);

  it("a healthy stack fires no alert", async () => {
    // Long enough for every rule with a `for:` of three scrapes to have fired if it were going to.
    await new Promise((r) => setTimeout(r, 5 * SCRAPE_S * 1000));
    const active = await alerts(prom);
    expect(active.filter((a) => a.state === "firing").map((a) => a.labels.alertname)).toEqual([]);
  }, 30_000);

  it("kill -9 of the PostgreSQL leader fires PostgresLeaderChanged; the write throughput is charted", async () => {
    const leader = await cluster.leader({ withinMs: 10_000, because: "the leader is up after the start" });
    const rw = await cluster.appConnect(cluster.router.host, cluster.router.rw);
    await rw.query("CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, note TEXT)");
    await rw.end();
    // The alerts are watched while the load runs, so the times are the alerts', not the load's.
    const bound = SLOW_MACHINE_FACTOR * (BUDGET_S * 1000 + PIPELINE_MS);
    const changed = firingAt(
      "PostgresLeaderChanged",
      { ha_component: "orders" },
      LOAD_MARGIN_MS + bound,
      `the kill after ${LOAD_MARGIN_MS} ms of load, then a new leader within the failover budget (${BUDGET_S} s), its timeline scraped and the rule evaluated (${PIPELINE_MS} ms); ${SLOW_MACHINE_FACTOR}x that`,
    );
    const targetDown = firingAt(
      "ScrapeTargetDown",
      { instance: leader.name, job: "orders-patroni" },
      LOAD_MARGIN_MS + SLOW_MACHINE_FACTOR * (3 * SCRAPE_S * 1000 + PIPELINE_MS),
      `the kill after ${LOAD_MARGIN_MS} ms of load, then three failed scrapes (the rule's for:) and an evaluation, ${SLOW_MACHINE_FACTOR}x`,
    );
    const run = await loadThroughKill(cluster, leader.name);
    const [firedAt, downAt] = await Promise.all([changed, targetDown]);
    expect(run.killedAt).toBeGreaterThan(0);
    expect(run.resumedAt).toBeGreaterThan(0);
    const activeAt = (await alerts(prom)).find(
      (a) => a.labels.alertname === "PostgresLeaderChanged",
    )?.activeAt;
    console.log(
      `monitoring: leader ${leader.name} killed; writes resumed after ${run.resumedAt - run.killedAt} ms; ` +
        `PostgresLeaderChanged firing ${firedAt - run.killedAt} ms after the kill (Prometheus's activeAt: ` +
        `${activeAt ? Date.parse(activeAt) - run.killedAt : "?"} ms), ScrapeTargetDown for the dead member ` +
        `${downAt - run.killedAt} ms after; ${run.acked} writes acknowledged, ${run.failed} failed`,
    );
    expect(firedAt).toBeGreaterThan(run.killedAt);
    // The chart: Prometheus's record of the commits on the orders database, around the kill.
    const start = Math.floor(run.startedAt / 1000);
    const end = Math.ceil(run.endedAt / 1000);
    const series = await queryRange(
      prom,
      `sum(rate(pg_stat_database_xact_commit{job="orders-postgres",datname="orders"}[3s]))`,
      start,
      end,
      1,
    );
    expect(series).toHaveLength(1);
    const points = series[0].values;
    const before = points.filter(([t]) => t * 1000 < run.killedAt - 3000).map(([, v]) => v);
    const after = points.filter(([t]) => t * 1000 > run.resumedAt + 5000).map(([, v]) => v);
    // Prometheus saw the load before the kill and after the recovery.
    expect(Math.min(...before.slice(2))).toBeGreaterThan(0);
    expect(Math.max(...after)).toBeGreaterThan(0);
    const data = join(dir, "failover-throughput.json");
    writeFileSync(
      data,
      JSON.stringify({
        title: `Writes through the router around a kill -9 of the PostgreSQL leader (Patroni ttl ${TIMINGS.ttl} s, loop_wait ${TIMINGS.loopWait} s)`,
        points,
        killedAt: run.killedAt / 1000,
        resumedAt: run.resumedAt / 1000,
        alertAt: firedAt / 1000,
      }),
    );
    const png = CHART_OUT ?? join(dir, "failover-throughput.png");
    const plot = spawnSync(
      "/usr/bin/python3",
      [join(__dirname, "..", "..", "scripts", "plot-failover.py"), data, png],
      {
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(plot.stderr).toBe("");
    expect(plot.status).toBe(0);
    expect(existsSync(png)).toBe(true);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe("PNG");
    console.log(`monitoring: chart of ${points.length} points written to ${png}`);
    // The router's write proxy was empty from the kill until the new leader passed its checks,
    // within the budget: RouterNoWriter (for: the budget + 3 scrapes) must not have fired. Wait
    // out its `for:` after the kill, then it must be quiet and the proxy must have its server.
    const routerRule = groups.flatMap((g) => g.rules).find((r) => r.alert === "RouterNoWriter")!;
    const quietUntil = run.killedAt + Number(routerRule.for.replace("s", "")) * 1000 + 2 * PIPELINE_MS;
    await new Promise((r) => setTimeout(r, Math.max(0, quietUntil - Date.now())));
    const routerAlerts = (await alerts(prom)).filter(
      (a) => a.labels.alertname === "RouterNoWriter" && a.state === "firing",
    );
    expect(routerAlerts).toEqual([]);
    const writers = await query(
      prom,
      `haproxy_backend_active_servers{job="orders-router",proxy="${PG_ROUTER_WRITE_PROXY}"}`,
    );
    expect(writers.map((w) => w.value)).toEqual([1]);
  }, 240_000);

  it("kill -9 of an app server fires BalancerBackendDown for it", async () => {
    const killed = apps[1];
    const killedAt = Date.now();
    await procs.kill(backends.get(killed.name)!, "SIGKILL");
    const down = markedDownWithin("haproxy", lbSpec);
    const rule = groups.flatMap((g) => g.rules).find((r) => r.alert === "BalancerBackendDown")!;
    const forMs = Number(rule.for.replace("s", "")) * 1000;
    const firedAt = await firingAt(
      "BalancerBackendDown",
      { server: killed.name },
      down.withinMs + SLOW_MACHINE_FACTOR * (forMs + PIPELINE_MS),
      `${down.because}; then the rule's for: ${forMs} ms and a scrape and evaluation (${PIPELINE_MS} ms), ${SLOW_MACHINE_FACTOR}x`,
    );
    console.log(
      `monitoring: app server ${killed.name} killed; BalancerBackendDown firing (as polled) ${firedAt - killedAt} ms after (for: ${rule.for})`,
    );
    // The other server stays up: no "no backend" alert.
    const active = await alerts(prom);
    expect(active.filter((a) => a.labels.alertname === "BalancerNoBackendUp")).toEqual([]);
  }, 120_000);
});

interface LoadRun {
  readonly startedAt: number;
  readonly killedAt: number;
  readonly resumedAt: number;
  readonly endedAt: number;
  readonly acked: number;
  readonly failed: number;
}

/**
 * Inserts through the router's rw port for LOAD_MARGIN_MS, kills `leaderName` with -9, goes on
 * (reconnecting after each failure) until writes resumed and LOAD_MARGIN_MS more passed. Bounded
 * in ids and in time.
 */
async function loadThroughKill(cluster: LivePatroniCluster, leaderName: string): Promise<LoadRun> {
  const capMs = 2 * LOAD_MARGIN_MS + SLOW_MACHINE_FACTOR * BUDGET_S * 1000 + 30_000;
  const startedAt = Date.now();
  let killedAt = 0;
  let resumedAt = 0;
  let acked = 0;
  let failed = 0;
  let conn: Client | undefined;
  for (let id = 1_000_000; id < 3_000_000; id++) {
    const now = Date.now();
    if (now - startedAt > capMs) break;
    if (resumedAt !== 0 && now - resumedAt > LOAD_MARGIN_MS) break;
    if (killedAt === 0 && now - startedAt > LOAD_MARGIN_MS) {
      killedAt = Date.now();
      await cluster.killMember(leaderName);
    }
    try {
      conn ??= await cluster.appConnect(cluster.router.host, cluster.router.rw);
      await conn.query("INSERT INTO orders VALUES ($1, 'load')", [id]);
      acked++;
      if (killedAt !== 0 && resumedAt === 0) resumedAt = Date.now();
    } catch {
      failed++;
      await conn?.end().catch(() => undefined);
      conn = undefined;
      await new Promise((r) => setTimeout(r, 100)); // reconnect back-off, within the loop's bounds
    }
  }
  await conn?.end().catch(() => undefined);
  return { startedAt, killedAt, resumedAt, endedAt: Date.now(), acked, failed };
}
