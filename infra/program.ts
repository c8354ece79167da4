import { MonitoringCollector, stackMonitoring } from "./topologies/monitoring";
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
function targetProvider(
  config: StackConfig,
  parent: pulumi.Resource | undefined,
): pulumi.ProviderResource | undefined {
  if (config.platform === "docker") {
    const host = config.docker?.host;
    // A value stored with --secret stays secret in the provider's state too.
    const keep = (v: string) => (config.secretKeys.includes("docker") ? pulumi.secret(v) : v);
    return host === undefined
      ? undefined
      : new docker.Provider("docker-host", { host: keep(host) }, { parent });
  }
  const k = config.kubernetes;
  if (k?.context === undefined && k?.kubeconfig === undefined) return undefined;
  const keep = (v: string | undefined) =>
    v !== undefined && config.secretKeys.includes("kubernetes") ? pulumi.secret(v) : v;
  return new k8s.Provider(
    "kubernetes-cluster",
    { context: keep(k.context), kubeconfig: keep(k.kubeconfig) },
    { parent },
  );
}

function platformFor(
  config: StackConfig,
  stack: string,
  parent: pulumi.Resource | undefined,
): PlatformChoice {
  const provider = targetProvider(config, parent);
  switch (config.platform) {
    case "docker": {
      const publicHost = dockerPublicHost(config.docker?.host);
      return {
        platform: new DockerPlatform(
          "docker",
          {
            prefix: stack,
            publicHost,
            bindAddress: config.docker?.bindAddress,
            // The stack's own Prometheus (monitoring.enabled) is admitted to every metrics port.
            scraperTier: config.monitoring.enabled ? "monitoring" : undefined,
          },
          { provider, parent },
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
            // The cluster's Prometheus may read the metrics ports, and nothing else may.
            scraper: config.monitoring.exporters ? config.monitoring.scraper : undefined,
          },
          { provider, parent },
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

/** The app tier's name on every platform (ServerCluster's workloads). */
const APP_TIER = "app";

/**
 * How a workload deployed outside this program (another stack's workers) joins the app tier,
 * so it reaches what the app servers reach: Docker networks, or a namespace and pod labels.
 */
function appAccess(platform: TopologyContext["platform"]): TopologyOutputs {
  if (platform instanceof DockerPlatform) return { appNetworks: platform.networksOf(APP_TIER) };
  if (platform instanceof KubernetesPlatform) {
    return { appNamespace: platform.namespace, appPodLabels: pulumi.output(platform.labelsOf(APP_TIER)) };
  }
  return {};
}

/** What {@link buildBackend} creates under, besides the validated settings. */
export type BackendPlacement = Pick<TopologyContext, "parent" | "providedTls">;

/**
 * The backend a validated config describes: the platform (named after `stack`: the Docker prefix,
 * the default namespace), the topology, and the outputs a stack exports. Validation (config
 * schema and preflight) is the caller's, before this creates anything.
 */
export function buildBackend(
  config: StackConfig,
  stack: string,
  placement: BackendPlacement = {},
): TopologyOutputs {
  const choice = platformFor(config, stack, placement.parent);
  const ctx: TopologyContext = { config, ...choice, ...placement, collector: new MonitoringCollector() };
  const outputs = buildTopology(ctx);
  // Last: on Docker the monitoring's tier joins the networks of everything it scrapes.
  return { ...outputs, ...stackMonitoring(ctx, stack), ...appAccess(choice.platform) };
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
  return { topology: config.topology, platform: config.platform, ...buildBackend(config, stack) };
}
