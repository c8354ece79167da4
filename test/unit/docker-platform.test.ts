import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform } from "../../components/platform/docker";
import type { WorkloadSpec } from "../../components/platform/types";
import { isWrappedSecret, ofType, one, plain, runComponents } from "../support/engine";
import { DB, WEB } from "../support/workloads";

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";
const VOLUME = "docker:index/volume:Volume";

const web: WorkloadSpec = {
  ...WEB,
  publicPorts: [{ target: "http", port: 18080 }],
  resources: { cpu: "250m", memory: "128Mi" },
};
const db: WorkloadSpec = { ...DB, healthCheck: { exec: ["pg_isready"] } };

function deployBoth() {
  const platform = new DockerPlatform("docker", { prefix: "shop-dev" });
  const w = platform.deploy("web", web);
  const d = platform.deploy("db", db);
  return { webMembers: w.members, dbMembers: d.members, publicAddress: w.publicAddresses.http };
}

describe("DockerPlatform", () => {
  it("gives every tier an internal network and only published workloads the public one", async () => {
    const run = await runComponents(deployBoth);
    const nets = Object.fromEntries(ofType(run, NETWORK).map((n) => [plain(n).name, plain(n).internal]));
    expect(nets).toEqual({
      "shop-dev-app": true,
      "shop-dev-db": true,
      "shop-dev-edge": true,
      "shop-dev-public": false,
    });
    const dbNets = plain(one(run, CONTAINER, "db-0")).networksAdvanced.map((n: { name: string }) => n.name);
    // The database is reachable from its peers (db) and from the app tier, and from nothing public.
    expect(dbNets).toEqual(["shop-dev-db", "shop-dev-app"]);
    const webNets = plain(one(run, CONTAINER, "web-0")).networksAdvanced.map((n: { name: string }) => n.name);
    expect(webNets).toEqual(["shop-dev-app", "shop-dev-edge", "shop-dev-public"]);
  });

  it("creates one container per member with stable names, aliases, restart policy and health check", async () => {
    const run = await runComponents(deployBoth);
    expect(
      ofType(run, CONTAINER)
        .map((c) => c.name)
        .sort(),
    ).toEqual(["db-0", "db-1", "db-2", "web-0", "web-1"]);
    const c = plain(one(run, CONTAINER, "web-1"));
    expect(c).toMatchObject({
      name: "shop-dev-web-1",
      hostname: "web-1",
      restart: "unless-stopped",
      user: "101",
      memory: 128,
      cpus: "0.25",
      healthcheck: {
        tests: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"],
        interval: "5s",
        timeout: "3s",
        retries: 3,
        startPeriod: "10s",
      },
    });
    expect(c.networksAdvanced[0].aliases).toEqual(["web-1", "web"]);
    expect(c.uploads).toEqual([
      { file: "/etc/app/app.conf", content: "listen 8080;\n", permissions: "0444" },
    ]);
    expect(plain(one(run, CONTAINER, "db-0")).healthcheck.tests).toEqual(["CMD", "pg_isready"]);
  });

  it("publishes the host port on the first member only, and returns its URL", async () => {
    const run = await runComponents(deployBoth);
    expect(plain(one(run, CONTAINER, "web-0")).ports).toEqual([{ internal: 8080, external: 18080 }]);
    expect(plain(one(run, CONTAINER, "web-1")).ports).toEqual([]);
    expect(run.outputs.publicAddress).toBe("localhost:18080");
  });

  it("gives each stateful member its own protected named volume", async () => {
    const run = await runComponents(deployBoth);
    expect(
      ofType(run, VOLUME)
        .map((v) => plain(v).name)
        .sort(),
    ).toEqual(["shop-dev-db-0-data", "shop-dev-db-1-data", "shop-dev-db-2-data"]);
    expect(ofType(run, VOLUME).every((v) => v.protect)).toBe(true);
    expect(one(run, CONTAINER, "db-0").protect).toBe(false);
    expect(plain(one(run, CONTAINER, "db-2")).volumes).toEqual([
      { volumeName: "shop-dev-db-2-data", containerPath: "/var/lib/postgresql/data" },
    ]);
    expect(run.outputs.dbMembers).toEqual([
      { name: "db-0", host: "db-0" },
      { name: "db-1", host: "db-1" },
      { name: "db-2", host: "db-2" },
    ]);
  });

  it("keeps secret env secret and out of labels", async () => {
    const run = await runComponents(deployBoth);
    const web0 = one(run, CONTAINER, "web-0");
    expect(isWrappedSecret(web0.inputs.envs)).toBe(true);
    expect(plain(web0).envs).toEqual(["API_TOKEN=tok-123-secret", "MODE=demo"]);
    expect(JSON.stringify(web0.inputs.labels)).not.toContain("tok-123-secret");
    // A workload without secret env is not needlessly hidden from review.
    const other = await runComponents(() => {
      new DockerPlatform("docker", { prefix: "p" }).deploy("plain", { ...web, secretEnv: undefined });
    });
    expect(isWrappedSecret(one(other, CONTAINER, "plain-0").inputs.envs)).toBe(false);
  });

  it("labels each container with a digest that changes when a config file changes", async () => {
    const digestFor = async (content: string) => {
      const run = await runComponents(() => {
        new DockerPlatform("docker", { prefix: "p" }).deploy("web", {
          ...web,
          files: { "/etc/app/app.conf": content },
        });
      });
      const labels = plain(one(run, CONTAINER, "web-0")).labels as { label: string; value: string }[];
      return labels.find((l) => l.label === "ha-backend.config-digest")?.value;
    };
    const a = await digestFor("listen 8080;\n");
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(await digestFor("listen 8080;\n")).toBe(a);
    expect(await digestFor("listen 9090;\n")).not.toBe(a);
  });

  it.each<[string, Partial<WorkloadSpec>, string]>([
    [
      "zero replicas",
      { replicas: 0 },
      'Workload "web": replicas must be a whole number of at least 1, but 0 was provided.',
    ],
    [
      "an unpinned image",
      { image: "nginx" },
      'Workload "web": image must be pinned by a tag other than latest',
    ],
    [
      "a volume on a stateless workload",
      { volume: { mountPath: "/data", sizeGi: 1 } },
      "volume must only be set on stateful workloads",
    ],
    [
      "a health check on an unknown port",
      { healthCheck: { tcpPort: "admin" } },
      'healthCheck port must name one of the ports (http), but "admin"',
    ],
    [
      "a port out of range",
      { ports: { http: 70000 } },
      "ports.http must be a whole number from 1 to 65535, but 70000",
    ],
    [
      "a relative file path",
      { files: { "etc/x": "" } },
      'files must be keyed by absolute file paths, but "etc/x"',
    ],
    [
      "a secret that repeats a plain variable",
      { secretEnv: { MODE: "x" } },
      'secretEnv must not repeat a name that env also sets, but "MODE"',
    ],
    ["running as root", { runAsUser: 0 }, "runAsUser must be a non-root numeric user id (1 or more), but 0"],
  ])("rejects %s before creating anything", async (_label, patch, message) => {
    let containers = -1;
    await expect(
      runComponents(() => {
        new DockerPlatform("docker", { prefix: "p" }).deploy("web", { ...web, ...patch });
      }).then((run) => (containers = ofType(run, CONTAINER).length)),
    ).rejects.toThrow(message);
    expect(containers).toBe(-1);
  });

  it("rejects a prefix Docker cannot use", async () => {
    await expect(
      runComponents(() => void new DockerPlatform("docker", { prefix: "Shop Dev" })),
    ).rejects.toThrow(
      "DockerPlatform \"docker\": prefix must be lowercase letters, digits, '.', '_' or '-', but \"Shop Dev\" was provided.",
    );
  });

  it("resolves outputs to what the members are called", async () => {
    const run = await runComponents(() => {
      const w = new DockerPlatform("docker", { prefix: "p" }).deploy("web", web);
      return { host: pulumi.output(w.serviceHost) };
    });
    expect(run.outputs.host).toBe("web");
  });

  it("builds an image from a context on the local engine, never pushing it, and runs it", async () => {
    const run = await runComponents(() => {
      new DockerPlatform("docker", { prefix: "shop-dev" }).deploy("pg", {
        ...db,
        image: "ha-backend-patroni:test",
        build: { context: "/src/image" },
      });
    });
    const image = plain(one(run, "docker:index/image:Image", "shop-dev-image-ha-backend-patroni-test"));
    expect(image).toMatchObject({
      imageName: "ha-backend-patroni:test",
      skipPush: true,
      build: { context: "/src/image", dockerfile: "/src/image/Dockerfile" },
    });
    expect(ofType(run, "docker:index/remoteImage:RemoteImage")).toEqual([]);
    expect(plain(one(run, CONTAINER, "pg-0")).image).toBe("ha-backend-patroni:test");
  });

  it("has no API state store, and refuses API access instead of ignoring it", async () => {
    const run = await runComponents(() => ({
      store: new DockerPlatform("docker", { prefix: "shop-dev" }).stateStore() ?? "none",
    }));
    expect(run.outputs.store).toBe("none");
    await expect(
      runComponents(() => {
        new DockerPlatform("docker", { prefix: "shop-dev" }).deploy("pg", {
          ...db,
          apiAccess: [{ resources: ["pods"], verbs: ["get"] }],
        });
      }),
    ).rejects.toThrow('DockerPlatform: workload "pg" asks for apiAccess, but Docker has no API for members.');
  });
});
