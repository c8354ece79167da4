import * as pulumi from "@pulumi/pulumi";
import type { Platform, SidecarSpec, Workload } from "../platform/types";
import { jobName, type ExporterKind, type ScrapeJob } from "./render/plan";
import {
  EXPORTER_IMAGES,
  EXPORTER_PORTS,
  renderMemcachedExporter,
  renderMysqldExporter,
  renderMysqldExporterCnf,
  renderNginxExporter,
  renderPostgresExporter,
  renderRedisExporter,
  renderRedisPasswordFile,
  SELF,
} from "./render/exporters";

/** What every stateful component takes about its metrics. */
export interface MetricsArgs {
  /**
   * Run an exporter beside every member (where the daemon has no metrics endpoint of its own)
   * and open the metrics ports to the platform's scraper; the exporters log in with their own
   * least-privilege users. @default true
   */
  readonly exporters?: boolean;
}

/** Whether a component runs its exporters. */
export function exportersOn(args: { readonly metrics?: MetricsArgs }): boolean {
  return args.metrics?.exporters ?? true;
}

/** The exporter images' unprivileged users (each image's own). */
const NOBODY = 65534;

/** Where a sidecar finds its credential file. */
export const EXPORTER_SECRET_DIR = "/etc/ha-backend/metrics";

/** The port name of each exporter sidecar (unique in a pod, at most 15 characters). */
export const EXPORTER_PORT_NAMES = {
  postgres: "pg-metrics",
  mysqld: "my-metrics",
  redis: "redis-metrics",
  sentinel: "snt-metrics",
  nginx: "nginx-metrics",
  memcached: "mc-metrics",
} as const;

/** postgres_exporter beside a Patroni member, logged in as the `pg_monitor` role. */
export function postgresExporterSidecar(
  user: string,
  password: pulumi.Input<string>,
  pgPort: number,
): SidecarSpec {
  const passwordFile = `${EXPORTER_SECRET_DIR}/password`;
  const e = renderPostgresExporter({ pgHost: SELF, pgPort, user, passwordFile });
  return {
    name: "metrics",
    image: EXPORTER_IMAGES.postgres,
    args: e.args,
    env: e.env,
    secretFiles: { [passwordFile]: password },
    ports: { [EXPORTER_PORT_NAMES.postgres]: EXPORTER_PORTS.postgres },
    runAsUser: NOBODY,
  };
}

/**
 * mysqld_exporter beside a MariaDB/MySQL member, logged in as the monitor user with the
 * `[client]` file (user, password, and `{self}`: the platform fills in the member's address).
 */
export function mysqldExporterSidecar(
  user: string,
  password: pulumi.Input<string>,
  port: number,
): SidecarSpec {
  const myCnf = `${EXPORTER_SECRET_DIR}/my.cnf`;
  const e = renderMysqldExporter({ myCnf });
  return {
    name: "metrics",
    image: EXPORTER_IMAGES.mysqld,
    args: e.args,
    secretFiles: {
      [myCnf]: pulumi
        .output(password)
        .apply((p) => renderMysqldExporterCnf({ user, password: p, host: SELF, port })),
    },
    ports: { [EXPORTER_PORT_NAMES.mysqld]: EXPORTER_PORTS.mysqld },
    runAsUser: NOBODY,
  };
}

/** redis_exporter's image runs as its own user. */
const REDIS_EXPORTER_UID = 59000;

/**
 * redis_exporter beside a Redis member or a Sentinel, logged in as the ACL user `user` (no
 * CONFIG, no keys) with a password file (the server's URI mapped to the password).
 */
export function redisExporterSidecar(
  kind: "redis" | "sentinel",
  user: string,
  password: pulumi.Input<string>,
  port: number,
): SidecarSpec {
  const passwordFile = `${EXPORTER_SECRET_DIR}/${kind}-password.json`;
  // A Sentinel's exporter sits beside a Sentinel: the metrics port differs from a member's.
  const listenPort = kind === "redis" ? EXPORTER_PORTS.redis : EXPORTER_PORTS.redis + 1;
  const e = renderRedisExporter({ host: SELF, port, passwordFile, user, listenPort });
  return {
    name: "metrics",
    image: EXPORTER_IMAGES.redis,
    args: e.args,
    secretFiles: {
      [passwordFile]: pulumi.output(password).apply((p) => renderRedisPasswordFile(SELF, port, p)),
    },
    ports: { [EXPORTER_PORT_NAMES[kind]]: listenPort },
    runAsUser: REDIS_EXPORTER_UID,
  };
}

/** nginx-prometheus-exporter beside a balancer replica, reading its stub_status. */
export function nginxExporterSidecar(statsPort: number, statusPath: string): SidecarSpec {
  const e = renderNginxExporter({ statusUrl: `http://${SELF}:${statsPort}${statusPath}` });
  return {
    name: "metrics",
    image: EXPORTER_IMAGES.nginx,
    args: e.args,
    ports: { [EXPORTER_PORT_NAMES.nginx]: EXPORTER_PORTS.nginx },
    runAsUser: NOBODY,
  };
}

/** memcached_exporter beside a memcached member (memcached has no users: nothing to log in with). */
export function memcachedExporterSidecar(port: number): SidecarSpec {
  const e = renderMemcachedExporter({ host: SELF, port });
  return {
    name: "metrics",
    image: EXPORTER_IMAGES.memcached,
    args: e.args,
    ports: { [EXPORTER_PORT_NAMES.memcached]: EXPORTER_PORTS.memcached },
    runAsUser: NOBODY,
  };
}

/**
 * The scrape job of one metrics port of a deployed workload: its targets as the platform reports
 * them (Docker: one per member; Kubernetes: none, the PodMonitor finds the pods).
 */
export function scrapeJob(
  component: string,
  kind: ExporterKind,
  workload: Workload,
  port: string,
  members: number,
  path = "/metrics",
): ScrapeJob {
  return {
    job: jobName(component, kind),
    component,
    kind,
    path,
    workload: workload.name,
    port,
    expected: members,
    targets: (workload.metrics[port] ?? []).map((t) => ({ instance: t.instance, address: t.address })),
  };
}

/**
 * The sources a member admits its co-located exporter from (pg_hba, MySQL user hosts): the pod's
 * loopback where sidecars share the member's network namespace, else the member's own networks.
 */
export function exporterSources(platform: Platform): "loopback" | "network" {
  return platform.sidecarsShareLoopback ? "loopback" : "network";
}
