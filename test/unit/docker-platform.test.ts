import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform } from "../../components/platform/docker";
import type { TaskSpec, WorkloadSpec } from "../../components/platform/types";
import {
  isWrappedSecret,
  ofType,
  one,
  plain,
  registeredBeforeRejection,
  runComponents,
} from "../support/engine";
import { runFailingProgram } from "../support/output-failures";
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

/** Services before their clients, as components deploy them: the database, then the web tier. */
function deployBoth() {
  const platform = new DockerPlatform("docker", { prefix: "shop-dev" });
  const d = platform.deploy("db", db);
  const w = platform.deploy("web", web);
  return { webMembers: w.members, dbMembers: d.members, publicAddress: w.publicAddresses.http };
}

/** The names of the custom resources `build` registered before it threw `message`. */
async function customBeforeRejection(build: () => void, message: string): Promise<string[]> {
  const recorded = await registeredBeforeRejection(build, message);
  return recorded
    .filter((r) => r.custom)
    .map((r) => r.name)
    .sort();
}

/** The names of the networks a container joins, in its order. */
function netsOf(run: Awaited<ReturnType<typeof runComponents>>, container: string): string[] {
  return plain(one(run, CONTAINER, container)).networksAdvanced.map((n: { name: string }) => n.name);
}

/** A minimal service of `tier` admitting `allowFrom`. */
const service = (tier: string, allowFrom: string[] = []): WorkloadSpec => ({
  kind: "stateless",
  replicas: 1,
  image: "redis:7.4.2-alpine",
  ports: { tcp: 6379 },
  tier,
  allowFrom,
});

const task: TaskSpec = {
  image: "python:3.13.1-alpine",
  command: ["python3", "/apply.py"],
  files: { "/apply.py": "print('ok')\n" },
  tier: "admin",
  runAsUser: 70,
  timeoutSeconds: 60,
};

