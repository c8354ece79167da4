/**
 * Kubernetes resource quantities, converted for Docker (which wants megabytes and CPU counts).
 * Only the suffixes people write for containers are accepted; anything else is an error, not a guess.
 */
const MEMORY_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
};

const MEMORY = /^([0-9]+(?:\.[0-9]+)?)(k|M|G|Ki|Mi|Gi)?$/;
const CPU = /^([0-9]+(?:\.[0-9]+)?)(m)?$/;

/** True when `q` is a memory quantity this project understands (`256Mi`, `1Gi`, `500M`). */
export function isMemoryQuantity(q: string): boolean {
  return MEMORY.test(q) && memoryBytes(q) > 0;
}

/** True when `q` is a CPU quantity (`250m`, `0.5`, `2`). */
export function isCpuQuantity(q: string): boolean {
  return CPU.test(q) && cpuCores(q) > 0;
}

export function memoryBytes(q: string): number {
  const m = MEMORY.exec(q);
  if (m === null) throw new Error(`"${q}" is not a memory quantity such as 256Mi or 1Gi`);
  return Math.round(Number(m[1]) * MEMORY_UNITS[m[2] ?? ""]);
}

export function cpuCores(q: string): number {
  const m = CPU.exec(q);
  if (m === null) throw new Error(`"${q}" is not a CPU quantity such as 250m or 0.5`);
  return m[2] === "m" ? Number(m[1]) / 1000 : Number(m[1]);
}

/** Docker's `memory` is in MiB-sized megabytes (the provider multiplies by 1024²); round up. */
export function dockerMemoryMb(q: string): number {
  return Math.ceil(memoryBytes(q) / 1024 ** 2);
}
