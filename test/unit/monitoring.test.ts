/**
 * Observability under the mocked engine: exporters beside every tier (sidecars on Kubernetes,
 * containers of their own on Docker), metrics ports opened to the scraper and nothing else, the
 * Prometheus Operator's objects only when asked for, the Docker stack's own Prometheus,
 * Alertmanager and Grafana on 127.0.0.1, and no credential in plain text anywhere.
 */
import { parse } from "yaml";
import { redactSecrets, type ProgramRun } from "../../scripts/mock-engine";
import { EXPORTER_IMAGES } from "../../components/monitoring/render/exporters";
import { validateWorkloadSpec } from "../../components/platform/spec";
import type { SidecarSpec, WorkloadSpec } from "../../components/platform/types";
import { MONITORING_IMAGES } from "../../components/monitoring/monitoring";
import { kubernetesManifests, runStackVariant } from "../support/stack-variants";
import { ofType, plain } from "../support/engine";

jest.setTimeout(120_000);

/** Every generated or configured secret value that shows in a resource's inputs outside a secret. */
function plainSecrets(run: ProgramRun): string[] {
  const values = run.secretSources.map((s) => s.value).filter((v) => v.length >= 8);
  const found: string[] = [];
  for (const r of run.resources) {
    const text = JSON.stringify(redactSecrets(r.inputs));
    for (const v of values) if (text.includes(v)) found.push(`${r.type} ${r.name}`);
  }
  return found;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are loose JSON
type Json = any;

function podSpecOf(m: Json): Json {
  return m.spec?.template?.spec;
}

describe("Kubernetes (ecommerce-prod): exporters as sidecars, the scraper admitted to metrics ports only", () => {
  let run: ProgramRun;
  let manifests: Json[];
  beforeAll(async () => {
    run = await runStackVariant("ecommerce-prod");
    manifests = kubernetesManifests(run) as Json[];
  });

  it("declares no Prometheus Operator object unless monitoring.prometheusOperator is on", () => {
    expect(manifests.filter((m) => m.apiVersion === "monitoring.coreos.com/v1")).toEqual([]);
  });

  it("runs nginx-prometheus-exporter in each balancer pod, reading stub_status over the pod's loopback", () => {
    const lb = manifests.find((m) => m.kind === "Deployment" && m.metadata.name === "shop-lb-nginx");
    const sidecar = podSpecOf(lb).containers.find((c: Json) => c.name === "metrics");
    expect(sidecar.image).toBe(EXPORTER_IMAGES.nginx);
    expect(sidecar.args).toContain("--nginx.scrape-uri=http://127.0.0.1:8404/nginx_status");
    expect(sidecar.ports).toEqual([{ name: "nginx-metrics", containerPort: 9113, protocol: "TCP" }]);
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
  });

  it("opens the metrics ports to the scraper's pods in its namespace, and to nobody else", () => {
    const policy = manifests.find((m) => m.kind === "NetworkPolicy" && m.metadata.name === "shop-lb-nginx");
    const rule = policy.spec.ingress.find(
      (r: Json) =>
        r.from?.[0]?.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] === "monitoring",
    );
    expect(rule).toEqual({
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
          podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
        },
      ],
      ports: [{ port: 9113, protocol: "TCP" }],
    });
    // The etcd metrics port is a peer port: no client tier reaches it.
    const etcd = manifests.find((m) => m.kind === "NetworkPolicy" && m.metadata.name === "locks-etcd");
    const tiers = etcd.spec.ingress.filter(
      (r: Json) => r.from?.[0]?.podSelector?.matchExpressions !== undefined,
    );
    for (const r of tiers) expect(r.ports.map((p: Json) => p.port)).not.toContain(2381);
    expect(
      etcd.spec.ingress.some(
        (r: Json) => r.ports?.some((p: Json) => p.port === 2381) && r.from[0].namespaceSelector,
      ),
    ).toBe(true);
  });

  it("keeps every credential out of specs, ConfigMaps and labels", () => {
    expect(plainSecrets(run)).toEqual([]);
  });

  it("with monitoring.prometheusOperator: a PodMonitor per job, relabelled to the rules' labels, and one PrometheusRule", async () => {
    const withOperator = await runStackVariant("ecommerce-prod", (c) => {
      c["ha-backend:monitoring"] = { prometheusOperator: true, labels: { release: "kube-prometheus-stack" } };
    });
    const objs = (kubernetesManifests(withOperator) as Json[]).filter(
      (m) => m.apiVersion === "monitoring.coreos.com/v1",
    );
    const monitors = objs.filter((m) => m.kind === "PodMonitor");
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual([
      "cache-redis",
      "cache-router",
      "cache-sentinel",
      "catalog-mysqld",
      "catalog-router",
      "locks-etcd",
      "orders-0-mysqld",
      "orders-0-router",
      "orders-1-mysqld",
      "orders-1-router",
      "shop-lb-nginx",
    ]);
    // The routers' own exporter, on their stats port.
    expect(
      monitors.find((m) => m.metadata.name === "orders-0-router").spec.podMetricsEndpoints[0],
    ).toMatchObject({ port: "stats", path: "/metrics" });
    const nginx = monitors.find((m) => m.metadata.name === "shop-lb-nginx");
    expect(nginx.metadata.labels.release).toBe("kube-prometheus-stack");
    expect(nginx.spec.selector.matchLabels["app.kubernetes.io/name"]).toBe("shop-lb-nginx");
    expect(nginx.spec.podMetricsEndpoints[0]).toMatchObject({
      port: "nginx-metrics",
      path: "/metrics",
      interval: "15s",
    });
    expect(nginx.spec.podMetricsEndpoints[0].relabelings).toEqual([
      { action: "replace", targetLabel: "job", replacement: "shop-lb-nginx" },
      { action: "replace", targetLabel: "ha_component", replacement: "shop-lb" },
      { action: "replace", sourceLabels: ["__meta_kubernetes_pod_name"], targetLabel: "instance" },
    ]);
    const rules = objs.filter((m) => m.kind === "PrometheusRule");
    expect(rules).toHaveLength(1);
    const alerts = rules[0].spec.groups.flatMap((g: Json) => g.rules.map((r: Json) => r.alert));
    expect(alerts).toEqual(
      expect.arrayContaining(["BalancerBackendDown", "EtcdNoLeader", "VolumeNearlyFull", "RouterNoWriter"]),
    );
    // The dashboard, for kube-prometheus-stack's Grafana sidecar.
    const board = (kubernetesManifests(withOperator) as Json[]).find(
      (m) => m.kind === "ConfigMap" && m.metadata.name === "monitoring-dashboards",
    );
    expect(board.metadata.labels.grafana_dashboard).toBe("1");
    expect(JSON.parse(board.data["ecommerce.json"]).title).toContain("ecommerce");
    // Pods that do not exist leave no `up`: each job is counted against its members.
    const exprs = rules[0].spec.groups.flatMap((g: Json) => g.rules.map((r: Json) => r.expr));
    expect(exprs).toContain(
      'count by (job) (up{job="orders-0-mysqld"}) < 3 or absent(up{job="orders-0-mysqld"})',
    );
    expect(exprs).toContain(
      'count by (job) (up{job="shop-lb-nginx"}) < 3 or absent(up{job="shop-lb-nginx"})',
    );
  });
});

