/**
 * `npm run diff -- --base <git ref> [--head <git ref>] [--out DIR] [stack…]`: what a change does to
 * each stack, without credentials, a backend or a network. Both sides are synthesized offline
 * (`npm run synth`, under the mocked engine; the base from a `git worktree` of the ref) and their
 * trees compared. The report is Markdown, for a pull-request comment:
 *
 * - a summary per stack (never trimmed) with the changes a reviewer must notice: stateful members
 *   or volumes replaced or restarted, database/cache/lock config changed, failover budgets
 *   changed (old -> new seconds), network paths opened, protection lost, secrets changed;
 * - resources added, removed and changed, property by property, with what the engine will do
 *   (update, rolling restart, replace);
 * - a unified diff of every changed config file and Kubernetes manifest;
 * - the stack outputs that changed.
 *
 * Secret values never appear (synth masks them in place); a changed secret shows as "secret
 * changed", an unchanged one as "secret". The comment is kept within {@link COMMENT_LIMIT}
 * characters by trimming file diffs first, then property lists, never the summary; the whole
 * report is written beside it (`full.md`).
 *
 * The head side is the working tree (uncommitted changes included) unless `--head` names a ref.
 * Both sides run with this checkout's node_modules and synth driver; each side's own program and
 * stack files.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createTwoFilesPatch } from "diff";
import {
  actionFor,
  categoryOf,
  dataVolumes,
  dockerPaths,
  isVolume,
  keyOf,
  kindOf,
  networkPolicyPaths,
  owningComponent,
  type Action,
  type TreeResource,
} from "./diff-model";
import { SECRET_MARKER } from "./mock-engine";
import { isStackName, stacksWithFiles } from "./stack-file";
import { pathSegment, readTree, safeName } from "./synth";

/** GitHub's comment limit is 65,536 characters; stay well under it. */
export const COMMENT_LIMIT = 60_000;
/** The first line of every report: the comment poster finds its own comment by it. */
export const REPORT_MARKER = "<!-- ha-backend-config-diff -->";
/** Properties that carry a workload's settings outside its files: command line and environment. */
const SETTINGS =
  /^(command|entrypoints|envs)(\[|$)|^spec\.template\.spec\.(initContainers|containers)\[[^\]]*\]\.(args|command|env)(\[|\.|$)/;

export type Tree = ReadonlyMap<string, string>;

interface SecretsFile {
  sources: Record<string, string>;
  files: Record<string, string[]>;
  properties: Record<string, string[]>;
}

export interface PropertyChange {
  readonly path: string;
  readonly before?: string;
  readonly after?: string;
  /** e.g. "secret changed". */
  readonly note?: string;
}

export interface ResourceChange {
  readonly key: string;
  readonly type: string;
  readonly name: string;
  readonly action: Action;
  readonly properties: PropertyChange[];
}

export interface FileChange {
  readonly path: string;
  readonly status: "added" | "removed" | "changed";
  /** The unified diff's hunks (no header); empty when only a secret inside changed. */
  readonly hunks: string;
  readonly added: number;
  readonly removed: number;
  /** Secrets in the file whose value changed (labels). */
  readonly secretsChanged: string[];
}

export type FlagKind = "stateful" | "config" | "budget" | "network" | "protection" | "secret";

export interface Flag {
  readonly kind: FlagKind;
  readonly text: string;
}

export interface StackDiff {
  readonly stack: string;
  /** Why a side could not be synthesized (its error message), if it could not. */
  readonly baseError?: string;
  readonly headError?: string;
  readonly status: "added" | "removed" | "changed" | "unchanged" | "failed";
  readonly resources: ResourceChange[];
  readonly files: FileChange[];
  readonly outputs: PropertyChange[];
  readonly flags: Flag[];
}

const FLAG_TITLES: Record<FlagKind, string> = {
  stateful: "Stateful members or volumes replaced or restarted",
  config: "Database, cache or lock config changed",
  budget: "Failover budget changed",
  network: "Network paths opened",
  protection: "Protection lost",
  secret: "Secrets changed",
};

// --- comparing values ----------------------------------------------------------------------

/** How a value shows in a property diff: short, one line, secrets as words. */
function show(v: unknown): string {
  if (v === undefined) return "(none)";
  if (v === SECRET_MARKER) return "secret";
  if (typeof v === "string") {
    if (v.includes("\n")) return `(text, ${v.split("\n").length} lines)`;
    const s = JSON.stringify(v);
    return s.length > 100 ? `${s.slice(0, 97)}…"` : s;
  }
  const s = JSON.stringify(v);
  return s.length > 100 ? `${s.slice(0, 99)}…` : s;
}

/** A key that identifies an element of a list of objects, so a diff matches elements, not positions. */
const ID_KEYS = [
  "name",
  "file",
  "label",
  "containerPath",
  "volumeName",
  "mountPath",
  "key",
  "internal",
  "port",
];

function idOf(x: unknown): string | undefined {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return undefined;
  const o = x as Record<string, unknown>;
  for (const k of ID_KEYS)
    if (typeof o[k] === "string" || typeof o[k] === "number") return `${k}=${String(o[k])}`;
  return undefined;
}

/** Property-level differences between two values, as dotted paths. */
export function diffValues(a: unknown, b: unknown, path: string, out: PropertyChange[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const isObj = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
      diffValues(ao[k], bo[k], path === "" ? k : `${path}.${k}`, out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const scalar = (x: unknown) => typeof x !== "object" || x === null;
    if (a.every(scalar) && b.every(scalar)) {
      const as = a.map((x) => JSON.stringify(x));
      const bs = b.map((x) => JSON.stringify(x));
      const removed = a.filter((_, i) => !bs.includes(as[i]));
      const added = b.filter((_, i) => !as.includes(bs[i]));
      for (const x of removed) out.push({ path: `${path}[-]`, before: show(x) });
      for (const x of added) out.push({ path: `${path}[+]`, after: show(x) });
      if (removed.length === 0 && added.length === 0) out.push({ path, note: "order changed" });
      return;
    }
    const ids = (l: unknown[]) => l.map(idOf);
    const ai = ids(a);
    const bi = ids(b);
    const unique = (l: (string | undefined)[]) =>
      l.every((x) => x !== undefined) && new Set(l).size === l.length;
    if (unique(ai) && unique(bi)) {
      for (const id of [...new Set([...ai, ...bi])] as string[]) {
        diffValues(a[ai.indexOf(id)], b[bi.indexOf(id)], `${path}[${id}]`, out);
      }
      return;
    }
    for (let i = 0; i < Math.max(a.length, b.length); i++) diffValues(a[i], b[i], `${path}[${i}]`, out);
    return;
  }
  out.push({ path, before: show(a), after: show(b) });
}

// --- comparing trees -----------------------------------------------------------------------

function parseJson<T>(tree: Tree | undefined, path: string, fallback: T): T {
  const text = tree?.get(path);
  return text === undefined ? fallback : (JSON.parse(text) as T);
}

/** Secret labels (with a fingerprint on both sides) whose fingerprint changed, and those added or removed. */
function secretChanges(
  base: SecretsFile,
  head: SecretsFile,
): { changed: Set<string>; added: string[]; removed: string[] } {
  const changed = new Set<string>();
  for (const [label, fp] of Object.entries(head.sources)) {
    if (label in base.sources && base.sources[label] !== fp) changed.add(label);
  }
  return {
    changed,
    added: Object.keys(head.sources).filter((l) => !(l in base.sources)),
    removed: Object.keys(base.sources).filter((l) => !(l in head.sources)),
  };
}

/** `random:index/randomPassword:RandomPassword::cache-password` -> `RandomPassword cache-password`. */
function labelText(label: string): string {
  if (label.startsWith("config ")) return `stack config \`${label.slice("config ".length)}\``;
  const [type, name] = label.split("::");
  return `${type.split(":").pop()} \`${name}\``;
}

/** A Kubernetes manifest without the file contents a ConfigMap or Secret carries (shown as files). */
function manifestWithoutFiles(path: string, text: string): string {
  if (!/^kubernetes\/(ConfigMap|Secret)-/.test(path) || !text.includes("ha-backend/file-paths")) return text;
  const lines = text.split("\n");
  const out: string[] = [];
  let skipping = false;
  for (const line of lines) {
    if (/^(data|stringData):/.test(line)) {
      out.push(`${line.split(":")[0]}: (files: see the file diffs)`);
      skipping = true;
      continue;
    }
    if (skipping && /^\s/.test(line)) continue;
    skipping = false;
    out.push(line);
  }
  return out.join("\n");
}

function countLines(hunks: string): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const l of hunks.split("\n")) {
    if (l.startsWith("+") && !l.startsWith("+++")) added++;
    else if (l.startsWith("-") && !l.startsWith("---")) removed++;
  }
  return { added, removed };
}

