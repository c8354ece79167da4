/**
 * The package as a consumer gets it: `npm pack` of this checkout (which runs `prepare`, a fresh
 * build), installed with npm into a temporary project, type-checked and run there with that
 * project's own SDK. From the source tree only the projects' own files are copied; the runner
 * takes the mocked engine's fake outputs from scripts/mock-state.ts.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(__dirname, "..", "..");

/** Runs a command, bounded in time; throws with its output when it fails. */
export function run(cmd: string, args: string[], cwd: string, timeoutMs = 240_000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} (in ${cwd}) failed: ${r.error?.message ?? `exit ${r.status}`}\n${r.stdout}\n${r.stderr}`,
    );
  }
  return r.stdout;
}

export interface Packed {
  /** The tarball's absolute path. */
  readonly tarball: string;
  /** Paths inside it, without npm's `package/` prefix. */
  readonly files: string[];
  /** Removes the tarball's directory. */
  readonly remove: () => void;
}

/** `npm pack` of this checkout into a temporary directory. */
export function packThisCheckout(): Packed {
  const dir = mkdtempSync(join(tmpdir(), "ha-backend-pack-"));
  const [info] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], ROOT)) as {
    filename: string;
    files: { path: string }[];
  }[];
  return {
    tarball: join(dir, info.filename),
    files: info.files.map((f) => f.path).sort(),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A copy of `projectDir` (an example or the provider folder) in a temporary directory, with its
 * `ha-backend` dependency pointed at `tarball`, installed by npm (pinned versions, from npm's
 * cache when it has them; no install scripts: the Pulumi plugins are not needed under mocks).
 */
export function installProject(projectDir: string, files: readonly string[], tarball: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ha-backend-consumer-"));
  for (const f of files) cpSync(join(projectDir, f), join(dir, f));
  const pkgPath = join(dir, "package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as { dependencies: Record<string, string> };
  if ("ha-backend" in pkg.dependencies) pkg.dependencies["ha-backend"] = `file:${tarball}`;
  writeFileSync(pkgPath, `${JSON.stringify(pkg, null, 2)}\n`);
  run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"],
    dir,
  );
  return dir;
}

/** A resource as the example runner prints it: secrets as `{ "[secret]": value }`. */
export interface ExampleResource {
  type: string;
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON as printed
  inputs: any;
}

export interface ExampleRun {
  resources: ExampleResource[];
  outputs: Record<string, unknown>;
}

/**
 * Compiles the project with its own TypeScript (its tsconfig is strict) and runs the program
 * under mocks with its own SDK (test/support/example-runner.js).
 */
export function compileAndRun(dir: string, references?: Record<string, unknown>): ExampleRun {
  run(process.execPath, [join(dir, "node_modules", "typescript", "bin", "tsc"), "-p", dir, "--strict"], dir);
  const args = [join(__dirname, "example-runner.js"), dir, "bin/index.js"];
  if (references !== undefined) {
    const refs = join(dir, "references.json");
    writeFileSync(refs, JSON.stringify(references));
    args.push(refs);
  }
  return JSON.parse(run(process.execPath, args, dir, 60_000)) as ExampleRun;
}

/** Every string in `v` outside a `{ "[secret]": … }` marker, with its path. */
export function plainStrings(v: unknown, path = ""): [string, string][] {
  if (typeof v === "string") return [[path, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => plainStrings(x, `${path}[${i}]`));
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => (k === "[secret]" ? [] : plainStrings(x, `${path}.${k}`)));
  }
  return [];
}

/** Where `secret` shows in plain text in a run's resource inputs or outputs. */
export function leaksOf(r: ExampleRun, secret: string): string[] {
  return [
    ...r.resources.flatMap((x) => plainStrings(x.inputs, `${x.type}::${x.name}`)),
    ...plainStrings(r.outputs, "outputs"),
  ]
    .filter(([, s]) => s.includes(secret))
    .map(([p]) => p);
}