describe("Docker (blog-dev with PostgreSQL and monitoring.enabled): exporters as containers of their own", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runStackVariant("blog-dev", (c) => {
      c["ha-backend:database"] = { engine: "postgresql", members: 3 };
      c["ha-backend:monitoring"] = { enabled: true };
    });
  });

  it("puts postgres_exporter beside each member, logging in with a password file as the pg_monitor role", () => {
    const sidecars = ofType(run, "docker:index/container:Container").filter((r) =>
      /^blog-pg-\d-metrics$/.test(r.name),
    );
    expect(sidecars.map((r) => r.name).sort()).toEqual([
      "blog-pg-0-metrics",
      "blog-pg-1-metrics",
      "blog-pg-2-metrics",
    ]);
    const c = plain(sidecars[0]);
    expect(c.envs).toEqual(
      expect.arrayContaining([
        "DATA_SOURCE_URI=blog-pg-0:5432/postgres?sslmode=disable",
        "DATA_SOURCE_USER=metrics",
        "DATA_SOURCE_PASS_FILE=/etc/ha-backend/metrics/password",
      ]),
    );
    expect(c.uploads).toEqual([
      expect.objectContaining({
        file: "/etc/ha-backend/metrics/password",
        permissions: "0400",
        owner: "65534",
      }),
    ]);
    // On the scraper's network with its member (which it reaches by name there), never on the
    // clients' ones.
    const member = plain(
      ofType(run, "docker:index/container:Container").find((r) => r.name === "blog-pg-0")!,
    );
    expect(c.networksAdvanced).toEqual([
      { name: "blog-dev-blog-pg-from-monitoring", aliases: ["blog-pg-0-metrics"] },
    ]);
    expect(member.networksAdvanced.map((n: Json) => n.name)).toContain("blog-dev-blog-pg-from-monitoring");
    // Prometheus scrapes it by that alias, and Patroni's own /metrics by the member's.
    const prom = plain(
      ofType(run, "docker:index/container:Container").find((r) => r.name === "monitoring-prometheus-0")!,
    );
    const config = parse(prom.uploads.find((u: Json) => u.file === "/etc/prometheus/prometheus.yml").content);
    const targetsOf = (job: string) =>
      config.scrape_configs
        .find((j: Json) => j.job_name === job)
        .static_configs.map((t: Json) => t.targets[0]);
    expect(targetsOf("blog-postgres")).toEqual([
      "blog-pg-0-metrics:9187",
      "blog-pg-1-metrics:9187",
      "blog-pg-2-metrics:9187",
    ]);
    expect(targetsOf("blog-patroni")).toEqual(["blog-pg-0:8008", "blog-pg-1:8008", "blog-pg-2:8008"]);
    expect(prom.networksAdvanced.map((n: Json) => n.name)).toContain("blog-dev-blog-pg-from-monitoring");
  });

  it("admits the exporter in pg_hba from the member's network only, into the postgres database", () => {
    const member = plain(
      ofType(run, "docker:index/container:Container").find((r) => r.name === "blog-pg-0")!,
    );
    const yml = member.uploads.find((u: Json) => u.file.endsWith("patroni.yml")).content;
    const hba: string[] = parse(yml).postgresql.pg_hba;
    expect(hba.filter((l) => l.includes("metrics"))).toEqual(["host postgres metrics samenet scram-sha-256"]);
    expect(hba[hba.length - 1]).toBe("host all all all reject");
  });

  it("keeps every credential out of environment, labels and plain files", () => {
    expect(plainSecrets(run)).toEqual([]);
  });

  it("runs neither Prometheus nor exporters without monitoring.enabled: nothing could scrape them", async () => {
    const plainRun = await runStackVariant("blog-dev", (c) => {
      c["ha-backend:database"] = { engine: "postgresql", members: 3 };
    });
    const images = ofType(plainRun, "docker:index/remoteImage:RemoteImage").map((r) => plain(r).name);
    expect(images).not.toContain(MONITORING_IMAGES.prometheus);
    expect(
      ofType(plainRun, "docker:index/container:Container").filter((r) => r.name.endsWith("-metrics")),
    ).toEqual([]);
  });
});

