/**
 * ha-backend's public API: what other Pulumi stacks import.
 *
 *   import { DockerPlatform, ServerCluster } from "ha-backend";
 */
export { DockerPlatform, type DockerPlatformArgs } from "./platform/docker";
export {
  KubernetesPlatform,
  PRIVATE_NETWORKS,
  type KubernetesPlatformArgs,
  type ScraperSelector,
} from "./platform/kubernetes";
export type {
  ApiRule,
  HealthCheck,
  ImageBuild,
  MetricsPortSpec,
  MonitorsSpec,
  SidecarSpec,
  PlatformStateStore,
  MemberAddress,
  Platform,
  PlatformKind,
  PublicPort,
  ResourceSpec,
  VolumeSpec,
  Workload,
  WorkloadSpec,
} from "./platform/types";
export { validateWorkloadSpec } from "./platform/spec";
export {
  DEMO_APP_IMAGE,
  ServerCluster,
  resolveServerClusterArgs,
  type ResolvedServerClusterArgs,
  type ServerClusterArgs,
} from "./cluster/server-cluster";
export { renderDemoApp, type DemoAppSpec } from "./cluster/render/demo-app";
export { APP_SECRETS_DIR, credentialPath, readCredential } from "./cluster/credentials";
export { ENV_CREDENTIALS } from "./env-credentials";
export {
  HAPROXY_IMAGE,
  LoadBalancer,
  NGINX_IMAGE,
  resolveLoadBalancerArgs,
  type BackendGroup,
  type BalancerEngine,
  type LoadBalancerArgs,
  type LoadBalancerBackend,
  type ResolvedLoadBalancerArgs,
} from "./balancer/load-balancer";
export { renderNginx } from "./balancer/render/nginx";
export { renderHaproxy } from "./balancer/render/haproxy";
export type {
  Algorithm,
  BalancerBackend,
  BalancerDiscovery,
  BalancerRenderSpec,
} from "./balancer/render/spec";
export {
  GALERA_TUNED_TIMINGS,
  MARIADB_IMAGE,
  MYSQL_IMAGE,
  MysqlCluster,
  resolveMysqlClusterArgs,
  type MysqlClusterArgs,
  type ResolvedMysqlClusterArgs,
} from "./database/mysql-cluster";
export {
  fnv1a64,
  jumpHash,
  MAX_SHARDS,
  SHARD_SCHEME,
  ShardedMysql,
  ShardedPostgres,
  shardFor,
  type ShardEndpoint,
  type ShardMap,
  type ShardedMysqlArgs,
  type ShardedPostgresArgs,
} from "./database/sharding";
export {
  GALERA_DEFAULT_TIMINGS,
  renderInitSql,
  renderMyCnf,
  renderReplicaSql,
  renderStartScript,
  type GaleraTimings,
  type MysqlEngine,
  type MysqlMode,
  type MysqlRenderSpec,
} from "./database/render/mysql";
export { renderDbRouter, type DbRouterSpec } from "./database/render/router";
export {
  ETCD_IMAGE,
  EtcdCluster,
  etcdClientHosts,
  etcdEnvironment,
  etcdMemberEnv,
  type EtcdClientTls,
  type EtcdClusterArgs,
} from "./coordination/etcd-cluster";
export {
  PATRONI_API_RULES,
  PATRONI_IMAGE,
  PATRONI_IMAGE_CONTEXT,
  PG_ROUTER_CHECK,
  PostgresCluster,
  resolvePostgresClusterArgs,
  type PostgresClusterArgs,
  type ResolvedPostgresClusterArgs,
} from "./database/postgres-cluster";
export {
  failoverBudgetSeconds,
  patroniMemberEnv,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  timingsProblem,
  type PatroniRenderSpec,
  type PatroniTimings,
} from "./database/render/patroni";
export { renderPgRouter, type PgRouterSpec } from "./database/render/router";
export {
  REDIS_IMAGE,
  RedisCache,
  resolveRedisCacheArgs,
  type RedisCacheArgs,
  type ResolvedRedisCacheArgs,
} from "./cache/redis-cache";
export {
  renderRedisConf,
  renderRedisRouter,
  renderRedisStartScript,
  renderSentinelConf,
  SENTINEL_DEFAULT_TIMINGS,
  SENTINEL_FAST_TIMINGS,
  sentinelBudgetSeconds,
  type RedisMode,
  type RedisRenderSpec,
  type SentinelTimings,
} from "./cache/render/redis";
export { Memcached, MEMCACHED_IMAGE, resolveMemcachedArgs, type MemcachedArgs } from "./cache/memcached";
export { renderMemcachedArgs, type MemcachedRenderSpec } from "./cache/render/memcached";
export { LockService, type LockServiceArgs } from "./coordination/lock-service";
export {
  EtcdLockClient,
  LockTimeoutError,
  type EtcdLockClientOptions,
  type HeldLock,
} from "./coordination/lock-client";
export {
  Monitoring,
  MONITORING_IMAGES,
  type MonitoringArgs,
  type MonitoringPorts,
} from "./monitoring/monitoring";
export { exportersOn, type MetricsArgs } from "./monitoring/exporters";
export {
  jobName,
  type BalancerPlan,
  type EtcdPlan,
  type ExporterKind,
  type MonitoringPlan,
  type MysqlPlan,
  type PostgresPlan,
  type RedisPlan,
  type ScrapeJob,
  type ScrapeTarget,
} from "./monitoring/render/plan";
export {
  ALERTS,
  renderAlertRules,
  renderRuleFile,
  type AlertRule,
  type RuleGroup,
} from "./monitoring/render/rules";
export {
  renderAlertmanagerConfig,
  renderBlackboxConfig,
  renderPrometheusConfig,
} from "./monitoring/render/prometheus";
export { renderDashboard, renderDashboardJson } from "./monitoring/render/dashboards";
export { EXPORTER_IMAGES, EXPORTER_PORTS } from "./monitoring/render/exporters";
