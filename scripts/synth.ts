/**
 * `npm run synth -- <stack> [--out DIR]`: the whole stack rendered offline, like `helm template`
 * or `cdk synth`. Runs the program for `stacks/Pulumi.<stack>.yaml` under the mocked engine (no
 * Pulumi CLI, no cloud, no network) and writes a reviewable tree:
 *
 *   resources.json            every resource: type, name, parent, resource options (provider,
 *                             protect, retainOnDelete, aliases, …), inputs, a component's outputs
 *   outputs.json              the stack outputs
 *   secrets.json              every secret the stack generates or reads (a fingerprint each, never
 *                             a value) and where each one is used: files, resource properties, outputs
 *   files/<resource>/<path>   every generated config file, where it lands in the container: Docker
 *                             uploads, ConfigMaps and Secrets (sentinel.conf, patroni.yml, …)
 *   kubernetes/<Kind>-<name>.yaml   Kubernetes manifests
 *   docker/<type>-<name>.json       Docker containers, networks, volumes, images
 *
 * Secrets: only the secret values are masked, in place (`requirepass [secret]`), so a changed
 * setting in a file that also holds a password still shows. The program runs twice, the second
 * time with every generated secret different: text that differs between the runs although no
 * known secret value is in it (a hash, an encoding of one) is masked too, token by token.
 *
 * Same input, byte-identical output: everything is sorted, nothing depends on time, order or the
 * checkout's location (absolute paths of the repository are written relative to it).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { stringify } from "yaml";
import {
  aliasUrns,
  isWrappedSecret,
  runProgramWithMocks,
  SECRET_MARKER,
  sortKeys,
  type ProgramRun,
  type RecordedResource,
  type SecretSource,
} from "./mock-engine";
import { readStackFile } from "./stack-file";

/** Left in every synth folder; a folder without it is never emptied. */
const MARKER_FILE = ".ha-backend-synth";
/** The ConfigMap annotation that maps data keys to file paths (see KubernetesPlatform). */
const PATHS_ANNOTATION = "ha-backend/file-paths";

