import {
  EXPORTER_PORT_NAMES,
  exporterSources,
  exportersOn,
  postgresExporterSidecar,
  scrapeJob,
  type MetricsArgs,
} from "../monitoring/exporters";
import type { EtcdPlan, PostgresPlan, ScrapeJob } from "../monitoring/render/plan";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { deployRouter, generatedSecret } from "../shared";
import { imageReferenceProblem } from "../validation";
import { EtcdCluster, etcdClientHosts } from "../coordination/etcd-cluster";
import { checkResources, invalidArg } from "../errors";
import { statefulMemberNames } from "../platform/spec";
import type { ApiRule, MemberAddress, Platform, ResourceSpec } from "../platform/types";
import {
  failoverBudgetSeconds,
  PATRONI_FAST_TIMINGS,
  patroniMemberEnv,
  renderPatroniYml,
  renderPostBootstrap,
  timingsProblem,
  type PatroniRenderSpec,
  type PatroniTimings,
} from "./render/patroni";
import {
  APPLY_SETTINGS_ENV,
  patroniDynamicConfig,
  renderApplySettingsScript,
  renderDynamicConfigJson,
  settingsDigest,
} from "./render/patroni-settings";
import { renderPgRouter } from "./render/router";
import { componentToken, physicalName, dataProtection, type DataArgs, type NamingArgs } from "../resource";

/** The image's build context: the official postgres image plus Debian's Patroni (see its Dockerfile). */
export const PATRONI_IMAGE_CONTEXT = join(__dirname, "image");

const DOCKERFILE = readFileSync(join(PATRONI_IMAGE_CONTEXT, "Dockerfile"), "utf8");

/**
 * The built image's name: the PostgreSQL and Patroni versions the Dockerfile pins, then the
 * Dockerfile's digest, so an edited Dockerfile is a new image and the members roll.
 */
export const PATRONI_IMAGE = [
  "ha-backend-patroni:",
  /^FROM postgres:(\d+\.\d+)-/m.exec(DOCKERFILE)?.[1] ?? "unknown",
  "-patroni",
  /patroni=([0-9.]+)-/.exec(DOCKERFILE)?.[1] ?? "unknown",
  "-",
  createHash("sha256").update(DOCKERFILE).digest("hex").slice(0, 12),
].join("");

/** The router's checks on Patroni's REST API: the same the live failover test measures. */
export const PG_ROUTER_CHECK = { intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 } as const;

/** What Patroni needs from the Kubernetes API: its leader/config ConfigMaps and its own pods' labels. */
export const PATRONI_API_RULES: readonly ApiRule[] = [
  { resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "patch", "update"] },
  { resources: ["pods"], verbs: ["get", "list", "watch", "patch", "update"] },
];

const PORTS = { postgresql: 5432, patroni: 8008 } as const;
const ROUTER_PORTS = { rw: 5432, ro: 5433, stats: 8404 } as const;
/** The router's backend behind its read-write port (renderPgRouter), as HAProxy's metrics label it. */
export const PG_ROUTER_WRITE_PROXY = "primary";
/** The REST API user for changes (Patroni's own default name). */
const PATRONI_RESTAPI_USER = "patroni";
/** The exporter's role (pg_monitor). */
export const PG_MONITOR_USER = "metrics";
/** The official image's unprivileged `postgres` user. */
const POSTGRES_UID = 999;
const PATHS = {
  volume: "/var/lib/postgresql/data",
  // A directory below the mount point: a fresh volume may hold lost+found, which initdb refuses.
  dataDir: "/var/lib/postgresql/data/pgdata",
  binDir: "/usr/lib/postgresql/15/bin",
  patroniYml: "/etc/ha-backend/pg/patroni.yml",
  postBootstrap: "/etc/ha-backend/pg/post-bootstrap.sh",
  applySettings: "/etc/ha-backend/pg/apply-settings.py",
  dynamicConfig: "/etc/ha-backend/pg/dynamic-config.json",
  restApiPassword: "/etc/ha-backend/pg/restapi-password",
  pgpass: "/tmp/pgpass",
} as const;

