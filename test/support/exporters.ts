/**
 * Debian's Prometheus exporters for live tests, started with the generated command lines
 * (components/monitoring/render/exporters.ts): the secret files they read (mode 0600, as a
 * mounted secret), node_exporter over data directories bind-mounted read-only in a private mount
 * namespace.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ExporterCommand } from "../../components/monitoring/render/exporters";
import { binary, type ProcessGroup } from "./daemons";

/** Writes a file only its owner may read: what a platform's secret mount gives the exporter. */
export function secretFile(path: string, content: string): string {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600); // `mode` applies only when the file is created
  return path;
}

/** Starts a Debian exporter (`prometheus-<name>`) with a rendered command line and environment. */
export function startExporter(procs: ProcessGroup, name: string, e: ExporterCommand): ChildProcess {
  const env = Object.entries(e.env).map(([k, v]) => `${k}=${v}`);
  return procs.start("env", [...env, binary(`prometheus-${name}`), ...e.args]);
}

/**
 * node_exporter (`renderVolumeExporter`) seeing each data directory mounted read-only at
 * `<rootfs>/volumes/<name>`, as a Docker volume is mounted into its container. The mounts live in
 * a private mount namespace (`unshare -m`: private propagation, the machine's mounts untouched)
 * with a PID namespace and its own /proc: node_exporter lists mounts from /proc/1/mounts, and
 * there PID 1 is itself, inside the namespace that holds them. unshare --fork keeps the child in
 * the process group, so stopping the group stops node_exporter.
 */
export function startVolumeExporter(
  procs: ProcessGroup,
  rootfs: string,
  volumes: Readonly<Record<string, string>>,
  e: ExporterCommand,
): ChildProcess {
  const pairs: string[] = [];
  for (const [name, source] of Object.entries(volumes)) {
    const target = join(rootfs, "volumes", name);
    mkdirSync(target, { recursive: true });
    pairs.push(source, target);
  }
  // Pairs of paths, then `--`, then the command: every path is an argument, never shell text.
  const script = [
    'while [ "$1" != -- ]; do',
    '  mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" || exit 1',
    "  shift 2",
    "done",
    "shift",
    'exec "$@"',
  ].join("\n");
  return procs.start("unshare", [
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "sh",
    "-c",
    script,
    "sh",
    ...pairs,
    "--",
    binary("prometheus-node-exporter"),
    ...e.args,
  ]);
}
