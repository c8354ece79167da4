import { webTier, type TopologyContext, type TopologyOutputs } from "./web-tier";

/**
 * The blog: its app servers behind HAProxy (by default). Later: one replicated database and a
 * page cache.
 */
export function blog(ctx: TopologyContext): TopologyOutputs {
  return webTier(ctx, "blog", { APP_TOPOLOGY: "blog" });
}
