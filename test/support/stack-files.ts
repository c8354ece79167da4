/**
 * The stacks as the files in stacks/ define them: tests iterate these and read what a stack is
 * (topology, platform, shards) from its file, never from its name, so a new
 * stacks/Pulumi.<name>.yaml is covered as soon as it exists.
 */
import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { decodeConfigValue, parseStackConfig, type StackConfig } from "../../infra/config";
import { readStackFile, STACKS_DIR, stackFilePath } from "../../scripts/stack-file";

/** Every stack with a file in stacks/, sorted. */
export function stackNames(dir: string = STACKS_DIR): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** What the tests need to know about a stack, read from its file (defaults as infra/config.ts has them). */
export interface StackFacts {
  readonly topology: "ecommerce" | "blog";
  readonly platform: "docker" | "kubernetes";
  /** E-commerce orders shards (`database.shards`). */
  readonly shards: number;
}

export function stackFacts(stack: string, dir: string = STACKS_DIR): StackFacts {
  const doc = parse(readFileSync(stackFilePath(stack, dir), "utf8")) as {
    config: Record<string, unknown>;
  };
  const c = doc.config;
  const db = (c["ha-backend:database"] ?? {}) as { shards?: number };
  return {
    topology: c["ha-backend:topology"] as StackFacts["topology"],
    platform: c["ha-backend:platform"] as StackFacts["platform"],
    shards: db.shards ?? 1,
  };
}

/** A stack file's config exactly as the program reads and validates it (defaults filled in). */
export function stackConfig(stack: string, dir: string = STACKS_DIR): StackConfig {
  const file = readStackFile(stack, dir);
  const short = (k: string) => k.slice("ha-backend:".length);
  const raw = Object.fromEntries(
    Object.entries(file.config)
      .filter(([k]) => k.startsWith("ha-backend:"))
      .map(([k, v]) => [short(k), file.secretKeys.includes(k) ? v : decodeConfigValue(v)]),
  );
  return parseStackConfig(raw, stack, file.secretKeys.map(short));
}
