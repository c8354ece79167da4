import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform } from "../components/platform/docker";
import { KubernetesPlatform } from "../components/platform/kubernetes";
import { loadStackConfig, type StackConfig } from "./config";
import type { TopologyContext, TopologyOutputs } from "./topologies/web-tier";
import { blog } from "./topologies/blog";
import { ecommerce } from "./topologies/ecommerce";

type PlatformChoice = Pick<TopologyContext, "platform" | "publicPorts" | "tlsHostNames">;

function platformFor(config: StackConfig, stack: string): PlatformChoice {
  switch (config.platform) {
    case "docker":
      return {
        platform: new DockerPlatform("docker", { prefix: stack }),
        // Free host ports on a developer machine; the balancer listens on them.
        publicPorts: { http: config.docker?.publicPort ?? 8080, https: config.docker?.httpsPort ?? 8443 },
        tlsHostNames: ["localhost"],
      };
    case "kubernetes":
      return {
        platform: new KubernetesPlatform("kubernetes", {
          namespace: config.kubernetes?.namespace ?? stack,
          storageClass: config.kubernetes?.storageClass,
          imageRegistry: config.kubernetes?.imageRegistry,
          podNetworks: config.kubernetes?.podNetworks,
          serviceType: config.kubernetes?.serviceType,
          apiServerCidrs: config.kubernetes?.apiServerCidrs,
          serviceTimeoutMinutes: config.kubernetes?.serviceTimeoutMinutes,
        }),
        publicPorts: { http: 80, https: 443 },
        tlsHostNames: [`${stack}.local`],
      };
    default: {
      const never: never = config.platform;
      throw new Error(`unhandled platform ${String(never)}`);
    }
  }
}

function buildTopology(ctx: TopologyContext): TopologyOutputs {
  switch (ctx.config.topology) {
    case "ecommerce":
      return ecommerce(ctx);
    case "blog":
      return blog(ctx);
    default: {
      const never: never = ctx.config.topology;
      throw new Error(`unhandled topology ${String(never)}`);
    }
  }
}

/**
 * The whole program: read and validate config (throws before any resource exists), pick the
 * platform, build the topology, return the stack outputs.
 */
export function defineStack(): Record<string, unknown> {
  const config = loadStackConfig();
  const stack = pulumi.getStack();
  const outputs = buildTopology({ config, ...platformFor(config, stack) });
  return { topology: config.topology, platform: config.platform, ...outputs };
}
