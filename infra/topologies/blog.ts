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
 * The blog: its app servers behind HAProxy (by default) and one replicated database (MariaDB
 * Galera by default, or PostgreSQL), and a page cache.
 */
export function blog(ctx: TopologyContext): TopologyOutputs {
  const dbs = databases(ctx, "blog", "blog", "blog");
  const [db] = dbs.clusters;
  // A page and object cache (memcached by default); locks only if the stack turns them on.
  const cache = cacheService(ctx, "pages");
  const locks = lockService(ctx, "locks");
  const web = webTier(
    ctx,
    "blog",
    { APP_TOPOLOGY: "blog", ...cache.env, ...locks.env },
    { ...databaseCredentials("DATABASE_", db), ...cache.credentials, ...locks.credentials },
  );
  return {
    ...web,
    databaseRwEndpoint: db.rwEndpoint,
    databaseRoEndpoint: db.roEndpoint,
    databaseUrl: pulumi.secret(db.connectionUrl),
    ...databaseOutputs(ctx, [dbs]),
    ...cache.outputs,
    ...locks.outputs,
  };
}