/** JSON with object keys sorted at every level, two-space indent, trailing newline. */
export function stableJson(v: unknown): string {
  return `${JSON.stringify(sortKeys(v), null, 2)}\n`;
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

/** A resource name as a folder name in the tree (`files/<name>/…`). */
export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * Generated config files: Docker uploads, Kubernetes ConfigMap and Secret data (placed by the
 * paths annotation), keyed by tree path, with the property that holds each one.
 */
function configFiles(r: RecordedResource, inputs: Record<string, unknown>): [string, string, string][] {
  if (r.type === "docker:index/container:Container") {
    const uploads = (inputs.uploads ?? []) as { file: string; content: string }[];
    return uploads.map((u, i) => [
      join("files", safeName(r.name), u.file),
      u.content,
      `uploads[${i}].content`,
    ]);
  }
  if (r.type === "kubernetes:core/v1:ConfigMap" || r.type === "kubernetes:core/v1:Secret") {
    const meta = (inputs.metadata ?? {}) as { annotations?: Record<string, string> };
    const annotation = meta.annotations?.[PATHS_ANNOTATION];
    // A Secret without the annotation holds variables (`<name>-env`), not files.
    if (r.type === "kubernetes:core/v1:Secret" && annotation === undefined) return [];
    const paths = JSON.parse(annotation ?? "{}") as Record<string, string>;
    const field = r.type === "kubernetes:core/v1:Secret" ? "stringData" : "data";
    const data = (inputs[field] ?? {}) as Record<string, string>;
    return Object.entries(data).map(([key, content]) => [
      join("files", safeName(r.name), paths[key] ?? key),
      content,
      `${field}.${key}`,
    ]);
  }
  return [];
}

/** Where each secret is used: tree path (or `type::name` property path) -> secret labels. */
type SecretUses = Map<string, Set<string>>;

/**
 * Masks secrets in place. `a` is a value from the run, `b` the same value from the run with
 * every generated secret different. A wrapped secret keeps its shape and text, with each known
 * secret value replaced by the marker; what still differs between the runs is derived from a
 * secret and is masked too (token by token where the lines line up, else the whole value).
 * Plain values stay as they are. Labels of the secrets found are added to `found`.
 */
class Masker {
  private readonly sorted: SecretSource[];
  private readonly sortedAlternate: SecretSource[];

  constructor(
    sources: readonly SecretSource[],
    alternateSources: readonly SecretSource[],
    private readonly root: string,
  ) {
    // Longest first: a value that contains another is replaced whole.
    const bySize = (list: readonly SecretSource[]) =>
      [...list].filter((x) => x.value.length > 0).sort((x, y) => y.value.length - x.value.length);
    this.sorted = bySize(sources);
    this.sortedAlternate = bySize(alternateSources);
  }

  /**
   * Paths of plain (not secret) values that hold a secret or text derived from one: the engine
   * would store them in the clear. Listed in secrets.json (`inClear`) so a test can hold the
   * program to none but the ones meant to be public.
   */
  readonly inClear: string[] = [];

  /** A copy of `a` with secrets masked (see the class); `where` is its path, for `inClear`. */
  mask(a: unknown, b: unknown, found: Set<string>, inSecret = false, where = ""): unknown {
    if (isWrappedSecret(a)) {
      return this.mask(a.value, isWrappedSecret(b) ? b.value : undefined, found, true, where);
    }
    if (isWrappedSecret(b)) return this.mask(a, b.value, found, inSecret, where);
    if (Array.isArray(a)) {
      const bs = Array.isArray(b) && b.length === a.length ? b : [];
      return a.map((x, i) => this.mask(x, bs[i], found, inSecret, `${where}[${i}]`));
    }
    if (typeof a === "object" && a !== null) {
      const bo = (typeof b === "object" && b !== null ? b : {}) as Record<string, unknown>;
      return Object.fromEntries(
        Object.entries(a).map(([k, x]) => [
          k,
          this.mask(x, bo[k], found, inSecret, `${where}${pathSegment(k)}`),
        ]),
      );
    }
    if (typeof a !== "string") {
      // A secret number or flag: nothing in it to keep.
      return inSecret ? SECRET_MARKER : a;
    }
    const known = new Set<string>();
    const ma = this.relative(this.replaceKnown(a, this.sorted, known));
    for (const label of known) found.add(label);
    const mb =
      typeof b === "string"
        ? this.relative(this.replaceKnown(b, this.sortedAlternate, new Set()))
        : undefined;
    if (!inSecret) {
      // A plain value: a secret in it is masked (and the place listed). One that follows a
      // secret (differs between the runs) is listed but shown: the config digest, an HMAC made
      // to be public, is one, and its change is what tells a reviewer the pods restart.
      if (known.size > 0 || (mb !== undefined && ma !== mb)) this.inClear.push(where);
      return ma;
    }
    if (mb === undefined) return SECRET_MARKER;
    return ma === mb ? ma : maskDifferences(ma, mb);
  }

  private replaceKnown(text: string, sources: readonly SecretSource[], found: Set<string>): string {
    let out = text;
    for (const s of sources) {
      if (out.includes(s.value)) {
        out = out.split(s.value).join(SECRET_MARKER);
        found.add(s.label);
      }
    }
    return out;
  }

  /** The checkout's absolute path written relative to it (image build contexts, Dockerfiles). */
  private relative(text: string): string {
    if (this.root === "" || !text.includes(this.root)) return text;
    if (text === this.root) return ".";
    if (text.startsWith(`${this.root}/`) && !text.slice(this.root.length).includes(this.root)) {
      return text.slice(this.root.length + 1);
    }
    return text.split(`${this.root}/`).join("./").split(this.root).join(".");
  }
}

/** Tokens of a line: runs of word characters, and everything else one character at a time. */
const TOKENS = /[A-Za-z0-9_+/.@-]+|[^A-Za-z0-9_+/.@-]/g;

/**
 * `a` with what differs from `b` masked: line by line, token by token where a line has as many
 * tokens in both; a whole line where not; the whole value if the line counts differ.
 */
export function maskDifferences(a: string, b: string): string {
  const la = a.split("\n");
  const lb = b.split("\n");
  if (la.length !== lb.length) return SECRET_MARKER;
  return la
    .map((line, i) => {
      if (line === lb[i]) return line;
      const ta = line.match(TOKENS) ?? [];
      const tb = lb[i].match(TOKENS) ?? [];
      if (ta.length !== tb.length) return `${line.match(/^\s*/)?.[0] ?? ""}${SECRET_MARKER}`;
      return ta
        .map((t, j) => (t === tb[j] ? t : SECRET_MARKER))
        .join("")
        .replace(/(\[secret\])+/g, SECRET_MARKER);
    })
    .join("\n");
}

/** A JSON path segment: `.key`, or `["key"]` when the key is not a plain name. */
export function pathSegment(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/**
 * The tree for one program run: relative path -> file content. Pure. `alternate` is the same
 * program run with every generated secret different (see {@link Masker}); `root` the checkout's
 * absolute path, written relative in the tree.
 */
export function renderSynthTree(run: ProgramRun, alternate: ProgramRun, root = ""): Map<string, string> {
  const tree = new Map<string, string>();
  const masker = new Masker(run.secretSources, alternate.secretSources, root);
  const uses: SecretUses = new Map();
  const use = (where: string, labels: Set<string>) => {
    if (labels.size > 0) uses.set(where, new Set([...(uses.get(where) ?? []), ...labels]));
  };
  const other = new Map(alternate.resources.map((r) => [r.urn, r]));
  const resources = [...run.resources].sort(byTypeAndName);
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const masked = resources.map((r) => {
    const key = `${r.type}::${r.name}`;
    const b = other.get(r.urn)?.inputs ?? {};
    const inputs: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r.inputs)) {
      const found = new Set<string>();
      const where = `${key}${pathSegment(k)}`;
      inputs[k] = masker.mask(v, b[k], found, false, where);
      use(where, found);
    }
    const outs = run.componentOutputs.get(key);
    const found = new Set<string>();
    const outputs =
      outs === undefined
        ? undefined
        : masker.mask(outs, alternate.componentOutputs.get(key), found, false, `${key} outputs`);
    use(`${key} outputs`, found);
    return { ...r, inputs, outputs, aliasUrns: aliasUrns(r, byUrn) };
  });

  tree.set(
    "resources.json",
    stableJson(
      masked.map((r) => ({
        type: r.type,
        name: r.name,
        urn: r.urn,
        ...(r.aliasUrns.length > 0 ? { aliasUrns: r.aliasUrns } : {}),
        parent: r.parent ?? null,
        custom: r.custom,
        options: r.options,
        inputs: r.inputs,
        ...(r.outputs === undefined ? {} : { outputs: r.outputs }),
      })),
    ),
  );
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(run.rawOutputs)) {
    const found = new Set<string>();
    outputs[k] = masker.mask(v, alternate.rawOutputs[k], found, false, `outputs${pathSegment(k)}`);
    use(`outputs${pathSegment(k)}`, found);
  }
  tree.set("outputs.json", stableJson(outputs));

  const fileUses: SecretUses = new Map();
  for (const r of masked) {
    for (const [path, content, property] of configFiles(r, r.inputs)) {
      tree.set(path, content);
      // Which secrets the file holds: those found in the property it came from.
      const [field] = property.split(/[.[]/);
      const labels = uses.get(`${r.type}::${r.name}${pathSegment(field)}`);
      if (labels !== undefined && content.includes(SECRET_MARKER)) {
        const original = originalText(byUrn.get(r.urn)?.inputs, property);
        fileUses.set(
          path,
          new Set([...labels].filter((l) => original === undefined || sourceIn(run, l, original))),
        );
      }
    }
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
  const sorted = (m: SecretUses) =>
    Object.fromEntries(
      [...m.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([k, v]) => [k, [...v].sort()]),
    );
  tree.set(
    "secrets.json",
    stableJson({
      // label -> fingerprint: changes exactly when the secret would (see SecretSource).
      sources: Object.fromEntries(run.secretSources.map((x) => [x.label, x.fingerprint])),
      files: sorted(fileUses),
      properties: sorted(uses),
      inClear: [...new Set(masker.inClear)].sort(),
    }),
  );
  return new Map([...tree.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The unmasked text at a property path such as `uploads[3].content` or `stringData.key`. */
function originalText(inputs: Record<string, unknown> | undefined, property: string): string | undefined {
  let v: unknown = inputs;
  for (const part of property.match(/[^.[\]]+/g) ?? []) {
    while (isWrappedSecret(v)) v = v.value;
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  while (isWrappedSecret(v)) v = v.value;
  return typeof v === "string" ? v : undefined;
}

function sourceIn(run: ProgramRun, label: string, text: string): boolean {
  return run.secretSources.some((x) => x.label === label && text.includes(x.value));
}

/** The checkout whose program synth runs: this one, unless told otherwise (`--root`). */
const ROOT = resolve(__dirname, "..");

/**
 * Runs the program for one stack file under mocks and renders its tree. `root` is a checkout of
 * this repository (default: this one); its program and, unless `stacksDir` says otherwise, its
 * stack files are used. The diff tool synthesizes an older commit this way.
 */
export async function synthStack(
  stack: string,
  stacksDir?: string,
  root = ROOT,
): Promise<Map<string, string>> {
  const file = readStackFile(stack, stacksDir ?? join(root, "stacks"));
  // Imported here, after the stack file parsed, so a bad stack name fails before Pulumi loads.
  const { defineStack } = (await import(join(root, "infra", "program"))) as typeof import("../infra/program");
  for (const key of file.placeholders) {
    console.error(`synth ${stack}: ${key} is secret or not in the stack file; using an offline placeholder`);
  }
  const options = {
    ...file,
    configSecrets: file.secretSources,
    stack,
    program: defineStack,
    secretsFollowInputs: true,
  };
  const run = await runProgramWithMocks(options);
  // Config secrets differ in the second run too: each placeholder, wherever it is, becomes a
  // value that shares no prefix with it.
  const alt = (text: string) =>
    text.replace(
      /offline-placeholder-secret-[0-9a-f]{12}/g,
      (m) => `Y${createHash("sha256").update(m).digest("hex").slice(0, 24)}`,
    );
  const alternate = await runProgramWithMocks({
    ...options,
    config: Object.fromEntries(Object.entries(file.config).map(([k, v]) => [k, alt(v)])),
    configSecrets: file.secretSources.map((x) => ({ ...x, value: alt(x.value) })),
    alternateSecrets: true,
  });
  return renderSynthTree(run, alternate, root);
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

/** Reads a tree that {@link writeTree} wrote (its marker file left out). */
export function readTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== MARKER_FILE) out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function usage(): never {
  console.error(
    "usage: npm run synth -- <stack> [--out DIR] [--root CHECKOUT]   (stacks: see stacks/Pulumi.<stack>.yaml)",
  );
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const stack = argv[0];
  if (stack === undefined || stack.startsWith("-")) usage();
  let out = join("synth-out", stack);
  let root = ROOT;
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1] !== undefined) out = argv[++i];
    else if (argv[i] === "--root" && argv[i + 1] !== undefined) root = resolve(argv[++i]);
    else usage();
  }
  const started = process.hrtime.bigint();
  const tree = await synthStack(stack, undefined, root);
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
