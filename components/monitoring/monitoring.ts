import * as pulumi from "@pulumi/pulumi";
import { invalidArg } from "../errors";
import type { Platform, Workload } from "../platform/types";
import { componentToken } from "../resource";
import { generatedSecret } from "../shared";
import {
  EXPORTER_IMAGES,
  EXPORTER_PORTS,
  renderBlackboxExporter,
  renderVolumeExporter,
} from "./render/exporters";
import { jobName, type MonitoringPlan, type ScrapeJob, type ScrapeTarget } from "./render/plan";
import { renderAlertmanagerConfig, renderBlackboxConfig, renderPrometheusConfig } from "./render/prometheus";
import { renderDashboardJson } from "./render/dashboards";
import { renderAlertRules, renderRuleFile, VOLUME_MOUNT_ROOT } from "./render/rules";

/** Pinned images of the stack's own monitoring (Docker). */
export const MONITORING_IMAGES = {
  prometheus: "prom/prometheus:v3.5.0",
  alertmanager: "prom/alertmanager:v0.28.1",
  grafana: "grafana/grafana:12.1.0",
} as const;

/** Host ports (on 127.0.0.1) of the stack's own monitoring UIs. */
export interface MonitoringPorts {
  /** @default 9090 */
  readonly prometheus?: number;
  /** @default 9093 */
  readonly alertmanager?: number;
  /** @default 3000 */
  readonly grafana?: number;
}

export interface MonitoringArgs {
  readonly platform: Platform;
  /**
   * The stack's tiers, settings and scrape jobs (the components' `metricsJobs`). The probe jobs
   * (edge, backends) are added here when the stack runs its own prober.
   */
  readonly plan: MonitoringPlan;
  /**
   * The edge's URLs inside the platform and its tier (LoadBalancer.probeUrls), probed by the
   * stack's blackbox prober: availability, nginx's 5xx (sampled) and the TLS certificate's expiry.
   * The prober runs with `stack` (Docker) or `operator` (Kubernetes, a Deployment the operator's
   * Probe object scrapes). Unset: no prober.
   */
  readonly edge?: { readonly tier: string; readonly http: string; readonly https?: string };
  /**
   * The app servers' health URLs (ServerCluster.healthTargets), probed behind an nginx balancer
   * (which counts no backend state) with `stack`. On Kubernetes kube-state-metrics reports them.
   */
  readonly backends?: readonly ScrapeTarget[];
  /**
   * Run the stack's own Prometheus, Alertmanager, Grafana and blackbox prober as workloads
   * (Docker dev stacks), their UIs published on 127.0.0.1 only. Needs the platform's
   * `scraperTier`. Unset: none.
   */
  readonly stack?: {
    readonly ports?: MonitoringPorts;
    /**
     * Where Alertmanager sends alerts (a webhook receiver: Slack, PagerDuty, a chat bridge); kept
     * secret (a secret file), since such URLs carry tokens. @default kept in Alertmanager
     */
    readonly alertWebhookUrl?: pulumi.Input<string>;
  };
  /**
   * Declare the Prometheus Operator's objects (a PodMonitor per job, a PrometheusRule) on the
   * platform, labelled with `labels` for the operator's selectors. Unset: none, so a cluster
   * without the operator's CRDs still works.
   */
  readonly operator?: { readonly labels?: Readonly<Record<string, string>> };
  /**
   * Rotation tokens by generated secret name (`<name>-grafana-admin-password`): a new token
   * replaces that secret once.
   */
  readonly credentialRotation?: Readonly<Record<string, pulumi.Input<string>>>;
}

const PATHS = {
  prometheusConfig: "/etc/prometheus/prometheus.yml",
  rules: "/etc/prometheus/rules/ha-backend.yml",
  alertmanagerConfig: "/etc/alertmanager/alertmanager.yml",
  blackboxConfig: "/etc/blackbox/blackbox.yml",
  grafanaDatasource: "/etc/grafana/provisioning/datasources/prometheus.yml",
  grafanaProvider: "/etc/grafana/provisioning/dashboards/ha-backend.yml",
  grafanaDashboards: "/etc/ha-backend/dashboards",
  grafanaPassword: "/etc/ha-backend/grafana/admin-password",
} as const;
const PORTS = { prometheus: 9090, alertmanager: 9093, grafana: 3000 } as const;
const NOBODY = 65534;
/** Docker: the watched volume's name under /volumes (the engine's disk, where named volumes live). */
const DOCKER_DISK = "docker-volumes";
/** The official Grafana image's user. */
const GRAFANA_UID = 472;