describe("Docker (ecommerce-dev with monitoring.enabled): the stack's own Prometheus, Alertmanager and Grafana", () => {
  let run: ProgramRun;
  const containers = () =>
    ofType(run, "docker:index/container:Container").map((r) => ({ name: r.name, c: plain(r) }));
  beforeAll(async () => {
    run = await runStackVariant("ecommerce-dev", (c) => {
      c["ha-backend:monitoring"] = { enabled: true };
      // Published UIs stay on 127.0.0.1 even when the stack's own ports face the network.
      c["ha-backend:docker"] = { ...(c["ha-backend:docker"] as object), bindAddress: "0.0.0.0" };
    });
  });

  it("publishes Prometheus, Alertmanager and Grafana on 127.0.0.1 only", () => {
    const published = Object.fromEntries(
      containers()
        .filter(({ name }) => /^monitoring-(prometheus|alertmanager|grafana)-0$/.test(name))
        .map(({ name, c }) => [name, c.ports]),
    );
    expect(published).toEqual({
      "monitoring-alertmanager-0": [{ internal: 9093, external: 9093, ip: "127.0.0.1" }],
      "monitoring-grafana-0": [{ internal: 3000, external: 3000, ip: "127.0.0.1" }],
      "monitoring-prometheus-0": [{ internal: 9090, external: 9090, ip: "127.0.0.1" }],
    });
    expect(run.outputs.grafanaUrl).toBe("http://127.0.0.1:3000");
    expect(run.outputs.grafanaAdminPassword).toBe("[secret]");
  });

  it("provisions Prometheus with a job per exporter and the rules, and Grafana with the dashboard", () => {
    const prom = containers().find(({ name }) => name === "monitoring-prometheus-0")!.c;
    const config = parse(prom.uploads.find((u: Json) => u.file === "/etc/prometheus/prometheus.yml").content);
    const jobs = config.scrape_configs.map((j: Json) => j.job_name).sort();
    expect(jobs).toEqual(
      expect.arrayContaining(["shop-lb-nginx", "shop-lb-edge-probe", "shop-lb-backend-probe", "locks-etcd"]),
    );
    const rules = parse(
      prom.uploads.find((u: Json) => u.file === "/etc/prometheus/rules/ha-backend.yml").content,
    );
    expect(rules.groups.length).toBeGreaterThan(1);
    const grafana = containers().find(({ name }) => name === "monitoring-grafana-0")!.c;
    const dashboard = grafana.uploads.find((u: Json) => u.file.endsWith("/ecommerce.json"));
    expect(JSON.parse(dashboard.content).panels.length).toBeGreaterThan(5);
    expect(grafana.envs).toContain("GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/ha-backend/grafana/admin-password");
  });

  it("keeps Alertmanager and Grafana off the networks of what is scraped: tiers of their own that meet Prometheus", () => {
    const nets = (name: string) =>
      containers()
        .find((x) => x.name === name)!
        .c.networksAdvanced.map((n: Json) => n.name)
        .sort();
    expect(nets("monitoring-grafana-0")).toEqual([
      "ecommerce-dev-monitoring-from-monitoring-ui",
      "ecommerce-dev-public",
    ]);
    expect(nets("monitoring-alertmanager-0")).toEqual([
      "ecommerce-dev-monitoring-alerts-from-monitoring",
      "ecommerce-dev-public",
    ]);
    expect(nets("monitoring-prometheus-0")).toEqual(
      expect.arrayContaining([
        "ecommerce-dev-monitoring-alerts-from-monitoring",
        "ecommerce-dev-monitoring-from-monitoring-ui",
      ]),
    );
  });

  it("puts the scraper on the networks of what it scrapes: the metrics tiers admit the monitoring tier", () => {
    const nets = ofType(run, "docker:index/network:Network").map((r) => plain(r).name as string);
    expect(nets).toEqual(
      expect.arrayContaining(["ecommerce-dev-edge-from-monitoring", "ecommerce-dev-app-from-monitoring"]),
    );
  });

  it("keeps every credential out of environment, labels and plain files", () => {
    expect(plainSecrets(run)).toEqual([]);
  });
});

