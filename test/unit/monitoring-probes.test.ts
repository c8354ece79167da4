/**
 * What the stack's Monitoring runs itself, under the mocked engine: the blackbox prober of the
 * edge on both platforms (Kubernetes: a Deployment and the operator's Probe object, admitted to
 * the edge's public ports and nothing else), Docker's watcher of the data volumes, and the
 * Alertmanager webhook as a secret stack key.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { parseStackConfig } from "../../infra/config";
import {
  redactSecrets,
  runProgramWithMocks,
  type ProgramRun,
  type RecordedResource,
} from "../../scripts/mock-engine";
import { readStackFile } from "../../scripts/stack-file";
import { EXPORTER_IMAGES } from "../../components/monitoring/render/exporters";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform, WorkloadSpec } from "../../components/platform/types";
import { allowedBySource, networkModel, reachabilityMatrix } from "../support/network-reachability";
import type { Manifest } from "../support/pod-security";
import { kubernetesManifests, runStackVariant, SCRAPER } from "../support/stack-variants";
import { ofType, plain, runBuild } from "../support/engine";

jest.setTimeout(120_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are loose JSON
type Json = any;

const DNS = ["kube-dns:53", "kube-dns:53/UDP"];

describe("Kubernetes (ecommerce-prod with monitoring.prometheusOperator): the edge probed from inside", () => {
  let manifests: Json[];
  beforeAll(async () => {
    const run = await runStackVariant("ecommerce-prod", (c) => {
      c["ha-backend:monitoring"] = { prometheusOperator: true };
    });
    manifests = kubernetesManifests(run) as Json[];
  });

  it("runs a blackbox prober and declares a Probe of the edge's HTTPS URL, labelled as the rules read it", () => {
    const prober = manifests.find((m) => m.kind === "Deployment" && m.metadata.name === "monitoring-prober");
    expect(prober.spec.template.spec.containers[0].image).toBe(EXPORTER_IMAGES.blackbox);
    const probes = manifests.filter((m) => m.kind === "Probe");
    // Kubernetes counts the app servers through kube-state-metrics: the edge is the only probe.
    expect(probes.map((p) => p.metadata.name)).toEqual(["shop-lb-edge-probe"]);
    const ns = manifests.find((m) => m.kind === "Namespace").metadata.name;
    expect(probes[0].spec).toMatchObject({
      jobName: "shop-lb-edge-probe",
      interval: "15s",
      module: "https_edge",
      prober: { url: `monitoring-prober.${ns}.svc.cluster.local:9115`, path: "/probe" },
    });
    const target = `https://shop-lb-nginx.${ns}.svc.cluster.local:8443/healthz`;
    expect(probes[0].spec.targets.staticConfig).toEqual({
      static: [target],
      labels: { ha_component: "shop-lb" },
      relabelingConfigs: [
        {
          action: "replace",
          sourceLabels: ["__param_target"],
          regex: target.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
          targetLabel: "instance",
          replacement: "shop-lb",
        },
      ],
    });
    // The regex matches the URL itself, as RE2 reads it (no dot left to match anything else).
    const regex = probes[0].spec.targets.staticConfig.relabelingConfigs[0].regex;
    expect(new RegExp(`^${regex}$`).test(target)).toBe(true);
    expect(new RegExp(`^${regex}$`).test(target.replace(".svc", "xsvc"))).toBe(false);
  });

  it("alerts on the probe: certificate expiry and nginx's 5xx, which only a prober sees on nginx", () => {
    const rules = manifests.find((m) => m.kind === "PrometheusRule");
    const alerts = rules.spec.groups.flatMap((g: Json) => g.rules.map((r: Json) => r.alert));
    expect(alerts).toEqual(expect.arrayContaining(["EdgeCertificateExpiring", "EdgeHigh5xxRate"]));
    const expiry = rules.spec.groups
      .flatMap((g: Json) => g.rules)
      .find((r: Json) => r.alert === "EdgeCertificateExpiring");
    expect(expiry.expr).toContain('job="shop-lb-edge-probe"');
  });

  it("lets the prober reach the edge's public ports and nothing else, and the scraper reach the prober", () => {
    const ns = manifests.find((m) => m.kind === "Namespace").metadata.name;
    const allowed = allowedBySource(
      reachabilityMatrix(networkModel([...(manifests as Manifest[]), ...SCRAPER], { namespace: ns })),
    );
    expect(allowed["monitoring-prober"]).toEqual(
      [...DNS, "monitoring-prober:9115", "shop-lb-nginx:8080", "shop-lb-nginx:8443"].sort(),
    );
    expect(allowed["monitoring/prometheus"]).toContain("monitoring-prober:9115");
    // Nobody else in the stack reaches the prober.
    for (const [src, dsts] of Object.entries(allowed)) {
      if (src !== "monitoring-prober" && src !== "monitoring/prometheus") {
        expect([src, dsts.filter((d) => d.startsWith("monitoring-prober"))]).toEqual([src, []]);
      }
    }
  });

  it("runs no prober without the operator (nothing would scrape it)", async () => {
    const run = await runStackVariant("ecommerce-prod");
    const objs = kubernetesManifests(run) as Json[];
    expect(objs.filter((m) => m.metadata?.name?.startsWith("monitoring-"))).toEqual([]);
  });
});

describe("Docker (ecommerce-dev with monitoring.enabled): the data volumes watched, the edge probed", () => {
  let run: ProgramRun;
  const containers = () => ofType(run, "docker:index/container:Container").map((r) => plain(r));
  beforeAll(async () => {
    run = await runStackVariant("ecommerce-dev", (c) => {
      c["ha-backend:monitoring"] = { enabled: true };
    });
  });

  it("watches the engine's disk through an empty volume of its own, never mounting the data", () => {
    const volumes = ofType(run, "docker:index/volume:Volume").map((r) => plain(r).name as string);
    expect(volumes).toContain("ecommerce-dev-monitoring-volumes-0-data");
    const watcher = containers().find((c) => c.name === "ecommerce-dev-monitoring-volumes-0");
    expect(watcher.command).toEqual([
      "--collector.disable-defaults",
      "--collector.filesystem",
      "--path.rootfs=/",
      "--web.listen-address=:9100",
    ]);
    expect(watcher.user).toBe("65534");
    // Its own volume only: no other workload's data is mounted into it.
    expect(watcher.volumes).toEqual([
      { volumeName: "ecommerce-dev-monitoring-volumes-0-data", containerPath: "/volumes/docker-volumes" },
    ]);
    // The data volumes are on the same local driver (the engine's disk) as the watched one.
    for (const v of ofType(run, "docker:index/volume:Volume").map((r) => plain(r))) {
      expect([v.name, v.driver ?? "local"]).toEqual([v.name, "local"]);
    }
    // Only on its own network with the monitoring tier: it publishes nothing.
    expect(watcher.networksAdvanced.map((n: Json) => n.name)).toEqual([
      "ecommerce-dev-monitoring-volumes-from-monitoring",
    ]);
    expect(watcher.ports).toEqual([]);
  });

  it("has Prometheus scrape it, and the volume rule reads it", () => {
    const prom = containers().find((c) => c.name === "ecommerce-dev-monitoring-prometheus-0");
    const config = parse(prom.uploads.find((u: Json) => u.file === "/etc/prometheus/prometheus.yml").content);
    const job = config.scrape_configs.find((j: Json) => j.job_name === "ecommerce-dev-volumes");
    expect(job.static_configs).toEqual([
      {
        targets: ["monitoring-volumes:9100"],
        labels: { instance: "monitoring-volumes", ha_component: "ecommerce-dev" },
      },
    ]);
    const rules = parse(
      prom.uploads.find((u: Json) => u.file === "/etc/prometheus/rules/ha-backend.yml").content,
    );
    const volume = rules.groups
      .flatMap((g: Json) => g.rules)
      .find((r: Json) => r.alert === "VolumeNearlyFull");
    expect(volume.expr).toContain('job="ecommerce-dev-volumes"');
    expect(volume.expr).toContain('mountpoint=~"/volumes/.+"');
  });

  it("probes the edge over the network the edge admits the scraper on, never the public one", () => {
    const prober = containers().find((c) => c.name === "ecommerce-dev-monitoring-prober-0");
    const nets = prober.networksAdvanced.map((n: Json) => n.name);
    expect(nets).toContain("ecommerce-dev-edge-from-monitoring");
    expect(nets).not.toContain("ecommerce-dev-public");
    expect(prober.ports).toEqual([]);
  });
});

describe("alertWebhookUrl: Alertmanager's receiver, a secret stack key", () => {
  const TOKEN = "XXXXTOKENXXXX";
  const URL = `https://hooks.example.com/services/T000/B000/${TOKEN}`;
  /** ecommerce-dev with `monitoring` and `alertWebhookUrl` set, the URL stored with --secret when `secret`. */
  async function runDev(
    monitoring: Record<string, unknown>,
    hook: string | undefined,
    secret: boolean,
  ): Promise<{ run?: ProgramRun; error?: unknown; recorded: RecordedResource[] }> {
    const file = readStackFile("ecommerce-dev");
    const config: Record<string, string> = {
      ...file.config,
      "ha-backend:monitoring": JSON.stringify(monitoring),
      ...(hook !== undefined ? { "ha-backend:alertWebhookUrl": hook } : {}),
    };
    const { defineStack } = await import("../../infra/program");
    const recorded: RecordedResource[] = [];
    try {
      const run = await runProgramWithMocks(
        {
          config,
          secretKeys: [...file.secretKeys, ...(secret ? ["ha-backend:alertWebhookUrl"] : [])],
          stack: "ecommerce-dev",
          program: defineStack,
        },
        recorded,
      );
      return { run, recorded };
    } catch (error) {
      return { error, recorded };
    }
  }

  it("goes into Alertmanager's config as a secret file, never plain", async () => {
    const { run, error } = await runDev({ enabled: true }, URL, true);
    expect(error).toBeUndefined();
    const am = ofType(run!, "docker:index/container:Container").find(
      (r) => r.name === "monitoring-alertmanager-0",
    )!;
    // Plain inputs carry no URL; the unwrapped secret upload has it, as Alertmanager reads it.
    expect(JSON.stringify(redactSecrets(am.inputs))).not.toContain("hooks.example.com");
    const upload = plain(am).uploads.find((u: Json) => u.file === "/etc/alertmanager/alertmanager.yml");
    expect(upload.permissions).toBe("0400");
    expect(parse(upload.content).receivers).toEqual([
      { name: "default", webhook_configs: [{ url: URL, send_resolved: true }] },
    ]);
    for (const r of run!.resources) {
      if (r.name === "monitoring-alertmanager-0") continue;
      expect([r.name, JSON.stringify(redactSecrets(r.inputs)).includes("hooks.example.com")]).toEqual([
        r.name,
        false,
      ]);
    }
  });

  it.each([
    [
      "stored in plain text",
      { enabled: true },
      URL,
      false,
      [
        "alertWebhookUrl must be stored as a secret, but a plain value was provided. Run: pulumi config set --secret ha-backend:alertWebhookUrl <url>",
      ],
    ],
    [
      "without the stack's own Alertmanager, and in plain text (both said at once)",
      {},
      URL,
      false,
      [
        "alertWebhookUrl must only be set when monitoring.enabled is true",
        "alertWebhookUrl must be stored as a secret",
      ],
    ],
    [
      "not a URL, even in plain text",
      { enabled: true },
      `hooks.example.com/${TOKEN}`,
      false,
      [
        "alertWebhookUrl must be an http:// or https:// URL with a host",
        "alertWebhookUrl must be stored as a secret",
      ],
    ],
    [
      "with a newline that Alertmanager would refuse",
      { enabled: true },
      `${URL}\n`,
      true,
      [
        "alertWebhookUrl must be an http:// or https:// URL with a host, without spaces or control characters",
      ],
    ],
    [
      "with a leading space",
      { enabled: true },
      ` ${URL}`,
      true,
      [
        "alertWebhookUrl must be an http:// or https:// URL with a host, without spaces or control characters",
      ],
    ],
  ])("is refused %s, before anything is created", async (_what, monitoring, hook, secret, messages) => {
    const { error, recorded } = await runDev(monitoring, hook, secret);
    for (const m of messages) expect(String(error)).toContain(m);
    // The value itself is never repeated in a message, stored in plain text or not.
    expect(String(error)).not.toContain(TOKEN);
    expect(recorded.filter((r) => r.type !== "pulumi:pulumi:Stack")).toEqual([]);
  });

  it("keeps the other monitoring values visible in messages (the secret is a key of its own)", async () => {
    const { error } = await runDev({ enabled: true, ports: { prometheus: 8080 } }, URL, true);
    expect(String(error)).toContain(
      "monitoring.ports.prometheus must differ from docker.publicPort (8080): a host port takes one listener, but 8080 was provided.",
    );
  });

  it("offline (synth, tests), a secure value stands in as a URL under .invalid, still secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "ha-hook-"));
    try {
      writeFileSync(
        join(dir, "Pulumi.hook-dev.yaml"),
        [
          "config:",
          "  ha-backend:topology: ecommerce",
          "  ha-backend:platform: docker",
          "  ha-backend:monitoring:",
          "    enabled: true",
          "  ha-backend:alertWebhookUrl:",
          "    secure: v1:AAAABBBB",
          "",
        ].join("\n"),
      );
      const file = readStackFile("hook-dev", dir);
      expect(file.placeholders).toEqual(["ha-backend:alertWebhookUrl"]);
      expect(file.config["ha-backend:alertWebhookUrl"]).toMatch(
        /^https:\/\/alerts\.invalid\/offline-placeholder-secret-[0-9a-f]{12}$/,
      );
      expect(file.secretKeys).toContain("ha-backend:alertWebhookUrl");
      expect(file.secretSources.map((x) => x.value)).toContain(file.config["ha-backend:alertWebhookUrl"]);
      expect(() =>
        parseStackConfig(
          Object.fromEntries(
            Object.entries(file.config).map(([k, v]) => [
              k.replace("ha-backend:", ""),
              /^[{[]/.test(v) ? JSON.parse(v) : v,
            ]),
          ),
          { secretKeys: file.secretKeys.map((k) => k.replace("ha-backend:", "")), stack: "hook-dev" },
        ),
      ).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("probes are checked before anything is created", () => {
  const prober = (extra: Partial<WorkloadSpec>): WorkloadSpec => ({
    kind: "stateless",
    replicas: 1,
    image: "prom/blackbox-exporter:v0.27.0",
    ports: { http: 9115 },
    tier: "probe",
    ...extra,
  });
  const edge: WorkloadSpec = {
    kind: "stateless",
    replicas: 1,
    image: "nginx:1.28.0-alpine",
    ports: { http: 8080 },
    tier: "edge",
    // Docker: the prober reaches it over the network it admits the prober's tier on.
    allowFrom: ["probe"],
    publicPorts: [{ target: "http", port: 80 }],
  };
  const platforms: [string, () => Platform][] = [
    ["docker", () => new DockerPlatform("p", { prefix: "t" })],
    ["kubernetes", () => new KubernetesPlatform("p", { namespace: "t" })],
  ];

  it.each(platforms)("%s: probes must name a tier already published", async (_kind, make) => {
    let caught: unknown;
    await runBuild(() => {
      const p = make();
      try {
        p.deploy("prober", prober({ probes: ["edge"] }));
      } catch (e) {
        caught = e;
      }
      p.deploy("lb", edge);
      p.deploy("prober-2", prober({ probes: ["edge"] }));
    });
    expect(String(caught)).toContain('probes must name tiers already deployed with publicPorts, but "edge"');
  });

  it("docker: probes must name a tier that admits the prober's (never over the public network)", async () => {
    let caught: unknown;
    await runBuild(() => {
      const p = new DockerPlatform("p", { prefix: "t" });
      p.deploy("lb", { ...edge, allowFrom: [] });
      try {
        p.deploy("prober", prober({ probes: ["edge"] }));
      } catch (e) {
        caught = e;
      }
    });
    expect(String(caught)).toContain(
      'probes must name tiers that already admit tier probe on Docker (a container\'s networks are fixed when it is created), but "edge" was provided.',
    );
  });
});

describe("the Docker stack's host ports are checked against each other before anything is created", () => {
  it.each([
    [
      { enabled: true, ports: { prometheus: 8080 } },
      "monitoring.ports.prometheus must differ from docker.publicPort (8080)",
    ],
    [
      { enabled: true, ports: { grafana: 8443 } },
      "monitoring.ports.grafana must differ from docker.httpsPort (8443)",
    ],
    [
      { enabled: true, ports: { alertmanager: 9090 } },
      "monitoring.ports.alertmanager must differ from monitoring.ports.prometheus (9090)",
    ],
  ])("ecommerce-dev with monitoring %j", async (monitoring, message) => {
    await expect(
      runStackVariant("ecommerce-dev", (c) => {
        c["ha-backend:monitoring"] = monitoring;
      }),
    ).rejects.toThrow(message);
  });

  it("a second stack's own ports are accepted", async () => {
    const run = await runStackVariant("blog-dev", (c) => {
      c["ha-backend:monitoring"] = {
        enabled: true,
        ports: { prometheus: 9091, alertmanager: 9094, grafana: 3001 },
      };
    });
    const published = ofType(run, "docker:index/container:Container")
      .flatMap((r) => plain(r).ports ?? [])
      .map((p: Json) => `${p.ip}:${p.external}`)
      .sort();
    expect(published).toEqual(["127.0.0.1:3001", "127.0.0.1:8081", "127.0.0.1:9091", "127.0.0.1:9094"]);
  });
});
