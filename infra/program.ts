import * as docker from "@pulumi/docker";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform, dockerPublicHost } from "../components/platform/docker";
import { KubernetesPlatform } from "../components/platform/kubernetes";
import { loadStackConfig, StackConfigError, type StackConfig } from "./config";
import { preflightProblems } from "./preflight";
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
    // A value stored with --secret stays secret in the provider's state too.
    const keep = (v: string) => (config.secretKeys.includes("docker") ? pulumi.secret(v) : v);
    return host === undefined ? undefined : new docker.Provider("docker-host", { host: keep(host) });
  }
  const k = config.kubernetes;
  if (k?.context === undefined && k?.kubeconfig === undefined) return undefined;
  const keep = (v: string | undefined) =>
    v !== undefined && config.secretKeys.includes("kubernetes") ? pulumi.secret(v) : v;
  return new k8s.Provider("kubernetes-cluster", { context: keep(k.context), kubeconfig: keep(k.kubeconfig) });
}

function platformFor(config: StackConfig, stack: string): PlatformChoice {
  const provider = targetProvider(config);
  switch (config.platform) {
    case "docker": {
      const publicHost = dockerPublicHost(config.docker?.host);
      return {
        platform: new DockerPlatform(
          "docker",
          { prefix: stack, publicHost, bindAddress: config.docker?.bindAddress },
          { provider },
        ),
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
            allowSystemNamespace: config.kubernetes?.allowSystemNamespace,
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
  // The components' own checks, on the args the topology will give them: a refusal here is a
  // config problem reported before anything exists, not a crash half-way through.
  const problems = preflightProblems(config, stack);
  if (problems.length > 0) {
    throw new StackConfigError(problems, `stack config of stack "${stack}" (stacks/Pulumi.${stack}.yaml)`);
  }
  const outputs = buildTopology({ config, ...platformFor(config, stack) });
  return { topology: config.topology, platform: config.platform, ...outputs };
}
