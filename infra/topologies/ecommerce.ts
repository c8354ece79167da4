import { webTier, type TopologyContext, type TopologyOutputs } from "./web-tier";

/**
 * The e-commerce site: the shop's app servers behind Nginx (by default). Later: orders
 * (sharded) and catalog databases, Redis for sessions and carts, locks for stock reservations.
 */
export function ecommerce(ctx: TopologyContext): TopologyOutputs {
  return webTier(ctx, "shop", { APP_TOPOLOGY: "ecommerce" });
}
