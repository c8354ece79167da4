import * as pulumi from "@pulumi/pulumi";
import { checkResources, invalidArg } from "../errors";
import type { Platform, ResourceSpec } from "../platform/types";
import {
  EXPORTER_PORT_NAMES,
  exportersOn,
  memcachedExporterSidecar,
  scrapeJob,
  type MetricsArgs,
} from "../monitoring/exporters";
import type { ScrapeJob } from "../monitoring/render/plan";
import { memcachedFootprintMb, renderMemcachedArgs, type MemcachedRenderSpec } from "./render/memcached";
import { componentToken, physicalName, type NamingArgs } from "../resource";

/** The official image, pinned: memcached 1.6.18, what the live tests run (Debian 12's). */
export const MEMCACHED_IMAGE = "memcached:1.6.18-alpine";
/** The image's unprivileged `memcache` user. */
const MEMCACHED_UID = 11211;
const PORT = 11211;

export interface MemcachedArgs extends NamingArgs {
  readonly platform: Platform;
  /** Metrics: memcached_exporter beside every member, open to the platform's scraper. @default on */
  readonly metrics?: MetricsArgs;
  /** Independent nodes; clients spread keys over them by hashing. @default 3 */
  readonly members?: number;
  /** Item memory per node in MiB. @default 64 */
  readonly memoryMb?: number;
  /** Connections per node. @default 1024 */
  readonly maxConnections?: number;
  /** Worker threads per node. @default 4 */
  readonly threads?: number;
  readonly resources?: ResourceSpec;
  /** Tiers that may connect. @default ["app"] */
  readonly allowFrom?: string[];
}

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("Memcached", name, field, rule, value, fix);
}

const whole = (n: unknown, min: number, max: number) =>
  Number.isInteger(n) && (n as number) >= min && (n as number) <= max;

/** Defaults and rules, before any child exists (pure). */
export function resolveMemcachedArgs(
  name: string,
  args: MemcachedArgs,
): Required<Pick<MemcachedArgs, "members">> &
  Pick<MemcachedArgs, "resources"> &
  Omit<MemcachedRenderSpec, "port" | "listen"> {
  const members = args.members ?? 3;
  if (!whole(members, 1, 32)) fail(name, "members", "be a whole number from 1 to 32", members, "Use 3.");
  const memoryMb = args.memoryMb ?? 64;
  if (!whole(memoryMb, 16, 65_536))
    fail(name, "memoryMb", "be whole MiB from 16 to 65536", memoryMb, "Use 64.");
  const maxConnections = args.maxConnections ?? 1024;
  if (!whole(maxConnections, 64, 65_536))
    fail(name, "maxConnections", "be from 64 to 65536", maxConnections, "Use 1024.");
  const threads = args.threads ?? 4;
  if (!whole(threads, 1, 64)) fail(name, "threads", "be from 1 to 64", threads, "Use 4.");
  // memcached keeps about five descriptors per thread of its connection budget (measured: it
  // refuses to start with fewer).
  if (maxConnections < 5 * threads + 8) {
    fail(
      name,
      "maxConnections",
      `be at least ${5 * threads + 8} with ${threads} threads (memcached refuses to start with fewer)`,
      maxConnections,
      `Raise it, or lower threads.`,
    );
  }
  const resources = checkResources("Memcached", name, args.resources, {
    minMemoryMb: memcachedFootprintMb({ memoryMb, maxConnections }),
    needs: `memoryMb ${memoryMb} of items plus tables, buffers and per-connection state`,
  });
  return { members, memoryMb, maxConnections, threads, resources };
}

/**
 * A pool of independent memcached nodes with stable names: clients hash each key to one node
 * (consistent hashing), so losing a node loses only its share of the cache.
 */
export class Memcached extends pulumi.ComponentResource {
  /** `host:11211` of every node, in order: the list clients hash over. */
  public readonly servers: pulumi.Output<string[]>;
  /** The scrape job of its exporters (none with `metrics.exporters: false`). */
  public readonly metricsJobs: readonly ScrapeJob[];

  constructor(name: string, args: MemcachedArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("cache", "Memcached", opts);
    super(token, name, {}, options);
    name = physicalName("Memcached", name, args);
    const r = resolveMemcachedArgs(name, args);
    const workload = `${name}-memcached`;
    const metrics = exportersOn(args);
    const deployed = args.platform.deploy(
      workload,
      {
        // Stateful for stable names (the hash ring is a list of them); no volume: it is a cache.
        kind: "stateful",
        replicas: r.members,
        image: MEMCACHED_IMAGE,
        command: ["memcached", ...renderMemcachedArgs({ ...r, port: PORT })],
        ports: { memcached: PORT },
        healthCheck: { tcpPort: "memcached", intervalSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 },
        resources: r.resources,
        tier: workload,
        allowFrom: args.allowFrom ?? ["app"],
        runAsUser: MEMCACHED_UID,
        writablePaths: [],
        defaultResources: { cpu: "100m", memory: `${memcachedFootprintMb(r)}Mi` },
        ...(metrics
          ? {
              sidecars: [memcachedExporterSidecar(PORT)],
              metricsPorts: [{ port: EXPORTER_PORT_NAMES.memcached }],
            }
          : {}),
      },
      { parent: this },
    );
    this.metricsJobs = metrics
      ? [scrapeJob(name, "memcached", deployed, EXPORTER_PORT_NAMES.memcached, r.members)]
      : [];
    this.servers = pulumi.output(deployed.members.map((m) => `${m.host}:${PORT}`));
    this.registerOutputs({ servers: this.servers });
  }

  /** The app's environment: the server list (no credentials: memcached has none; the network is the fence). */
  appEnv(prefix = "MEMCACHED_"): Record<string, pulumi.Input<string>> {
    return { [`${prefix}SERVERS`]: this.servers.apply((s) => s.join(",")) };
  }
}
