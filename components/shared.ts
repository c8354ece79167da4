import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { HAPROXY_IMAGE } from "./balancer/load-balancer";
import type { Platform, Workload } from "./platform/types";

/** How a generated secret lives on. */
export interface GeneratedSecretOptions {
  /** @default 32 */
  readonly length?: number;
  /**
   * The secret is stored in data (a database's users): `protect` and `retainOnDelete`, so it
   * outlives neither less nor more than the data it opens. @default false
   */
  readonly protect?: boolean;
  /**
   * A rotation token: changing it replaces the secret (once). Unset: no keeper at all, so the
   * secret is never replaced for any other reason than its length.
   */
  readonly rotation?: pulumi.Input<string>;
}

/**
 * A generated secret (letters and digits) from @pulumi/random, named `<name>` under `parent`
 * (the stack when none). The engine marks random results secret; `pulumi.secret` keeps them so
 * under mocks too.
 */
export function generatedSecret(
  parent: pulumi.Resource | undefined,
  name: string,
  options: GeneratedSecretOptions = {},
): pulumi.Output<string> {
  const protect = options.protect ?? false;
  const password = new random.RandomPassword(
    name,
    {
      length: options.length ?? 32,
      special: false,
      ...(options.rotation === undefined ? {} : { keepers: { rotation: options.rotation } }),
    },
    { parent, protect, retainOnDelete: protect },
  );
  return pulumi.secret(password.result);
}

/** Where a TCP router's config lands in the official HAProxy image. */
export const ROUTER_CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg";

/**
 * The HAProxy workload in front of a data tier (databases, Redis): stateless replicas of the
 * official image, unprivileged, with the config as a file (or a secret file when its checks
 * log in), health on the stats port's `/lb-health`, reachable from `allowFrom` only. With
 * `metrics`, the platform's scraper reads the stats port's `/metrics` (HAProxy's built-in
 * exporter): on Kubernetes it is admitted to that port alone; on Docker it joins the router's
 * network (Docker filters by network, not by port).
 */
export function deployRouter(
  platform: Platform,
  name: string,
  r: {
    readonly replicas: number;
    readonly ports: Readonly<Record<string, number>>;
    readonly config: pulumi.Input<string>;
    readonly configIsSecret?: boolean;
    readonly allowFrom: readonly string[];
    /**
     * Admit the platform's scraper to the stats port: set it where the component's exporters
     * are on, so its router is scraped with them. @default false
     */
    readonly metrics?: boolean;
  },
  parent: pulumi.Resource,
): Workload {
  const file = { [ROUTER_CONFIG_PATH]: r.configIsSecret ? pulumi.secret(r.config) : r.config };
  return platform.deploy(
    name,
    {
      kind: "stateless",
      replicas: r.replicas,
      image: HAPROXY_IMAGE,
      command: ["haproxy", "-W", "-db", "-f", ROUTER_CONFIG_PATH],
      ...(r.configIsSecret ? { secretFiles: file } : { files: file }),
      ports: { ...r.ports },
      healthCheck: { httpGet: { path: "/lb-health", port: "stats" } },
      // The router is its own tier: the data members admit it by name.
      tier: name,
      allowFrom: [...r.allowFrom],
      runAsUser: 99,
      // A secret config (the Redis router's checks log in) is read by HAProxy's own user.
      fileOwner: 99,
      writablePaths: [],
      defaultResources: { cpu: "100m", memory: "64Mi" },
      // Stats and metrics are for the kubelet's probes (node traffic), not for client tiers.
      peerPorts: ["stats"],
      // The scraper reads /metrics there (Kubernetes: on that port alone).
      ...(r.metrics ? { metricsPorts: [{ port: "stats" }] } : {}),
    },
    { parent },
  );
}
