import * as pulumi from "@pulumi/pulumi";
import { cpuCores, isCpuQuantity, isMemoryQuantity, memoryBytes } from "./platform/quantity";
import type { ResourceSpec } from "./platform/types";

/**
 * Bad component args. A `RunError`, so `pulumi up` prints the sentence without a stack trace;
 * `kind`, `name` and `field` let a caller (the program) say which stack key the field came from.
 */
export class InvalidArgumentError extends pulumi.RunError {
  constructor(
    message: string,
    public readonly kind: string,
    public readonly resourceName: string,
    public readonly field: string,
    /** The rule, the value given and the fix, as in the message (for callers that re-word it). */
    public readonly rule: string = "",
    public readonly value: unknown = undefined,
    public readonly fix: string = "",
  ) {
    super(message);
    this.name = "InvalidArgumentError";
  }
}

/**
 * The project's error sentence for bad component args, thrown before any child resource exists:
 * `<Kind> "<name>": <field> must <rule>, but <value> was provided. <how to fix>`.
 */
export function invalidArg(
  kind: string,
  name: string,
  field: string,
  rule: string,
  value: unknown,
  fix: string,
): never {
  throw new InvalidArgumentError(
    `${kind} "${name}": ${field} must ${rule}, but ${value === undefined ? "nothing" : JSON.stringify(value)} was provided. ${fix}`,
    kind,
    name,
    field,
    rule,
    value,
    fix,
  );
}

/** Upper bounds no single member of this project needs: beyond them a quantity is a typo (Gi for Mi). */
export const MAX_CPU_CORES = 64;
export const MAX_MEMORY_MB = 512 * 1024;
/** Below 10m the kubelet's CPU shares round to the minimum and Docker refuses `--cpus`. */
export const MIN_CPU_CORES = 0.01;

/**
 * CPU and memory as Kubernetes quantities, each reported on its own field, within sane bounds:
 * at least `minMemoryMb` (what the daemon needs to start and hold its data, said in `needs`).
 */
export function checkResources(
  kind: string,
  name: string,
  resources: ResourceSpec | undefined,
  floor: { readonly minMemoryMb: number; readonly needs: string } = {
    minMemoryMb: 16,
    needs: "a process needs to start",
  },
): void {
  if (resources === undefined) return;
  if (!isCpuQuantity(resources.cpu)) {
    invalidArg(
      kind,
      name,
      "resources.cpu",
      "be a CPU quantity such as 250m or 1",
      resources.cpu,
      "Fix the quantity.",
    );
  }
  const cores = cpuCores(resources.cpu);
  if (cores < MIN_CPU_CORES || cores > MAX_CPU_CORES) {
    invalidArg(
      kind,
      name,
      "resources.cpu",
      `be from 10m to ${MAX_CPU_CORES} cores`,
      resources.cpu,
      "Use e.g. 250m or 2.",
    );
  }
  if (!isMemoryQuantity(resources.memory)) {
    invalidArg(
      kind,
      name,
      "resources.memory",
      "be a memory quantity such as 256Mi or 1Gi",
      resources.memory,
      "Fix the quantity.",
    );
  }
  const mb = memoryBytes(resources.memory) / 1024 ** 2;
  if (mb > MAX_MEMORY_MB) {
    invalidArg(
      kind,
      name,
      "resources.memory",
      "be at most 512Gi",
      resources.memory,
      "Check the unit (Mi, Gi).",
    );
  }
  if (mb < floor.minMemoryMb) {
    invalidArg(
      kind,
      name,
      "resources.memory",
      `be at least ${floor.minMemoryMb}Mi (${floor.needs})`,
      resources.memory,
      `Raise it to ${floor.minMemoryMb}Mi or more.`,
    );
  }
}
