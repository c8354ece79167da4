/**
 * Reads `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to a program: every value a
 * string, structured values as JSON text, `secure:` values marked secret. Offline tools (synth,
 * tests) cannot decrypt secure values: they get a placeholder that stays marked secret.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

export const STACKS_DIR = join(__dirname, "..", "stacks");
/** Stands in for a `secure:` value offline; never printed, since the key stays secret. */
export const OFFLINE_SECRET_PLACEHOLDER = "offline-placeholder-secret";

export interface StackFile {
  readonly config: Record<string, string>;
  readonly secretKeys: string[];
}

/** The path of a stack's config file; stack names are `<topology>-<env>`. */
export function stackFilePath(stack: string, dir: string = STACKS_DIR): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(stack)) {
    throw new Error(`stack must be a name such as ecommerce-dev, but ${JSON.stringify(stack)} was provided.`);
  }
  return join(dir, `Pulumi.${stack}.yaml`);
}

function isSecure(v: unknown): boolean {
  return (
    typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v
  );
}

/** Converts the YAML `config:` map to Pulumi's wire form. */
export function toPulumiConfig(yamlConfig: Record<string, unknown>): StackFile {
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(yamlConfig)) {
    if (isSecure(value)) {
      config[key] = OFFLINE_SECRET_PLACEHOLDER;
      secretKeys.push(key);
    } else if (typeof value === "object" && value !== null) {
      config[key] = JSON.stringify(value);
    } else {
      config[key] = String(value);
    }
  }
  return { config, secretKeys };
}

/** PEM-shaped stand-ins: offline tools never see the user's certificate or key. */
export const OFFLINE_TLS = {
  "ha-backend:tlsCertificate":
    "-----BEGIN CERTIFICATE-----\noffline placeholder\n-----END CERTIFICATE-----\n",
  "ha-backend:tlsKey": "-----BEGIN PRIVATE KEY-----\noffline placeholder\n-----END PRIVATE KEY-----\n",
} as const;

/**
 * Reads a stack file for offline use. A stack with `balancer.tls: provided` keeps its certificate
 * and key in the user's own encrypted config, not in the repository: offline they are replaced by
 * secret placeholders (listed in `placeholders`).
 */
export function readStackFile(
  stack: string,
  dir: string = STACKS_DIR,
): StackFile & { placeholders: string[] } {
  const doc = parse(readFileSync(stackFilePath(stack, dir), "utf8")) as {
    config?: Record<string, unknown>;
  } | null;
  const file = toPulumiConfig(doc?.config ?? {});
  const balancer = (doc?.config?.["ha-backend:balancer"] ?? {}) as { tls?: string };
  const placeholders: string[] = [];
  if (balancer.tls === "provided") {
    for (const [key, value] of Object.entries(OFFLINE_TLS)) {
      if (!(key in file.config)) {
        file.config[key] = value;
        file.secretKeys.push(key);
        placeholders.push(key);
      }
    }
  }
  return { ...file, placeholders };
}
