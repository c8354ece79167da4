/**
 * Reads `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to a program: every value a
 * string, structured values as JSON text, `secure:` values marked secret. Offline tools (synth,
 * tests) cannot decrypt secure values: they get a placeholder that stays marked secret.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY } from "./offline-tls";

export const STACKS_DIR = join(__dirname, "..", "stacks");
/** Stands in for a `secure:` value offline; never printed, since the key stays secret. */
export const OFFLINE_SECRET_PLACEHOLDER = "offline-placeholder-secret";

export interface StackFile {
  readonly config: Record<string, string>;
  readonly secretKeys: string[];
  /**
   * Each `secure:` value's offline stand-in (distinct per value, so a reader can tell which one a
   * text contains), where it sits, and a fingerprint of its ciphertext: `pulumi config set
   * --secret` writes a new ciphertext, so a changed fingerprint means the secret was set again.
   */
  readonly secretSources: { value: string; label: string; fingerprint: string }[];
}

/** Stack names: lowercase letters, digits and '-' (`<topology>-<env>`). */
export function isStackName(s: string): boolean {
  return /^[a-z0-9][a-z0-9-]*$/.test(s);
}

/** The stacks with a file in `dir` (`Pulumi.<stack>.yaml`), sorted; none if there is no such folder. */
export function stacksWithFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined && isStackName(s))
    .sort();
}

/** The path of a stack's config file; stack names are `<topology>-<env>`. */
export function stackFilePath(stack: string, dir: string = STACKS_DIR): string {
  if (!isStackName(stack)) {
    throw new Error(`stack must be a name such as ecommerce-dev, but ${JSON.stringify(stack)} was provided.`);
  }
  return join(dir, `Pulumi.${stack}.yaml`);
}

function isSecure(v: unknown): boolean {
  return (
    typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v
  );
}

/**
 * `value` with every nested `secure:` value (`pulumi config set --secret --path`) replaced by an
 * offline placeholder; `found` says whether there was one (the CLI then marks the whole key
 * secret). Each placeholder is listed in `sources` under `label` (the key and path).
 */
function withoutSecure(
  value: unknown,
  label: string,
  sources: StackFile["secretSources"],
): { value: unknown; found: boolean } {
  if (isSecure(value)) {
    const ciphertext = String((value as { secure: unknown }).secure);
    const fingerprint = createHash("sha256").update(ciphertext).digest("hex").slice(0, 12);
    // Named by its ciphertext: set again (a new ciphertext), it is a new value, as the real one
    // may be; another secure value added before it changes nothing.
    const placeholder = `${OFFLINE_SECRET_PLACEHOLDER}-${fingerprint}`;
    sources.push({ value: placeholder, label: `config ${label}`, fingerprint });
    return { value: placeholder, found: true };
  }
  if (Array.isArray(value)) {
    const items = value.map((v, i) => withoutSecure(v, `${label}[${i}]`, sources));
    return { value: items.map((i) => i.value), found: items.some((i) => i.found) };
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(
      ([k, v]) => [k, withoutSecure(v, `${label}.${k}`, sources)] as const,
    );
    return {
      value: Object.fromEntries(entries.map(([k, v]) => [k, v.value])),
      found: entries.some(([, v]) => v.found),
    };
  }
  return { value, found: false };
}

/** Converts the YAML `config:` map to Pulumi's wire form. */
export function toPulumiConfig(yamlConfig: Record<string, unknown>): StackFile {
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  const secretSources: StackFile["secretSources"] = [];
  for (const [key, raw] of Object.entries(yamlConfig)) {
    const { value, found } = withoutSecure(raw, key, secretSources);
    if (found) secretKeys.push(key);
    if (typeof value === "object" && value !== null) {
      config[key] = JSON.stringify(value);
    } else {
      config[key] = String(value);
    }
  }
  return { config, secretKeys, secretSources };
}

/**
 * Parses a stack file as the Pulumi CLI (Go's yaml.v3) does: anchors, aliases and merge keys
 * (`<<: *base`) resolve; a key given twice in one map is an error, not a silent override.
 */
export function parseStackYaml(text: string, file: string): { config?: Record<string, unknown> } | null {
  try {
    return parse(text, { merge: true, uniqueKeys: true, prettyErrors: true }) as {
      config?: Record<string, unknown>;
    } | null;
  } catch (e) {
    throw new Error(
      `${file} is not a valid stack file: ${(e as Error).message.split("\n")[0]}. ` +
        "A key may appear once per map (as in the Pulumi CLI); merge keys (<<: *anchor) are fine.",
    );
  }
}

/**
 * A real, matching, public pair (scripts/offline-tls.ts): offline tools never see the user's
 * certificate or key, and the pair passes the same checks a real one must.
 */
export const OFFLINE_TLS = {
  "ha-backend:tlsCertificate": OFFLINE_TLS_CERTIFICATE,
  "ha-backend:tlsKey": OFFLINE_TLS_KEY,
} as const;

/**
 * Reads a stack file for offline use. A stack with `balancer.tls: provided` keeps its key (and
 * often its certificate) in the user's own encrypted config, not in the repository: when the key
 * cannot be read offline, both are replaced by the stand-in pair, so they still match (listed in
 * `placeholders`).
 */
export function readStackFile(
  stack: string,
  dir: string = STACKS_DIR,
): StackFile & { placeholders: string[] } {
  const path = stackFilePath(stack, dir);
  const doc = parseStackYaml(readFileSync(path, "utf8"), path);
  const file = toPulumiConfig(doc?.config ?? {});
  const balancer = (doc?.config?.["ha-backend:balancer"] ?? {}) as { tls?: string };
  const placeholders: string[] = [];
  const key = "ha-backend:tlsKey";
  const keyUnreadable = !(key in file.config) || file.config[key].startsWith(OFFLINE_SECRET_PLACEHOLDER);
  if (balancer.tls === "provided" && keyUnreadable) {
    for (const [name, value] of Object.entries(OFFLINE_TLS)) {
      file.config[name] = value;
      // The key is secret as the user's is; the stand-in certificate is public, like most are.
      const secret = name === key;
      const at = file.secretKeys.indexOf(name);
      if (secret && at < 0) file.secretKeys.push(name);
      if (!secret && at >= 0) file.secretKeys.splice(at, 1);
      if (secret) {
        const i = file.secretSources.findIndex((x) => x.label === `config ${name}`);
        const source = {
          value,
          label: `config ${name}`,
          // The user's ciphertext, if there is one, still says when the real key changes.
          fingerprint: i >= 0 ? file.secretSources[i].fingerprint : "offline-stand-in",
        };
        if (i >= 0) file.secretSources[i] = source;
        else file.secretSources.push(source);
      }
      placeholders.push(name);
    }
  }
  // A secret webhook URL offline: a URL still (the config checks it is one), under the reserved
  // .invalid domain, named by the placeholder so a new ciphertext is still a new value.
  const hook = "ha-backend:alertWebhookUrl";
  const stored = file.config[hook];
  if (stored !== undefined && stored.startsWith(OFFLINE_SECRET_PLACEHOLDER)) {
    const url = `https://alerts.invalid/${stored}`;
    file.config[hook] = url;
    const i = file.secretSources.findIndex((x) => x.label === `config ${hook}`);
    if (i >= 0) file.secretSources[i] = { ...file.secretSources[i], value: url };
    placeholders.push(hook);
  }
  return { ...file, placeholders };
}
