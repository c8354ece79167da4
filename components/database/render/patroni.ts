import { stringify } from "yaml";
import * as g from "../../render-guard";
import { guardDynamicSpec, patroniDynamicConfig } from "./patroni-settings";

// Slot naming moved with the dynamic configuration it belongs to; importable from here as before.
export { permanentMemberSlots, slotNameForMember } from "./patroni-settings";

/**
 * Patroni-managed PostgreSQL: patroni.yml for one member, and the post-bootstrap script that
 * creates the application's role and database. Plain data in, text out. Checked with Debian's
 * Patroni 3.0.2, etcd 3.4 and PostgreSQL 15 (live tests).
 */

export interface PatroniTimings {
  /** Leader lease: a leader that stops renewing it for this long is replaced. */
  readonly ttl: number;
  /** Seconds between Patroni's housekeeping loops. */
  readonly loopWait: number;
  /** How long Patroni retries the DCS and PostgreSQL before giving up a loop. */
  readonly retryTimeout: number;
}

/** Fast, valid timings: loop_wait + 2 × retry_timeout ≤ ttl (10 ≥ 2 + 2 × 3). */
export const PATRONI_FAST_TIMINGS: PatroniTimings = { ttl: 10, loopWait: 2, retryTimeout: 3 };
/** Patroni's own defaults, for comparison. */
export const PATRONI_DEFAULT_TIMINGS: PatroniTimings = { ttl: 30, loopWait: 10, retryTimeout: 10 };

/** The relation Patroni needs so a leader always renews its lease in time. */
export function timingsProblem(t: PatroniTimings): string | undefined {
  if (!Number.isInteger(t.ttl) || !Number.isInteger(t.loopWait) || !Number.isInteger(t.retryTimeout)) {
    return "ttl, loopWait and retryTimeout must be whole seconds";
  }
  if (t.loopWait < 1 || t.retryTimeout < 1) return "loopWait and retryTimeout must be at least 1";
  if (t.loopWait + 2 * t.retryTimeout > t.ttl) {
    return `loopWait + 2 × retryTimeout (${t.loopWait + 2 * t.retryTimeout}) must not exceed ttl (${t.ttl})`;
  }
  return undefined;
}

export interface PatroniMember {
  readonly name: string;
  /** Address peers, the router and replicas use for this member. */
  readonly host: string;
}

export interface PatroniRenderSpec {
  /** The cluster (Patroni `scope`). */
  readonly scope: string;
  /**
   * This member's name and address. Omitted: one file serves every member, and each member's
   * environment names it ({@link patroniMemberEnv}), as a StatefulSet needs.
   */
  readonly member?: PatroniMember;
  /**
   * Every member's name (Patroni's `name`), the leader's included. The leader keeps a
   * replication slot for each of them, also while that member is away: see
   * {@link permanentMemberSlots}.
   */
  readonly memberNames: readonly string[];
  /**
   * Most WAL, in MiB, a slot may hold back for a member that stays away
   * (`max_slot_wal_keep_size`); past it the slot is given up and the member needs a fresh copy,
   * instead of the leader's disk filling up.
   */
  readonly maxSlotWalKeepMb: number;
  /** Where Patroni keeps cluster state. */
  readonly dcs:
    | { readonly kind: "etcd3"; readonly hosts: readonly string[] }
    | {
        readonly kind: "kubernetes";
        readonly namespace: string;
        /** Labels every member's pod carries (Patroni lists the pods by them). */
        readonly labels: Readonly<Record<string, string>>;
        /** The pod label whose value is the scope. */
        readonly scopeLabel: string;
      };
  /**
   * Where replication, rewind and superuser connections may come from (pg_hba addresses):
   * `samenet` (the member's own networks) or CIDRs. @default ["samenet"]
   */
  readonly peerNetworks?: readonly string[];
  readonly timings: PatroniTimings;
  /** Bytes a replica may lag and still be promoted. */
  readonly maximumLagOnFailover: number;
  /** Commit waits for a synchronous standby (no acknowledged write lost on failover). */
  readonly synchronousMode: boolean;
  /** Refuse writes when no synchronous standby is left (never fall back to asynchronous). */
  readonly synchronousModeStrict: boolean;
  readonly pgPort: number;
  readonly restApiPort: number;
  /** Address to bind (the member's own in tests). @default all */
  readonly listenAddress?: string;
  readonly dataDir: string;
  readonly binDir: string;
  /** Patroni writes the replication password here while it runs basebackup. */
  readonly pgpassPath: string;
  /** Run with /bin/sh once the cluster is initialised (no execute bit needed). */
  readonly postBootstrapScript: string;
  readonly appUser: string;
  readonly appDatabase: string;
  /**
   * The metrics exporter's role (`pg_monitor`, no other privilege): it logs in only from
   * `monitorFrom` into the `postgres` database. @default none (no exporter)
   */
  readonly monitorUser?: string;
  /**
   * pg_hba addresses the exporter connects from: the pod's loopback where it shares the member's
   * network namespace, else the member's networks. @default ["127.0.0.1/32"]
   */
  readonly monitorFrom?: readonly string[];
  readonly maxConnections: number;
  readonly sharedBuffers: string;
  /** Where PostgreSQL puts its socket. @default the image's (/var/run/postgresql) */
  readonly socketDir?: string;
}