describe("DockerPlatform", () => {
  it("gives each service tier an internal network per client tier and only published workloads the public one", async () => {
    const run = await runComponents(deployBoth);
    const nets = Object.fromEntries(ofType(run, NETWORK).map((n) => [plain(n).name, plain(n).internal]));
    expect(nets).toEqual({
      "shop-dev-app-from-edge": true,
      "shop-dev-db-from-app": true,
      "shop-dev-public": false,
    });
    expect(plain(one(run, NETWORK, "shop-dev-db-from-app")).labels).toEqual([
      { label: "ha-backend.from-tier", value: "app" },
      { label: "ha-backend.stack", value: "shop-dev" },
      { label: "ha-backend.tier", value: "db" },
    ]);
    // The database shares a network with its peers and the app tier only, and nothing public.
    expect(netsOf(run, "db-0")).toEqual(["shop-dev-db-from-app"]);
    // The web tier: its own clients' network (edge), the database's, the public one.
    expect(netsOf(run, "web-0")).toEqual([
      "shop-dev-app-from-edge",
      "shop-dev-db-from-app",
      "shop-dev-public",
    ]);
    expect(netsOf(run, "web-1")).toEqual(netsOf(run, "web-0"));
  });

  it("never lets two services that admit the same tier share a network", async () => {
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      // GIVEN a cache whose sentinels and router are clients of it, and all three admit the app tier
      p.deploy("cache", service("cache", ["cache-sentinel", "cache-router", "app"]));
      p.deploy("cache-sentinel", service("cache-sentinel", ["app"]));
      p.deploy("cache-router", service("cache-router", ["app"]));
      p.deploy("locks", service("locks", ["app"]));
      p.deploy("app", service("app"));
    });
    // THEN the app joins each service's network, and the services join only their own and those
    // of the services that admit them.
    expect(netsOf(run, "app-0")).toEqual([
      "p-cache-from-app",
      "p-cache-router-from-app",
      "p-cache-sentinel-from-app",
      "p-locks-from-app",
    ]);
    expect(netsOf(run, "cache-0")).toEqual([
      "p-cache-from-app",
      "p-cache-from-cache-router",
      "p-cache-from-cache-sentinel",
    ]);
    expect(netsOf(run, "cache-sentinel-0")).toEqual([
      "p-cache-from-cache-sentinel",
      "p-cache-sentinel-from-app",
    ]);
    expect(netsOf(run, "cache-router-0")).toEqual(["p-cache-from-cache-router", "p-cache-router-from-app"]);
    expect(netsOf(run, "locks-0")).toEqual(["p-locks-from-app"]);
    const shared = (a: string, b: string) => netsOf(run, a).filter((n) => netsOf(run, b).includes(n));
    expect(shared("cache-sentinel-0", "cache-router-0")).toEqual([]);
    expect(shared("cache-sentinel-0", "locks-0")).toEqual([]);
    expect(shared("cache-0", "locks-0")).toEqual([]);
    expect(ofType(run, NETWORK).every((n) => plain(n).internal === true)).toBe(true);
  });

  it("refuses a service deployed after a client it admits, before creating anything for it", async () => {
    const registered = await customBeforeRejection(
      () => {
        const p = new DockerPlatform("docker", { prefix: "p" });
        p.deploy("web", { ...web, publicPorts: undefined });
        p.deploy("db", db);
      },
      'Workload "db": allowFrom must name only tiers with no members yet on Docker (a container\'s networks ' +
        'are fixed when it is created), but "app" was provided. Deploy db before web (tier app): services ' +
        "before their clients.",
    );
    // The client's containers had been declared (without the database's network); nothing of db.
    expect(registered).toEqual(["p-app-from-edge", "p-image-nginx-1.28.0-alpine", "web-0", "web-1"]);
  });

  it("lets a second service of a tier join the network its clients are already on", async () => {
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      p.deploy("shop", service("app", ["edge"]));
      p.deploy("lb", service("edge"));
      p.deploy("standby", service("app", ["edge"]));
    });
    expect(netsOf(run, "lb-0")).toEqual(["p-app-from-edge"]);
    expect(netsOf(run, "standby-0")).toEqual(["p-app-from-edge"]);
    expect(ofType(run, NETWORK).map((n) => plain(n).name)).toEqual(["p-app-from-edge"]);
  });

  it("puts a tier that admits itself on one network, and a workload with no other network on its own", async () => {
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      p.deploy("ring", service("ring", ["ring"]));
      p.deploy("loner", { ...service("batch"), replicas: 2 });
    });
    expect(netsOf(run, "ring-0")).toEqual(["p-ring-from-ring"]);
    // Never Docker's default bridge (a route out and every other container on it): its peers only.
    expect(netsOf(run, "loner-0")).toEqual(["p-batch"]);
    expect(netsOf(run, "loner-1")).toEqual(["p-batch"]);
    expect(plain(one(run, NETWORK, "p-batch")).internal).toBe(true);
  });

  it("runs a task on the networks of the services that admit its tier, else on its own", async () => {
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      p.deploy("pg", service("pg", ["router", "admin"]));
      p.runTask("pg-settings", task);
      p.runTask("cleanup", { ...task, tier: "cleanup" });
    });
    expect(netsOf(run, "pg-settings")).toEqual(["p-pg-from-admin"]);
    expect(netsOf(run, "cleanup")).toEqual(["p-cleanup"]);
    expect(plain(one(run, CONTAINER, "pg-settings")).uploads).toEqual([
      { file: "/apply.py", content: "print('ok')\n", permissions: "0444" },
    ]);
  });

  it("uploads a task's secret files 0400, owned by fileOwner, else runAsUser, else root, and keeps them out of env", async () => {
    const withPassword = (patch: Partial<TaskSpec>): TaskSpec => ({
      ...task,
      env: { PASSWORD_FILE: "/run/secrets/password" },
      secretFiles: { "/run/secrets/password": "pw-789-secret" },
      ...patch,
    });
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      p.runTask("runs-as", withPassword({}));
      p.runTask("owner", withPassword({ fileOwner: 999 }));
      p.runTask("as-root", withPassword({ runAsUser: undefined }));
    });
    const uploads = (c: string) => one(run, CONTAINER, c).inputs.uploads as Record<string, unknown>[];
    const secretUpload = (owner: string) => ({
      file: "/run/secrets/password",
      content: expect.objectContaining({ value: "pw-789-secret" }),
      permissions: "0400",
      owner,
      group: owner,
    });
    const script = { file: "/apply.py", content: "print('ok')\n", permissions: "0444" };
    expect(uploads("runs-as")).toEqual([script, secretUpload("70")]);
    expect(uploads("owner")).toEqual([script, secretUpload("999")]);
    expect(uploads("as-root")).toEqual([script, secretUpload("0")]);
    // Only the file's content is secret: the environment (a path) and the script stay reviewable.
    expect(isWrappedSecret(uploads("runs-as")[1].content)).toBe(true);
    expect(isWrappedSecret(uploads("runs-as")[0].content)).toBe(false);
    const c = one(run, CONTAINER, "runs-as");
    expect(isWrappedSecret(c.inputs.envs)).toBe(false);
    expect(c.inputs.envs).toEqual(["PASSWORD_FILE=/run/secrets/password"]);
    expect(JSON.stringify(c.inputs.envs)).not.toContain("pw-789");
  });

  it.each<[string, Partial<TaskSpec>, string]>([
    [
      "a relative secret file path",
      { secretFiles: { "run/secrets/password": "pw" } },
      'Task "t": files must be keyed by absolute file paths, but "run/secrets/password" was provided.',
    ],
    [
      "a path in both files and secretFiles",
      { secretFiles: { "/apply.py": "pw" } },
      'Task "t": secretFiles must not repeat a path that files also sets, but "/apply.py" was provided. ' +
        "Put the file in one of the two only.",
    ],
    [
      "a negative file owner",
      { fileOwner: -1 },
      'Task "t": fileOwner must be a numeric user id (0 or more), but -1 was provided.',
    ],
  ])("rejects a task with %s before creating anything", async (_label, patch, message) => {
    const build = () => new DockerPlatform("docker", { prefix: "p" }).runTask("t", { ...task, ...patch });
    expect(await customBeforeRejection(build, message)).toEqual([]);
  });

  it.each<[string, () => void, string]>([
    [
      "a workload of tier public",
      () => new DockerPlatform("docker", { prefix: "p" }).deploy("edge", service("public")),
      'Workload "edge": tier must not name the tier public on Docker (the name of the edge network), but "public" was provided.',
    ],
    [
      "a workload admitting tier public",
      () => new DockerPlatform("docker", { prefix: "p" }).deploy("web", service("app", ["public"])),
      'Workload "web": allowFrom must not name the tier public on Docker (the name of the edge network), but "public" was provided.',
    ],
    [
      "a task of tier public",
      () => new DockerPlatform("docker", { prefix: "p" }).runTask("t", { ...task, tier: "public" }),
      'Task "t": tier must not name the tier public on Docker (the name of the edge network), but "public" was provided.',
    ],
  ])("rejects %s (the edge network's name) before creating anything", async (_label, build, message) => {
    expect(await customBeforeRejection(build, message)).toEqual([]);
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
    expect(c.networksAdvanced.map((n: { aliases: string[] }) => n.aliases)).toEqual([
      ["web-1", "web"],
      ["web-1", "web"],
      ["web-1", "web"],
    ]);
    expect(c.uploads).toEqual([
      { file: "/etc/app/app.conf", content: "listen 8080;\n", permissions: "0444" },
    ]);
    expect(plain(one(run, CONTAINER, "db-0")).healthcheck.tests).toEqual(["CMD", "pg_isready"]);
  });

  it("publishes the host port on the first member only, on loopback, and returns its URL", async () => {
    const run = await runComponents(deployBoth);
    expect(plain(one(run, CONTAINER, "web-0")).ports).toEqual([
      { internal: 8080, external: 18080, ip: "127.0.0.1" },
    ]);
    expect(plain(one(run, CONTAINER, "web-1")).ports).toEqual([]);
    expect(run.outputs.publicAddress).toBe("localhost:18080");
  });

  it.each(["0.0.0.0", "192.0.2.10", "::1", "::"])("publishes on bindAddress %s when given", async (ip) => {
    const run = await runComponents(() => {
      new DockerPlatform("docker", { prefix: "p", bindAddress: ip }).deploy("web", web);
    });
    expect(plain(one(run, CONTAINER, "web-0")).ports).toEqual([{ internal: 8080, external: 18080, ip }]);
  });

  it.each(["localhost", "127.0.0.1:8080", "[::1]", "", "256.0.0.1", "0.0.0.0/0"])(
    "rejects bindAddress %j before creating anything",
    async (ip) => {
      const registered = await customBeforeRejection(
        () => new DockerPlatform("docker", { prefix: "p", bindAddress: ip }).deploy("web", web),
        `DockerPlatform "docker": bindAddress must be an IPv4 or IPv6 address (no brackets, no port), but ${JSON.stringify(ip)} was provided. ` +
          "Use 127.0.0.1 (this host only), 0.0.0.0 (every interface) or one interface's address.",
      );
      expect(registered).toEqual([]);
    },
  );

  it("uploads secret files 0400, owned by fileOwner, else runAsUser, else root; config files 0444", async () => {
    const withKey = (patch: Partial<WorkloadSpec>): WorkloadSpec => ({
      ...web,
      publicPorts: undefined,
      secretFiles: { "/etc/app/tls.key": "-----BEGIN PRIVATE KEY-----\n" },
      ...patch,
    });
    const run = await runComponents(() => {
      const p = new DockerPlatform("docker", { prefix: "p" });
      p.deploy("runs-as", withKey({}));
      p.deploy("owner", withKey({ fileOwner: 999 }));
      p.deploy("root-owner", withKey({ fileOwner: 0 }));
      p.deploy("as-root", withKey({ runAsUser: undefined }));
    });
    const uploads = (c: string) => one(run, CONTAINER, c).inputs.uploads as Record<string, unknown>[];
    const secretUpload = (owner: string) => ({
      file: "/etc/app/tls.key",
      content: expect.objectContaining({ value: "-----BEGIN PRIVATE KEY-----\n" }),
      permissions: "0400",
      owner,
      group: owner,
    });
    const config = { file: "/etc/app/app.conf", content: "listen 8080;\n", permissions: "0444" };
    expect(uploads("runs-as-0")).toEqual([config, secretUpload("101")]);
    expect(uploads("runs-as-1")).toEqual([config, secretUpload("101")]);
    expect(uploads("owner-0")).toEqual([config, secretUpload("999")]);
    expect(uploads("root-owner-0")).toEqual([config, secretUpload("0")]);
    expect(uploads("as-root-0")).toEqual([config, secretUpload("0")]);
    // Only the key's content is secret: the rest of the upload stays reviewable.
    expect(isWrappedSecret(uploads("owner-0")[1].content)).toBe(true);
    expect(isWrappedSecret(uploads("owner-0")[0].content)).toBe(false);
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
    [
      "a negative file owner",
      { fileOwner: -1 },
      'Workload "web": fileOwner must be a numeric user id (0 or more), but -1 was provided. Use the uid of ' +
        "the image's daemon user, or leave it unset (runAsUser, else root).",
    ],
    [
      "a fractional file owner",
      { fileOwner: 1.5 },
      "fileOwner must be a numeric user id (0 or more), but 1.5",
    ],
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

describe("DockerPlatform with an image or resources from another stack (Outputs)", () => {
  const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
  const UNPINNED =
    'Workload "web": image must be pinned by a tag other than latest (name:tag), but "app:latest" was ' +
    "provided. Give the image with an explicit version tag, e.g. nginx:1.28.0-alpine.";

  it("pulls an Output image once per workload that names it, runs it, and keeps plain images pulled once per reference", async () => {
    // GIVEN two workloads whose image comes from another stack, and one with a plain image
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "shop-dev" });
      platform.deploy("web", { ...web, image: pulumi.output("registry.example/app:1.2.3") });
      platform.deploy("worker", { ...service("jobs"), image: pulumi.output("registry.example/app:1.2.3") });
      platform.deploy("cache", service("cache"));
    });
    // THEN each Output image has its own pull, named after its workload; the plain one its reference's
    expect(
      ofType(run, REMOTE_IMAGE)
        .map((r) => r.name)
        .sort(),
    ).toEqual([
      "shop-dev-image-redis-7.4.2-alpine",
      "shop-dev-workload-web-image",
      "shop-dev-workload-worker-image",
    ]);
    expect(plain(one(run, REMOTE_IMAGE, "shop-dev-workload-web-image"))).toEqual({
      name: "registry.example/app:1.2.3",
      keepLocally: true,
    });
    // AND every member runs the pulled image (the mock's image id names the reference)
    for (const member of ["web-0", "web-1", "worker-0"]) {
      expect(plain(one(run, CONTAINER, member)).image).toBe("sha256:mock-registry.example/app:1.2.3");
    }
    expect(plain(one(run, CONTAINER, "cache-0")).image).toBe("sha256:mock-redis:7.4.2-alpine");
  });

  it("converts memory and CPU given as Outputs to Docker's megabytes and CPU count", async () => {
    const run = await runComponents(() => {
      new DockerPlatform("docker", { prefix: "p" }).deploy("web", {
        ...web,
        resources: { cpu: pulumi.output("1500m"), memory: pulumi.output("1Gi") },
      });
    });
    expect(plain(one(run, CONTAINER, "web-0"))).toMatchObject({ memory: 1024, cpus: "1.5" });
  });

  it("rejects a plain latest image synchronously, before creating anything", async () => {
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "p" });
      expect(() => platform.deploy("web", { ...web, image: "app:latest" })).toThrow(UNPINNED);
    });
    expect(run.resources.filter((r) => r.custom)).toEqual([]);
  });

  it("fails the program with the same message when an Output image resolves to latest, creating no member", () => {
    const end = runFailingProgram("docker-latest-image");
    // deploy returned (nothing was known to be wrong yet); the resolved value failed the update.
    expect(end.thrown).toBeUndefined();
    expect(end.unhandled).toEqual([expect.stringContaining(UNPINNED)]);
    expect(end.registered.filter((r) => !r.startsWith(NETWORK))).toEqual([]);
  });

  it("never shows a secret Output's value in the message, and names an Output that resolves to nothing", () => {
    const secret = runFailingProgram("docker-secret-latest-image");
    expect(secret.unhandled).toEqual([
      expect.stringContaining(UNPINNED.replace('"app:latest"', "a secret value (not shown)")),
    ]);
    expect(JSON.stringify(secret)).not.toContain("app:latest");
    const missing = runFailingProgram("docker-missing-image");
    expect(missing.unhandled).toEqual([expect.stringContaining(UNPINNED.replace('"app:latest"', "nothing"))]);
  });

  it("refuses to build an Output image, before creating anything", async () => {
    await expect(
      runComponents(() => {
        new DockerPlatform("docker", { prefix: "p" }).deploy("pg", {
          ...db,
          image: pulumi.output("ha-backend-patroni:test"),
          build: { context: "/src/image" },
        });
      }),
    ).rejects.toThrow(
      'Workload "pg": image must be a plain string when build is set (it names the image that is built), but "an Output" was provided.',
    );
  });
});
