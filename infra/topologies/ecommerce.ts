import * as pulumi from "@pulumi/pulumi";
import {
  databaseCredentials,
  databaseOutputs,
  databases,
  webTier,
  type TopologyContext,
  type TopologyOutputs,
} from "./web-tier";
import { cacheService, lockService } from "./services";

/**
 * The e-commerce site: the shop's app servers behind Nginx (by default), a catalog database, and
 * the orders split across `database.shards` clusters (MySQL family or PostgreSQL, as configured).
 * A cache (Redis with Sentinel by default) and a lock service.
 */
export function ecommerce(ctx: TopologyContext): TopologyOutputs {
  const catalogDbs = databases(ctx, "catalog", "catalog", "shop");
  const [catalog] = catalogDbs.clusters;
  const orders = databases(ctx, "orders", "orders", "shop", ctx.config.database.shards);
  const shardSecrets = Object.assign(
    {},
    ...orders.clusters.map((s, i) => databaseCredentials(`ORDERS_SHARD_${i}_`, s)),
  );
  // Sessions, carts and hot catalog data; locks for stock reservations.
  const cache = cacheService(ctx, "cache");
  const locks = lockService(ctx, "locks");
  const web = webTier(
    ctx,
    "shop",
    // The map holds endpoints only; each shard's credentials come as files.
    {
      APP_TOPOLOGY: "ecommerce",
      ORDERS_SHARD_MAP: orders.shardMap!.apply((m) => JSON.stringify(m)),
      ...cache.env,
      ...locks.env,
    },
    {
      ...databaseCredentials("DATABASE_", catalog),
      ...shardSecrets,
      ...cache.credentials,
      ...locks.credentials,
    },
  );
  return {
    ...web,
    catalogRwEndpoint: catalog.rwEndpoint,
    catalogRoEndpoint: catalog.roEndpoint,
    ordersShardMap: orders.shardMap!,
    databaseUrl: pulumi.secret(catalog.connectionUrl),
    ...databaseOutputs(ctx, [catalogDbs, orders]),
    ...cache.outputs,
    ...locks.outputs,
  };
}
