import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import Redis from "ioredis";
import { createConnection, type Connection } from "mysql2/promise";
import type { BalancerBackend } from "../../components/balancer/render/spec";
import {
  REDIS_MONITOR_USER,
  SENTINEL_FAST_TIMINGS,
  sentinelBudgetSeconds,
  type RedisCredentials,
} from "../../components/cache/render/redis";
import { galeraFailoverBudgetSeconds, GALERA_TUNED_TIMINGS } from "../../components/database/mysql-cluster";
import {
  MONITOR_MAX_CONNECTIONS,
  renderReplicaSql,
  type MysqlCredentials,
} from "../../components/database/render/mysql";
import {
  EXPORTER_PORTS,
  renderMysqldExporter,
  renderMysqldExporterCnf,
  renderNginxExporter,
  renderRedisExporter,
  renderRedisPasswordFile,
  renderVolumeExporter,
  renderBlackboxExporter,
} from "../../components/monitoring/render/exporters";
import { jobName, type MonitoringPlan } from "../../components/monitoring/render/plan";
import { renderBlackboxConfig } from "../../components/monitoring/render/prometheus";
import { dashboardMetrics, renderDashboard } from "../../components/monitoring/render/dashboards";
import { renderAlertRules, type AlertName } from "../../components/monitoring/render/rules";
import {
  BACKEND_START,
  BALANCER_START,
  balancerCommand,
  FAST_CHECKS,
  loopbackSpec,
  startBackend,
} from "../support/balancer";
import {
  binary,
  httpGet,
  KILL_MS,
  ProcessGroup,
  selfSignedCert,
  SLOW_MACHINE_FACTOR,
  tempDir,
  waitFor,
  type WaitBound,
} from "../support/daemons";
import { secretFile, startExporter, startVolumeExporter } from "../support/exporters";
import {
  BOOTSTRAPPED,
  bootstrapGalera,
  CONNECT_TIMEOUT_MS,
  connectRetryMs,
  INSTALL_DB_TIMEOUT_MS,
  JOINED,
  MARIADBD_START_UP,
  MariaNode,
  renderTestFiles,
  ROUTER_CHECK,
  SQL_TIMEOUT_MS,
  testCredentials,
  testSpec,
} from "../support/mariadb";
import {
  alerts,
  query,
  firing,
  missingSeries,
  ruleMetrics,
  startPrometheus,
  targets,
  type LivePrometheus,
} from "../support/prometheus";
import {
  startRedisMember,
  withRedis,
  type RedisClientOptions,
  type RedisMember,
  type RedisStoreSet,
} from "../support/redis";

/**
 * The generated exporters against real daemons, each logged in as the least-privilege monitor
 * user the generated init SQL, redis.conf and sentinel.conf create: a MariaDB Galera cluster of
 * three and a primary/replica pair with Debian's mysqld_exporter beside every member, a Redis
 * primary with two replicas and three Sentinels with redis_exporter beside each, the generated
 * nginx balancer (TLS on) in front of two app servers with nginx-prometheus-exporter, the
 * blackbox exporter probing the app servers and the edge, and node_exporter on the data
 * directories (bind-mounted read-only in a private mount namespace). Debian's Prometheus scrapes
 * them with the generated prometheus.yml and alert rules. Then one fault per tier; the alerts must
 * fire, and the times are printed.
 */
const NET = 170;
const ip = (n: number) => `127.0.0.${NET + n}`;
const SCRAPE_S = 1;
/** Rules and scrapes: a sample reaches a rule within a scrape and an evaluation (each 1 s). */
const PIPELINE_MS = 2 * SCRAPE_S * 1000;
const MONITOR = { user: "metrics", password: "metrics-pass-1" };
/** A client address that is loopback but not 127.0.0.1: the monitor user must not log in from it. */
const FOREIGN_SOURCE = ip(20);

// Galera: the component's tuned failure detection; rsync state transfers (no 10 s donor sleep).
const GALERA_TIMINGS = GALERA_TUNED_TIMINGS;
const GALERA_BUDGET_S = galeraFailoverBudgetSeconds(GALERA_TIMINGS, ROUTER_CHECK);
/** A dead node leaves the survivors' view at most evs.inactive_timeout after its last message, checked every evs.inactive_check_period. */
const GALERA_EVICTION_MS = GALERA_TIMINGS.inactiveTimeoutMs + GALERA_TIMINGS.inactiveCheckPeriodMs;

// Redis: the component's Sentinel timings. Sentinel's own periods are fixed in sentinel.c.
const SENTINEL_TIMINGS = SENTINEL_FAST_TIMINGS;
const SENTINEL_BUDGET_S = sentinelBudgetSeconds(SENTINEL_TIMINGS);
const SENTINEL_HELLO_MS = 2000;
const SENTINEL_INFO_MS = 10_000;
/** A Sentinel's exporter listens one port up from a member's, as renderRedisExporter documents. */
const SENTINEL_EXPORTER_PORT = EXPORTER_PORTS.redis + 1;