describe("monitoring settings that do nothing are refused before anything is created", () => {
  it.each([
    ["ecommerce-prod", { enabled: true }, "monitoring.enabled must only be true on the docker platform"],
    [
      "ecommerce-dev",
      { prometheusOperator: true },
      "monitoring.prometheusOperator must only be true on the kubernetes platform",
    ],
    [
      "ecommerce-dev",
      { enabled: true, exporters: false },
      "monitoring.exporters must be true when monitoring.enabled is true",
    ],
  ])("%s with monitoring %j", async (stack, monitoring, message) => {
    await expect(
      runStackVariant(stack, (c) => {
        c["ha-backend:monitoring"] = monitoring;
      }),
    ).rejects.toThrow(message);
  });

  it("monitoring.exporters: false runs no exporter", async () => {
    const run = await runStackVariant("ecommerce-prod", (c) => {
      c["ha-backend:monitoring"] = { exporters: false };
    });
    const pods = (kubernetesManifests(run) as Json[]).filter((m) => podSpecOf(m) !== undefined);
    expect(pods.flatMap((m) => podSpecOf(m).containers.filter((c: Json) => c.name === "metrics"))).toEqual(
      [],
    );
  });
});

describe("sidecars are checked before anything is created", () => {
  const base: WorkloadSpec = {
    kind: "stateful",
    replicas: 1,
    image: "postgres:15",
    ports: { pg: 5432 },
    secretFiles: { "/etc/app/password": "x" },
    tier: "db",
  };
  const sidecar: SidecarSpec = {
    name: "metrics",
    image: EXPORTER_IMAGES.postgres,
    ports: { "pg-metrics": 9187 },
    runAsUser: 65534,
  };
  it.each<[string, Partial<SidecarSpec>, string]>([
    [
      "a port number the member listens on",
      { ports: { "pg-metrics": 5432 } },
      "sidecars[0].ports.pg-metrics must use a port number no other container of the pod listens on, but 5432 was provided",
    ],
    [
      "a port name the member uses",
      { ports: { pg: 9187 } },
      "sidecars[0].ports.pg must have a name of at most 15 characters not used by another port of the pod",
    ],
    [
      "a file path the member uses",
      { secretFiles: { "/etc/app/password": "y" } },
      'sidecars[0].secretFiles must use paths no other container of the workload uses, but "/etc/app/password" was provided',
    ],
    [
      "root",
      { runAsUser: 0 },
      "sidecars[0].runAsUser must be a numeric user id other than root, but 0 was provided",
    ],
    [
      "an unpinned image",
      { image: "prom/mysqld-exporter:latest" },
      "sidecars[0].image must be pinned by a tag other than latest",
    ],
  ])("refuses %s", (_what, patch, message) => {
    expect(() => validateWorkloadSpec("db", { ...base, sidecars: [{ ...sidecar, ...patch }] })).toThrow(
      message,
    );
  });

  it("refuses a metrics port that names no port of the pod", () => {
    expect(() =>
      validateWorkloadSpec("db", { ...base, sidecars: [sidecar], metricsPorts: [{ port: "metrics" }] }),
    ).toThrow("metricsPorts must name a port of the workload or of its sidecars");
  });
});
