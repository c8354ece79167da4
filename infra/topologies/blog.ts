import type { TopologyContext, TopologyOutputs } from "./app-tier";
import { appOutputs, appTier } from "./app-tier";

/**
 * The blog: a blog app tier. Later: HAProxy in front, one replicated database, a page cache.
 */
export function blog(ctx: TopologyContext): TopologyOutputs {
  const site = appTier(ctx, "blog", { APP_TOPOLOGY: "blog" });
  return appOutputs(site);
}