/** Compares one stack's two trees (either may be missing: a stack added or removed). */
export function compareStack(stack: string, base: Tree | undefined, head: Tree | undefined): StackDiff {
  const empty = { resources: [], files: [], outputs: [], flags: [] };
  if (base === undefined && head === undefined) return { stack, status: "unchanged", ...empty };
  const baseResources = parseJson<TreeResource[]>(base, "resources.json", []);
  const headResources = parseJson<TreeResource[]>(head, "resources.json", []);
  const noSecrets: SecretsFile = { sources: {}, files: {}, properties: {} };
  const baseSecrets = parseJson<SecretsFile>(base, "secrets.json", noSecrets);
  const headSecrets = parseJson<SecretsFile>(head, "secrets.json", noSecrets);
  const secrets = secretChanges(baseSecrets, headSecrets);
  const changedIn = (labels: string[] | undefined) => (labels ?? []).filter((l) => secrets.changed.has(l));

  const before = new Map(baseResources.map((r) => [keyOf(r), r]));
  const after = new Map(headResources.map((r) => [keyOf(r), r]));
  const all = new Map([...before, ...after]);
  const flags: Flag[] = [];
  const flag = (kind: FlagKind, text: string) => flags.push({ kind, text });

  // Resources, matched as the engine does: by URN, or by an alias of the head's resource.
  const baseByUrn = new Map(baseResources.map((r) => [r.urn ?? keyOf(r), r]));
  const matched = new Set<TreeResource>();
  const pairs: [TreeResource | undefined, TreeResource | undefined][] = [];
  for (const b of headResources) {
    const a = [b.urn ?? keyOf(b), ...(b.aliasUrns ?? [])]
      .map((u) => baseByUrn.get(u))
      .find((x) => x !== undefined && !matched.has(x));
    if (a !== undefined) matched.add(a);
    pairs.push([a, b]);
  }
  for (const a of baseResources) if (!matched.has(a)) pairs.push([a, undefined]);
  pairs.sort(([a1, b1], [a2, b2]) => {
    const k1 = keyOf((b1 ?? a1) as TreeResource);
    const k2 = keyOf((b2 ?? a2) as TreeResource);
    return k1 < k2 ? -1 : k1 > k2 ? 1 : 0;
  });
  const resources: ResourceChange[] = [];
  for (const [a, b] of pairs) {
    const r = (b ?? a) as TreeResource;
    const key = keyOf(r);
    if (a === undefined || b === undefined) {
      resources.push({
        key,
        type: r.type,
        name: r.name,
        action: a === undefined ? "create" : "delete",
        properties: [],
      });
      // The same resource under a new URN and no alias: the engine deletes it and creates it.
      const twin =
        a === undefined && pairs.find(([x, y]) => y === undefined && x !== undefined && keyOf(x) === key);
      if (twin && (dataVolumes(r).length > 0 || isVolume(r))) {
        flag(
          "stateful",
          `${kindOf(r.type)} \`${r.name}\` moves to a new URN without an alias (its parent or type changed): the engine deletes it and creates it again`,
        );
      }
      continue;
    }
    const renamed: PropertyChange[] =
      (a.urn ?? keyOf(a)) !== (b.urn ?? keyOf(b))
        ? [{ path: "(urn)", before: a.urn ?? keyOf(a), after: b.urn ?? keyOf(b), note: undefined }]
        : [];
    const inputs: PropertyChange[] = [];
    diffValues(a.inputs, b.inputs, "", inputs);
    // A secret inside an input changed: the masked text is the same, the value is not.
    for (const top of Object.keys(b.inputs)) {
      const labels = changedIn(headSecrets.properties[`${key}${pathSegment(top)}`]);
      if (labels.length > 0)
        inputs.push({ path: top, note: `secret changed (${labels.map(labelText).join(", ")})` });
    }
    const options: PropertyChange[] = [];
    diffValues(a.options, b.options, "options", options);
    const outputs: PropertyChange[] = [];
    diffValues(a.outputs, b.outputs, "outputs", outputs);
    const properties = [...renamed, ...inputs, ...options, ...outputs];
    if (properties.length === 0) continue;
    const action =
      inputs.length > 0
        ? actionFor(
            b,
            inputs.map((p) => p.path.replace(/\[[+-]\]$/, "")),
          )
        : renamed.length > 0
          ? "alias"
          : "update";
    resources.push({ key, type: r.type, name: r.name, action, properties });
  }

  // Stateful members and volumes: one line per component and kind of change.
  const byComponent = new Map<string, Map<string, string[]>>();
  for (const c of resources) {
    const r = (after.get(c.key) ?? before.get(c.key)) as TreeResource;
    const volumes = dataVolumes(r);
    const verb =
      c.action === "replace"
        ? r.type.startsWith("docker:")
          ? "recreated (restart; data volumes kept)"
          : "replaced"
        : c.action === "restart"
          ? "restarted (rolling update of the pods)"
          : c.action === "delete"
            ? "deleted"
            : undefined;
    if (isVolume(r) && (c.action === "replace" || c.action === "delete")) {
      const kept =
        r.options.retainOnDelete === true ? " (retainOnDelete keeps the old one)" : " — its data is lost";
      flag(
        "stateful",
        `${kindOf(r.type)} \`${r.name}\` would be ${c.action === "replace" ? "replaced" : "deleted"}${kept}`,
      );
    } else if (volumes.length > 0 && verb !== undefined) {
      const owner = owningComponent(c.key, all);
      const group = owner ? `${kindOf(owner.type)} \`${owner.name}\`` : "(no component)";
      // Where the change is: an input (Docker), or a field a few levels down (Kubernetes).
      const depth = r.type.startsWith("kubernetes:") ? 4 : 1;
      const why = c.properties
        .filter((p) => !p.path.startsWith("options") && !p.path.startsWith("outputs"))
        .map((p) => p.path.split(".").slice(0, depth).join(".").replace(/\[.*$/, ""))
        .filter((x, i, l) => l.indexOf(x) === i)
        .slice(0, 4)
        .join(", ");
      const kinds = byComponent.get(group) ?? new Map<string, string[]>();
      const how = `${verb}${why ? ` (changed: ${why})` : ""}`;
      kinds.set(how, [...(kinds.get(how) ?? []), `\`${r.name}\``]);
      byComponent.set(group, kinds);
    }
    // What the engine checks is the protection recorded in the state: the base's.
    if (
      (before.get(c.key) ?? r).options.protect === true &&
      (c.action === "replace" || c.action === "delete")
    ) {
      flag(
        "protection",
        `\`${r.name}\` is protected: \`pulumi up\` refuses to ${c.action} it until protection is removed`,
      );
    }
  }
  for (const [group, kinds] of byComponent) {
    for (const [how, names] of kinds) {
      flag(
        "stateful",
        `${group}: stateful member${names.length === 1 ? "" : "s"} ${names.join(", ")} ${how}`,
      );
    }
  }

  // Protection lost.
  for (const [a, b] of pairs) {
    if (a === undefined || b === undefined) continue;
    for (const opt of ["protect", "retainOnDelete"] as const) {
      if (a.options[opt] === true && b.options[opt] !== true)
        flag("protection", `\`${b.name}\` (${kindOf(b.type)}) loses \`${opt}\``);
    }
  }

  // Failover budgets: stack outputs and each component's.
  const baseOutputs = parseJson<Record<string, unknown>>(base, "outputs.json", {});
  const headOutputs = parseJson<Record<string, unknown>>(head, "outputs.json", {});
  for (const k of [...new Set([...Object.keys(baseOutputs), ...Object.keys(headOutputs)])].sort()) {
    if (!/FailoverBudgetSeconds$/.test(k) || baseOutputs[k] === headOutputs[k]) continue;
    if (base === undefined || head === undefined) continue;
    flag("budget", `\`${k}\`: ${show(baseOutputs[k])} → ${show(headOutputs[k])} s`);
  }
  for (const [a, b] of pairs) {
    if (b === undefined) continue;
    const x = a?.outputs?.failoverBudgetSeconds;
    const y = b.outputs?.failoverBudgetSeconds;
    if (a !== undefined && x !== y && (x !== undefined || y !== undefined)) {
      flag("budget", `${kindOf(b.type)} \`${b.name}\`: ${show(x)} → ${show(y)} s`);
    }
  }

  // Pod labels that NetworkPolicies select by: a new one lets pods in where a policy admits it.
  // A StatefulSet scaled down stops its last members.
  for (const c of resources) {
    for (const p of c.properties) {
      const label = /^spec\.template\.metadata\.labels\.(.+)$/.exec(p.path);
      if (label && p.after !== undefined && p.after !== "(none)") {
        flag(
          "network",
          `pods of \`${c.name}\` get label \`${label[1]}\` = ${p.after}: the NetworkPolicies that select it now apply to them`,
        );
      }
      if (
        kindOf(c.type) === "StatefulSet" &&
        p.path === "spec.replicas" &&
        Number(p.after) < Number(p.before)
      ) {
        flag(
          "stateful",
          `StatefulSet \`${c.name}\` scales from ${p.before} to ${p.after} members: the last ones stop (their volumes stay)`,
        );
      }
    }
  }

  // Network paths opened.
  const policies = (rs: TreeResource[]) =>
    new Map(
      rs.filter((r) => kindOf(r.type) === "NetworkPolicy").map((r) => [keyOf(r), networkPolicyPaths(r)]),
    );
  const basePolicies = policies(baseResources);
  const headPolicies = policies(headResources);
  if (base !== undefined) {
    const known = new Set([...basePolicies.values()].flat());
    const opened = [...new Set([...headPolicies.values()].flat())].filter((p) => !known.has(p));
    for (const p of opened) flag("network", `NetworkPolicy allows a new path: ${p}`);
    for (const [key] of basePolicies) {
      if (!headPolicies.has(key)) {
        flag(
          "network",
          `NetworkPolicy \`${key.split("::")[1]}\` removed: pods it selected may no longer be isolated`,
        );
      }
    }
    const baseDocker = dockerPaths(baseResources);
    // A port published on every address (0.0.0.0) before covers the same port on one address now.
    const covered = (p: string) =>
      baseDocker.has(p) || baseDocker.has(p.replace(/^host [^ ]+:/, "host 0.0.0.0:"));
    for (const [p, via] of dockerPaths(headResources)) {
      if (!covered(p)) flag("network", `Docker: new path ${p} (${via.join(", ")})`);
    }
  }

  // Files and manifests.
  const files: FileChange[] = [];
  const configGroups = new Map<string, { id: string; hunks: string; folders: string[] }>();
  const paths = [...new Set([...(base?.keys() ?? []), ...(head?.keys() ?? [])])]
    .filter((p) => p.startsWith("files/") || p.startsWith("kubernetes/"))
    .sort();
  for (const path of paths) {
    const x = base?.get(path);
    const y = head?.get(path);
    const secretsChanged = changedIn(headSecrets.files[path]);
    if (x === y && secretsChanged.length === 0) continue;
    if (base === undefined || head === undefined) continue;
    const a = x === undefined ? "" : manifestWithoutFiles(path, x);
    const b = y === undefined ? "" : manifestWithoutFiles(path, y);
    if (a === b && secretsChanged.length === 0) continue;
    const patch = createTwoFilesPatch(`a/${path}`, `b/${path}`, a, b, undefined, undefined, { context: 3 });
    const hunks = patch.split("\n").slice(4).join("\n").trimEnd();
    files.push({
      path,
      status: x === undefined ? "added" : y === undefined ? "removed" : "changed",
      hunks,
      ...countLines(hunks),
      secretsChanged,
    });
    const owner = path.startsWith("files/")
      ? owningComponent(ownerKeyOf(path, [...headResources, ...baseResources]) ?? "", all)
      : undefined;
    const category = categoryOf(owner?.type);
    if (category !== "other" && hunks !== "") {
      // One line for the members whose file changed the same way.
      const [, folder, ...inner] = path.split("/");
      const id = `${category} config \`/${inner.join("/")}\``;
      const group = configGroups.get(`${id}\0${hunks}`) ?? { id, hunks, folders: [] };
      group.folders.push(folder);
      configGroups.set(`${id}\0${hunks}`, group);
    }
  }
  for (const g of configGroups.values()) {
    const { added, removed } = countLines(g.hunks);
    flag(
      "config",
      `${g.id} changed in ${g.folders.map((f) => `\`${f}\``).join(", ")} (+${added} −${removed})`,
    );
  }

  // Settings a database, cache or lock member takes on its command line or in its environment
  // (memcached's -m, for instance): config too, though not in a file.
  const settings = new Map<string, string[]>();
  for (const c of resources) {
    if (c.action === "create" || c.action === "delete") continue;
    const category = categoryOf(owningComponent(c.key, all)?.type);
    const changes = c.properties.filter((p) => SETTINGS.test(p.path) && p.note === undefined);
    if (category === "other" || changes.length === 0) continue;
    const what = changes
      .slice(0, 3)
      .map((p) => `\`${p.path}\` ${p.before ?? "(none)"} → ${p.after ?? "(none)"}`)
      .join("; ");
    const id = `${category} settings changed: ${what}${changes.length > 3 ? ` (and ${changes.length - 3} more)` : ""}`;
    settings.set(id, [...(settings.get(id) ?? []), `\`${c.name}\``]);
  }
  for (const [id, names] of settings) flag("config", `${id} in ${names.join(", ")}`);

  // Secrets.
  for (const label of [...secrets.changed].sort()) {
    const users = Object.entries(headSecrets.files).filter(([, l]) => l.includes(label)).length;
    const props = Object.entries(headSecrets.properties).filter(([, l]) => l.includes(label)).length;
    flag(
      "secret",
      `${labelText(label)}: secret changed (in ${users} file${users === 1 ? "" : "s"}, ${props} propert${props === 1 ? "y" : "ies"}); every user of it restarts with the new value`,
    );
  }
  if (base !== undefined && head !== undefined) {
    for (const label of secrets.added) flag("secret", `${labelText(label)}: new secret`);
    for (const label of secrets.removed) flag("secret", `${labelText(label)}: secret removed`);
  }

  // Outputs.
  const outputs: PropertyChange[] = [];
  if (base !== undefined && head !== undefined) {
    diffValues(baseOutputs, headOutputs, "", outputs);
    for (const k of Object.keys(headOutputs)) {
      const labels = changedIn(headSecrets.properties[`outputs${pathSegment(k)}`]);
      if (labels.length > 0) outputs.push({ path: k, note: "secret changed" });
    }
  }

  const status =
    base === undefined
      ? "added"
      : head === undefined
        ? "removed"
        : resources.length + files.length + outputs.length > 0
          ? "changed"
          : "unchanged";
  return { stack, status, resources, files, outputs, flags: dedupe(flags) };
}