export interface PatroniCredentials {
  readonly superuserPassword: string;
  readonly replicationPassword: string;
  readonly rewindPassword: string;
  /**
   * Basic-auth password for the REST API's unsafe methods (PUT, POST, PATCH, DELETE: config
   * changes, switchover, restart). Its GETs, which the router's and the platform's health checks
   * use (/primary, /replica, /readiness, /liveness), stay open. @default none (no authentication)
   */
  readonly restApiPassword?: string;
  /** The REST API's user name, with {@link restApiPassword}. @default "patroni" */
  readonly restApiUsername?: string;
}

/**
 * Every value patroni.yml embeds, checked at the renderer's entry. The YAML library quotes what it
 * writes, but the values go on: pg_hba lines are split at spaces by PostgreSQL (a CIDR with
 * " trust" after it would be a rule of its own), a database named `replication` is a keyword
 * there, `post_bootstrap` is split like a shell line, labels become a Kubernetes label selector,
 * and passwords land in a pgpass file. {@link RenderInputError} names the field.
 */
/** The roles patroni.yml itself configures (superuser, replication, rewind). */
const OWN_ROLES = ["postgres", "replicator", "rewind_user"];

function guardPatroniSpec(r: string, s: PatroniRenderSpec, c: PatroniCredentials): void {
  g.objectName(r, "scope", s.scope);
  if (s.member !== undefined) {
    g.objectName(r, "member.name", s.member.name);
    g.hostName(r, "member.host", s.member.host);
  }
  guardDynamicSpec(r, s);
  g.wholeNumber(r, "maxSlotWalKeepMb", s.maxSlotWalKeepMb, -1, 2_147_483_647);
  g.oneOf(r, "dcs.kind", s.dcs.kind, ["etcd3", "kubernetes"]);
  if (s.dcs.kind === "etcd3") {
    g.listOf(r, "dcs.hosts", s.dcs.hosts, 1, 16, (f, h) => g.hostAndPort(r, f, h));
  } else {
    g.dnsLabel(r, "dcs.namespace", s.dcs.namespace);
    for (const [k, v] of Object.entries(s.dcs.labels)) {
      g.labelKey(r, "dcs.labels", k);
      g.labelValue(r, `dcs.labels[${JSON.stringify(k)}]`, v);
    }
    g.labelKey(r, "dcs.scopeLabel", s.dcs.scopeLabel);
  }
  if (s.peerNetworks !== undefined) {
    g.listOf(r, "peerNetworks", s.peerNetworks, 1, 64, (f, n) => g.pgHbaAddress(r, f, n));
  }
  g.port(r, "pgPort", s.pgPort);
  g.port(r, "restApiPort", s.restApiPort);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  g.filePath(r, "dataDir", s.dataDir);
  g.filePath(r, "binDir", s.binDir);
  g.filePath(r, "pgpassPath", s.pgpassPath);
  g.filePath(r, "postBootstrapScript", s.postBootstrapScript);
  // The app user's pg_hba line must not name a role this file admits from the peer networks.
  g.identifier(r, "appUser", s.appUser, { reserved: [...g.PG_HBA_KEYWORDS, ...OWN_ROLES] });
  g.identifier(r, "appDatabase", s.appDatabase, { reserved: g.PG_HBA_KEYWORDS });
  if (s.monitorUser !== undefined) monitorUserName(r, s);
  if (s.monitorFrom !== undefined) {
    g.listOf(r, "monitorFrom", s.monitorFrom, 1, 64, (f, n) => g.pgHbaAddress(r, f, n));
  }
  if (s.socketDir !== undefined) g.filePath(r, "socketDir", s.socketDir);
  g.secretToken(r, "superuserPassword", c.superuserPassword);
  g.secretToken(r, "replicationPassword", c.replicationPassword);
  g.secretToken(r, "rewindPassword", c.rewindPassword);
  if (c.restApiPassword !== undefined) g.secretToken(r, "restApiPassword", c.restApiPassword);
  if (c.restApiUsername !== undefined) g.identifier(r, "restApiUsername", c.restApiUsername);
}

