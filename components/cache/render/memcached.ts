/**
 * memcached's command line (it has no config file). Plain data in, arguments out. Checked with
 * Debian's memcached 1.6 (live tests).
 */
export interface MemcachedRenderSpec {
  readonly port: number;
  /** Item memory in MiB (`-m`); the process uses somewhat more for connections and tables. */
  readonly memoryMb: number;
  /** Simultaneous connections (`-c`). */
  readonly maxConnections: number;
  /** Worker threads (`-t`). */
  readonly threads: number;
  /** Address to listen on. @default all */
  readonly listen?: string;
}

export function renderMemcachedArgs(s: MemcachedRenderSpec): string[] {
  return [
    "-p",
    String(s.port),
    // No UDP: memcached over UDP is a well-known amplification vector, and clients use TCP.
    "-U",
    "0",
    "-m",
    String(s.memoryMb),
    "-c",
    String(s.maxConnections),
    "-t",
    String(s.threads),
    ...(s.listen ? ["-l", s.listen] : []),
    // A full cache evicts its least recently used items (memcached's default; -M would refuse).
  ];
}

/** Rough process memory for `memoryMb` of items: tables, buffers and per-connection state. */
export function memcachedFootprintMb(s: Pick<MemcachedRenderSpec, "memoryMb" | "maxConnections">): number {
  return Math.ceil(s.memoryMb * 1.1 + 16 + s.maxConnections / 64);
}
