import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { isWrappedSecret, ofType, one, plain, runStack } from "../support/engine";
import { SECRET_MARKER } from "../../scripts/mock-engine";

const STACKS = ["ecommerce-dev", "ecommerce-prod", "blog-dev", "blog-prod"];

describe("the stack files", () => {
  it("are exactly the four topology-environment stacks", () => {
    const files = readdirSync(join(__dirname, "..", "..", "stacks")).sort();
    expect(files).toEqual(STACKS.map((s) => `Pulumi.${s}.yaml`).sort());
  });
});

describe.each(STACKS)("the whole program for %s", (stack) => {
  const [topology, env] = stack.split("-");
  const app = topology === "ecommerce" ? "shop" : "blog";

  it("builds the topology on its platform and exports its outputs", async () => {
    const run = await runStack(stack);
    expect(run.outputs.topology).toBe(topology);
    expect(run.outputs.platform).toBe(env === "dev" ? "docker" : "kubernetes");
    expect(one(run, "ha-backend:cluster:ServerCluster", app)).toBeDefined();
    // The session key is generated, and the stack never outputs it.
    expect(one(run, "random:index/randomPassword:RandomPassword", `${app}-session-key`)).toBeDefined();
    expect(JSON.stringify(run.outputs)).not.toContain("mock-password");
    if (env === "dev") {
      // App servers (plus ecommerce's standby) and two balancer replicas.
      const web = ofType(run, "docker:index/container:Container").filter((c) =>
        /ServerCluster|LoadBalancer/.test(c.parent ?? ""),
      );
      expect(web).toHaveLength(topology === "ecommerce" ? 5 : 4);
      // The app receives its database URLs as secret env.
      const envs = one(run, "docker:index/container:Container", `${app}-app-0`).inputs.envs;
      expect(isWrappedSecret(envs)).toBe(true);
      const names = (
        plain(one(run, "docker:index/container:Container", `${app}-app-0`)).envs as string[]
      ).map((e) => e.split("=")[0]);
      expect(names).toEqual(expect.arrayContaining(["DATABASE_URL", "DATABASE_READ_URL"]));
      if (topology === "ecommerce") {
        expect(names).toEqual(expect.arrayContaining(["ORDERS_SHARD_0_URL", "ORDERS_SHARD_MAP"]));
        // Sessions and carts in Redis (Sentinel), stock reservations under etcd locks.
        expect(names).toEqual(
          expect.arrayContaining([
            "REDIS_SENTINELS",
            "REDIS_MASTER_NAME",
            "REDIS_PASSWORD",
            "LOCK_ENDPOINTS",
            "LOCK_CLIENT_KEY_PEM",
          ]),
        );
      } else {
        expect(names).toEqual(expect.arrayContaining(["MEMCACHED_SERVERS"]));
      }
      expect(run.outputs.url).toBe(
        topology === "ecommerce" ? "http://localhost:8080" : "http://localhost:8081",
      );
      expect(run.outputs.httpsUrl).toBe(topology === "ecommerce" ? "https://localhost:8443" : undefined);
      expect(run.outputs.balancerEngine).toBe(topology === "ecommerce" ? "nginx" : "haproxy");
      expect(ofType(run, "kubernetes:apps/v1:Deployment")).toEqual([]);
    } else {
      const d = plain(one(run, "kubernetes:apps/v1:Deployment", `${app}-app-deployment`));
      expect(d.metadata.namespace).toBe(stack);
      // prod: more members than dev, each with requests and limits.
      expect(d.spec.replicas).toBeGreaterThanOrEqual(3);
      expect(d.spec.template.spec.containers[0].resources.requests.cpu).toBeDefined();
      expect(one(run, "kubernetes:policy/v1:PodDisruptionBudget", `${app}-app-pdb`)).toBeDefined();
      expect(ofType(run, "docker:index/container:Container")).toEqual([]);
      // prod: every database StatefulSet is protected, and so are its claims (Retain).
      const sets = ofType(run, "kubernetes:apps/v1:StatefulSet").filter((st) =>
        st.name.endsWith("-db-statefulset"),
      );
      expect(sets.length).toBe(topology === "ecommerce" ? 3 : 1);
      for (const st of sets) {
        expect([
          st.name,
          st.protect,
          plain(st).spec.persistentVolumeClaimRetentionPolicy.whenDeleted,
        ]).toEqual([st.name, true, "Retain"]);
      }
      const env = d.spec.template.spec.containers[0].env as { name: string; valueFrom?: unknown }[];
      expect(env.find((e) => e.name === "DATABASE_URL")?.valueFrom).toEqual({
        secretKeyRef: { name: `${app}-app-env`, key: "DATABASE_URL" },
      });
    }
    expect(run.outputs.databaseUrl).toBe("[secret]");
    if (topology === "ecommerce") {
      expect(run.outputs).toMatchObject({
        cacheEngine: "redis",
        cacheMasterName: "cache",
        cacheFailoverBudgetSeconds: 6,
      });
      expect(run.outputs.cacheSentinels).toHaveLength(3);
      expect(run.outputs.lockEndpoints).toHaveLength(env === "dev" ? 1 : 3);
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

describe("stack files are what the README says", () => {
  it("dev stacks use docker, prod stacks kubernetes", () => {
    for (const stack of STACKS) {
      const text = readFileSync(join(__dirname, "..", "..", "stacks", `Pulumi.${stack}.yaml`), "utf8");
      expect(text).toContain(`ha-backend:platform: ${stack.endsWith("dev") ? "docker" : "kubernetes"}`);
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
