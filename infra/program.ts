import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform, dockerPublicHost } from "../components/platform/docker";
import { KubernetesPlatform } from "../components/platform/kubernetes";
import { loadStackConfig, type StackConfig } from "./config";
import type { TopologyContext, TopologyOutputs } from "./topologies/web-tier";
import { blog } from "./topologies/blog";
import { ecommerce } from "./topologies/ecommerce";

type PlatformChoice = Pick<TopologyContext, "platform" | "publicPorts" | "tlsHostNames">;

/**
 * The engine or cluster the stack names, as an explicit provider; none when it names none (the
 * default provider then follows DOCKER_HOST or the kubeconfig's current context).
 */
function targetProvider(config: StackConfig): pulumi.ProviderResource | undefined {
  if (config.platform === "docker") {
    const host = config.docker?.host;
    return host === undefined ? undefined : new docker.Provider("docker-host", { host });
  }
  const k = config.kubernetes;
  if (k?.context === undefined && k?.kubeconfig === undefined) return undefined;
  return new k8s.Provider("kubernetes-cluster", { context: k.context, kubeconfig: k.kubeconfig });
}

function platformFor(config: StackConfig, stack: string): PlatformChoice {
  const provider = targetProvider(config);
  switch (config.platform) {
    case "docker": {
      const publicHost = dockerPublicHost(config.docker?.host);
      return {
        platform: new DockerPlatform("docker", { prefix: stack, publicHost }, { provider }),
        // Free host ports on a developer machine; the balancer listens on them.
        publicPorts: { http: config.docker?.publicPort ?? 8080, https: config.docker?.httpsPort ?? 8443 },
        tlsHostNames: [...new Set(["localhost", publicHost])],
      };
    }
    case "kubernetes":
      return {
        platform: new KubernetesPlatform(
          "kubernetes",
          {
            namespace: config.kubernetes?.namespace ?? stack,
            storageClass: config.kubernetes?.storageClass,
            imageRegistry: config.kubernetes?.imageRegistry,
            podNetworks: config.kubernetes?.podNetworks,
            serviceType: config.kubernetes?.serviceType,
            apiServerCidrs: config.kubernetes?.apiServerCidrs,
            serviceTimeoutMinutes: config.kubernetes?.serviceTimeoutMinutes,
          },
          { provider },
        ),
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