function dedupe(flags: Flag[]): Flag[] {
  const seen = new Set<string>();
  return flags.filter((f) => (seen.has(f.kind + f.text) ? false : (seen.add(f.kind + f.text), true)));
}

/** The resource that holds a file: `files/<resource>/…`, by the name synth made safe. */
function ownerKeyOf(path: string, resources: readonly TreeResource[]): string | undefined {
  const folder = path.split("/")[1];
  const r = resources.find(
    (x) =>
      safeName(x.name) === folder &&
      (x.type === "docker:index/container:Container" || /:(ConfigMap|Secret)$/.test(x.type)),
  );
  return r === undefined ? undefined : keyOf(r);
}

// --- the report ----------------------------------------------------------------------------

export interface ReportMeta {
  readonly base: string;
  readonly head: string;
}

/** How much detail a rendering keeps; a higher level is shorter. */
interface Detail {
  /** Lines kept per file diff (Infinity: all; 0: file names only). */
  readonly fileLines: number;
  /** Property changes listed per resource (Infinity: all; 0: resource names only). */
  readonly properties: number;
  /** Items listed per flag kind per stack. */
  readonly flagsPerKind: number;
}

const LEVELS: Detail[] = [
  { fileLines: Infinity, properties: Infinity, flagsPerKind: Infinity },
  { fileLines: 60, properties: Infinity, flagsPerKind: Infinity },
  { fileLines: 20, properties: 12, flagsPerKind: Infinity },
  { fileLines: 0, properties: 12, flagsPerKind: Infinity },
  { fileLines: 0, properties: 3, flagsPerKind: Infinity },
  { fileLines: 0, properties: 0, flagsPerKind: Infinity },
  // The summary alone, whole; only if even that is too long are its lists cut.
  { fileLines: -1, properties: -1, flagsPerKind: Infinity },
  { fileLines: -1, properties: -1, flagsPerKind: 10 },
];

