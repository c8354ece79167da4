/**
 * The components each topology declares, by name: the topology functions create them under these
 * names, and the preflight checks their args under the same names before anything exists.
 */
export interface TopologyParts {
  /** The app servers; `<app>-standby` for backups and `<app>-lb` for the balancer. */
  readonly app: string;
  /** Database clusters; a sharded one is `<name>-<i>` per shard (database.shards). */
  readonly databases: readonly {
    readonly name: string;
    readonly database: string;
    readonly user: string;
    readonly sharded: boolean;
  }[];
  readonly cache: string;
  readonly locks: string;
}

export const TOPOLOGY_PARTS: Record<"ecommerce" | "blog", TopologyParts> = {
  ecommerce: {
    app: "shop",
    databases: [
      { name: "catalog", database: "catalog", user: "shop", sharded: false },
      { name: "orders", database: "orders", user: "shop", sharded: true },
    ],
    cache: "cache",
    locks: "locks",
  },
  blog: {
    app: "blog",
    databases: [{ name: "blog", database: "blog", user: "blog", sharded: false }],
    cache: "pages",
    locks: "locks",
  },
};