/**
 * The stack's monitoring: the alert rules generated from its settings, and either the stack's own
 * Prometheus, Alertmanager, Grafana and prober (Docker) or the Prometheus Operator's objects
 * (Kubernetes). Create it after every component it watches: on Docker its tier joins their
 * networks, which are fixed once a container exists.
 */
export class Monitoring extends pulumi.ComponentResource {
  /** The rule file, as Prometheus loads it (the same groups go into a PrometheusRule). */
  public readonly rules: pulumi.Output<string>;
  /** Docker: `http://127.0.0.1:<port>` of each UI; undefined without `stack`. */
  public readonly prometheusUrl: pulumi.Output<string | undefined>;
  public readonly alertmanagerUrl: pulumi.Output<string | undefined>;
  public readonly grafanaUrl: pulumi.Output<string | undefined>;
  /** Grafana's `admin` password (secret); undefined without `stack`. */
  public readonly grafanaAdminPassword: pulumi.Output<string | undefined>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("monitoring", "Monitoring", opts);
    super(token, name, {}, options);
    const platform = args.platform;
    if (args.stack !== undefined && platform.scraperTier === undefined) {
      invalidArg(
        "Monitoring",
        name,
        "stack",
        "run on a platform that admits a scraper tier",
        platform.kind,
        'Create the DockerPlatform with scraperTier: "monitoring" (or use operator on Kubernetes).',
      );
    }
    const s = args.stack;
    /** The jobs of what Monitoring runs itself: the probes and the volume watcher. */
    const ownJobs: ScrapeJob[] = [];
    let prober: Workload | undefined;
    let alertmanager: Workload | undefined;
    if (s !== undefined) {
      const tier = platform.scraperTier as string;
      const ports = { ...PORTS, ...s.ports };
      // First: a tier's members must exist before their clients (Docker fixes a container's
      // networks when it is created), and the prober and Prometheus are Alertmanager's clients.
      alertmanager = platform.deploy(
        `${name}-alertmanager`,
        {
          kind: "stateless",
          replicas: 1,
          image: MONITORING_IMAGES.alertmanager,
          args: [`--config.file=${PATHS.alertmanagerConfig}`, "--storage.path=/tmp/alertmanager"],
          // The webhook URL may carry a token: a secret file whenever one is given.
          ...(s.alertWebhookUrl !== undefined
            ? {
                secretFiles: {
                  [PATHS.alertmanagerConfig]: pulumi
                    .output(s.alertWebhookUrl)
                    .apply((url) => renderAlertmanagerConfig({ webhookUrl: url })),
                },
                fileOwner: NOBODY,
              }
            : { files: { [PATHS.alertmanagerConfig]: renderAlertmanagerConfig({}) } }),
          ports: { http: PORTS.alertmanager },
          healthCheck: { httpGet: { path: "/-/ready", port: "http" } },
          // A tier of its own that only Prometheus (the scraper's tier) reaches: not on the
          // networks of what is scraped.
          tier: `${tier}-alerts`,
          allowFrom: [tier],
          publicPorts: [{ target: "http", port: ports.alertmanager, local: true }],
          runAsUser: NOBODY,
          writablePaths: [],
        },
        { parent: this },
      );
    }
    // Docker: node_exporter on a volume of its own. Every named volume of the stack is a
    // directory on the engine's one disk (the local driver), so an empty one reports the room the
    // data volumes share, without mounting their data into another container (Redis's files are
    // world-readable). The kubelet reports each claim's use on Kubernetes.
    if (s !== undefined && args.plan.volumes && platform.kind === "docker") {
      const volumes = platform.deploy(
        `${name}-volumes`,
        {
          kind: "stateful",
          replicas: 1,
          image: EXPORTER_IMAGES.node,
          args: [...renderVolumeExporter({ rootfs: "/" }).args],
          ports: { http: EXPORTER_PORTS.node },
          healthCheck: { httpGet: { path: "/metrics", port: "http" } },
          volume: { mountPath: `${VOLUME_MOUNT_ROOT}/${DOCKER_DISK}`, sizeGi: 1 },
          // A tier of its own, on one network with the monitoring tier (Prometheus, the prober).
          tier: `${platform.scraperTier as string}-volumes`,
          allowFrom: [platform.scraperTier as string],
          runAsUser: NOBODY,
          writablePaths: [],
        },
        { parent: this },
      );
      ownJobs.push({
        job: jobName(args.plan.name, "volumes"),
        component: args.plan.name,
        kind: "volumes",
        targets: [{ instance: volumes.name, address: `${volumes.serviceHost}:${EXPORTER_PORTS.node}` }],
      });
    }
    // The prober: beside the stack's own Prometheus (Docker), or for the operator's Probe
    // objects (Kubernetes); it reaches the edge's public ports as an outside client would.
    if (args.edge !== undefined && (s !== undefined || args.operator !== undefined)) {
      const edge = args.edge;
      const tier = platform.scraperTier ?? `${name}-prober`;
      prober = platform.deploy(
        `${name}-prober`,
        {
          kind: "stateless",
          replicas: 1,
          image: EXPORTER_IMAGES.blackbox,
          args: [...renderBlackboxExporter({ configFile: PATHS.blackboxConfig }).args],
          files: { [PATHS.blackboxConfig]: renderBlackboxConfig() },
          ports: { http: EXPORTER_PORTS.blackbox },
          healthCheck: { httpGet: { path: "/-/healthy", port: "http" } },
          tier,
          allowFrom: platform.scraperTier !== undefined ? [platform.scraperTier] : [],
          // Kubernetes: the scraper is admitted to the prober's port (the operator's Probe scrapes
          // /probe there); Docker's scraper tier is the prober's own.
          ...(platform.scraperTier === undefined ? { metricsPorts: [{ port: "http" }] } : {}),
          probes: [edge.tier],
          runAsUser: NOBODY,
          writablePaths: [],
          defaultResources: { cpu: "50m", memory: "64Mi" },
        },
        { parent: this },
      );
      const proberAddress = `${prober.serviceHost}:${EXPORTER_PORTS.blackbox}`;
      const component = args.plan.balancer.component;
      ownJobs.push({
        job: jobName(component, "edge-probe"),
        component,
        kind: "edge-probe",
        probeModule: edge.https !== undefined ? "https_edge" : "http_2xx",
        prober: proberAddress,
        targets: [{ instance: component, address: edge.https ?? edge.http }],
      });
      if (s !== undefined && args.plan.balancer.engine === "nginx" && (args.backends ?? []).length > 0) {
        ownJobs.push({
          job: jobName(component, "backend-probe"),
          component,
          kind: "backend-probe",
          probeModule: "http_2xx",
          prober: proberAddress,
          targets: [...(args.backends ?? [])],
        });
      }
    }
    const plan: MonitoringPlan = { ...args.plan, jobs: [...args.plan.jobs, ...ownJobs] };
    const groups = renderAlertRules(plan);
    this.rules = pulumi.output(renderRuleFile(groups));

