import { spawnSync } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

/** The kinds of the Kubernetes manifests in a synth tree (`kubernetes/<Kind>-<name>.yaml`). */
export function manifestKinds(tree: Map<string, string>): string[] {
  return [...tree.keys()]
    .filter((p) => p.startsWith("kubernetes/"))
    .map((p) => p.split("/")[1].split("-")[0]);
}

/** Runs scripts/validate-manifests.mjs (kubernetes-models is ESM-only) on files or folders. */
export function validateManifests(...paths: string[]): { code: number | null; output: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "validate-manifests.mjs"), ...paths], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
