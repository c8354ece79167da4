import { Monitoring } from "../../components/monitoring/monitoring";
import type {
  EtcdPlan,
  MonitoringPlan,
  MysqlPlan,
  PostgresPlan,
  RedisPlan,
  ScrapeJob,
  ScrapeTarget,
} from "../../components/monitoring/render/plan";
import { rotationTokens, type TopologyContext, type TopologyOutputs } from "./web-tier";
import * as pulumi from "@pulumi/pulumi";

/**
 * What the topology's components report about their metrics while it builds them: their scrape
 * jobs and the settings their alert rules follow. The stack's Monitoring is made from it last
 * (on Docker its tier joins the networks of everything it scrapes).
 */
export class MonitoringCollector {
  readonly jobs: ScrapeJob[] = [];
  readonly postgres: PostgresPlan[] = [];
  readonly mysql: MysqlPlan[] = [];
  readonly etcd: EtcdPlan[] = [];
  redis?: RedisPlan;
  memcached?: { readonly component: string; readonly members: number };
  web?: {
    readonly balancer: MonitoringPlan["balancer"];
    readonly app: MonitoringPlan["app"];
    readonly edge: { readonly tier: string; readonly http: string; readonly https?: string };
    readonly backends: readonly ScrapeTarget[];
  };

  add(c: { readonly metricsJobs: readonly ScrapeJob[] }): void {
    this.jobs.push(...c.metricsJobs);
  }
}

/** The stack's monitoring, from what its components reported, as the config asks for it. */
export function stackMonitoring(ctx: TopologyContext, stack: string): TopologyOutputs {
  const m = ctx.config.monitoring;
  const c = ctx.collector;
  if (!m.exporters || c.web === undefined) return {};
  const t = m.thresholds;
  const plan: MonitoringPlan = {
    name: stack,
    topology: ctx.config.topology,
    platform: ctx.config.platform,
    scrapeIntervalSeconds: m.scrapeIntervalSeconds,
    jobs: c.jobs,
    balancer: c.web.balancer,
    app: c.web.app,
    namespace: ctx.config.platform === "kubernetes" ? (ctx.config.kubernetes?.namespace ?? stack) : undefined,
    postgres: c.postgres,
    mysql: c.mysql,
    redis: c.redis,
    memcached: c.memcached,
    etcd: c.etcd,
    volumes: true,
    ...t,
  };
  // Exporters only: the metrics ports are open to the scraper, nothing else is declared.
  if (!m.enabled && !m.prometheusOperator) return {};
  const monitoring = new Monitoring(
    "monitoring",
    {
      platform: ctx.platform,
      plan,
      edge: c.web.edge,
      backends: c.web.backends,
      ...(m.enabled
        ? {
            stack: {
              ports: m.ports,
              // Stored with --secret (the config refuses it otherwise): it stays secret here too.
              ...(ctx.config.alertWebhookUrl !== undefined
                ? { alertWebhookUrl: pulumi.secret(ctx.config.alertWebhookUrl) }
                : {}),
            },
          }
        : {}),
      ...(m.prometheusOperator ? { operator: { labels: m.labels } } : {}),
      credentialRotation: rotationTokens(ctx.config),
    },
    { parent: ctx.parent },
  );
  return {
    ...(m.enabled
      ? {
          prometheusUrl: monitoring.prometheusUrl,
          alertmanagerUrl: monitoring.alertmanagerUrl,
          grafanaUrl: monitoring.grafanaUrl,
          grafanaAdminPassword: pulumi.secret(monitoring.grafanaAdminPassword),
        }
      : {}),
  };
}