/**
 * WAL the leader may hold back for members that are away: a quarter of the data volume, so a
 * member that never comes back costs at most that much disk, and one back within it streams on.
 */
export function slotWalKeepMb(storageGi: number): number {
  return Math.floor((storageGi * 1024) / 4);
}

/** Role names Patroni itself uses: the app's user must be another. */
const RESERVED_USERS = ["postgres", "replicator", "rewind_user"];

export interface PostgresClusterArgs extends NamingArgs, DataArgs {
  readonly platform: Platform;
  /** Exporters: Patroni's /metrics and postgres_exporter beside every member. @default on */
  readonly metrics?: MetricsArgs;
  /** PostgreSQL servers: one leader, the rest streaming replicas. @default 3 */
  readonly members?: number;
  /** Patroni's leader lease and loop. @default {@link PATRONI_FAST_TIMINGS} (ttl 10, loop_wait 2, retry_timeout 3) */
  readonly timings?: Partial<PatroniTimings>;
  /** Bytes a replica may lag behind and still be promoted. @default 1048576 (1 MiB) */
  readonly maximumLagOnFailover?: number;
  /** A commit waits for one synchronous standby: no acknowledged write is lost on failover. @default true with 2+ members */
  readonly synchronousMode?: boolean;
  /** With no synchronous standby left, refuse writes instead of going asynchronous. @default false */
  readonly synchronousModeStrict?: boolean;
  /** The application's database, created at bootstrap. */
  readonly database: string;
  /** The application's user, created at bootstrap with a generated password. */
  readonly user: string;
  /**
   * A prebuilt image (pinned tag) with PostgreSQL 15 at /usr/lib/postgresql/15/bin, Patroni at
   * /usr/bin/patroni and the postgres user as uid 999. A plain string, not an Input: it decides
   * which image resource is built (none when given; unset, {@link PATRONI_IMAGE} is built), and
   * the members and the settings task share one pull keyed by it.
   * @default built from {@link PATRONI_IMAGE_CONTEXT}
   */
  readonly image?: string;
  /**
   * Patroni's store: `platform` (the platform's API, Kubernetes) or `etcd` (an EtcdCluster of
   * this component's own). @default platform where the platform has one, else etcd
   */
  readonly dcs?: "platform" | "etcd";
  /** etcd members when dcs is etcd: 1 (development), 3 or 5. @default 3 */
  readonly etcdMembers?: number;
  /** Data volume per member in GiB. @default 10 */
  readonly storageGi?: number;
  /**
   * CPU and memory per PostgreSQL member; either may be an Output (checked when it resolves,
   * with the same message as a plain value gets before anything is created).
   * @default none on Docker (no limits); 500m and 1Gi on Kubernetes
   */
  readonly resources?: ResourceSpec;
  /** PostgreSQL shared_buffers. @default "128MB" */
  readonly sharedBuffers?: string;
  /** PostgreSQL max_connections. @default 200 */
  readonly maxConnections?: number;
  /** Tiers that may connect to the router. @default ["app"] */
  readonly allowFrom?: string[];
  /** Router replicas. @default 2 */
  readonly routerReplicas?: number;
}

export interface ResolvedPostgresClusterArgs {
  readonly members: number;
  readonly timings: PatroniTimings;
  readonly maximumLagOnFailover: number;
  readonly synchronousMode: boolean;
  readonly synchronousModeStrict: boolean;
  readonly dcs: "platform" | "etcd";
  readonly etcdMembers: number;
  readonly storageGi: number;
  readonly sharedBuffers: string;
  readonly maxConnections: number;
  readonly routerReplicas: number;
  /** The members' resources to deploy with, Outputs carrying their check (see `checkResources`). */
  readonly resources: ResourceSpec | undefined;
}