/** A daemon's or exporter's start-up (well under a second here): no timer governs it, a cap for a loaded 2-core machine. */
const START_CAP_MS = 15_000;
const STARTED = "start-up: no timer governs it; a cap for a loaded 2-core machine";
/** The edge certificate's lifetime: far beyond the expiry alert's 14 days. */
const CERT_DAYS = 90;
/** One command to a Redis member or Sentinel, and a client's connect. */
const CLIENT_TIMEOUT_MS = 2000;

describe("monitoring: the generated exporters with least-privilege users, Prometheus and the alert rules (live)", () => {
  // Short: a MariaDB socket path must stay under 108 bytes, also below the repeat runner's TMPDIR.
  const dir = tempDir("mon-exp");
  const procs = new ProcessGroup();
  const exporterDir = join(dir, "exporters");

  // MariaDB: a Galera cluster and a primary/replica pair, each with the monitor user.
  const galeraNodes = [0, 1, 2].map((i) => new MariaNode(`catalog-db-${i}`, ip(1 + i), 3306, join(dir, "g")));
  const replNodes = [0, 1].map((i) => new MariaNode(`orders-db-${i}`, ip(4 + i), 3306, join(dir, "r")));
  const galeraCreds: MysqlCredentials = {
    ...testCredentials("shop"),
    monitorUser: MONITOR.user,
    monitorPassword: MONITOR.password,
  };
  const replCreds: MysqlCredentials = {
    ...testCredentials("orders"),
    monitorUser: MONITOR.user,
    monitorPassword: MONITOR.password,
  };
  const galeraSpec = testSpec("catalog", galeraNodes, {
    mode: "galera",
    galera: { ...GALERA_TIMINGS, sstMethod: "rsync" },
  });
  const replSpec = testSpec("orders", replNodes, {});

  // Redis: three members and three Sentinels, each by name (its own /etc/hosts), as in a container.
  const redisCreds: RedisCredentials = {
    password: "redis-pass-1",
    sentinelPassword: "sentinel-pass-1",
    configCommand: "CONFIG_m0n",
    monitorPassword: MONITOR.password,
  };
  const members = [0, 1, 2].map((i) => ({ name: `cache-redis-${i}`, ip: ip(6 + i) }));
  const sentinels = [0, 1, 2].map((i) => ({ name: `cache-sentinel-${i}`, ip: ip(9 + i) }));
  const hosts = Object.fromEntries([...members, ...sentinels].map((m) => [m.name, m.ip]));
  const redisRunning = new Map<string, ChildProcess>();

  // The balancer and its app servers.
  const LB_HOST = ip(12);
  const HTTPS_PORT = 18443;
  const apps: BalancerBackend[] = [0, 1].map((i) => ({
    name: `shop-${i}`,
    host: ip(13 + i),
    port: 18081,
    weight: 1,
    backup: false,
  }));
  const backends = new Map<string, ChildProcess>();
  const lbDir = join(dir, "lb");
  const PROBE_HOST = ip(15);
  const NODE_HOST = ip(16);
  const PROM_HOST = ip(17);
  const PROM_PORT = 19090;
  const rootfs = join(dir, "rootfs");

  // Exporter processes by kind, for their logs.
  const exporters = { mysqld: [] as ChildProcess[], redis: [] as ChildProcess[] };

  const mysqlTargets = (nodes: MariaNode[]) =>
    nodes.map((n) => ({ instance: n.name, address: `${n.host}:${EXPORTER_PORTS.mysqld}` }));
  const plan: MonitoringPlan = {
    name: "live",
    topology: "ecommerce",
    platform: "docker",
    scrapeIntervalSeconds: SCRAPE_S,
    jobs: [
      {
        job: jobName("catalog-db", "mysqld"),
        component: "catalog-db",
        kind: "mysqld",
        targets: mysqlTargets(galeraNodes),
      },
      {
        job: jobName("orders-db", "mysqld"),
        component: "orders-db",
        kind: "mysqld",
        targets: mysqlTargets(replNodes),
      },
      {
        job: jobName("cache", "redis"),
        component: "cache",
        kind: "redis",
        targets: members.map((m) => ({ instance: m.name, address: `${m.ip}:${EXPORTER_PORTS.redis}` })),
      },
      {
        job: jobName("cache", "sentinel"),
        component: "cache",
        kind: "sentinel",
        targets: sentinels.map((s) => ({ instance: s.name, address: `${s.ip}:${SENTINEL_EXPORTER_PORT}` })),
      },
      {
        job: jobName("shop-lb", "nginx"),
        component: "shop-lb",
        kind: "nginx",
        targets: [{ instance: "shop-lb-0", address: `${LB_HOST}:${EXPORTER_PORTS.nginx}` }],
      },
      {
        job: jobName("shop-lb", "backend-probe"),
        component: "shop-lb",
        kind: "backend-probe",
        probeModule: "http_2xx",
        prober: `${PROBE_HOST}:${EXPORTER_PORTS.blackbox}`,
        targets: apps.map((a) => ({ instance: a.name, address: `http://${a.host}:${a.port}/healthz` })),
      },
      {
        job: jobName("shop-lb", "edge-probe"),
        component: "shop-lb",
        kind: "edge-probe",
        probeModule: "https_edge",
        prober: `${PROBE_HOST}:${EXPORTER_PORTS.blackbox}`,
        targets: [{ instance: "shop-lb-0", address: `https://${LB_HOST}:${HTTPS_PORT}/` }],
      },
      {
        job: jobName("live", "volumes"),
        component: "live",
        kind: "volumes",
        targets: [{ instance: "live-node-0", address: `${NODE_HOST}:${EXPORTER_PORTS.node}` }],
      },
    ],
    balancer: { component: "shop-lb", engine: "nginx", backends: 2, backups: 0, tls: true },
    app: { component: "shop", replicas: 2 },
    postgres: [],
    mysql: [
      { component: "catalog-db", members: 3, mode: "galera", failoverBudgetSeconds: GALERA_BUDGET_S },
      // Replication has no automatic failover: its rules read no budget.
      { component: "orders-db", members: 2, mode: "replication", failoverBudgetSeconds: 0 },
    ],
    redis: {
      component: "cache",
      mode: "store",
      replicas: 2,
      sentinels: 3,
      failoverBudgetSeconds: SENTINEL_BUDGET_S,
    },
    etcd: [],
    volumes: true,
  };
  const groups = renderAlertRules(plan);
  /** The data directories node_exporter sees under /volumes, by member. */
  const volumes: Record<string, string> = Object.fromEntries([
    ...[...galeraNodes, ...replNodes].map((n) => [n.name, n.dataDir]),
    ...members.map((m) => [m.name, join(dir, "redis", m.name)]),
  ]);
  let prom: LivePrometheus;

  /** The `for:` of a component's rule, in milliseconds (`8s`). */
  function forMs(alert: AlertName, component: string): number {
    const rule = groups
      .flatMap((g) => g.rules)
      .find((r) => r.alert === alert && r.labels.ha_component === component);
    if (rule === undefined) throw new Error(`no ${alert} rule for ${component}`);
    return Number(rule.for.replace(/s$/, "")) * 1000;
  }

  /** Polls Prometheus until `alertname` fires with `labels` (see `firing` in test/support/prometheus). */
  const firingAlert = (alertname: AlertName, labels: Record<string, string>, bound: WaitBound) =>
    firing(prom, alertname, labels, bound);

  // --- Redis helpers ---------------------------------------------------------------------------

  const redisSet: RedisStoreSet = {
    primaryHost: members[0].name,
    timings: SENTINEL_TIMINGS,
    creds: redisCreds,
    hosts,
  };

  /** Renders the member's files and starts it by the generated start script, in its own mount namespace. */
  function startRedis(kind: "redis" | "sentinel", m: RedisMember): void {
    redisRunning.set(m.name, startRedisMember(procs, redisSet, kind, m, join(dir, "redis", m.name)));
  }

  /** A fail-fast client's options: each connect and each command within CLIENT_TIMEOUT_MS. */
  const redisAt = (host: string, port: number, password: string, username?: string): RedisClientOptions => ({
    host,
    port,
    password,
    ...(username !== undefined ? { username } : {}),
    connectTimeoutMs: CLIENT_TIMEOUT_MS,
    commandTimeoutMs: CLIENT_TIMEOUT_MS,
  });
  // Each on a fresh connection: members restart and die under the tests.
  const asAdmin = <T>(m: { ip: string }, f: (c: Redis) => Promise<T>) =>
    withRedis(redisAt(m.ip, 6379, redisCreds.password), f);
  const asSentinelAdmin = <T>(s: { ip: string }, f: (c: Redis) => Promise<T>) =>
    withRedis(redisAt(s.ip, 26379, redisCreds.sentinelPassword), f);
  const asMonitor = <T>(x: { ip: string }, port: number, f: (c: Redis) => Promise<T>) =>
    withRedis(redisAt(x.ip, port, MONITOR.password, REDIS_MONITOR_USER), f);

  /**
   * A MariaDB connection as the monitor user, from `localAddress` if given (mysql2 3.x takes a
   * `localAddress` option but never binds it: the socket is made here).
   */
  function monitorConnect(n: MariaNode, localAddress?: string): Promise<Connection> {
    return createConnection({
      host: n.host,
      port: n.port,
      user: MONITOR.user,
      password: MONITOR.password,
      connectTimeout: CONNECT_TIMEOUT_MS,
      ...(localAddress !== undefined
        ? { stream: netConnect({ host: n.host, port: n.port, localAddress }) }
        : {}),
    });
  }

  // --- Set-up -------------------------------------------------------------------------------

  const retryMs = connectRetryMs(renderReplicaSql(replSpec, replCreds));
  const REPLICA_RUNNING: WaitBound = {
    withinMs: 5 * retryMs,
    because: `the replica's IO thread connects at START SLAVE, retrying every MASTER_CONNECT_RETRY (${retryMs} ms): 5 attempts`,
  };
  const SENTINELS_KNOW: WaitBound = {
    withinMs: START_CAP_MS + SLOW_MACHINE_FACTOR * (SENTINEL_INFO_MS + SENTINEL_HELLO_MS),
    intervalMs: 200,
    because: `redis-sentinel ${STARTED}; then Sentinel INFO every ${SENTINEL_INFO_MS} ms + hello every ${SENTINEL_HELLO_MS} ms, ×${SLOW_MACHINE_FACTOR}`,
  };
  const EXPORTER_UP: WaitBound = { withinMs: START_CAP_MS, because: `exporter ${STARTED}` };
  const exporterCount =
    plan.jobs.filter((j) => j.probeModule === undefined).reduce((n, j) => n + j.targets.length, 0) + 1;
  const SET_UP_MS =
    // Galera: three installs, the first start, its init SQL, bootstrap, two joins.
    3 * INSTALL_DB_TIMEOUT_MS +
    MARIADBD_START_UP.withinMs +
    SQL_TIMEOUT_MS +
    BOOTSTRAPPED.withinMs +
    2 * JOINED.withinMs +
    // Replication: two installs and starts, their init SQL, the replica running.
    2 * (INSTALL_DB_TIMEOUT_MS + MARIADBD_START_UP.withinMs + 2 * SQL_TIMEOUT_MS) +
    REPLICA_RUNNING.withinMs +
    // Redis: members, replicas online, Sentinels agreeing.
    2 * START_CAP_MS +
    SENTINELS_KNOW.withinMs +
    // App servers, certificate (openssl's own cap), nginx, every exporter, Prometheus.
    apps.length * BACKEND_START.withinMs +
    20_000 +
    BALANCER_START.withinMs +
    exporterCount * EXPORTER_UP.withinMs +
    START_CAP_MS;

  beforeAll(async () => {
    // mkdtemp makes 0700 folders: the mysql user must be able to walk into its members' folders.
    chmodSync(dir, 0o755);
    mkdirSync(exporterDir, { recursive: true });
    const timings: string[] = [];
    let t0 = Date.now();

    // GIVEN a Galera cluster of three from the generated files (init SQL with the monitor user)
    mkdirSync(join(dir, "g"), { recursive: true });
    const joins = await bootstrapGalera(
      procs,
      galeraNodes,
      renderTestFiles(galeraSpec, galeraCreds, join(dir, "g")),
      "one by one",
    );
    timings.push(`Galera ${Date.now() - t0} ms (joins ${joins.join(", ")} ms)`);

    // AND a primary and a replica, the replica attached by the generated replica SQL
    t0 = Date.now();
    mkdirSync(join(dir, "r"), { recursive: true });
    const replFiles = renderTestFiles(replSpec, replCreds, join(dir, "r"));
    for (const n of replNodes) {
      n.prepare(replFiles, false);
      n.install();
      n.start(procs);
    }
    for (const [i, n] of replNodes.entries()) {
      await n.waitUp(MARIADBD_START_UP);
      expect(n.applyInitdb()).toEqual(
        i === 0 ? ["10-ha-backend-init.sql"] : ["10-ha-backend-init.sql", "20-ha-backend-replica.sql"],
      );
    }
    await waitFor(
      "replica running",
      async () => replNodes[1].status("Slave_running") === "ON",
      REPLICA_RUNNING,
    );
    timings.push(`replication ${Date.now() - t0} ms`);

    // AND mysqld_exporter beside every member, logging in as the monitor user over loopback
    for (const n of [...galeraNodes, ...replNodes]) {
      const myCnf = secretFile(
        join(exporterDir, `${n.name}.cnf`),
        renderMysqldExporterCnf({
          user: MONITOR.user,
          password: MONITOR.password,
          host: n.host,
          port: n.port,
        }),
      );
      exporters.mysqld.push(
        startExporter(procs, "mysqld-exporter", renderMysqldExporter({ myCnf, listenAddress: n.host })),
      );
    }

    // AND Redis: a primary, two replicas online, three Sentinels that know them all
    t0 = Date.now();
    for (const m of members) startRedis("redis", m);
    await waitFor(
      "both replicas online",
      async () =>
        ((await asAdmin(members[0], (c) => c.info("replication"))).match(/^slave\d+:.*state=online/gm) ?? [])
          .length === 2,
      {
        withinMs: 2 * START_CAP_MS,
        intervalMs: 200,
        because: `redis-server ${STARTED}; then the replica handshake and the disk-less sync of an empty data set (replicationCron, once a second)`,
      },
    );
    for (const s of sentinels) startRedis("sentinel", s);
    await waitFor(
      "Sentinels know the replicas and each other",
      async () => {
        for (const s of sentinels) {
          const [replicas, peers] = await asSentinelAdmin(s, async (c) => [
            (await c.call("SENTINEL", "replicas", "cache")) as unknown[],
            (await c.call("SENTINEL", "sentinels", "cache")) as unknown[],
          ]);
          if (replicas.length !== 2 || peers.length !== 2) return false;
        }
        return true;
      },
      SENTINELS_KNOW,
    );
    timings.push(`Redis ${Date.now() - t0} ms`);
    // AND redis_exporter beside each, as the ACL user (a Sentinel's one port up)
    for (const m of members) {
      const passwordFile = secretFile(
        join(exporterDir, `${m.name}.json`),
        renderRedisPasswordFile(m.ip, 6379, MONITOR.password),
      );
      exporters.redis.push(
        startExporter(
          procs,
          "redis-exporter",
          renderRedisExporter({
            host: m.ip,
            port: 6379,
            user: REDIS_MONITOR_USER,
            passwordFile,
            listenAddress: m.ip,
          }),
        ),
      );
    }
    for (const s of sentinels) {
      const passwordFile = secretFile(
        join(exporterDir, `${s.name}.json`),
        renderRedisPasswordFile(s.ip, 26379, MONITOR.password),
      );
      exporters.redis.push(
        startExporter(
          procs,
          "redis-exporter",
          renderRedisExporter({
            host: s.ip,
            port: 26379,
            user: REDIS_MONITOR_USER,
            passwordFile,
            listenAddress: s.ip,
            listenPort: SENTINEL_EXPORTER_PORT,
          }),
        ),
      );
    }

    // AND the generated nginx balancer with TLS in front of two app servers, its exporter on stub_status
    mkdirSync(lbDir, { recursive: true });
    for (const a of apps) await startBackend(procs, a, join(dir, "posts.log"), backends);
    const lbSpec = loopbackSpec(LB_HOST, lbDir, apps, {
      ...FAST_CHECKS,
      httpsPort: HTTPS_PORT,
      tls: {
        certPath: selfSignedCert(lbDir, "localhost", CERT_DAYS, "edge.pem"),
        hstsMaxAgeS: 31_536_000,
        redirectPort: HTTPS_PORT,
      },
    });
    procs.start(...balancerCommand("nginx", lbSpec, lbDir, binary("nginx")));
    await waitFor(
      "nginx stats",
      async () => (await httpGet(LB_HOST, lbSpec.statsPort, "/lb-health")).status === 200,
      BALANCER_START,
    );
    // The path nginx.ts renders for stub_status on the internal stats port.
    startExporter(
      procs,
      "nginx-exporter",
      renderNginxExporter({
        statusUrl: `http://${LB_HOST}:${lbSpec.statsPort}/nginx_status`,
        listenAddress: LB_HOST,
      }),
    );

    // AND the blackbox exporter with the generated modules
    const blackboxConfig = join(exporterDir, "blackbox.yml");
    writeFileSync(blackboxConfig, renderBlackboxConfig());
    startExporter(
      procs,
      "blackbox-exporter",
      renderBlackboxExporter({ configFile: blackboxConfig, listenAddress: PROBE_HOST }),
    );

    // AND node_exporter on the data directories, mounted read-only under <rootfs>/volumes
    startVolumeExporter(procs, rootfs, volumes, renderVolumeExporter({ rootfs, listenAddress: NODE_HOST }));

    // Every exporter answers before Prometheus starts: its first scrapes then count.
    for (const j of plan.jobs.filter((x) => x.probeModule === undefined)) {
      for (const t of j.targets) {
        const [host, port] = t.address.split(":");
        await waitFor(
          `${j.job} ${t.instance} exporter`,
          async () => (await httpGet(host, Number(port), "/metrics")).status === 200,
          EXPORTER_UP,
        );
      }
    }
    await waitFor(
      "blackbox exporter",
      async () => (await httpGet(PROBE_HOST, EXPORTER_PORTS.blackbox, "/")).status === 200,
      EXPORTER_UP,
    );

    // AND Debian's Prometheus with the generated prometheus.yml and rules
    prom = await startPrometheus(procs, dir, plan, PROM_HOST, PROM_PORT, START_CAP_MS);
    console.log(`monitoring-exporters: set-up: ${timings.join("; ")}`);
  }, SET_UP_MS);

  afterAll(async () => {
    await procs.stopAll(join(dir, "logs"));
  }, 60 * KILL_MS);

  // --- Tests --------------------------------------------------------------------------------

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
        because: `the first scrapes (every ${SCRAPE_S} s) of exporters already answering; a probe or an exporter logs in on its first scrape`,
      },
    );
    const t = await targets(prom);
    console.log(
      `monitoring-exporters: ${t.length} targets up: ${[...new Set(t.map((x) => x.job))].sort().join(", ")}`,
    );
    expect(t.filter((x) => x.health !== "up")).toEqual([]);
  }, 60_000);

  it("every metric a generated rule reads exists in the scraped data, for the job it selects", async () => {
    const wanted = ruleMetrics(plan, groups);
    expect(wanted.length).toBeGreaterThan(15);
    // Each exporter has been scraped a few times: series that appear late (replica status, probes) are in.
    let missing: string[] = [];
    await waitFor(
      "every rule metric scraped",
      async () => {
        missing = await missingSeries(prom, wanted, (w) => w.alert);
        return missing.length === 0;
      },
      {
        withinMs: SLOW_MACHINE_FACTOR * 5 * SCRAPE_S * 1000,
        intervalMs: 1000,
        because: `every target is up: its series are in after one scrape (every ${SCRAPE_S} s); five, ${SLOW_MACHINE_FACTOR}x`,
      },
    ).catch(() => undefined);
    console.log(
      `monitoring-exporters: ${wanted.length - missing.length} of ${wanted.length} rule metrics scraped`,
    );
    expect(missing).toEqual([]);
    // node_exporter sees every data directory under /volumes (what VolumeNearlyFull selects), read-only.
    const vols = await query(
      prom,
      `node_filesystem_size_bytes{job="live-volumes",mountpoint=~"/volumes/.+"}`,
    );
    expect(vols.map((s) => s.metric.mountpoint).sort()).toEqual(
      Object.keys(volumes)
        .map((v) => `/volumes/${v}`)
        .sort(),
    );
    const ro = await query(prom, `node_filesystem_readonly{job="live-volumes",mountpoint=~"/volumes/.+"}`);
    expect(ro.map((s) => s.value)).toEqual(Object.keys(volumes).map(() => 1));
    // The edge's certificate is read (the expiry alert's input), about CERT_DAYS away.
    const [expiry] = await query(prom, `probe_ssl_earliest_cert_expiry{job="shop-lb-edge-probe"} - time()`);
    expect(expiry.value / 86_400).toBeGreaterThan(CERT_DAYS - 2);
  }, 60_000);

  it("every metric the generated dashboard reads exists too: the monitor users see enough", async () => {
    const wanted = dashboardMetrics(plan, renderDashboard(plan)).filter((w) => w.job !== "");
    const missing = await missingSeries(prom, wanted, (w) => w.panel);
    console.log(
      `monitoring-exporters: ${wanted.length - missing.length} of ${wanted.length} dashboard metrics scraped`,
    );
    expect(missing).toEqual([]);
  }, 60_000);

  it("the exporters log in as the monitor users, which can read and nothing else", async () => {
    // GIVEN every exporter reports its server up: it logged in with the monitor user's credentials
    const up = async (metric: string, job: string) =>
      (await query(prom, `${metric}{job="${job}"}`)).map((s) => s.value);
    expect(await up("mysql_up", "catalog-db-mysqld")).toEqual([1, 1, 1]);
    expect(await up("mysql_up", "orders-db-mysqld")).toEqual([1, 1]);
    expect(await up("redis_up", "cache-redis")).toEqual([1, 1, 1]);
    expect(await up("redis_up", "cache-sentinel")).toEqual([1, 1, 1]);
    // AND none was refused a command it needs: no exporter logged a denial, and the servers'
    // ACL LOG holds only SLOWLOG GET, left out on purpose (the exporter goes on without it)
    const logOf = (c: ChildProcess) => procs.logs.get(c.pid as number) ?? "";
    for (const c of exporters.mysqld) expect(logOf(c)).not.toMatch(/denied|error/i);
    for (const c of exporters.redis) expect(logOf(c)).not.toMatch(/NOPERM|no permissions/);
    const refused = async (server: Promise<unknown>) => [
      ...new Set(
        ((await server) as string[][]).map(
          (e) => `${e[e.indexOf("username") + 1]} ${e[e.indexOf("object") + 1]}`,
        ),
      ),
    ];
    for (const m of members) {
      expect(await refused(asAdmin(m, (c) => c.call("ACL", "LOG")))).toEqual([
        `${REDIS_MONITOR_USER} slowlog|get`,
      ]);
    }
    for (const s of sentinels)
      expect(await refused(asSentinelAdmin(s, (c) => c.call("ACL", "LOG")))).toEqual([]);

    // WHEN the Redis monitor user tries anything else THEN it is refused
    await asMonitor(members[0], 6379, async (c) => {
      expect(await c.info("server")).toContain("redis_version:");
      await expect(c.call(redisCreds.configCommand, "GET", "requirepass")).rejects.toThrow(/NOPERM/);
      await expect(c.call("FLUSHALL")).rejects.toThrow(/unknown command|NOPERM/);
      await expect(c.call("SET", "k", "v")).rejects.toThrow(/NOPERM/);
      await expect(c.call("KEYS", "*")).rejects.toThrow(/NOPERM/);
    });
    await asMonitor(sentinels[0], 26379, async (c) => {
      await expect(c.call("SENTINEL", "FAILOVER", "cache")).rejects.toThrow(/NOPERM/);
      await expect(c.call("SENTINEL", "SET", "cache", "quorum", "1")).rejects.toThrow(/NOPERM/);
    });

    // AND the MySQL monitor user reads status, but no table, and cannot write, change the schema,
    // users or settings
    galeraNodes[0].sql("CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY)");
    const conn = await monitorConnect(galeraNodes[0]);
    try {
      const [[who]] = (await conn.query("SELECT CURRENT_USER() AS u")) as unknown as [[{ u: string }]];
      expect(who.u).toBe(`${MONITOR.user}@127.0.0.1`);
      await conn.query("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'");
      for (const sql of [
        "SELECT * FROM shop.items",
        "SELECT * FROM mysql.user",
        "INSERT INTO shop.items VALUES (1)",
        "CREATE TABLE shop.t (id INT)",
        "DROP TABLE shop.items",
        "CREATE DATABASE evil",
        "DROP DATABASE shop",
        "CREATE USER evil IDENTIFIED BY 'x'",
        "SET GLOBAL read_only = ON",
        "STOP SLAVE",
      ]) {
        await expect(conn.query(sql)).rejects.toMatchObject({ sqlState: "42000" });
      }
    } finally {
      await conn.end();
    }
    // AND it logs in only from 127.0.0.1, the exporter's address beside the member
    await expect(monitorConnect(replNodes[0], FOREIGN_SOURCE)).rejects.toMatchObject({
      code: expect.stringMatching(/^ER_(ACCESS_DENIED_ERROR|HOST_NOT_PRIVILEGED)$/),
    });
    // AND holds at most MONITOR_MAX_CONNECTIONS connections (the exporter may hold one meanwhile)
    const held: Connection[] = [];
    let refusal: unknown;
    try {
      for (let i = 0; i <= MONITOR_MAX_CONNECTIONS && refusal === undefined; i++) {
        await monitorConnect(replNodes[0]).then(
          (c) => held.push(c),
          (e: unknown) => (refusal = e),
        );
      }
    } finally {
      for (const c of held) await c.end();
    }
    expect(held.length).toBeLessThanOrEqual(MONITOR_MAX_CONNECTIONS);
    expect(refusal).toMatchObject({
      code: "ER_USER_LIMIT_REACHED",
      message: expect.stringContaining("max_user_connections"),
    });
  }, 60_000);

  it("a healthy stack fires no alert", async () => {
    // Long enough for every rule with a `for:` of three scrapes to have fired if it were going to.
    await new Promise((r) => setTimeout(r, 5 * SCRAPE_S * 1000));
    const active = await alerts(prom);
    expect(
      active
        .filter((a) => a.state === "firing")
        .map((a) => `${a.labels.alertname} ${a.labels.instance ?? ""}`),
    ).toEqual([]);
  }, 30_000);

  const galeraFor = forMs("GaleraClusterSizeLow", "catalog-db");
  const GALERA_ALERT: WaitBound = {
    withinMs: SLOW_MACHINE_FACTOR * (GALERA_EVICTION_MS + galeraFor + PIPELINE_MS),
    because:
      `the survivors evict the dead node within evs.inactive_timeout ${GALERA_TIMINGS.inactiveTimeoutMs} ms + check period ` +
      `${GALERA_TIMINGS.inactiveCheckPeriodMs} ms, then the rule's for: ${galeraFor} ms (budget ${GALERA_BUDGET_S} s + 3 scrapes) ` +
      `and a scrape and evaluation (${PIPELINE_MS} ms); ${SLOW_MACHINE_FACTOR}x that`,
  };
  it(
    "kill -9 of a Galera node fires GaleraClusterSizeLow",
    async () => {
      const killed = galeraNodes[2];
      const killedAt = Date.now();
      await procs.kill(killed.process as ChildProcess, "SIGKILL");
      const { firedAt, activeAt } = await firingAlert(
        "GaleraClusterSizeLow",
        { ha_component: "catalog-db" },
        GALERA_ALERT,
      );
      console.log(
        `monitoring-exporters: Galera node ${killed.name} killed; GaleraClusterSizeLow pending ${activeAt - killedAt} ms ` +
          `after (the eviction seen), firing (as polled) ${firedAt - killedAt} ms after (for: ${galeraFor / 1000}s; bound ${GALERA_ALERT.withinMs} ms)`,
      );
      expect(firedAt - activeAt).toBeGreaterThanOrEqual(galeraFor - 1000);
      const [size] = await query(
        prom,
        `min(mysql_global_status_wsrep_cluster_size{job="catalog-db-mysqld"})`,
      );
      expect(size.value).toBe(2);
    },
    GALERA_ALERT.withinMs + KILL_MS + 10_000,
  );

  const FAILOVER_MS =
    SLOW_MACHINE_FACTOR * (SENTINEL_BUDGET_S * 1000 + PIPELINE_MS) + 2 * SENTINEL_TIMINGS.failoverTimeoutMs;
  const REDIS_ALERT: WaitBound = {
    withinMs: FAILOVER_MS,
    because:
      `Sentinel budget ${SENTINEL_BUDGET_S} s (down-after ${SENTINEL_TIMINGS.downAfterMs} ms + 4 s) and a scrape and evaluation ` +
      `(${PIPELINE_MS} ms; the rule's for: 0), ${SLOW_MACHINE_FACTOR}x, + one retried election (2 × failover-timeout ${SENTINEL_TIMINGS.failoverTimeoutMs} ms)`,
  };
  const UNREACHABLE_ALERT: WaitBound = {
    withinMs: SLOW_MACHINE_FACTOR * (3 * SCRAPE_S * 1000 + PIPELINE_MS),
    because: `three scrapes with redis_up 0 (the rule's for:) and an evaluation, ${SLOW_MACHINE_FACTOR}x`,
  };
  it(
    "kill -9 of the Redis primary fires RedisSentinelFailover, and ExporterCannotReachService for the dead member",
    async () => {
      const killed = members[0];
      const killedAt = Date.now();
      await procs.kill(redisRunning.get(killed.name) as ChildProcess, "SIGKILL");
      const [failover, unreachable] = await Promise.all([
        firingAlert("RedisSentinelFailover", { ha_component: "cache" }, REDIS_ALERT),
        firingAlert(
          "ExporterCannotReachService",
          { job: "cache-redis", instance: killed.name },
          UNREACHABLE_ALERT,
        ),
      ]);
      const addresses = await query(
        prom,
        `count by (master_address) (last_over_time(redis_sentinel_master_status{job="cache-sentinel"}[10m]))`,
      );
      console.log(
        `monitoring-exporters: Redis primary ${killed.name} killed; RedisSentinelFailover firing (as polled) ${failover.firedAt - killedAt} ms after ` +
          `(Sentinel budget ${SENTINEL_BUDGET_S} s; primaries seen: ${addresses
            .map((a) => a.metric.master_address)
            .sort()
            .join(", ")}); ` +
          `ExporterCannotReachService for it ${unreachable.firedAt - killedAt} ms after`,
      );
      expect(addresses.length).toBe(2);
    },
    REDIS_ALERT.withinMs + UNREACHABLE_ALERT.withinMs + KILL_MS + 10_000,
  );

  const stoppedFor = forMs("MysqlReplicationStopped", "orders-db");
  const STOPPED_ALERT: WaitBound = {
    withinMs: SLOW_MACHINE_FACTOR * (stoppedFor + PIPELINE_MS),
    because: `the replica's status changes at once: the rule's for: ${stoppedFor} ms and a scrape and evaluation (${PIPELINE_MS} ms), ${SLOW_MACHINE_FACTOR}x`,
  };
  it(
    "STOP SLAVE on the MySQL replica fires MysqlReplicationStopped",
    async () => {
      const replica = replNodes[1];
      const stoppedAt = Date.now();
      replica.sql("STOP SLAVE");
      const { firedAt } = await firingAlert(
        "MysqlReplicationStopped",
        { instance: replica.name },
        STOPPED_ALERT,
      );
      console.log(
        `monitoring-exporters: replication stopped on ${replica.name}; MysqlReplicationStopped firing (as polled) ${firedAt - stoppedAt} ms after (for: ${stoppedFor / 1000}s)`,
      );
    },
    STOPPED_ALERT.withinMs + SQL_TIMEOUT_MS + 10_000,
  );

  const downFor = forMs("BalancerBackendDown", "shop-lb");
  const BACKEND_ALERT: WaitBound = {
    withinMs: SLOW_MACHINE_FACTOR * (downFor + PIPELINE_MS),
    because: `a probe of a dead app server on loopback is refused at once: the rule's for: ${downFor} ms and a scrape and evaluation (${PIPELINE_MS} ms), ${SLOW_MACHINE_FACTOR}x`,
  };
  it(
    "kill -9 of an app server behind nginx fires BalancerBackendDown for it, and the edge stays up",
    async () => {
      const killed = apps[1];
      const killedAt = Date.now();
      await procs.kill(backends.get(killed.name) as ChildProcess, "SIGKILL");
      const { firedAt } = await firingAlert("BalancerBackendDown", { instance: killed.name }, BACKEND_ALERT);
      console.log(
        `monitoring-exporters: app server ${killed.name} killed; BalancerBackendDown (probe) firing (as polled) ${firedAt - killedAt} ms after (for: ${downFor / 1000}s)`,
      );
      // The other server carries the load: no "no backend" alert, and the edge answers.
      const active = await alerts(prom);
      expect(active.filter((a) => a.labels.alertname === "BalancerNoBackendUp")).toEqual([]);
      const [edge] = await query(prom, `probe_success{job="shop-lb-edge-probe"}`);
      expect(edge.value).toBe(1);
    },
    BACKEND_ALERT.withinMs + KILL_MS + 10_000,
  );

  // The files the exporters read are secrets: only their owner may read them.
  it("the exporters' credential files are mode 0600", () => {
    const files = readdirSync(exporterDir).filter((f) => f.endsWith(".cnf") || f.endsWith(".json"));
    expect(files).toHaveLength(galeraNodes.length + replNodes.length + members.length + sentinels.length);
    for (const f of files) expect(statSync(join(exporterDir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(exporterDir, `${galeraNodes[0].name}.cnf`), "utf8")).toContain(
      `user=${MONITOR.user}\n`,
    );
  });
});
