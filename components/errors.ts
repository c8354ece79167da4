import { isCpuQuantity, isMemoryQuantity } from "./platform/quantity";
import type { ResourceSpec } from "./platform/types";

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
  throw new Error(
    `${kind} "${name}": ${field} must ${rule}, but ${value === undefined ? "nothing" : JSON.stringify(value)} was provided. ${fix}`,
  );
}

/** CPU and memory as Kubernetes quantities, each reported on its own field. */
export function checkResources(kind: string, name: string, resources: ResourceSpec | undefined): void {
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
}