/** The generated secrets of cluster `name`, as `credentialRotation` names them. */
export function postgresSecretNames(name: string): string[] {
  return [
    ...["superuser", "replication", "rewind", "app", "metrics"].map((role) => `${name}-${role}-password`),
    `${name}-restapi-password`,
  ];
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("PostgresCluster", name, field, rule, value, fix);
}

const SQL_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** A PostgreSQL size (`128MB`, `2GB`, `512kB`) in MiB. */
function postgresSizeMb(size: string): number {
  const m = /^([0-9]+)(kB|MB|GB)$/.exec(size);
  if (m === null) return 0;
  return Number(m[1]) * { kB: 1 / 1024, MB: 1, GB: 1024 }[m[2] as "kB" | "MB" | "GB"];
}

/** Defaults and every rule, checked before any child exists (pure but for asking the platform). */
export function resolvePostgresClusterArgs(
  name: string,
  args: PostgresClusterArgs,
): ResolvedPostgresClusterArgs {
  const members = args.members ?? 3;
  if (!Number.isInteger(members) || members < 1 || members > 9) {
    fail(name, "members", "be a whole number from 1 to 9", members, "Use 3 (a leader and two replicas).");
  }
  const synchronousMode = args.synchronousMode ?? members >= 2;
  const synchronousModeStrict = args.synchronousModeStrict ?? false;
  if (synchronousMode && members < 2) {
    fail(
      name,
      "synchronousMode",
      "have a standby to wait for (members of at least 2)",
      members,
      "Set members: 2 or more, or synchronousMode: false.",
    );
  }
  if (synchronousModeStrict && !synchronousMode) {
    fail(
      name,
      "synchronousModeStrict",
      "only be set with synchronousMode",
      synchronousModeStrict,
      "Set synchronousMode: true, or remove synchronousModeStrict.",
    );
  }
  if (synchronousModeStrict && members < 3) {
    // With two members, losing the replica stops every write until it is back.
    fail(
      name,
      "synchronousModeStrict",
      "have two standbys (members of at least 3), or losing one replica stops all writes",
      members,
      "Set members: 3, or synchronousModeStrict: false.",
    );
  }
  const timings = { ...PATRONI_FAST_TIMINGS, ...args.timings };
  const problem = timingsProblem(timings);
  if (problem !== undefined) {
    fail(
      name,
      "timings",
      `keep loopWait + 2 × retryTimeout ≤ ttl, in whole seconds of at least 1 (${problem})`,
      timings,
      "Raise ttl or lower loopWait/retryTimeout, e.g. { ttl: 10, loopWait: 2, retryTimeout: 3 }.",
    );
  }
  const maximumLagOnFailover = args.maximumLagOnFailover ?? 1_048_576;
  if (!Number.isInteger(maximumLagOnFailover) || maximumLagOnFailover < 0) {
    fail(
      name,
      "maximumLagOnFailover",
      "be a whole number of bytes (0 or more)",
      maximumLagOnFailover,
      "Use e.g. 1048576.",
    );
  }
  for (const [field, v] of [
    ["database", args.database],
    ["user", args.user],
  ] as const) {
    if (!SQL_NAME.test(v)) {
      fail(name, field, "be a lowercase SQL name (a-z, 0-9, _; at most 32)", v, "Use e.g. shop.");
    }
  }
  if (RESERVED_USERS.includes(args.user)) {
    fail(
      name,
      "user",
      `not be one of Patroni's own roles (${RESERVED_USERS.join(", ")})`,
      args.user,
      "Use e.g. shop.",
    );
  }
  const imageProblem = args.image === undefined ? undefined : imageReferenceProblem(args.image);
  if (imageProblem !== undefined) {
    fail(
      name,
      "image",
      imageProblem,
      args.image,
      "Give the tag you built, e.g. registry.example.com/patroni:15.18-1.",
    );
  }
  if (args.image === undefined && !args.platform.canBuildImages) {
    fail(
      name,
      "image",
      "be given when the platform cannot build images (a KubernetesPlatform without imageRegistry)",
      args.image,
      `Give the platform an imageRegistry to push to, or build ${PATRONI_IMAGE_CONTEXT} yourself and pass image.`,
    );
  }
  const hasStore = args.platform.stateStore(`${name}-pg`) !== undefined;
  const dcs = args.dcs ?? (hasStore ? "platform" : "etcd");
  if (dcs !== "platform" && dcs !== "etcd") fail(name, "dcs", "be platform or etcd", dcs, "Pick one.");
  if (dcs === "platform" && !hasStore) {
    fail(
      name,
      "dcs",
      `be etcd on a platform without an API to keep state in (${args.platform.kind})`,
      dcs,
      "Use dcs: etcd, or leave it unset.",
    );
  }
  const etcdMembers = args.etcdMembers ?? 3;
  if (![1, 3, 5, 7].includes(etcdMembers)) {
    fail(
      name,
      "etcdMembers",
      "be 1, 3, 5 or 7 (a majority must survive; an even count adds nothing)",
      etcdMembers,
      "Use 3; 1 only for development.",
    );
  }
  const storageGi = args.storageGi ?? 10;
  if (!Number.isInteger(storageGi) || storageGi < 1)
    fail(name, "storageGi", "be a whole number of at least 1", storageGi, "Use e.g. 10.");
  const sharedBuffers = args.sharedBuffers ?? "128MB";
  // At most 7 digits (the renderer's bound); at least 128kB (PostgreSQL refuses less at start).
  if (!/^[1-9][0-9]{0,6}(kB|MB|GB)$/.test(sharedBuffers) || postgresSizeMb(sharedBuffers) < 0.125)
    fail(name, "sharedBuffers", "be a PostgreSQL size such as 128MB or 2GB", sharedBuffers, "Fix the size.");
  const maxConnections = args.maxConnections ?? 200;
  if (!Number.isInteger(maxConnections) || maxConnections < 10 || maxConnections > 10_000)
    fail(name, "maxConnections", "be a whole number from 10 to 10000", maxConnections, "Use e.g. 200.");
  const routerReplicas = args.routerReplicas ?? 2;
  if (!Number.isInteger(routerReplicas) || routerReplicas < 1)
    fail(name, "routerReplicas", "be a whole number of at least 1", routerReplicas, "Use 2.");
  const resources = checkResources("PostgresCluster", name, args.resources, {
    // PostgreSQL's docs: more than 40% of memory for shared_buffers is unlikely to work better,
    // and the rest is the backends', the page cache's and Patroni's.
    minMemoryMb: Math.max(256, Math.ceil(postgresSizeMb(sharedBuffers) / 0.4)),
    needs: `shared_buffers ${sharedBuffers} at most 40% of it, and at least 256Mi for PostgreSQL and Patroni`,
  });
  return {
    members,
    timings,
    maximumLagOnFailover,
    synchronousMode,
    synchronousModeStrict,
    dcs,
    etcdMembers,
    storageGi,
    sharedBuffers,
    maxConnections,
    routerReplicas,
    resources,
  };
}

