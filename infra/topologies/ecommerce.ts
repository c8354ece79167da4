import * as pulumi from "@pulumi/pulumi";
import { MysqlCluster } from "../../components/database/mysql-cluster";
import { ShardedMysql } from "../../components/database/sharding";
import { databaseArgs, databaseEnv, webTier, type TopologyContext, type TopologyOutputs } from "./web-tier";

/**
 * The e-commerce site: the shop's app servers behind Nginx (by default), a catalog database, and
 * the orders split across `database.shards` clusters. Later: Redis for sessions and carts, locks
 * for stock reservations.
 */
export function ecommerce(ctx: TopologyContext): TopologyOutputs {
  const catalog = new MysqlCluster("catalog", databaseArgs(ctx, "catalog", "shop"));
  const orders = new ShardedMysql("orders", {
    ...databaseArgs(ctx, "orders", "shop"),
    shards: ctx.config.database.shards,
  });
  const shardSecrets = Object.assign(
    {},
    ...orders.shards.map((s, i) => databaseEnv(`ORDERS_SHARD_${i}_`, s)),
  );
  const web = webTier(
    ctx,
    "shop",
    // The map holds endpoints only; each shard's credentials come as secrets.
    { APP_TOPOLOGY: "ecommerce", ORDERS_SHARD_MAP: orders.shardMap.apply((m) => JSON.stringify(m)) },
    { ...databaseEnv("DATABASE_", catalog), ...shardSecrets },
  );
  return {
    ...web,
    catalogRwEndpoint: catalog.rwEndpoint,
    catalogRoEndpoint: catalog.roEndpoint,
    ordersShardMap: orders.shardMap,
    databaseUrl: pulumi.secret(catalog.connectionUrl),
  };
}
