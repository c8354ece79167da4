import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform } from "../components/platform/docker";
import { KubernetesPlatform } from "../components/platform/kubernetes";
import type { Platform } from "../components/platform/types";
import { loadStackConfig, type StackConfig } from "./config";
import type { TopologyContext, TopologyOutputs } from "./topologies/app-tier";
import { blog } from "./topologies/blog";
import { ecommerce } from "./topologies/ecommerce";

/** Kubernetes publishes the edge on the usual HTTP port; Docker on a free host port. */
const KUBERNETES_PUBLIC_PORT = 80;

function platformFor(config: StackConfig, stack: string): { platform: Platform; publicPort: number } {
  switch (config.platform) {
    case "docker":
      return {
        platform: new DockerPlatform("docker", { prefix: stack }),
        publicPort: config.docker?.publicPort ?? 8080,
      };
    case "kubernetes":
      return {
        platform: new KubernetesPlatform("kubernetes", {
          namespace: config.kubernetes?.namespace ?? stack,
          storageClass: config.kubernetes?.storageClass,
        }),
        publicPort: KUBERNETES_PUBLIC_PORT,
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
  const { platform, publicPort } = platformFor(config, stack);
  const outputs = buildTopology({ config, platform, publicPort });
  return { topology: config.topology, platform: config.platform, ...outputs };
}
