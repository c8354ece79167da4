#!/usr/bin/env node
// `npm run build:lib` (and `prepare`, so git and path installs build too): what `npm pack` ships,
// from a clean dist/ (no stale modules of deleted sources): the components and the program's
// modules as JavaScript with declarations, and the Patroni image's build context.
import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  // A path or git install of the folder runs prepare without its dev dependencies.
  console.error(`build:lib: TypeScript is not installed in ${process.cwd()}. Run npm ci there first.`);
  process.exit(1);
}
rmSync("dist", { recursive: true, force: true });
const built = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
if (built.status !== 0) process.exit(built.status ?? 1);
cpSync("components/database/image", "dist/components/database/image", { recursive: true });