    if (args.operator !== undefined) {
      platform.monitors(
        name,
        {
          jobs: plan.jobs.flatMap((j) =>
            j.workload !== undefined && j.port !== undefined
              ? [
                  {
                    job: j.job,
                    component: j.component,
                    workload: j.workload,
                    port: j.port,
                    path: j.path ?? "/metrics",
                  },
                ]
              : [],
          ),
          probes: plan.jobs.flatMap((j) =>
            j.probeModule !== undefined && j.prober !== undefined
              ? [
                  {
                    job: j.job,
                    component: j.component,
                    module: j.probeModule,
                    prober: j.prober,
                    targets: j.targets.map((t) => ({ instance: t.instance, url: t.address })),
                  },
                ]
              : [],
          ),
          ruleGroups: groups,
          scrapeIntervalSeconds: plan.scrapeIntervalSeconds,
          labels: args.operator.labels ?? {},
          dashboards: { [`${plan.topology}.json`]: renderDashboardJson(plan) },
        },
        { parent: this },
      );
    }

    if (s === undefined) {
      this.prometheusUrl = pulumi.output(undefined);
      this.alertmanagerUrl = pulumi.output(undefined);
      this.grafanaUrl = pulumi.output(undefined);
      this.grafanaAdminPassword = pulumi.output(undefined);
    } else {
      const tier = platform.scraperTier as string;
      const ports = { ...PORTS, ...s.ports };
      const prometheus = platform.deploy(
        `${name}-prometheus`,
        {
          kind: "stateful",
          replicas: 1,
          image: MONITORING_IMAGES.prometheus,
          args: [
            `--config.file=${PATHS.prometheusConfig}`,
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=15d",
          ],
          files: {
            [PATHS.prometheusConfig]: renderPrometheusConfig({
              scrapeIntervalSeconds: plan.scrapeIntervalSeconds,
              jobs: plan.jobs,
              ruleFiles: [PATHS.rules],
              alertmanagers: [`${(alertmanager as Workload).serviceHost}:${PORTS.alertmanager}`],
            }),
            [PATHS.rules]: this.rules,
          },
          ports: { http: PORTS.prometheus },
          healthCheck: { httpGet: { path: "/-/ready", port: "http" } },
          volume: { mountPath: "/prometheus", sizeGi: 10 },
          tier,
          // Grafana (its own tier) queries it.
          allowFrom: [`${tier}-ui`],
          publicPorts: [{ target: "http", port: ports.prometheus, local: true }],
          runAsUser: NOBODY,
          writablePaths: [],
        },
        { parent: this },
      );
      const grafanaPassword = generatedSecret(this, `${name}-grafana-admin-password`, {
        rotation: args.credentialRotation?.[`${name}-grafana-admin-password`],
      });
      // The plan's dashboard (rows along the request path), probes included.
      const dashboards = { [`${plan.topology}.json`]: renderDashboardJson(plan) };
      platform.deploy(
        `${name}-grafana`,
        {
          kind: "stateless",
          replicas: 1,
          image: MONITORING_IMAGES.grafana,
          env: {
            GF_SECURITY_ADMIN_PASSWORD__FILE: PATHS.grafanaPassword,
            GF_USERS_ALLOW_SIGN_UP: "false",
            GF_AUTH_ANONYMOUS_ENABLED: "false",
            GF_ANALYTICS_REPORTING_ENABLED: "false",
            GF_ANALYTICS_CHECK_FOR_UPDATES: "false",
          },
          files: {
            [PATHS.grafanaDatasource]: grafanaDatasource(
              `http://${prometheus.serviceHost}:${PORTS.prometheus}`,
            ),
            [PATHS.grafanaProvider]: grafanaDashboardProvider(PATHS.grafanaDashboards),
            ...Object.fromEntries(
              Object.entries(dashboards).map(([file, json]) => [`${PATHS.grafanaDashboards}/${file}`, json]),
            ),
          },
          secretFiles: { [PATHS.grafanaPassword]: grafanaPassword },
          fileOwner: GRAFANA_UID,
          ports: { http: PORTS.grafana },
          healthCheck: { httpGet: { path: "/api/health", port: "http" } },
          // A tier of its own: it reaches Prometheus, and none of the networks of what is scraped
          // (Grafana's data sources could otherwise reach the databases).
          tier: `${tier}-ui`,
          publicPorts: [{ target: "http", port: ports.grafana, local: true }],
          runAsUser: GRAFANA_UID,
        },
        { parent: this },
      );
      this.prometheusUrl = pulumi.output(`http://127.0.0.1:${ports.prometheus}`);
      this.alertmanagerUrl = pulumi.output(`http://127.0.0.1:${ports.alertmanager}`);
      this.grafanaUrl = pulumi.output(`http://127.0.0.1:${ports.grafana}`);
      this.grafanaAdminPassword = pulumi.secret(grafanaPassword);
    }
    this.registerOutputs({
      rules: this.rules,
      prometheusUrl: this.prometheusUrl,
      alertmanagerUrl: this.alertmanagerUrl,
      grafanaUrl: this.grafanaUrl,
      grafanaAdminPassword: this.grafanaAdminPassword,
    });
  }
}

/** Grafana's provisioned data source: the stack's Prometheus, the default one. */
function grafanaDatasource(url: string): string {
  return [
    "# Generated by ha-backend (components/monitoring/monitoring.ts). Do not edit.",
    "apiVersion: 1",
    "datasources:",
    "  - name: Prometheus",
    "    type: prometheus",
    "    uid: prometheus",
    "    access: proxy",
    `    url: ${url}`,
    "    isDefault: true",
    "    editable: false",
    "",
  ].join("\n");
}

/** Grafana's dashboard provider: the dashboards ha-backend renders, read-only. */
function grafanaDashboardProvider(dir: string): string {
  return [
    "# Generated by ha-backend (components/monitoring/monitoring.ts). Do not edit.",
    "apiVersion: 1",
    "providers:",
    "  - name: ha-backend",
    "    type: file",
    "    disableDeletion: true",
    "    allowUiUpdates: false",
    "    options:",
    `      path: ${dir}`,
    "",
  ].join("\n");
}