const ACTION_WORDS: Record<Action, string> = {
  create: "➕ create",
  delete: "➖ delete",
  update: "✏️ update",
  alias: "🔗 new URN (alias)",
  restart: "🔁 rolling restart",
  replace: "♻️ replace",
};

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function renderSummary(diffs: readonly StackDiff[], meta: ReportMeta, detail: Detail): string[] {
  const out = [
    REPORT_MARKER,
    `## Config diff: \`${meta.base}\` → \`${meta.head}\``,
    "",
    "_Credential-free: both sides synthesized offline under the mocked engine (`npm run diff`). Secret values never appear: a changed secret shows as “secret changed”, an unchanged one as “secret”._",
    "",
    "| Stack | Status | Resources (+ / − / changed) | Files changed | Outputs changed | Needs attention |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const d of diffs) {
    const add = d.resources.filter((r) => r.action === "create").length;
    const del = d.resources.filter((r) => r.action === "delete").length;
    const chg = d.resources.length - add - del;
    const status = d.status === "failed" ? "❌ failed" : d.status;
    out.push(
      `| \`${d.stack}\` | ${status} | ${add} / ${del} / ${chg} | ${d.files.length} | ${d.outputs.length} | ${d.flags.length === 0 ? "—" : `⚠️ ${d.flags.length}`} |`,
    );
  }
  out.push("");
  for (const d of diffs) {
    if (d.baseError || d.headError) {
      out.push(
        `**${d.stack}**: ${d.baseError ? `base did not synthesize: ${cell(d.baseError)}` : ""}${d.headError ? ` head did not synthesize: ${cell(d.headError)}` : ""}`,
        "",
      );
    }
    if (d.flags.length === 0) continue;
    out.push(`### ⚠️ \`${d.stack}\`: needs attention`, "");
    for (const kind of Object.keys(FLAG_TITLES) as FlagKind[]) {
      const items = d.flags.filter((f) => f.kind === kind);
      if (items.length === 0) continue;
      out.push(`- **${FLAG_TITLES[kind]}** (${items.length})`);
      for (const f of items.slice(0, detail.flagsPerKind)) out.push(`  - ${f.text}`);
      if (items.length > detail.flagsPerKind)
        out.push(`  - … and ${items.length - detail.flagsPerKind} more (full report: artifact)`);
    }
    out.push("");
  }
  return out;
}

