import {
  EXPORTER_PORT_NAMES,
  exporterSources,
  exportersOn,
  mysqldExporterSidecar,
  scrapeJob,
  type MetricsArgs,
} from "../monitoring/exporters";
import type { MysqlPlan, ScrapeJob } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import { deployRouter, generatedSecret } from "../shared";
import type { MemberAddress, Platform, ResourceSpec } from "../platform/types";
import {
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderSecretCnf,
  renderStartScript,
  type GaleraTimings,
  type MysqlCredentials,
  type MysqlEngine,
  type MysqlMode,
  type MysqlRenderSpec,
} from "./render/mysql";
import { renderPromoteScript } from "./render/promote";
import { renderDbRouter } from "./render/router";
import { checkResources, invalidArg } from "../errors";
import { componentToken, physicalName, dataProtection, type DataArgs, type NamingArgs } from "../resource";

/** Official images, pinned: MariaDB 10.11 LTS (what the live tests run) and MySQL 8.4 LTS. */
/** The `mysql` user of the official mariadb and mysql images. */
const MYSQL_UID = 999;
export const MARIADB_IMAGE = "mariadb:10.11.14";
export const MYSQL_IMAGE = "mysql:8.4.6";

/** Failure detection tuned for a LAN: a dead Galera node is dropped in about 3 s (live test: 3.1 s pause). */
export const GALERA_TUNED_TIMINGS: GaleraTimings = {
  suspectTimeoutMs: 2000,
  inactiveTimeoutMs: 4000,
  inactiveCheckPeriodMs: 500,
  keepalivePeriodMs: 500,
};

/** The router's health checks: a dead writer is taken out after `fall` failed checks. */
const ROUTER_CHECK = { intervalMs: 1000, timeoutMs: 800, fall: 2, rise: 2 } as const;

/**
 * The worst-case seconds from the writer's death to writes resuming through the router: a commit
 * on a survivor waits until the dead node is evicted (at most evs.inactive_timeout after its last
 * message, checked every evs.inactive_check_period), while the router takes the dead writer out
 * after `fall` failed checks (each at most the interval plus the check timeout); both run from
 * the death, so the longer one counts.
 */
export function galeraFailoverBudgetSeconds(
  g: GaleraTimings,
  router: { intervalMs: number; timeoutMs: number; fall: number },
): number {
  const evictMs = g.inactiveTimeoutMs + g.inactiveCheckPeriodMs;
  const routerMs = router.fall * (router.intervalMs + router.timeoutMs);
  return Math.max(evictMs, routerMs) / 1000;
}

const PORT = 3306;
const ROUTER_PORTS = { rw: 3306, ro: 3307, stats: 8404 } as const;
/** The router's read-write section (renderDbRouter's `listen rw`), as HAProxy's metrics label it. */
export const MYSQL_ROUTER_WRITE_PROXY = "rw";
/** The exporter's user (PROCESS, REPLICATION CLIENT and, on MariaDB, SLAVE MONITOR). */
export const MYSQL_MONITOR_USER = "metrics";

const PATHS = {
  dataDir: "/var/lib/mysql",
  myCnf: "/etc/mysql/conf.d/ha-backend.cnf",
  secretCnf: "/etc/mysql/conf.d/zz-ha-backend-secret.cnf",
  startScript: "/etc/ha-backend/db/start.sh",
  initSql: "/etc/ha-backend/db/init.sql",
  replicaSql: "/etc/ha-backend/db/replica.sql",
  // The images read root's password from the file `<engine>_ROOT_PASSWORD_FILE` names; so does
  // the promotion script.
  rootPassword: "/etc/ha-backend/db/root-password",
} as const;

