import * as g from "../../render-guard";

/**
 * How each exporter is run beside the daemon it watches: its image (the exporter project's own,
 * pinned by tag), its port, and its command line and environment. Credentials never appear here:
 * each exporter reads its password from a file the platform mounts as a secret. The flags are the
 * ones both the pinned images and Debian 12's packages accept (the live tests run Debian's).
 */
export const EXPORTER_IMAGES = {
  postgres: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
  mysqld: "prom/mysqld-exporter:v0.17.2",
  redis: "oliver006/redis_exporter:v1.74.0",
  nginx: "nginx/nginx-prometheus-exporter:1.4.2",
  memcached: "prom/memcached-exporter:v0.15.3",
  blackbox: "prom/blackbox-exporter:v0.27.0",
  node: "prom/node-exporter:v1.9.1",
} as const;

/** The exporters' metrics ports (each project's registered default). */
export const EXPORTER_PORTS = {
  postgres: 9187,
  mysqld: 9104,
  redis: 9121,
  nginx: 9113,
  memcached: 9150,
  blackbox: 9115,
  node: 9100,
} as const;

/**
 * Stands for the watched member's address in a sidecar's arguments and environment: the
 * platform fills it in (Kubernetes: 127.0.0.1, the pod's loopback; Docker: the member's host).
 */
export const SELF = "{self}";

/** A host name, or {@link SELF}. */
function host(r: string, field: string, v: string): void {
  if (v !== SELF) g.hostName(r, field, v);
}

/** A rendered exporter process: arguments and plain environment. */
export interface ExporterCommand {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

function listen(address: string | undefined, port: number): string {
  return `--web.listen-address=${address ?? ""}:${port}`;
}

/**
 * postgres_exporter: connects as the `pg_monitor` role to the member beside it, over loopback,
 * with its password read from `passwordFile`.
 */
export function renderPostgresExporter(s: {
  readonly pgHost: string;
  readonly pgPort: number;
  readonly user: string;
  readonly passwordFile: string;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderPostgresExporter";
  host(r, "pgHost", s.pgHost);
  g.port(r, "pgPort", s.pgPort);
  g.identifier(r, "user", s.user);
  g.filePath(r, "passwordFile", s.passwordFile);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [listen(s.listenAddress, EXPORTER_PORTS.postgres)],
    env: {
      DATA_SOURCE_URI: `${s.pgHost}:${s.pgPort}/postgres?sslmode=disable`,
      DATA_SOURCE_USER: s.user,
      DATA_SOURCE_PASS_FILE: s.passwordFile,
    },
  };
}

/**
 * mysqld_exporter: reads `[client]` user, password, host and port from `myCnf` (a secret file);
 * global status (Galera's wsrep_* among it), global variables and replica status.
 */
export function renderMysqldExporter(s: {
  readonly myCnf: string;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderMysqldExporter";
  g.filePath(r, "myCnf", s.myCnf);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [
      `--config.my-cnf=${s.myCnf}`,
      "--collect.global_status",
      "--collect.global_variables",
      "--collect.slave_status",
      listen(s.listenAddress, EXPORTER_PORTS.mysqld),
    ],
    env: {},
  };
}

/** The `[client]` file mysqld_exporter logs in with (secret: it holds the password). */
export function renderMysqldExporterCnf(s: {
  readonly user: string;
  readonly password: string;
  readonly host: string;
  readonly port: number;
}): string {
  const r = "renderMysqldExporterCnf";
  g.identifier(r, "user", s.user);
  g.secretToken(r, "password", s.password);
  host(r, "host", s.host);
  g.port(r, "port", s.port);
  return [
    "[client]",
    `user=${s.user}`,
    `password=${s.password}`,
    `host=${s.host}`,
    `port=${s.port}`,
    "",
  ].join("\n");
}

/**
 * redis_exporter on a Redis member or a Sentinel: `passwordFile` is its JSON map from the
 * server's URI to the password; with `user`, it logs in as that ACL user (the monitor user
 * redis.conf and sentinel.conf define, REDIS_MONITOR_USER) instead of the default one.
 */
export function renderRedisExporter(s: {
  readonly host: string;
  readonly port: number;
  readonly passwordFile: string;
  /** The ACL user to log in as. @default the default user (requirepass) */
  readonly user?: string;
  readonly listenAddress?: string;
  /** A Sentinel's exporter listens one port up, beside a member's. */
  readonly listenPort?: number;
}): ExporterCommand {
  const r = "renderRedisExporter";
  host(r, "host", s.host);
  g.port(r, "port", s.port);
  g.filePath(r, "passwordFile", s.passwordFile);
  if (s.user !== undefined) g.identifier(r, "user", s.user);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  if (s.listenPort !== undefined) g.port(r, "listenPort", s.listenPort);
  return {
    args: [
      `--redis.addr=${redisUri(s.host, s.port)}`,
      ...(s.user !== undefined ? [`--redis.user=${s.user}`] : []),
      `--redis.password-file=${s.passwordFile}`,
      // CONFIG GET would need a privilege that also reads the password itself.
      "--include-config-metrics=false",
      listen(s.listenAddress, s.listenPort ?? EXPORTER_PORTS.redis),
    ],
    env: {},
  };
}

export function redisUri(host: string, port: number): string {
  return `redis://${host}:${port}`;
}

/** redis_exporter's password file: the server's URI mapped to the password (secret). */
export function renderRedisPasswordFile(host: string, port: number, password: string): string {
  g.secretToken("renderRedisPasswordFile", "password", password);
  return `${JSON.stringify({ [redisUri(host, port)]: password })}\n`;
}

/** nginx-prometheus-exporter reading the balancer's stub_status (its internal stats port). */
export function renderNginxExporter(s: {
  readonly statusUrl: string;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderNginxExporter";
  if (!/^http:\/\/([a-z0-9.-]+|\{self\}):[0-9]+\/[a-z_/]*$/.test(s.statusUrl)) {
    throw new g.RenderInputError(r, "statusUrl", "be http://<host>:<port>/<path>", s.statusUrl);
  }
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [`--nginx.scrape-uri=${s.statusUrl}`, listen(s.listenAddress, EXPORTER_PORTS.nginx)],
    env: {},
  };
}

/** memcached_exporter on the member beside it. */
export function renderMemcachedExporter(s: {
  readonly host: string;
  readonly port: number;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderMemcachedExporter";
  host(r, "host", s.host);
  g.port(r, "port", s.port);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [`--memcached.address=${s.host}:${s.port}`, listen(s.listenAddress, EXPORTER_PORTS.memcached)],
    env: {},
  };
}

/**
 * node_exporter reading only file systems, for the data volumes mounted read-only under
 * `<rootfs>/volumes` (Docker): every other collector off.
 */
export function renderVolumeExporter(s: {
  readonly rootfs: string;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderVolumeExporter";
  g.filePath(r, "rootfs", s.rootfs);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [
      "--collector.disable-defaults",
      "--collector.filesystem",
      `--path.rootfs=${s.rootfs}`,
      listen(s.listenAddress, EXPORTER_PORTS.node),
    ],
    env: {},
  };
}

/** blackbox_exporter with the modules of `renderBlackboxConfig`. */
export function renderBlackboxExporter(s: {
  readonly configFile: string;
  readonly listenAddress?: string;
}): ExporterCommand {
  const r = "renderBlackboxExporter";
  g.filePath(r, "configFile", s.configFile);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  return {
    args: [`--config.file=${s.configFile}`, listen(s.listenAddress, EXPORTER_PORTS.blackbox)],
    env: {},
  };
}
