/**
 * `npm run synth -- <stack> [--out DIR]`: the whole stack rendered offline, like `helm template`
 * or `cdk synth`. Runs the program for `stacks/Pulumi.<stack>.yaml` under the mocked engine (no
 * Pulumi CLI, no cloud, no network) and writes a reviewable tree:
 *
 *   resources.json            every resource: type, name, parent, resource options (provider,
 *                             protect, retainOnDelete, aliases, …), inputs (secrets as "[secret]")
 *   outputs.json              the stack outputs
 *   files/<resource>/<path>   every generated config file, where it lands in the container
 *   kubernetes/<Kind>-<name>.yaml   Kubernetes manifests
 *   docker/<type>-<name>.json       Docker containers, networks, volumes, images
 *
 * Same input, byte-identical output: everything is sorted, nothing depends on time or order.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { stringify } from "yaml";
import { redactSecrets, runProgramWithMocks, type ProgramRun, type RecordedResource } from "./mock-engine";
import { readStackFile } from "./stack-file";

/** Left in every synth folder; a folder without it is never emptied. */
const MARKER_FILE = ".ha-backend-synth";
/** The ConfigMap annotation that maps data keys to file paths (see KubernetesPlatform). */
const PATHS_ANNOTATION = "ha-backend/file-paths";

/** JSON with object keys sorted at every level, two-space indent, trailing newline. */
export function stableJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (typeof x === "object" && x !== null) {
      return Object.fromEntries(
        Object.keys(x)
          .sort()
          .map((k) => [k, sort((x as Record<string, unknown>)[k])]),
      );
    }
    return x;
  };
  return `${JSON.stringify(sort(v), null, 2)}\n`;
}

function byTypeAndName(a: RecordedResource, b: RecordedResource): number {
  const ka = `${a.type}\0${a.name}`;
  const kb = `${b.type}\0${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** `docker:index/container:Container` -> `container`. */
function shortType(type: string): string {
  return type.split(":").pop()?.toLowerCase() ?? type;
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** Generated config files: Docker uploads and Kubernetes ConfigMap data, keyed by tree path. */
function configFiles(r: RecordedResource, inputs: Record<string, unknown>): [string, string][] {
  if (r.type === "docker:index/container:Container") {
    const uploads = (inputs.uploads ?? []) as { file: string; content: string }[];
    return uploads.map((u) => [join("files", safeName(r.name), u.file), u.content]);
  }
  if (r.type === "kubernetes:core/v1:ConfigMap") {
    const meta = (inputs.metadata ?? {}) as { annotations?: Record<string, string> };
    const paths = JSON.parse(meta.annotations?.[PATHS_ANNOTATION] ?? "{}") as Record<string, string>;
    const data = (inputs.data ?? {}) as Record<string, string>;
    return Object.entries(data).map(([key, content]) => [
      join("files", safeName(r.name), paths[key] ?? key),
      content,
    ]);
  }
  return [];
}

/** The tree for one program run: relative path -> file content. Pure. */
export function renderSynthTree(run: ProgramRun): Map<string, string> {
  const tree = new Map<string, string>();
  const resources = [...run.resources].sort(byTypeAndName);
  const redacted = resources.map((r) => ({
    ...r,
    inputs: redactSecrets(r.inputs) as Record<string, unknown>,
  }));

  tree.set(
    "resources.json",
    stableJson(
      redacted.map((r) => ({
        type: r.type,
        name: r.name,
        parent: r.parent ?? null,
        custom: r.custom,
        options: r.options,
        inputs: r.inputs,
      })),
    ),
  );
  tree.set("outputs.json", stableJson(run.outputs));

  for (const r of redacted) {
    for (const [path, content] of configFiles(r, r.inputs)) tree.set(path, content);
    if (r.type.startsWith("kubernetes:")) {
      const { apiVersion, kind, ...rest } = r.inputs as { apiVersion: string; kind: string };
      // apiVersion and kind first, as kubectl prints them; the rest sorted.
      const manifest = { apiVersion, kind, ...(JSON.parse(stableJson(rest)) as object) };
      tree.set(
        join("kubernetes", `${kind}-${safeName(r.name)}.yaml`),
        stringify(manifest, { sortMapEntries: false }),
      );
    } else if (r.type.startsWith("docker:")) {
      tree.set(join("docker", `${shortType(r.type)}-${safeName(r.name)}.json`), stableJson(r.inputs));
    }
  }
  return new Map([...tree.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Runs the program for one stack file under mocks and renders its tree. */
export async function synthStack(stack: string, stacksDir?: string): Promise<Map<string, string>> {
  const file = readStackFile(stack, stacksDir);
  // Imported here, after the stack file parsed, so a bad stack name fails before Pulumi loads.
  const { defineStack } = await import("../infra/program");
  for (const key of file.placeholders) {
    console.error(`synth ${stack}: ${key} is not in the stack file; using an offline placeholder (secret)`);
  }
  const run = await runProgramWithMocks({ ...file, stack, program: defineStack });
  return renderSynthTree(run);
}

/** Writes a tree into `out`, first emptying it if (and only if) an earlier synth made it. */
export function writeTree(out: string, tree: Map<string, string>): void {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!existsSync(join(out, MARKER_FILE))) {
      throw new Error(`synth: ${out} is not empty and was not made by synth; choose another --out folder.`);
    }
    rmSync(out, { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, MARKER_FILE), "made by npm run synth; emptied on the next run\n");
  for (const [path, content] of tree) {
    const full = join(out, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
}

function usage(): never {
  console.error("usage: npm run synth -- <stack> [--out DIR]   (stacks: see stacks/Pulumi.<stack>.yaml)");
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const stack = argv[0];
  if (stack === undefined || stack.startsWith("-")) usage();
  let out = join("synth-out", stack);
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1] !== undefined) out = argv[++i];
    else usage();
  }
  const started = process.hrtime.bigint();
  const tree = await synthStack(stack);
  writeTree(resolve(out), tree);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const resources = (JSON.parse(tree.get("resources.json") ?? "[]") as unknown[]).length;
  console.log(`synth ${stack}: ${resources} resources, ${tree.size} files in ${out} (${ms.toFixed(0)} ms)`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