export interface MysqlClusterArgs extends NamingArgs, DataArgs {
  readonly platform: Platform;
  /** @default "mariadb" */
  readonly engine?: MysqlEngine;
  /**
   * `galera` (MariaDB, synchronous, automatic failover) or `replication` (a primary and replicas,
   * GTID; manual failover with the promotion script). MySQL has no Galera: give `replication`
   * explicitly. @default "galera" (MariaDB)
   */
  readonly mode?: MysqlMode;
  /** Servers: replication 1 primary + (members − 1) replicas; Galera 3 or more. @default 2 (replication), 3 (galera) */
  readonly members?: number;
  /** Semi-synchronous replication, AFTER_SYNC (replication mode with replicas). @default false */
  readonly semiSync?: boolean;
  /** Wait this long for a replica's acknowledgement before committing asynchronously. @default 10000 */
  readonly semiSyncTimeoutMs?: number;
  /** Galera failure detection. @default {@link GALERA_TUNED_TIMINGS} */
  readonly galera?: Partial<GaleraTimings>;
  /** The application's database, created at bootstrap. */
  readonly database: string;
  /** The application's user, created at bootstrap with a generated password. */
  readonly user: string;
  /** Data volume per member in GiB. @default 10 */
  readonly storageGi?: number;
  readonly resources?: ResourceSpec;
  /** InnoDB buffer pool. @default "256M" */
  readonly bufferPool?: string;
  /** Tiers that may connect to the router. @default ["app"] */
  readonly allowFrom?: string[];
  /** Router replicas. @default 2 */
  readonly routerReplicas?: number;
  /** Metrics: mysqld_exporter beside every member, as a least-privilege user. @default on */
  readonly metrics?: MetricsArgs;
}

export interface ResolvedMysqlClusterArgs {
  /** The members' resources to deploy with, Outputs carrying their check (see `checkResources`). */
  readonly resources?: ResourceSpec;
  readonly engine: MysqlEngine;
  readonly mode: MysqlMode;
  readonly members: number;
  readonly semiSync: boolean;
  readonly semiSyncTimeoutMs: number;
  readonly galera: GaleraTimings;
  readonly storageGi: number;
  readonly bufferPool: string;
  readonly routerReplicas: number;
}

/** The generated secrets of cluster `name`, as `credentialRotation` names them. */
export function mysqlSecretNames(name: string): string[] {
  return ["root", "app", "replication", "sst", "metrics"].map((role) => `${name}-${role}-password`);
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("MysqlCluster", name, field, rule, value, fix);
}