/**
 * Patroni-managed PostgreSQL 15: streaming replicas (optionally synchronous), automatic
 * failover through a leader lease in etcd or the Kubernetes API, and an HAProxy router whose
 * read-write port follows the leader (`/primary`) and read-only port the replicas (`/replica`).
 * Passwords come from @pulumi/random and stay secret.
 */
export class PostgresCluster extends pulumi.ComponentResource {
  /** `host:port` of the read-write endpoint (the leader). */
  public readonly rwEndpoint: pulumi.Output<string>;
  /** `host:port` of the read-only endpoint (the replicas; the leader while none is up). */
  public readonly roEndpoint: pulumi.Output<string>;
  /** `postgresql://user:password@host:5432/db` (secret). */
  public readonly connectionUrl: pulumi.Output<string>;
  /** The same for the read-only endpoint (secret). */
  public readonly readConnectionUrl: pulumi.Output<string>;
  public readonly members: pulumi.Output<MemberAddress[]>;
  /**
   * Worst-case seconds from the leader's death to writes succeeding again through the router:
   * ttl + loop_wait + the router's rise × interval.
   */
  public readonly failoverBudgetSeconds: pulumi.Output<number>;
  /** Where Patroni keeps its leader lease: `etcd` or `platform`. */
  public readonly dcs: pulumi.Output<string>;
  /** The router config (no secrets). patroni.yml holds passwords and is not an output. */
  public readonly routerConfig: pulumi.Output<string>;
  /**
   * The name of the task that brought the running cluster's dynamic settings (ttl, loop_wait,
   * synchronous mode, …) to the args, once it succeeded.
   */
  public readonly settingsApplied: pulumi.Output<string>;
  /**
   * The scrape jobs of its exporters, its router's stats port and its DCS (none with
   * `metrics.exporters: false`).
   */
  public readonly metricsJobs: readonly ScrapeJob[];
  /** What its alert rules follow (plain data): the cluster's, and its own etcd's on Docker. */
  public readonly alertPlan: { readonly postgres: PostgresPlan; readonly etcd?: EtcdPlan };

