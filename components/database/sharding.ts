import * as pulumi from "@pulumi/pulumi";
import { MysqlCluster, resolveMysqlClusterArgs, type MysqlClusterArgs } from "./mysql-cluster";
import { PostgresCluster, resolvePostgresClusterArgs, type PostgresClusterArgs } from "./postgres-cluster";
import { componentToken, dataProtection, physicalName } from "../resource";
import { invalidArg } from "../errors";

/**
 * Sharding (分库分表): N independent clusters and the map apps use to route a key. The routing
 * is Lamping & Veach's jump consistent hash over a 64-bit FNV-1a hash of the key: it needs no
 * ring or table, spreads keys evenly, and growing from N to N+1 shards moves only the keys that
 * land on the new shard (about 1/(N+1) of them). Apps import `shardFor` so they route exactly as
 * the map says.
 */
export const SHARD_SCHEME = "jump-consistent-hash(fnv1a-64(utf8(key)))";
export const MAX_SHARDS = 64;

const MASK64 = (1n << 64n) - 1n;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

/** 64-bit FNV-1a over the key's UTF-8 bytes. */
export function fnv1a64(key: string): bigint {
  let h = FNV_OFFSET;
  for (const byte of Buffer.from(key, "utf8")) {
    h ^= BigInt(byte);
    h = (h * FNV_PRIME) & MASK64;
  }
  return h;
}

/** Jump consistent hash: the bucket in [0, buckets) for a 64-bit key (Lamping & Veach, 2014). */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1)
    throw new Error(`jumpHash: buckets must be at least 1, got ${buckets}`);
  let k = key & MASK64;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & MASK64;
    j = Math.floor((b + 1) * (2 ** 31 / Number((k >> 33n) + 1n)));
  }
  return b;
}

/** The shard a key belongs to, among `shards` shards. */
export function shardFor(key: string, shards: number): number {
  return jumpHash(fnv1a64(key), shards);
}

/** One shard's endpoints (no credentials: those go to apps as secrets). */
export interface ShardEndpoint {
  readonly id: number;
  readonly rw: string;
  readonly ro: string;
}

/** What apps route by: which scheme, how many shards, where each is. */
export interface ShardMap {
  /** Bumped when the scheme or the shard count changes. */
  readonly version: number;
  readonly scheme: string;
  readonly shards: ShardEndpoint[];
}

export interface ShardedMysqlArgs extends MysqlClusterArgs {
  /** Number of independent clusters (1–64). */
  readonly shards: number;
}

export interface ShardedPostgresArgs extends PostgresClusterArgs {
  /** Number of independent clusters (1–64). */
  readonly shards: number;
}

/** Rejects shard counts out of range, before any child exists. */
export function validateShards(name: string, shards: number, kind = "ShardedMysql"): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    invalidArg(
      kind,
      name,
      "shards",
      `be a whole number from 1 to ${MAX_SHARDS}`,
      shards,
      "Use e.g. 2; more shards than that means re-sharding data, plan it.",
    );
  }
}

/** N `MysqlCluster`s named `<name>-<i>` and the shard map that routes keys to them. */
export class ShardedMysql extends pulumi.ComponentResource {
  public readonly shards: MysqlCluster[];
  public readonly shardMap: pulumi.Output<ShardMap>;

  constructor(name: string, args: ShardedMysqlArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("database", "ShardedMysql", opts);
    super(token, name, {}, options);
    name = physicalName("ShardedMysql", name, args);
    validateShards(name, args.shards);
    // Each shard is named after this component's physical name; none takes an override of its own.
    const { shards, ...shared } = args;
    // The shards keep the data: they protect it as this component would.
    const clusterArgs = { ...shared, nameOverride: undefined, protect: dataProtection(args, opts) };
    // Every shard shares the args: check them once, before the first shard exists.
    resolveMysqlClusterArgs(`${name}-0`, clusterArgs);
    this.shards = Array.from(
      { length: shards },
      (_, i) => new MysqlCluster(`${name}-${i}`, clusterArgs, { parent: this }),
    );
    this.shardMap = shardMapOf(this.shards);
    this.registerOutputs({ shardMap: this.shardMap });
  }
}

/** The map apps route by, from the shards' endpoints in shard order. */
function shardMapOf(
  shards: readonly { rwEndpoint: pulumi.Output<string>; roEndpoint: pulumi.Output<string> }[],
): pulumi.Output<ShardMap> {
  return pulumi.all(shards.map((s) => pulumi.all([s.rwEndpoint, s.roEndpoint]))).apply((eps) => ({
    version: shards.length,
    scheme: SHARD_SCHEME,
    shards: eps.map(([rw, ro], id) => ({ id, rw, ro })),
  }));
}

/** N `PostgresCluster`s named `<name>-<i>` and the shard map that routes keys to them. */
export class ShardedPostgres extends pulumi.ComponentResource {
  public readonly shards: PostgresCluster[];
  public readonly shardMap: pulumi.Output<ShardMap>;

  constructor(name: string, args: ShardedPostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("database", "ShardedPostgres", opts);
    super(token, name, {}, options);
    name = physicalName("ShardedPostgres", name, args);
    validateShards(name, args.shards, "ShardedPostgres");
    // Each shard is named after this component's physical name; none takes an override of its own.
    const { shards, ...shared } = args;
    // The shards keep the data: they protect it as this component would.
    const clusterArgs = { ...shared, nameOverride: undefined, protect: dataProtection(args, opts) };
    resolvePostgresClusterArgs(`${name}-0`, clusterArgs);
    this.shards = Array.from(
      { length: shards },
      (_, i) => new PostgresCluster(`${name}-${i}`, clusterArgs, { parent: this }),
    );
    this.shardMap = shardMapOf(this.shards);
    this.registerOutputs({ shardMap: this.shardMap });
  }
}