/**
 * pg_hba: SCRAM everywhere; replication, rewind and administration only from the members'
 * networks (the platform lets only peers and the router reach them, and only members hold those
 * passwords); the application user only into its database; anything else rejected.
 */
function pgHba(s: PatroniRenderSpec): string[] {
  const peers = s.peerNetworks ?? ["samenet"];
  return [
    "local all all scram-sha-256",
    "host all postgres 127.0.0.1/32 scram-sha-256",
    ...peers.map((n) => `host replication replicator ${n} scram-sha-256`),
    ...peers.map((n) => `host all postgres ${n} scram-sha-256`),
    ...peers.map((n) => `host all rewind_user ${n} scram-sha-256`),
    `host ${s.appDatabase} ${s.appUser} all scram-sha-256`,
    ...(s.monitorUser !== undefined
      ? (s.monitorFrom ?? ["127.0.0.1/32"]).map((n) => `host postgres ${s.monitorUser} ${n} scram-sha-256`)
      : []),
    "host all all all reject",
  ];
}

/**
 * What each member's environment sets when the file leaves `member` out (Patroni's
 * environment overrides its file); `{name}` and `{host}` are the platform's member placeholders.
 */
export function patroniMemberEnv(pgPort: number, restApiPort: number): Record<string, string> {
  return {
    PATRONI_NAME: "{name}",
    PATRONI_POSTGRESQL_CONNECT_ADDRESS: `{host}:${pgPort}`,
    PATRONI_RESTAPI_CONNECT_ADDRESS: `{host}:${restApiPort}`,
  };
}

