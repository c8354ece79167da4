/**
 * Stand-in command-line tools for testing the shell scripts: a PATH holding small `sh` scripts
 * that record how they were called, plus the basic tools the scripts need, so that a pulumi,
 * docker or sudo installed on the machine is never found.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./daemons";

/** What a script under test finds on PATH besides the stand-ins. */
const BASICS = [
  "bash",
  "sh",
  "grep",
  "sed",
  "ls",
  "tr",
  "mkdir",
  "dirname",
  "cat",
  "date",
  "env",
  "npm",
  "node",
];

export interface StandIns {
  /** The directory to use as PATH. */
  readonly path: string;
  /** Where the stand-ins append one line per call. */
  readonly log: string;
  /** The recorded calls, in order. */
  calls(): string[];
}

/**
 * A PATH with a stand-in for each entry of `tools` (its `sh` body, which may append to `$LOG`),
 * and the real `basics` not overridden.
 */
export function standIns(tools: Record<string, string>, basics: readonly string[] = BASICS): StandIns {
  const bin = tempDir("stand-ins");
  const log = join(bin, "calls.log");
  const write = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\nLOG=${log}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  for (const [name, body] of Object.entries(tools)) write(name, body);
  for (const tool of basics) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found !== "" && !existsSync(join(bin, tool))) write(tool, `exec ${found} "$@"`);
  }
  return {
    path: bin,
    log,
    calls: () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : []),
  };
}
