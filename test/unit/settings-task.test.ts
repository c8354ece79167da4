import { writeFileSync } from "node:fs";
import { networkModel, reachabilityMatrix } from "../support/network-reachability";
import { kubernetesManifests, runStackVariant, type ConfigEdit } from "../support/stack-variants";

type Config = Parameters<ConfigEdit>[0];
const section = (c: Config, key: string): Record<string, unknown> =>
  c[`ha-backend:${key}`] as Record<string, unknown>;
const postgres: ConfigEdit = (c) => {
  const db = section(c, "database");
  c["ha-backend:database"] = {
    engine: "postgresql",
    ...(db.shards !== undefined ? { shards: db.shards } : {}),
  };
  if (c["ha-backend:kubernetes"] !== undefined) section(c, "kubernetes").imageRegistry = "registry.example.com/shop";
};
it("explore", async () => {
  const k = await runStackVariant("ecommerce-prod", postgres);
  writeFileSync("/tmp/explore/k8s.json", JSON.stringify(k.resources, null, 1));
  const m = reachabilityMatrix(networkModel(kubernetesManifests(k)));
  const allowed = Object.fromEntries(
    m.sources.map((src, i) => [src, m.columns.filter((_, j) => m.allowed[i][j] === true).map((c) => c.label)]),
  );
  writeFileSync("/tmp/explore/matrix.json", JSON.stringify(allowed, null, 1));
  for (const s of ["ecommerce-dev", "blog-dev"]) {
    const d = await runStackVariant(s, postgres);
    writeFileSync(`/tmp/explore/${s}.json`, JSON.stringify(d.resources, null, 1));
  }
});