/** patroni.yml for one member. Secrets are in it (DCS passwords): it goes to a secret store. */
export function renderPatroniYml(s: PatroniRenderSpec, c: PatroniCredentials): string {
  guardPatroniSpec("renderPatroniYml", s, c);
  const listen = (port: number) => `${s.listenAddress ?? "0.0.0.0"}:${port}`;
  const dcs =
    s.dcs.kind === "etcd3"
      ? { etcd3: { hosts: [...s.dcs.hosts] } }
      : {
          kubernetes: {
            namespace: s.dcs.namespace,
            labels: { ...s.dcs.labels },
            scope_label: s.dcs.scopeLabel,
            // ConfigMaps, not Endpoints: the router follows the leader through the REST API, so
            // Patroni needs no Services and its Role stays at configmaps and pods.
            use_endpoints: false,
            // Reaching the API servers directly means reading the `default` namespace: not needed.
            bypass_api_service: false,
          },
        };
  const doc = {
    scope: s.scope,
    namespace: "/ha-backend/",
    ...(s.member ? { name: s.member.name } : {}),
    restapi: {
      listen: listen(s.restApiPort),
      ...(s.member ? { connect_address: `${s.member.host}:${s.restApiPort}` } : {}),
      // Patroni checks it on unsafe methods only (api.py's check_access); patronictl reads it too.
      ...(c.restApiPassword !== undefined
        ? { authentication: { username: c.restApiUsername ?? "patroni", password: c.restApiPassword } }
        : {}),
    },
    ...dcs,
    bootstrap: {
      // Read once, when the cluster is initialised; later changes go through PATCH /config
      // (renderApplySettingsScript), from the same function.
      dcs: patroniDynamicConfig(s),
      initdb: [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums"],
      // Patroni splits this like a shell would and appends the connection URL.
      post_bootstrap: `/bin/sh ${s.postBootstrapScript}`,
    },
    postgresql: {
      listen: listen(s.pgPort),
      ...(s.member ? { connect_address: `${s.member.host}:${s.pgPort}` } : {}),
      data_dir: s.dataDir,
      bin_dir: s.binDir,
      pgpass: s.pgpassPath,
      authentication: {
        superuser: { username: "postgres", password: c.superuserPassword },
        replication: { username: "replicator", password: c.replicationPassword },
        rewind: { username: "rewind_user", password: c.rewindPassword },
      },
      pg_hba: pgHba(s),
      // Local parameters override the DCS's and follow a reload, so a changed cap applies on the next update.
      parameters: {
        max_slot_wal_keep_size: `${s.maxSlotWalKeepMb}MB`,
        ...(s.socketDir ? { unix_socket_directories: s.socketDir } : {}),
      },
      create_replica_methods: ["basebackup"],
      basebackup: [{ checkpoint: "fast" }],
    },
    // No /dev/watchdog in containers; the leader lease alone fences a stale leader.
    watchdog: { mode: "off" },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
  return `# Generated by ha-backend (components/database/render/patroni.ts). Secret: holds passwords.\n${stringify(doc, { lineWidth: 0 })}`;
}

/**
 * Runs once, on the member that initialises the cluster, with the superuser's connection URL as
 * its argument: the application's role and database (they replicate to every member).
 */
export function renderPostBootstrap(
  s: Pick<PatroniRenderSpec, "appUser" | "appDatabase" | "monitorUser">,
  appPassword: string,
  monitorPassword?: string,
): string {
  // SQL in a quoted heredoc: a line break could end it, and the shell would run the rest.
  const r = "renderPostBootstrap";
  g.identifier(r, "appUser", s.appUser, { reserved: [...g.PG_HBA_KEYWORDS, ...OWN_ROLES] });
  g.identifier(r, "appDatabase", s.appDatabase, { reserved: g.PG_HBA_KEYWORDS });
  g.sqlSecret(r, "appPassword", appPassword);
  if ((s.monitorUser === undefined) !== (monitorPassword === undefined)) {
    throw new g.RenderInputError(
      r,
      "monitorPassword",
      "be given exactly when monitorUser is",
      monitorPassword === undefined ? undefined : "(set)",
    );
  }
  const sql = (p: string) => p.replace(/'/g, "''");
  const monitor: string[] = [];
  if (s.monitorUser !== undefined && monitorPassword !== undefined) {
    monitorUserName(r, s);
    g.sqlSecret(r, "monitorPassword", monitorPassword);
    // pg_monitor reads every statistics view and setting, and nothing else.
    monitor.push(
      `CREATE ROLE "${s.monitorUser}" LOGIN PASSWORD '${sql(monitorPassword)}' CONNECTION LIMIT 3 IN ROLE pg_monitor;`,
    );
  }
  return [
    "#!/bin/sh",
    "# Generated by ha-backend (components/database/render/patroni.ts). Secret: holds a password.",
    "set -eu",
    `psql "$1" -v ON_ERROR_STOP=1 <<'SQL'`,
    `CREATE ROLE "${s.appUser}" LOGIN PASSWORD '${sql(appPassword)}';`,
    `CREATE DATABASE "${s.appDatabase}" OWNER "${s.appUser}";`,
    ...monitor,
    "SQL",
    "",
  ].join("\n");
}

/** The monitor role is neither a role of the cluster's own nor the app's. */
function monitorUserName(r: string, s: Pick<PatroniRenderSpec, "appUser" | "monitorUser">): void {
  g.identifier(r, "monitorUser", s.monitorUser, {
    reserved: [...g.PG_HBA_KEYWORDS, ...OWN_ROLES, s.appUser, "pg_monitor"],
  });
}

/**
 * The worst-case seconds from a leader's death to writes resuming through the router: the lease
 * running out (ttl), the next loop noticing (loop_wait), then the router's checks seeing the new
 * leader (rise × interval) — the old one is cut off at once by `on-marked-down shutdown-sessions`.
 */
export function failoverBudgetSeconds(
  t: PatroniTimings,
  router: { intervalMs: number; rise: number },
): number {
  return t.ttl + t.loopWait + (router.intervalMs * router.rise) / 1000;
}
