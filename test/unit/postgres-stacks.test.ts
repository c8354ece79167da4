import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { synthStack, writeTree } from "../../scripts/synth";
import { haproxyCheck, tempDir } from "../support/daemons";
import { manifestKinds, validateManifests } from "../support/manifests";
import { stackFacts, stackNames } from "../support/stack-files";

/**
 * Each stack (every file in stacks/) with `database.engine: postgresql` instead of its MySQL-family
 * database (everything else as committed): what a user gets by switching the engine. Synth
 * renders them offline; manifests are validated, routers checked by the real HAProxy.
 */
const ROOT = join(__dirname, "..", "..");
const STACKS = stackNames();
const dir = tempDir("pg-stacks");

function pgVariant(stack: string): void {
  const doc = parse(readFileSync(join(ROOT, "stacks", `Pulumi.${stack}.yaml`), "utf8")) as {
    config: Record<string, Record<string, unknown>>;
  };
  const db = doc.config["ha-backend:database"];
  doc.config["ha-backend:database"] = {
    engine: "postgresql",
    ...(db.shards !== undefined ? { shards: db.shards } : {}),
    ...(db.storageGi !== undefined ? { storageGi: db.storageGi } : {}),
    ...(db.resources !== undefined ? { resources: db.resources } : {}),
  };
  if (stackFacts(stack).platform === "kubernetes") {
    doc.config["ha-backend:kubernetes"] = {
      ...doc.config["ha-backend:kubernetes"],
      imageRegistry: "registry.example.com/ha-backend",
    };
  }
  writeFileSync(join(dir, `Pulumi.${stack}.yaml`), stringify(doc));
}

function upstreamHosts(config: string): Record<string, string> {
  const names = [...config.matchAll(/ server \S+ ([a-z][a-z0-9.-]*):\d+/g)].map((m) => m[1]);
  return Object.fromEntries([...new Set(names)].map((n, i) => [n, `127.0.2.${i + 1}`]));
}

describe.each(STACKS)("%s with PostgreSQL", (stack) => {
  const { topology, platform, shards } = stackFacts(stack);
  let tree: Map<string, string>;
  let outputs: Record<string, unknown>;

  beforeAll(async () => {
    pgVariant(stack);
    tree = await synthStack(stack, dir);
    outputs = JSON.parse(tree.get("outputs.json") ?? "{}");
  });

  it("exports the engine, the failover budget and secret URLs", () => {
    expect(outputs.databaseEngine).toBe("postgresql");
    expect(outputs.databaseFailoverBudgetSeconds).toBe(13);
    // The URL shows, its password masked in place.
    expect(outputs.databaseUrl).toMatch(/^postgresql:\/\/[a-z]+:\[secret\]@[a-z0-9.-]+:5432\/[a-z]+$/);
  });

  it("gives the app tier postgresql:// URLs only as secrets", () => {
    const resources = tree.get("resources.json") ?? "";
    expect(resources).not.toMatch(/postgresql:\/\/[^"[]*:mock-password/);
    expect(resources).not.toContain("mock-password-for");
  });

  it("has routers (one per cluster) that haproxy -c accepts, following Patroni's /primary", () => {
    const routers = [...tree.entries()].filter(([p]) =>
      /-router-[^/]*\/usr\/local\/etc\/haproxy\/haproxy\.cfg$/.test(p),
    );
    // Database routers only (the cache's is a secret file).
    const distinct = new Set(routers.map(([, c]) => c).filter((c) => c.includes("uri /primary")));
    // The catalog and each orders shard (e-commerce), or the blog's one cluster.
    expect(distinct.size).toBe(topology === "ecommerce" ? 1 + shards : 1);
    for (const config of distinct) {
      expect(config).toContain("http-check send meth GET uri /primary");
      const r = haproxyCheck(config, upstreamHosts(config));
      expect(r.output.replace(/\[NOTICE\].*\n/g, "")).toBe("Configuration file is valid\n");
    }
  });

  if (platform === "kubernetes") {
    it("runs Patroni on the Kubernetes API with a namespaced Role, and valid manifests", () => {
      const kinds = new Set(manifestKinds(tree));
      expect(kinds).toEqual(
        new Set([
          "ConfigMap",
          "Deployment",
          "Job",
          "Namespace",
          "NetworkPolicy",
          "PodDisruptionBudget",
          "Role",
          "RoleBinding",
          "Secret",
          "Service",
          "ServiceAccount",
          "StatefulSet",
        ]),
      );
      // No etcd for Patroni on Kubernetes: the only etcd is the lock service's.
      const sets = [...tree.keys()].filter((p) => p.startsWith("kubernetes/StatefulSet-"));
      expect(sets.filter((p) => p.includes("-pg-statefulset")).length).toBeGreaterThan(0);
      expect(sets.filter((p) => p.includes("-etcd-"))).toEqual(
        topology === "ecommerce" ? ["kubernetes/StatefulSet-locks-etcd-statefulset.yaml"] : [],
      );
      const out = tempDir(`pg-synth-${stack}`);
      writeTree(out, tree);
      const r = validateManifests(join(out, "kubernetes"));
      expect(r.output).toMatch(/^\d+ valid, 0 invalid$/m);
      expect(r.code).toBe(0);
    });
  } else {
    it("runs Patroni on a one-member etcd of its own per cluster, from the image built at pulumi up", () => {
      const containers = [...tree.keys()].filter((p) => p.startsWith("docker/container-"));
      const orders = Array.from({ length: shards }, (_, i) => `orders-${i}`);
      const clusters = topology === "ecommerce" ? ["catalog", ...orders] : ["blog"];
      for (const c of clusters) {
        expect(containers).toContain(`docker/container-${c}-etcd-0.json`);
        expect(
          containers.filter((p) => /^docker\/container-.*-pg-\d+\.json$/.test(p) && p.includes(`-${c}-pg-`)),
        ).toHaveLength(2);
        // And the one-shot task that applies the dynamic settings to the running cluster.
        expect(containers.filter((p) => p.startsWith(`docker/container-${c}-pg-dcs-`))).toHaveLength(1);
      }
      expect([...tree.keys()].filter((p) => p.startsWith("docker/image-"))).toHaveLength(1);
    });
  }
});
