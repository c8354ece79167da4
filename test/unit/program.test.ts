import { DEFAULT_BALANCER_ENGINE, dataProtected } from "../../infra/config";
import { isWrappedSecret, ofType, one, plain, runStack } from "../support/engine";
import { SECRET_MARKER } from "../../scripts/mock-engine";
import { stackConfig, stackNames } from "../support/stack-files";

// Every stack file, with expectations read from the file: a stack added per the README is covered.
const STACKS = stackNames();

describe.each(STACKS)("the whole program for %s", (stack) => {
  const config = stackConfig(stack);
  const { topology, platform } = config;
  const app = topology === "ecommerce" ? "shop" : "blog";

  it("builds the topology on its platform and exports its outputs", async () => {
    const run = await runStack(stack);
    expect(run.outputs.topology).toBe(topology);
    expect(run.outputs.platform).toBe(platform);
    expect(one(run, "ha-backend:index:ServerCluster", app)).toBeDefined();
    // The session key is generated, and the stack never outputs it.
    expect(one(run, "random:index/randomPassword:RandomPassword", `${app}-session-key`)).toBeDefined();
    expect(JSON.stringify(run.outputs)).not.toContain("mock-password");
    if (platform === "docker") {
      // App servers, the standby ones (balancer.backups) and the balancer replicas.
      const web = ofType(run, "docker:index/container:Container").filter(
        (c) => /ServerCluster|LoadBalancer/.test(c.parent ?? "") && !c.name.endsWith("-metrics"),
      );
      expect(web).toHaveLength(config.app.replicas + config.balancer.backups + config.balancer.replicas);
      // The app receives its database URLs as files the environment names (no secret in env).
      const envs = one(run, "docker:index/container:Container", `${app}-app-0`).inputs.envs;
      expect(isWrappedSecret(envs)).toBe(false);
      const names = (
        plain(one(run, "docker:index/container:Container", `${app}-app-0`)).envs as string[]
      ).map((e) => e.split("=")[0]);
      expect(names).toEqual(expect.arrayContaining(["DATABASE_URL_FILE", "DATABASE_READ_URL_FILE"]));
      if (topology === "ecommerce") {
        expect(names).toEqual(expect.arrayContaining(["ORDERS_SHARD_0_URL_FILE", "ORDERS_SHARD_MAP"]));
        // Sessions and carts in Redis (Sentinel), stock reservations under etcd locks.
        expect(names).toEqual(
          expect.arrayContaining([
            "REDIS_SENTINELS",
            "REDIS_MASTER_NAME",
            "REDIS_PASSWORD_FILE",
            "LOCK_ENDPOINTS",
            "LOCK_CLIENT_KEY_PEM_FILE",
          ]),
        );
      } else {
        expect(names).toEqual(expect.arrayContaining(["MEMCACHED_SERVERS"]));
      }
      const host = config.docker?.host === undefined ? "localhost" : new URL(config.docker.host).hostname;
      expect(run.outputs.url).toBe(`http://${host}:${config.docker?.publicPort ?? 8080}`);
      expect(run.outputs.httpsUrl).toBe(
        config.balancer.tls === "off" ? undefined : `https://${host}:${config.docker?.httpsPort ?? 8443}`,
      );
      expect(run.outputs.balancerEngine).toBe(config.balancer.engine ?? DEFAULT_BALANCER_ENGINE[topology]);
      expect(ofType(run, "kubernetes:apps/v1:Deployment")).toEqual([]);
    } else {
      const d = plain(one(run, "kubernetes:apps/v1:Deployment", `${app}-app-deployment`));
      expect(d.metadata.namespace).toBe(config.kubernetes?.namespace ?? stack);
      expect(d.spec.replicas).toBe(config.app.replicas);
      // Every pod has requests (the app's own, or the defaults).
      expect(d.spec.template.spec.containers[0].resources.requests.cpu).toBeDefined();
      expect(one(run, "kubernetes:policy/v1:PodDisruptionBudget", `${app}-app-pdb`)).toBeDefined();
      expect(ofType(run, "docker:index/container:Container")).toEqual([]);
      // Every database StatefulSet is protected when protectData is on, and so are its claims (Retain).
      const sets = ofType(run, "kubernetes:apps/v1:StatefulSet").filter((st) =>
        /-(db|pg)-statefulset$/.test(st.name),
      );
      expect(sets.length).toBe(topology === "ecommerce" ? 1 + config.database.shards : 1);
      const on = dataProtected(config);
      for (const st of sets) {
        expect([
          st.name,
          st.protect,
          plain(st).spec.persistentVolumeClaimRetentionPolicy.whenDeleted,
        ]).toEqual([st.name, on, on ? "Retain" : "Delete"]);
      }
      const env = d.spec.template.spec.containers[0].env as { name: string; value?: string }[];
      expect(env.find((e) => e.name === "DATABASE_URL_FILE")?.value).toBe("/run/secrets/DATABASE_URL");
    }
    expect(run.outputs.databaseUrl).toBe("[secret]");
    if (topology === "ecommerce") {
      expect(run.outputs).toMatchObject({
        cacheEngine: "redis",
        cacheMasterName: "cache",
        cacheFailoverBudgetSeconds: 6,
      });
      expect(run.outputs.cacheSentinels).toHaveLength(3);
      expect(run.outputs.lockEndpoints).toHaveLength(
        config.locks.members ?? (platform === "kubernetes" ? 3 : 1),
      );
    } else {
      expect(run.outputs.cacheEngine).toBe("memcached");
      expect(run.outputs.lockEndpoints).toBeUndefined();
    }
  });

  it("passes the generated session key only as a secret", async () => {
    const run = await runStack(stack);
    const password = `mock-password-for-${app}-session-key`;
    const holders = run.resources.filter((r) => JSON.stringify(r.inputs).includes(password));
    expect(holders.length).toBeGreaterThan(0);
    for (const r of holders) {
      // Wherever the value appears, it sits inside the engine's secret wrapper.
      const redacted = JSON.stringify(r.inputs, (_k, v) =>
        v && typeof v === "object" && v["4dabf18193072939515e22adb298388d"] ? SECRET_MARKER : v,
      );
      expect([r.type, r.name, redacted.includes(password)]).toEqual([r.type, r.name, false]);
    }
  });
});

describe("infra/index.ts, the entry pulumi up loads", () => {
  it("exports the stack outputs of the configured stack as module exports", async () => {
    const { runProgramWithMocks } = await import("../../scripts/mock-engine");
    const { readStackFile } = await import("../../scripts/stack-file");
    const run = await runProgramWithMocks({
      ...readStackFile("blog-dev"),
      stack: "blog-dev",
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- exactly what Pulumi's Node host does
      program: () => require("../../infra/index") as Record<string, unknown>,
    });
    expect(run.outputs).toMatchObject({
      topology: "blog",
      platform: "docker",
      url: "http://localhost:8081",
    });
  });
});