const SQL_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** Defaults and every rule that needs no resource, checked before any child exists (pure). */
export function resolveMysqlClusterArgs(name: string, args: MysqlClusterArgs): ResolvedMysqlClusterArgs {
  const engine = args.engine ?? "mariadb";
  if (engine !== "mariadb" && engine !== "mysql")
    fail(name, "engine", "be mariadb or mysql", engine, "Pick one.");
  if (engine === "mysql" && args.mode === undefined) {
    fail(
      name,
      "mode",
      "be given with engine mysql: MySQL has no automatic failover here (no Galera; Group Replication is not supported), only replication with manual failover",
      args.mode,
      'Set mode: "replication" to accept manual failover, or engine: "mariadb" for Galera.',
    );
  }
  const mode = args.mode ?? "galera";
  if (mode !== "replication" && mode !== "galera")
    fail(name, "mode", "be replication or galera", mode, "Pick one.");
  if (engine === "mysql" && mode === "galera") {
    fail(
      name,
      "mode",
      "be replication when engine is mysql (Galera here is MariaDB's)",
      mode,
      "Use engine: mariadb for Galera, or mode: replication.",
    );
  }
  const members = args.members ?? (mode === "galera" ? 3 : 2);
  if (!Number.isInteger(members) || members < 1 || members > 9) {
    fail(name, "members", "be a whole number from 1 to 9", members, "Use e.g. 3.");
  }
  if (mode === "galera" && members < 3) {
    // Two nodes cannot tell a dead peer from a partition: losing either stops the cluster.
    fail(
      name,
      "members",
      "be at least 3 for galera (a majority must survive one loss)",
      members,
      "Use 3 or 5.",
    );
  }
  const semiSync = args.semiSync ?? false;
  if (semiSync && mode !== "replication") {
    fail(
      name,
      "semiSync",
      "only be set in replication mode (Galera is synchronous already)",
      semiSync,
      "Remove it.",
    );
  }
  if (semiSync && members < 2) {
    fail(
      name,
      "semiSync",
      "have a replica to acknowledge writes (members of at least 2)",
      members,
      "Set members: 2 or more, or semiSync: false.",
    );
  }
  const galera = { ...GALERA_TUNED_TIMINGS, ...args.galera };
  if (galera.inactiveTimeoutMs <= galera.suspectTimeoutMs) {
    fail(
      name,
      "galera.inactiveTimeoutMs",
      `be greater than suspectTimeoutMs (${galera.suspectTimeoutMs})`,
      galera.inactiveTimeoutMs,
      "Galera suspects a peer before it drops it.",
    );
  }
  for (const field of ["keepalivePeriodMs", "inactiveCheckPeriodMs"] as const) {
    if (galera[field] >= galera.suspectTimeoutMs) {
      fail(
        name,
        `galera.${field}`,
        `be less than suspectTimeoutMs (${galera.suspectTimeoutMs})`,
        galera[field],
        "A peer must get several keepalives and checks in before it is suspected.",
      );
    }
  }
  for (const [field, v] of [
    ["database", args.database],
    ["user", args.user],
  ] as const) {
    if (!SQL_NAME.test(v)) {
      fail(name, field, "be a lowercase SQL name (a-z, 0-9, _; at most 32)", v, "Use e.g. shop.");
    }
  }
  const storageGi = args.storageGi ?? 10;
  if (!Number.isInteger(storageGi) || storageGi < 1)
    fail(name, "storageGi", "be a whole number of at least 1", storageGi, "Use e.g. 10.");
  const bufferPool = args.bufferPool ?? "256M";
  if (!/^[1-9][0-9]*[MG]$/.test(bufferPool))
    fail(name, "bufferPool", "be a size such as 256M or 2G", bufferPool, "Fix the size.");
  const routerReplicas = args.routerReplicas ?? 2;
  if (!Number.isInteger(routerReplicas) || routerReplicas < 1) {
    fail(name, "routerReplicas", "be a whole number of at least 1", routerReplicas, "Use 2.");
  }
  const resources = checkResources("MysqlCluster", name, args.resources, {
    minMemoryMb: Number(bufferPool.slice(0, -1)) * (bufferPool.endsWith("G") ? 1024 : 1) + 256,
    needs: `innodb_buffer_pool_size ${bufferPool} plus 256Mi for the server, its connections and Galera`,
  });
  return {
    engine,
    mode,
    members,
    semiSync,
    semiSyncTimeoutMs: args.semiSyncTimeoutMs ?? 10_000,
    galera,
    storageGi,
    bufferPool,
    routerReplicas,
    resources,
  };
}

/**
 * A MySQL-family cluster: MariaDB/MySQL members with persistent volumes (GTID replication,
 * optionally semi-synchronous, or Galera), and an HAProxy router with a read-write and a
 * read-only port. Passwords come from @pulumi/random and stay secret.
 */
export class MysqlCluster extends pulumi.ComponentResource {
  /** `host:port` of the read-write endpoint. */
  public readonly rwEndpoint: pulumi.Output<string>;
  /** `host:port` of the read-only endpoint. */
  public readonly roEndpoint: pulumi.Output<string>;
  /** `mysql://user:password@host:3306/db` (secret). */
  public readonly connectionUrl: pulumi.Output<string>;
  /** The same for the read-only endpoint (secret). */
  public readonly readConnectionUrl: pulumi.Output<string>;
  /** Member addresses (ordinal order; member 0 is the primary / preferred writer). */
  public readonly members: pulumi.Output<MemberAddress[]>;
  /** The rendered my.cnf and router config (no secrets). */
  public readonly myCnf: pulumi.Output<string>;
  public readonly routerConfig: pulumi.Output<string>;
  /**
   * Galera: the worst-case seconds from the writer's death to writes resuming through the router.
   * Undefined in replication mode, whose failover is manual.
   */
  public readonly failoverBudgetSeconds: pulumi.Output<number> | undefined;
  /** The scrape jobs of its exporters and its router (none with `metrics.exporters: false`). */
  public readonly metricsJobs: readonly ScrapeJob[];
  /** What its alert rules follow (plain data). */
  public readonly alertPlan: MysqlPlan;