function renderDetails(d: StackDiff, detail: Detail): string[] {
  if (detail.properties < 0 || d.status === "unchanged") return [];
  const out: string[] = [`### \`${d.stack}\``, ""];
  if (d.resources.length > 0) {
    out.push(`<details><summary>Resources: ${d.resources.length} changed</summary>`, "");
    out.push("| Resource | Action | Property | Before | After |", "| --- | --- | --- | --- | --- |");
    for (const r of d.resources) {
      const props = r.properties.slice(0, detail.properties);
      const head = `\`${kindOf(r.type)} ${r.name}\``;
      if (props.length === 0)
        out.push(
          `| ${head} | ${ACTION_WORDS[r.action]} | ${r.properties.length > 0 ? `${r.properties.length} properties` : ""} | | |`,
        );
      props.forEach((p, i) =>
        out.push(
          `| ${i === 0 ? head : ""} | ${i === 0 ? ACTION_WORDS[r.action] : ""} | \`${cell(p.path)}\` | ${cell(p.note ?? p.before ?? "")} | ${cell(p.note ? "" : (p.after ?? ""))} |`,
        ),
      );
      if (r.properties.length > props.length && props.length > 0) {
        out.push(`| | | … ${r.properties.length - props.length} more | | |`);
      }
    }
    out.push("", "</details>", "");
  }
  if (d.files.length > 0) {
    out.push(`<details><summary>Files and manifests: ${d.files.length} changed</summary>`, "");
    // One diff for files that changed the same way (each member of a cluster, for instance).
    const groups = new Map<string, FileChange[]>();
    for (const f of d.files)
      groups.set(f.hunks + "\0" + f.secretsChanged.join(","), [
        ...(groups.get(f.hunks + "\0" + f.secretsChanged.join(",")) ?? []),
        f,
      ]);
    for (const group of groups.values()) {
      const f = group[0];
      const names = group.map((g) => `\`${g.path}\``).join(", ");
      const secret =
        f.secretsChanged.length > 0
          ? ` — secret changed (${f.secretsChanged.map(labelText).join(", ")})`
          : "";
      out.push(`- ${names} (${f.status}, +${f.added} −${f.removed})${secret}`);
      if (detail.fileLines !== 0 && f.hunks !== "") {
        const lines = f.hunks.split("\n");
        const kept = lines.slice(0, detail.fileLines);
        out.push("", "```diff", ...kept.map((l) => l.replace(/```/g, "ʼʼʼ")), "```");
        if (lines.length > kept.length)
          out.push(`_… ${lines.length - kept.length} more lines (full report: artifact)_`);
        out.push("");
      }
    }
    out.push("", "</details>", "");
  }
  if (d.outputs.length > 0) {
    out.push(
      "<details><summary>Outputs changed</summary>",
      "",
      "| Output | Before | After |",
      "| --- | --- | --- |",
    );
    for (const p of d.outputs)
      out.push(
        `| \`${cell(p.path)}\` | ${cell(p.note ?? p.before ?? "")} | ${cell(p.note ? "" : (p.after ?? ""))} |`,
      );
    out.push("", "</details>", "");
  }
  return out;
}

function renderAt(diffs: readonly StackDiff[], meta: ReportMeta, detail: Detail, trimmed: boolean): string {
  const out = renderSummary(diffs, meta, detail);
  if (trimmed) {
    out.push(
      "> Trimmed to fit one comment (file diffs first). The full report is the `config-diff` artifact of this run (`full.md`).",
      "",
    );
  }
  for (const d of diffs) out.push(...renderDetails(d, detail));
  return `${out.join("\n").trimEnd()}\n`;
}

/** The full report and the one that fits a comment (the same when the full one fits). */
export function renderReport(
  diffs: readonly StackDiff[],
  meta: ReportMeta,
  limit = COMMENT_LIMIT,
): { full: string; comment: string } {
  const full = renderAt(diffs, meta, LEVELS[0], false);
  if (full.length <= limit) return { full, comment: full };
  for (const level of LEVELS.slice(1)) {
    const text = renderAt(diffs, meta, level, true);
    if (text.length <= limit) return { full, comment: text };
  }
  // The summary alone, cut at a line if it is still too long (hundreds of stacks).
  const text = renderAt(diffs, meta, LEVELS[LEVELS.length - 1], true);
  const cut = text.slice(0, limit - 200);
  return {
    full,
    comment: `${cut.slice(0, cut.lastIndexOf("\n"))}\n\n_… summary cut at ${limit} characters; see the artifact._\n`,
  };
}

// --- running it ----------------------------------------------------------------------------

function git(args: string[], cwd: string): string {
  const r = spawnSync("git", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/** Runs this checkout's synth for `root`'s program in a child process; resolves with the tree or the error. */
function synthIn(
  repo: string,
  root: string,
  stack: string,
  out: string,
): Promise<Map<string, string> | { error: string }> {
  return new Promise((done) => {
    const child = spawn(
      process.execPath,
      [
        join(repo, "node_modules", "ts-node", "dist", "bin.js"),
        "--transpile-only",
        join(repo, "scripts", "synth.ts"),
        stack,
        "--out",
        out,
        "--root",
        root,
      ],
      { cwd: repo, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) done(readTree(out));
      else {
        const lines = stderr
          .split("\n")
          .filter((l) => l.trim() !== "" && !/using an offline placeholder/.test(l));
        done({
          error: scrub((lines.slice(-3).join(" ") || `synth exited with ${code}`).slice(0, 500), root),
        });
      }
    });
  });
}

/**
 * An error message made fit for a comment: no mock or stand-in secret, key material or path of
 * the temporary checkout, no HTML (it would change how the comment renders), one line.
 */
export function scrub(message: string, root: string): string {
  return message
    .split(root)
    .join("<checkout>")
    .replace(/-----BEGIN [A-Z ]+-----[\s\S]*?(-----END [A-Z ]+-----|$)/g, "[secret]")
    .replace(
      /mock-password-for-[A-Za-z0-9_-]+|offline-placeholder-secret-[0-9a-f]+|\bZ[0-9a-f]{24}\b|\bY[0-9a-f]{24}\b/g,
      "[secret]",
    )
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/`/g, "'")
    .replace(/\s+/g, " ");
}

/** Runs `tasks` at most `n` at a time. */
async function pool<T>(tasks: (() => Promise<T>)[], n: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]();
      }
    }),
  );
  return results;
}

export interface DiffOptions {
  /** The repository (a checkout with node_modules); default: this one. */
  readonly repo?: string;
  readonly base: string;
  /** A ref for the head side; default: the working tree. */
  readonly head?: string;
  readonly stacks?: readonly string[];
}

/** Synthesizes both sides and compares them. Worktrees and temporary trees are removed, also on failure. */
export async function configDiff(opts: DiffOptions): Promise<{ diffs: StackDiff[]; meta: ReportMeta }> {
  const repo = resolve(opts.repo ?? join(__dirname, ".."));
  const revParse = (ref: string) => {
    try {
      return git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], repo);
    } catch {
      throw new Error(
        `--base/--head: ${JSON.stringify(ref)} is not a commit in ${repo}. Fetch it first (e.g. git fetch origin main) or use a sha.`,
      );
    }
  };
  const baseSha = revParse(opts.base);
  const headSha = opts.head === undefined ? undefined : revParse(opts.head);
  const work = mkdtempSync(join(tmpdir(), "ha-backend-diff-"));
  const worktrees: string[] = [];
  const cleanup = () => {
    for (const dir of worktrees) spawnSync("git", ["worktree", "remove", "--force", dir], { cwd: repo });
    spawnSync("git", ["worktree", "prune"], { cwd: repo });
    rmSync(work, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, a cancelled CI job): still no worktree left behind.
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.kill(process.pid, signal);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const checkout = (sha: string, name: string) => {
      const dir = join(work, name);
      git(["worktree", "add", "--detach", "--quiet", dir, sha], repo);
      worktrees.push(dir);
      // The same dependencies as this checkout (no install, no network).
      if (!existsSync(join(dir, "node_modules")))
        symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"), "dir");
      return dir;
    };
    const baseRoot = checkout(baseSha, "base");
    const headRoot = headSha === undefined ? repo : checkout(headSha, "head");
    const known = [
      ...new Set([
        ...stacksWithFiles(join(baseRoot, "stacks")),
        ...stacksWithFiles(join(headRoot, "stacks")),
      ]),
    ].sort();
    const stacks = opts.stacks?.length ? [...opts.stacks] : known;
    const unknown = stacks.filter((x) => !known.includes(x));
    if (unknown.length > 0) {
      throw new Error(
        `no stack file for ${unknown.join(", ")} in either side (stacks: ${known.join(", ")}). Name a stack as in stacks/Pulumi.<stack>.yaml.`,
      );
    }
    const tasks = stacks.flatMap((stack) =>
      (["base", "head"] as const).map((side) => async () => {
        const root = side === "base" ? baseRoot : headRoot;
        if (!existsSync(join(root, "stacks", `Pulumi.${stack}.yaml`))) return undefined;
        const out = join(work, `${side}-out`, stack);
        mkdirSync(out, { recursive: true });
        return synthIn(repo, root, stack, out);
      }),
    );
    const results = await pool(tasks, 2);
    const diffs = stacks.map((stack, i) => {
      const a = results[2 * i];
      const b = results[2 * i + 1];
      const error = (x: typeof a) => (x !== undefined && !(x instanceof Map) ? x.error : undefined);
      if (error(a) || error(b)) {
        return {
          ...compareStack(stack, undefined, undefined),
          status: "failed" as const,
          baseError: error(a),
          headError: error(b),
        };
      }
      return compareStack(stack, a as Map<string, string> | undefined, b as Map<string, string> | undefined);
    });
    const short = (sha: string) => sha.slice(0, 12);
    return {
      diffs,
      meta: {
        base: `${opts.base} (${short(baseSha)})`,
        head: headSha === undefined ? "working tree" : `${opts.head} (${short(headSha)})`,
      },
    };
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    cleanup();
  }
}

function usage(): never {
  console.error("usage: npm run diff -- --base <git ref> [--head <git ref>] [--out DIR] [stack…]");
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let base: string | undefined;
  let head: string | undefined;
  let out: string | undefined;
  const stacks: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--base" && argv[i + 1] !== undefined) base = argv[++i];
    else if (a === "--head" && argv[i + 1] !== undefined) head = argv[++i];
    else if (a === "--out" && argv[i + 1] !== undefined) out = argv[++i];
    else if (isStackName(a)) stacks.push(a);
    else usage();
  }
  if (base === undefined) usage();
  const { diffs, meta } = await configDiff({ base, head, stacks });
  const { full, comment } = renderReport(diffs, meta);
  if (out !== undefined) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "report.md"), comment);
    writeFileSync(join(out, "full.md"), full);
  }
  process.stdout.write(comment);
  // The change itself breaks a stack: fail. A base that did not synthesize is only reported.
  if (diffs.some((d) => d.headError !== undefined)) process.exitCode = 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