  constructor(name: string, args: PostgresClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("database", "PostgresCluster", opts);
    super(token, name, {}, options);
    name = physicalName("PostgresCluster", name, args);
    const r = resolvePostgresClusterArgs(name, args);
    const protect = dataProtection(args, opts);
    // Written once, at bootstrap, into the data: they live exactly as long as the volumes do.
    const password = (role: string) =>
      generatedSecret(this, `${name}-${role}-password`, {
        protect,
        rotation: args.credentialRotation?.[`${name}-${role}-password`],
      });
    const superuserPassword = password("superuser");
    const replicationPassword = password("replication");
    const rewindPassword = password("rewind");
    const appPassword = password("app");
    // Patroni's REST API takes changes (PATCH /config, switchover) only with this; it lives in
    // patroni.yml, not in the data, so it needs no protection.
    const restApiPassword = generatedSecret(this, `${name}-restapi-password`, {
      rotation: args.credentialRotation?.[`${name}-restapi-password`],
    });
    // The exporter's pg_monitor role is created at bootstrap, like the app's.
    const metricsPassword = exportersOn(args) ? password("metrics") : undefined;

    const workload = `${name}-pg`;
    const routerTier = `${name}-router`;
    // The settings task's tier: it reaches the members' REST API and nothing else.
    const settingsTier = `${workload}-admin`;
    const store = args.platform.stateStore(workload);
    let dcs: PatroniRenderSpec["dcs"];
    let etcd: EtcdCluster | undefined;
    if (r.dcs === "platform" && store !== undefined) {
      dcs = {
        kind: "kubernetes",
        namespace: store.namespace,
        labels: store.labels,
        scopeLabel: store.nameLabel,
      };
    } else {
      etcd = new EtcdCluster(
        name,
        {
          platform: args.platform,
          members: r.etcdMembers,
          allowFrom: [workload],
          protect,
          metrics: args.metrics,
        },
        { parent: this },
      );
      dcs = { kind: "etcd3", hosts: etcdClientHosts(args.platform, name, r.etcdMembers) };
    }
    const spec: PatroniRenderSpec = {
      // The scope is the workload's name: on Kubernetes Patroni finds its pods by it.
      scope: workload,
      memberNames: statefulMemberNames(workload, r.members),
      maxSlotWalKeepMb: slotWalKeepMb(r.storageGi),
      dcs,
      timings: r.timings,
      maximumLagOnFailover: r.maximumLagOnFailover,
      synchronousMode: r.synchronousMode,
      synchronousModeStrict: r.synchronousModeStrict,
      peerNetworks: args.platform.memberNetworks,
      pgPort: PORTS.postgresql,
      restApiPort: PORTS.patroni,
      dataDir: PATHS.dataDir,
      binDir: PATHS.binDir,
      pgpassPath: PATHS.pgpass,
      postBootstrapScript: PATHS.postBootstrap,
      appUser: args.user,
      appDatabase: args.database,
      maxConnections: r.maxConnections,
      sharedBuffers: r.sharedBuffers,
      ...(metricsPassword
        ? {
            monitorUser: PG_MONITOR_USER,
            monitorFrom:
              exporterSources(args.platform) === "loopback"
                ? ["127.0.0.1/32"]
                : (args.platform.memberNetworks ?? ["samenet"]),
          }
        : {}),
    };
    const patroniYml = pulumi
      .all([superuserPassword, replicationPassword, rewindPassword, restApiPassword])
      .apply(([su, repl, rewind, rest]) =>
        renderPatroniYml(spec, {
          superuserPassword: su,
          replicationPassword: repl,
          rewindPassword: rewind,
          restApiPassword: rest,
          restApiUsername: PATRONI_RESTAPI_USER,
        }),
      );

    const db = args.platform.deploy(
      workload,
      {
        kind: "stateful",
        replicas: r.members,
        image: args.image ?? PATRONI_IMAGE,
        build: args.image === undefined ? { context: PATRONI_IMAGE_CONTEXT } : undefined,
        command: ["/usr/bin/patroni", PATHS.patroniYml],
        // One file for every member; each member's name and addresses come from its environment.
        memberEnv: patroniMemberEnv(PORTS.postgresql, PORTS.patroni),
        secretFiles: {
          [PATHS.patroniYml]: pulumi.secret(patroniYml),
          [PATHS.postBootstrap]: pulumi.secret(
            pulumi
              .all([appPassword, metricsPassword ?? ""])
              .apply(([p, m]) => renderPostBootstrap(spec, p, metricsPassword ? m : undefined)),
          ),
        },
        ports: { ...PORTS },
        healthCheck: {
          // Ready: PostgreSQL runs and the member sees the cluster. Alive: Patroni's loop turns
          // (true during a long base backup too, so a copying replica is never restarted).
          httpGet: { path: "/readiness", port: "patroni" },
          livenessPath: "/liveness",
          // The image has python3 (Patroni's) but neither curl nor wget.
          dockerCommand: [
            "python3",
            "-c",
            `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORTS.patroni}/readiness', timeout=2)`,
          ],
          intervalSeconds: 5,
          timeoutSeconds: 3,
          failureThreshold: 3,
          startPeriodSeconds: 60,
        },
        volume: { mountPath: PATHS.volume, sizeGi: r.storageGi, protect },
        resources: r.resources,
        tier: workload,
        allowFrom: [routerTier, settingsTier],
        runAsUser: POSTGRES_UID,
        // patroni.yml (every password) and the bootstrap script: Patroni's and psql's user reads them.
        fileOwner: POSTGRES_UID,
        // PostgreSQL's socket directory; the pgpass file is under /tmp.
        writablePaths: ["/var/run/postgresql"],
        defaultResources: { cpu: "500m", memory: "1Gi" },
        apiAccess: dcs.kind === "kubernetes" ? PATRONI_API_RULES : undefined,
        // Patroni's REST API has /metrics of its own; postgres_exporter reads the server.
        ...(metricsPassword
          ? {
              sidecars: [postgresExporterSidecar(PG_MONITOR_USER, metricsPassword, PORTS.postgresql)],
              metricsPorts: [{ port: "patroni" }, { port: EXPORTER_PORT_NAMES.postgres }],
            }
          : {}),
      },
      { parent: this },
    );
    this.alertPlan = {
      postgres: {
        component: name,
        members: r.members,
        synchronousMode: r.synchronousMode,
        loopWaitSeconds: r.timings.loopWait,
        maximumLagOnFailoverBytes: r.maximumLagOnFailover,
        failoverBudgetSeconds: failoverBudgetSeconds(r.timings, PG_ROUTER_CHECK),
        // renderPgRouter's `frontend rw` sends to `backend primary`.
        router: { writeProxy: PG_ROUTER_WRITE_PROXY },
      },
      ...(etcd ? { etcd: { component: name, members: r.etcdMembers } } : {}),
    };

    // Patroni reads bootstrap.dcs only when the cluster is first created: every later change of
    // the dynamic settings reaches the running cluster through this task (PATCH /config), named
    // after the settings so it runs once per change.
    const dynamicConfig = patroniDynamicConfig(spec);
    this.settingsApplied = args.platform.runTask(
      `${workload}-dcs-${settingsDigest(dynamicConfig)}`,
      {
        image: args.image ?? PATRONI_IMAGE,
        build: args.image === undefined ? { context: PATRONI_IMAGE_CONTEXT } : undefined,
        command: [
          "python3",
          PATHS.applySettings,
          PATHS.dynamicConfig,
          ...db.members.map((m) => `${m.host}:${PORTS.patroni}`),
        ],
        files: {
          [PATHS.applySettings]: renderApplySettingsScript(),
          [PATHS.dynamicConfig]: renderDynamicConfigJson(dynamicConfig),
        },
        env: {
          [APPLY_SETTINGS_ENV.username]: PATRONI_RESTAPI_USER,
          [APPLY_SETTINGS_ENV.passwordFile]: PATHS.restApiPassword,
        },
        // A file, never environment (which `docker inspect` shows, also of the exited container):
        // 0400 and the task's own user's on Docker, a mounted Secret on Kubernetes.
        secretFiles: { [PATHS.restApiPassword]: restApiPassword },
        tier: settingsTier,
        runAsUser: POSTGRES_UID,
        // The script's own deadline (300 s) and a minute to start.
        timeoutSeconds: 360,
        after: db.resources,
      },
      { parent: this },
    );

    this.routerConfig = pulumi.output(
      renderPgRouter({
        members: db.members.map((m) => ({
          name: m.name,
          host: m.host,
          pgPort: PORTS.postgresql,
          restApiPort: PORTS.patroni,
        })),
        rwPort: ROUTER_PORTS.rw,
        roPort: ROUTER_PORTS.ro,
        statsPort: ROUTER_PORTS.stats,
        check: PG_ROUTER_CHECK,
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
          scrapeJob(name, "patroni", db, "patroni", r.members),
          scrapeJob(name, "postgres", db, EXPORTER_PORT_NAMES.postgres, r.members),
          scrapeJob(name, "router", router, "stats", r.routerReplicas),
          ...(etcd?.metricsJobs ?? []),
        ]
      : [];

    this.rwEndpoint = pulumi.output(`${router.serviceHost}:${ROUTER_PORTS.rw}`);
    this.roEndpoint = pulumi.output(`${router.serviceHost}:${ROUTER_PORTS.ro}`);
    const url = (port: number) =>
      pulumi.secret(
        pulumi.interpolate`postgresql://${args.user}:${appPassword}@${router.serviceHost}:${port}/${args.database}`,
      );
    this.connectionUrl = url(ROUTER_PORTS.rw);
    this.readConnectionUrl = url(ROUTER_PORTS.ro);
    this.members = pulumi.output([...db.members]);
    this.failoverBudgetSeconds = pulumi.output(failoverBudgetSeconds(r.timings, PG_ROUTER_CHECK));
    this.dcs = pulumi.output(dcs.kind === "kubernetes" ? "platform" : "etcd");
    this.registerOutputs({
      rwEndpoint: this.rwEndpoint,
      roEndpoint: this.roEndpoint,
      connectionUrl: this.connectionUrl,
      readConnectionUrl: this.readConnectionUrl,
      members: this.members,
      failoverBudgetSeconds: this.failoverBudgetSeconds,
      dcs: this.dcs,
      routerConfig: this.routerConfig,
      settingsApplied: this.settingsApplied,
    });
  }
}
