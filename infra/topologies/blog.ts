import * as pulumi from "@pulumi/pulumi";
import { MysqlCluster } from "../../components/database/mysql-cluster";
import { databaseArgs, databaseEnv, webTier, type TopologyContext, type TopologyOutputs } from "./web-tier";

/**
 * The blog: its app servers behind HAProxy (by default) and one replicated database. Later: a
 * page cache.
 */
export function blog(ctx: TopologyContext): TopologyOutputs {
  const db = new MysqlCluster("blog", databaseArgs(ctx, "blog", "blog"));
  const web = webTier(ctx, "blog", { APP_TOPOLOGY: "blog" }, databaseEnv("DATABASE_", db));
  return {
    ...web,
    databaseRwEndpoint: db.rwEndpoint,
    databaseRoEndpoint: db.roEndpoint,
    databaseUrl: pulumi.secret(db.connectionUrl),
  };
}
