/**
 * What the engine sees beyond inputs, for a stack's whole life: which provider each resource
 * goes through, what is protected, that renames and moves keep every resource through aliases,
 * that a preview (unknown values everywhere) runs, and that credentials change only on request.
 */
import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { MysqlCluster, type MysqlClusterArgs } from "../../components/database/mysql-cluster";
import { DockerPlatform, dockerPublicHost } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import { dataProtected, decodeConfigValue, type StackConfig } from "../../infra/config";
import { aliasUrns, UNKNOWN_MARKER, type ProgramRun, type RecordedResource } from "../../scripts/mock-engine";
import { readStackFile } from "../../scripts/stack-file";
import { one, plain, runBuild, runStack, runWithConfig } from "../support/engine";
import { stackConfig, stackNames } from "../support/stack-files";

/** Resources that hold data: what `protectData` protects (a StatefulSet only with volumes). */
function holdsData(r: RecordedResource): boolean {
  if (r.type === "docker:index/volume:Volume") return true;
  if (r.type !== "kubernetes:apps/v1:StatefulSet") return false;
  return ((plain(r).spec?.volumeClaimTemplates ?? []) as unknown[]).length > 0;
}
const DB_COMPONENTS = /^ha-backend:index:(MysqlCluster|PostgresCluster)::/;
/** Credentials written once, at bootstrap, into a database's data (the REST API's is a config value). */
function storedInData(r: RecordedResource): boolean {
  return (
    r.type === "random:index/randomPassword:RandomPassword" &&
    DB_COMPONENTS.test(r.parent ?? "") &&
    !r.name.endsWith("-restapi-password")
  );
}

function byUrn(run: ProgramRun): Map<string, RecordedResource> {
  return new Map(run.resources.map((r) => [r.urn, r]));
}

/** URNs of `before` that no resource of `after` answers to (by URN or alias): what an update would replace. */
function unmatched(before: ProgramRun, after: ProgramRun): string[] {
  const index = byUrn(after);
  const known = new Set(after.resources.flatMap((r) => [r.urn, ...aliasUrns(r, index)]));
  return before.resources.map((r) => r.urn).filter((u) => !known.has(u));
}

