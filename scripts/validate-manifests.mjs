#!/usr/bin/env node
// Validates Kubernetes manifests offline against the Kubernetes OpenAPI schema, using the
// kubernetes-models package (ESM only, hence a separate .mjs script that tests spawn).
//   node scripts/validate-manifests.mjs FILE_OR_DIR...
// Prints one line per manifest and a closing "N valid, N invalid"; exits 1 if any is invalid
// or of a kind it cannot validate (an unknown kind is a failure, never a silent skip).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

function files(path) {
  if (statSync(path).isDirectory()) {
    return readdirSync(path)
      .sort()
      .flatMap((f) => files(join(path, f)));
  }
  return path.endsWith(".yaml") || path.endsWith(".yml") ? [path] : [];
}

async function modelFor(apiVersion, kind) {
  // Core objects live under "v1"; others under "<group>/<version>", as kubernetes-models names them.
  const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
  return mod[kind];
}

let valid = 0;
let invalid = 0;
const paths = process.argv.slice(2);
if (paths.length === 0) {
  console.error("usage: validate-manifests.mjs FILE_OR_DIR...");
  process.exit(2);
}
for (const file of paths.flatMap(files)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    const label = `${file}: ${obj?.kind ?? "?"} ${obj?.metadata?.name ?? "?"}`;
    try {
      const Model = await modelFor(obj.apiVersion, obj.kind);
      if (typeof Model !== "function") throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
      new Model(obj).validate();
      valid++;
      console.log(`ok      ${label}`);
    } catch (e) {
      invalid++;
      console.log(`INVALID ${label}: ${e.message}`);
    }
  }
}
console.log(`${valid} valid, ${invalid} invalid`);
process.exit(invalid > 0 || valid === 0 ? 1 : 0);
