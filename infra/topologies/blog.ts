import * as pulumi from "@pulumi/pulumi";
import {
  databaseEnv,
  databaseOutputs,
  databases,
  webTier,
  type TopologyContext,
  type TopologyOutputs,
} from "./web-tier";

/**
 * The blog: its app servers behind HAProxy (by default) and one replicated database (MariaDB
 * Galera by default, or PostgreSQL). Later: a page cache.
 */
export function blog(ctx: TopologyContext): TopologyOutputs {
  const dbs = databases(ctx, "blog", "blog", "blog");
  const [db] = dbs.clusters;
  const web = webTier(ctx, "blog", { APP_TOPOLOGY: "blog" }, databaseEnv("DATABASE_", db));
  return {
    ...web,
    databaseRwEndpoint: db.rwEndpoint,
    databaseRoEndpoint: db.roEndpoint,
    databaseUrl: pulumi.secret(db.connectionUrl),
    ...databaseOutputs(ctx, [dbs]),
  };
}