  constructor(name: string, args: MysqlClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("database", "MysqlCluster", opts);
    super(token, name, {}, options);
    name = physicalName("MysqlCluster", name, args);
    const r = resolveMysqlClusterArgs(name, args);
    const protect = dataProtection(args, opts);
    // Written once, at bootstrap, into the data: they live exactly as long as the volumes do.
    const password = (role: string) =>
      generatedSecret(this, `${name}-${role}-password`, {
        protect,
        rotation: args.credentialRotation?.[`${name}-${role}-password`],
      });
    const rootPassword = password("root");
    const appPassword = password("app");
    const replPassword = password("replication");
    const sstPassword = password("sst");
    // The exporter's user is created at bootstrap, like the others.
    const metricsPassword = exportersOn(args) ? password("metrics") : undefined;

    const dbName = `${name}-db`;
    const tier = `${name}-db`;
    const routerTier = `${name}-router`;
    // Member addresses are known before deploying (names are stable); render with them.
    const memberNames = Array.from({ length: r.members }, (_, i) => `${dbName}-${i}`);
    const renderSpec = (hosts: readonly string[]): MysqlRenderSpec => ({
      engine: r.engine,
      mode: r.mode,
      clusterName: name,
      members: memberNames.map((n, i) => ({ name: n, host: hosts[i] })),
      port: PORT,
      semiSync: r.semiSync,
      semiSyncTimeoutMs: r.semiSyncTimeoutMs,
      galera: { ...r.galera, sstMethod: "mariabackup" },
      bufferPool: r.bufferPool,
      maxConnections: 500,
    });
    // The members' host names, as the platform will give them: the config names every peer.
    const hosts = args.platform.memberHosts(dbName, r.members);
    const spec = renderSpec(hosts);
    const creds: pulumi.Output<MysqlCredentials> = pulumi
      .all([rootPassword, appPassword, replPassword, sstPassword, metricsPassword ?? ""])
      .apply(([root, app, repl, sst, metrics]) => ({
        rootPassword: root,
        appUser: args.user,
        appPassword: app,
        appDatabase: args.database,
        replicationUser: "replicator",
        replicationPassword: repl,
        sstUser: "sst",
        sstPassword: sst,
        ...(metricsPassword
          ? {
              monitorUser: MYSQL_MONITOR_USER,
              monitorPassword: metrics,
              monitorHost:
                exporterSources(args.platform) === "loopback" ? ("127.0.0.1" as const) : ("%" as const),
            }
          : {}),
      }));
    // The entrypoint reads the file (as the member's user: it runs as `mysql` from the start).
    const rootEnv = r.engine === "mariadb" ? "MARIADB_ROOT_PASSWORD_FILE" : "MYSQL_ROOT_PASSWORD_FILE";

    const db = args.platform.deploy(
      dbName,
      {
        kind: "stateful",
        replicas: r.members,
        image: r.engine === "mariadb" ? MARIADB_IMAGE : MYSQL_IMAGE,
        command: ["/bin/bash", PATHS.startScript],
        env: { [rootEnv]: PATHS.rootPassword },
        files: {
          [PATHS.myCnf]: renderMyCnf(spec),
          [PATHS.startScript]: renderStartScript(spec, PATHS),
          // Manual failover: `bash /etc/ha-backend/db/promote.sh` inside any surviving member.
          ...(r.mode === "replication"
            ? { "/etc/ha-backend/db/promote.sh": renderPromoteScript(spec, PATHS) }
            : {}),
        },
        secretFiles: {
          [PATHS.secretCnf]: pulumi.secret(creds.apply((c) => renderSecretCnf(spec, c))),
          [PATHS.initSql]: pulumi.secret(creds.apply((c) => renderInitSql(spec, c))),
          [PATHS.replicaSql]: pulumi.secret(creds.apply((c) => renderReplicaSql(spec, c))),
          [PATHS.rootPassword]: rootPassword,
        },
        ports: r.mode === "galera" ? { mysql: PORT, gcomm: 4567, ist: 4568, sst: 4444 } : { mysql: PORT },
        healthCheck: {
          exec:
            r.engine === "mariadb"
              ? ["healthcheck.sh", "--connect", "--innodb_initialized"]
              : ["mysqladmin", "ping", "-h", "127.0.0.1"],
          intervalSeconds: 5,
          timeoutSeconds: 3,
          failureThreshold: 3,
          // First start initialises the data directory (and a Galera joiner copies a snapshot).
          startPeriodSeconds: 120,
        },
        volume: { mountPath: PATHS.dataDir, sizeGi: r.storageGi, protect },
        resources: r.resources,
        tier,
        allowFrom: [routerTier],
        // After a full outage Galera restores its primary component only once the nodes see each other.
        startTogether: r.mode === "galera",
        // State transfer and group traffic between nodes only: the router gets the SQL port.
        peerPorts: r.mode === "galera" ? ["gcomm", "ist", "sst"] : [],
        // Both official images run the server as `mysql` (999); started as it, the entrypoint
        // skips its chown and the volume belongs to the group (fsGroup).
        runAsUser: MYSQL_UID,
        fileOwner: MYSQL_UID,
        // The socket directory, and the init directory the start script links its SQL into.
        writablePaths: [
          r.engine === "mariadb" ? "/run/mysqld" : "/var/run/mysqld",
          "/docker-entrypoint-initdb.d",
        ],
        defaultResources: { cpu: "500m", memory: "1Gi" },
        ...(metricsPassword
          ? {
              sidecars: [mysqldExporterSidecar(MYSQL_MONITOR_USER, metricsPassword, PORT)],
              metricsPorts: [{ port: EXPORTER_PORT_NAMES.mysqld }],
            }
          : {}),
      },
      { parent: this },
    );
    this.alertPlan = {
      component: name,
      members: r.members,
      mode: r.mode,
      failoverBudgetSeconds: r.mode === "galera" ? galeraFailoverBudgetSeconds(r.galera, ROUTER_CHECK) : 0,
      // renderDbRouter's `listen rw`: the writer (Galera: one Synced node, the others its backups).
      router: { writeProxy: MYSQL_ROUTER_WRITE_PROXY },
    };

    this.routerConfig = pulumi.output(
      renderDbRouter({
        mode: r.mode,
        members: db.members.map((m) => ({ name: m.name, host: m.host, port: PORT })),
        rwPort: ROUTER_PORTS.rw,
        roPort: ROUTER_PORTS.ro,
        statsPort: ROUTER_PORTS.stats,
        check: ROUTER_CHECK,
        dynamicDns: { resolvers: [] },
        clientTimeoutMs: 3_600_000,
      }),
    );
    const router = deployRouter(
      args.platform,
      routerTier,
      {
        replicas: r.routerReplicas,
        ports: ROUTER_PORTS,
        config: this.routerConfig,
        allowFrom: args.allowFrom ?? ["app"],
        metrics: metricsPassword !== undefined,
      },
      this,
    );
    this.metricsJobs = metricsPassword
      ? [
          scrapeJob(name, "mysqld", db, EXPORTER_PORT_NAMES.mysqld, r.members),
          scrapeJob(name, "router", router, "stats", r.routerReplicas),
        ]
      : [];

    this.rwEndpoint = pulumi.output(`${router.serviceHost}:${ROUTER_PORTS.rw}`);
    this.roEndpoint = pulumi.output(`${router.serviceHost}:${ROUTER_PORTS.ro}`);
    const url = (port: number) =>
      pulumi.secret(
        pulumi.interpolate`mysql://${args.user}:${appPassword}@${router.serviceHost}:${port}/${args.database}`,
      );
    this.connectionUrl = url(ROUTER_PORTS.rw);
    this.readConnectionUrl = url(ROUTER_PORTS.ro);
    this.failoverBudgetSeconds =
      r.mode === "galera" ? pulumi.output(galeraFailoverBudgetSeconds(r.galera, ROUTER_CHECK)) : undefined;
    this.members = pulumi.output([...db.members]);
    this.myCnf = pulumi.output(renderMyCnf(spec));
    this.registerOutputs({
      rwEndpoint: this.rwEndpoint,
      roEndpoint: this.roEndpoint,
      connectionUrl: this.connectionUrl,
      readConnectionUrl: this.readConnectionUrl,
      members: this.members,
      myCnf: this.myCnf,
      routerConfig: this.routerConfig,
      failoverBudgetSeconds: this.failoverBudgetSeconds,
    });
  }
}
