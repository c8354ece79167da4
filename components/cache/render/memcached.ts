import * as g from "../../render-guard";

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
  // Arguments, not a file, but a container command line too: a value starting with "-" would be
  // read as another option, and a listen list splits at ",".
  const r = "renderMemcachedArgs";
  g.port(r, "port", s.port);
  // memcached refuses less than 2 MiB: an item may take 1 MiB, at most half the memory.
  g.wholeNumber(r, "memoryMb", s.memoryMb, 2, 1_048_576);
  g.wholeNumber(r, "maxConnections", s.maxConnections, 1, 1_000_000);
  g.wholeNumber(r, "threads", s.threads, 1, 256);
  if (s.maxConnections < minConnections(s.threads)) {
    throw new g.RenderInputError(
      r,
      "maxConnections",
      `be at least 5 × threads + 8 (${minConnections(s.threads)} for ${s.threads} threads): memcached takes its threads' descriptors out of -c and refuses to start otherwise`,
      s.maxConnections,
    );
  }
  if (s.listen !== undefined) g.ipAddress(r, "listen", s.listen);
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

/**
 * The fewest connections (`-c`) memcached 1.6 starts with for `threads` workers: it sizes its file
 * descriptor limit from -c and each worker takes about five of them (measured with Debian's
 * 1.6.18: 12 for 1 thread, 43 for 8, 323 for 64; below, "Too many open files" and exit).
 */
export function minConnections(threads: number): number {
  return 5 * threads + 8;
}

/** Rough process memory for `memoryMb` of items: tables, buffers and per-connection state. */
export function memcachedFootprintMb(s: Pick<MemcachedRenderSpec, "memoryMb" | "maxConnections">): number {
  return Math.ceil(s.memoryMb * 1.1 + 16 + s.maxConnections / 64);
}