describe.each(stackNames())("stack %s, as the engine sees it", (stack) => {
  let run: ProgramRun;
  let config: StackConfig;
  beforeAll(async () => {
    run = await runStack(stack);
    config = stackConfig(stack);
  });

  it("sends every Docker or Kubernetes resource through the provider the stack file names", () => {
    const named =
      config.platform === "docker"
        ? config.docker?.host === undefined
          ? undefined
          : "pulumi:providers:docker::docker-host"
        : config.kubernetes?.context === undefined && config.kubernetes?.kubeconfig === undefined
          ? undefined
          : "pulumi:providers:kubernetes::kubernetes-cluster";
    const pkg = config.platform === "docker" ? "docker:" : "kubernetes:";
    const onPlatform = run.resources.filter((r) => r.type.startsWith(pkg));
    expect(onPlatform.length).toBeGreaterThan(10);
    const wrong = onPlatform.filter((r) => r.options.provider !== named).map((r) => `${r.type}::${r.name}`);
    expect(wrong).toEqual([]);
    if (config.environment === "production" || config.platform === "kubernetes") {
      // A production stack names its target: never the kubeconfig's current context.
      expect(named).toBeDefined();
    }
  });

  it("protects data, and only data, exactly when protectData says so", () => {
    const on = dataProtected(config);
    const wrong: string[] = [];
    for (const r of run.resources) {
      const data = holdsData(r) || storedInData(r);
      const expected = data && on;
      if (r.options.protect !== expected || (r.custom && r.options.retainOnDelete !== expected)) {
        wrong.push(`${r.type}::${r.name} protect=${r.options.protect} retain=${r.options.retainOnDelete}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(run.resources.filter(holdsData).length).toBeGreaterThan(0);
  });

  it("waits for health: Docker containers until healthy, StatefulSets with timeouts sized from their volumes", () => {
    for (const r of run.resources.filter((x) => x.type === "docker:index/container:Container")) {
      const c = plain(r);
      if (c.attach === true) continue; // one-shot tasks run to completion instead
      // An exporter beside a member has no health of its own: it reports its server's as a metric.
      if ((c.labels ?? []).some((l: { label: string }) => l.label === "ha-backend.sidecar")) continue;
      expect([r.name, c.wait, c.waitTimeout > c.healthcheck.retries]).toEqual([r.name, true, true]);
    }
    for (const r of run.resources.filter((x) => x.type === "kubernetes:apps/v1:StatefulSet")) {
      expect(r.options.customTimeouts?.create).toMatch(/^\d+m$/);
      expect(parseInt(r.options.customTimeouts?.create ?? "0", 10)).toBeGreaterThanOrEqual(10);
    }
  });

  it("updates stacks made with earlier type tokens (ha:<module>:, ha-backend:<module>:) in place: every URN has both old ones as aliases", () => {
    // Written out here, not read from the source: the modules each class had before the
    // `ha-backend:index:` tokens.
    const modules: Record<string, string> = {
      LoadBalancer: "balancer",
      Memcached: "cache",
      RedisCache: "cache",
      ServerCluster: "cluster",
      EtcdCluster: "coordination",
      LockService: "coordination",
      MysqlCluster: "database",
      PostgresCluster: "database",
      ShardedMysql: "database",
      ShardedPostgres: "database",
      DockerPlatform: "platform",
      KubernetesPlatform: "platform",
    };
    const index = byUrn(run);
    const ours = run.resources.filter((r) => r.urn.split("::")[2].includes("ha-backend:index:"));
    expect(ours.length).toBeGreaterThan(10);
    const missing = ours.flatMap((r) =>
      ["ha", "ha-backend"]
        .map((pkg) =>
          r.urn.replace(
            /ha-backend:index:([A-Za-z]+)/g,
            (_, cls: string) => `${pkg}:${modules[cls] ?? "?"}:${cls}`,
          ),
        )
        .filter((old) => !aliasUrns(r, index).includes(old))
        .map((old) => `${r.urn} lacks ${old}`),
    );
    expect(missing).toEqual([]);
  });

  it("runs as a preview: computed values unknown, the program still completes", async () => {
    const preview = await runStack(stack, true);
    const urns = (r: ProgramRun) => r.resources.map((x) => x.urn).sort();
    expect(urns(preview)).toEqual(urns(run));
    // No generated secret has a value yet.
    expect(JSON.stringify(preview.outputs)).not.toContain("mock-password");
    // Docker's URL comes from config; a cloud load balancer's address exists only after the update.
    expect(preview.outputs.url).toBe(config.platform === "docker" ? run.outputs.url : UNKNOWN_MARKER);
  });
});

const mysqlArgs = (platform: Platform): MysqlClusterArgs => ({
  platform,
  mode: "galera",
  members: 3,
  database: "shop",
  user: "shop",
});

describe("explicit providers", () => {
  it("a Docker platform's provider reaches every container, volume, network and image, whoever deploys them", async () => {
    const run = await runBuild(() => {
      const remote = new docker.Provider("remote", { host: "ssh://deploy@build-1" });
      const platform = new DockerPlatform(
        "docker",
        { prefix: "x", publicHost: "build-1" },
        { provider: remote },
      );
      new MysqlCluster("catalog", mysqlArgs(platform));
    });
    const onDocker = run.resources.filter((r) => r.type.startsWith("docker:"));
    expect(onDocker.length).toBeGreaterThan(8);
    expect(onDocker.filter((r) => r.options.provider !== "pulumi:providers:docker::remote")).toEqual([]);
  });

  it("a Kubernetes platform's provider reaches every object, whoever deploys them", async () => {
    const run = await runBuild(() => {
      const cluster = new k8s.Provider("prod", { context: "prod" });
      const platform = new KubernetesPlatform("k8s", { namespace: "shop" }, { provider: cluster });
      new MysqlCluster("catalog", mysqlArgs(platform));
    });
    const onK8s = run.resources.filter((r) => r.type.startsWith("kubernetes:"));
    expect(onK8s.length).toBeGreaterThan(8);
    expect(onK8s.filter((r) => r.options.provider !== "pulumi:providers:kubernetes::prod")).toEqual([]);
  });

  it("a docker.host stack deploys there and prints URLs with that host", async () => {
    const file = readStackFile("ecommerce-dev");
    const docker = JSON.parse(file.config["ha-backend:docker"] ?? "{}") as Record<string, unknown>;
    const raw = Object.fromEntries(
      Object.entries(file.config).map(([k, v]) => [k.slice("ha-backend:".length), decodeConfigValue(v)]),
    );
    const run = await runWithConfig({
      ...raw,
      docker: { ...docker, host: "ssh://deploy@shop-1.example.com", bindAddress: "0.0.0.0" },
    });
    expect(one(run, "pulumi:providers:docker", "docker-host").inputs.host).toBe(
      "ssh://deploy@shop-1.example.com",
    );
    expect([run.outputs.url, run.outputs.httpsUrl]).toEqual([
      "http://shop-1.example.com:8080",
      "https://shop-1.example.com:8443",
    ]);
    // The self-signed certificate names the host clients use.
    expect(plain(one(run, "tls:index/selfSignedCert:SelfSignedCert", "shop-tls-cert")).dnsNames).toContain(
      "shop-1.example.com",
    );
  });

  it.each([
    [undefined, "localhost"],
    ["unix:///var/run/docker.sock", "localhost"],
    ["ssh://me@build-1", "build-1"],
    ["tcp://10.0.0.5:2376", "10.0.0.5"],
    ["tcp://[fd00::5]:2376", "[fd00::5]"],
  ])("the public host of engine %s is %s", (host, expected) => {
    expect(dockerPublicHost(host)).toBe(expected);
  });
});

describe("data protection on a component", () => {
  it.each([
    ["the protect arg", { protect: true }, {}],
    ["the component's protect option", {}, { protect: true }],
  ])(
    "%s protects volumes, the StatefulSet and stored credentials, never the stateless parts",
    async (_l, args, opts) => {
      for (const kind of ["docker", "kubernetes"] as const) {
        const run = await runBuild(() => {
          const platform =
            kind === "docker"
              ? new DockerPlatform("docker", { prefix: "x" })
              : new KubernetesPlatform("k8s", { namespace: "shop" });
          new MysqlCluster("catalog", { ...mysqlArgs(platform), ...args }, opts);
        });
        const custom = run.resources.filter((r) => r.custom);
        const shouldProtect = (r: RecordedResource) => holdsData(r) || storedInData(r);
        const wrong = custom
          .filter(
            (r) => r.options.protect !== shouldProtect(r) || r.options.retainOnDelete !== shouldProtect(r),
          )
          .map((r) => `${kind} ${r.type}::${r.name}`);
        expect(wrong).toEqual([]);
        expect(custom.filter(shouldProtect).length).toBeGreaterThan(2);
      }
    },
  );
});

describe("renames and moves keep every resource", () => {
  class Group extends pulumi.ComponentResource {
    constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
      super("example:index:Group", name, {}, opts);
    }
  }
  const before = () =>
    runBuild(() => {
      new MysqlCluster("catalog", mysqlArgs(new DockerPlatform("docker", { prefix: "x" })));
    });

  it("moving a component under a new parent: with an alias every old URN is matched, without it none", async () => {
    const old = await before();
    const moved = (aliased: boolean) =>
      runBuild(() => {
        const platform = new DockerPlatform("docker", { prefix: "x" });
        const data = new Group("data");
        new MysqlCluster("catalog", mysqlArgs(platform), {
          parent: data,
          aliases: aliased ? [{ parent: pulumi.rootStackResource }] : [],
        });
      });
    const under = old.resources.filter((r) => (r.parent ?? "").includes("catalog") || r.name === "catalog");
    expect(under.length).toBeGreaterThan(10);
    expect(unmatched(old, await moved(true))).toEqual([]);
    const lost = unmatched(old, await moved(false));
    expect(lost.length).toBe(under.length);
  });

  it("renaming a component with nameOverride keeps physical names, child URNs and data", async () => {
    const old = await before();
    const renamed = await runBuild(() => {
      new MysqlCluster(
        "products",
        { ...mysqlArgs(new DockerPlatform("docker", { prefix: "x" })), nameOverride: "catalog" },
        { aliases: [{ name: "catalog" }] },
      );
    });
    expect(unmatched(old, renamed)).toEqual([]);
    const physical = (run: ProgramRun) =>
      run.resources
        .filter((r) => r.type.startsWith("docker:"))
        .map((r) => String(plain(r).name))
        .sort();
    expect(physical(renamed)).toEqual(physical(old));
  });

  it("refuses a nameOverride that is not a DNS label before creating anything", async () => {
    await expect(
      runBuild(() => {
        new MysqlCluster("products", {
          ...mysqlArgs(new DockerPlatform("docker", { prefix: "x" })),
          nameOverride: "Catalog_1",
        });
      }),
    ).rejects.toThrow(
      'MysqlCluster "products": nameOverride must be a DNS label of at most 40 characters (a-z, 0-9, \'-\'; room for the suffixes of child names), but "Catalog_1" was provided.',
    );
  });
});

describe("credential rotation", () => {
  const raw = () => {
    const file = readStackFile("ecommerce-dev");
    return Object.fromEntries(
      Object.entries(file.config).map(([k, v]) => [k.slice("ha-backend:".length), decodeConfigValue(v)]),
    );
  };
  const passwords = (run: ProgramRun) =>
    run.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");

  it("no secret has a keeper until the stack asks for a rotation, then exactly that one", async () => {
    const plainRun = await runWithConfig(raw());
    expect(passwords(plainRun).filter((r) => r.inputs.keepers !== undefined)).toEqual([]);
    const rotated = await runWithConfig({
      ...raw(),
      credentialRotation: { "catalog-app-password": "2027-01" },
    });
    const kept = passwords(rotated).filter((r) => r.inputs.keepers !== undefined);
    expect(kept.map((r) => [r.name, plain(r).keepers])).toEqual([
      ["catalog-app-password", { rotation: "2027-01" }],
    ]);
  });
});
