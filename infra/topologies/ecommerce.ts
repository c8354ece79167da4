import type { TopologyContext, TopologyOutputs } from "./app-tier";
import { appOutputs, appTier } from "./app-tier";

/**
 * The e-commerce site: a shop app tier. Later: Nginx in front, orders (sharded) and catalog
 * databases, Redis for sessions and carts, locks for stock reservations.
 */
export function ecommerce(ctx: TopologyContext): TopologyOutputs {
  const shop = appTier(ctx, "shop", { APP_TOPOLOGY: "ecommerce" });
  return appOutputs(shop);
}
