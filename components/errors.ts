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

/** The one wording of an invalid argument: key, rule, the value as shown, the fix. */
function argMessage(
  kind: string,
  name: string,
  field: string,
  rule: string,
  shown: string,
  fix: string,
): string {
  return `${kind} "${name}": ${field} must ${rule}, but ${shown} was provided. ${fix}`;
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
    argMessage(kind, name, field, rule, value === undefined ? "nothing" : JSON.stringify(value), fix),
    kind,
    name,
    field,
    rule,
    value,
    fix,
  );
}

/**
 * Checks a value that is only passed through to resources, with `check` (which throws the
 * component's own error): a plain string now, before any resource exists; an Output or Promise
 * (another stack's output, a CI build's tag) once it resolves, with the same message, so the
 * update fails at preview (a known value) or up. Returns what to pass on: the plain value itself,
 * or an Output that carries the check, so the failure is that of the resources that use it. A
 * caller that drops the result still fails the program (Pulumi's Node runtime fails on an
 * unhandled rejection), only not at a resource.
 */
export function checkInput(value: pulumi.Input<string>, check: (v: string) => void): pulumi.Input<string> {
  if (typeof value === "string") {
    check(value);
    return value;
  }
  const out = pulumi.output(value);
  return out.apply(async (v) => {
    try {
      // An Output may resolve to nothing (another stack's missing output): the check says so.
      check(v);
    } catch (e) {
      // A secret's value never reaches a message.
      if (e instanceof InvalidArgumentError && (await pulumi.isSecret(out))) {
        throw new InvalidArgumentError(
          argMessage(e.kind, e.resourceName, e.field, e.rule, "a secret value (not shown)", e.fix),
          e.kind,
          e.resourceName,
          e.field,
          e.rule,
          undefined,
          e.fix,
        );
      }
      throw e;
    }
    return v;
  });
}

/** Upper bounds no single member of this project needs: beyond them a quantity is a typo (Gi for Mi). */
export const MAX_CPU_CORES = 64;
export const MAX_MEMORY_MB = 512 * 1024;
/** Below 10m the kubelet's CPU shares round to the minimum and Docker refuses `--cpus`. */
export const MIN_CPU_CORES = 0.01;

/**
 * CPU and memory as Kubernetes quantities, each reported on its own field, within sane bounds:
 * at least `minMemoryMb` (what the daemon needs to start and hold its data, said in `needs`).
 * Each field is checked as {@link checkInput} does (a plain string now, an Output when it
 * resolves); returns the spec to pass on, `resources` itself when both are plain.
 */
export function checkResources(
  kind: string,
  name: string,
  resources: ResourceSpec | undefined,
  floor: { readonly minMemoryMb: number; readonly needs: string } = {
    minMemoryMb: 16,
    needs: "a process needs to start",
  },
): ResourceSpec | undefined {
  if (resources === undefined) return undefined;
  const cpu = checkInput(resources.cpu, (q) => {
    if (!isCpuQuantity(q)) {
      invalidArg(kind, name, "resources.cpu", "be a CPU quantity such as 250m or 1", q, "Fix the quantity.");
    }
    const cores = cpuCores(q);
    if (cores < MIN_CPU_CORES || cores > MAX_CPU_CORES) {
      invalidArg(
        kind,
        name,
        "resources.cpu",
        `be from 10m to ${MAX_CPU_CORES} cores`,
        q,
        "Use e.g. 250m or 2.",
      );
    }
  });
  const memory = checkInput(resources.memory, (q) => {
    if (!isMemoryQuantity(q)) {
      invalidArg(
        kind,
        name,
        "resources.memory",
        "be a memory quantity such as 256Mi or 1Gi",
        q,
        "Fix the quantity.",
      );
    }
    const mb = memoryBytes(q) / 1024 ** 2;
    if (mb > MAX_MEMORY_MB) {
      invalidArg(kind, name, "resources.memory", "be at most 512Gi", q, "Check the unit (Mi, Gi).");
    }
    if (mb < floor.minMemoryMb) {
      invalidArg(
        kind,
        name,
        "resources.memory",
        `be at least ${floor.minMemoryMb}Mi (${floor.needs})`,
        q,
        `Raise it to ${floor.minMemoryMb}Mi or more.`,
      );
    }
  });
  return cpu === resources.cpu && memory === resources.memory ? resources : { cpu, memory };
}
