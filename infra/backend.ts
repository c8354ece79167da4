// The public side of the Backend component (the `ha-backend/backend` entry point): its args and
// outputs use only Pulumi's types, so a consumer's compiler never reads the config schema's.
import * as pulumi from "@pulumi/pulumi";
import { TYPE_PACKAGE } from "../components/resource";
import { claimProgram, resolveBackendArgs } from "./backend-args";
import { buildBackend } from "./program";

/**
 * The settings of one whole ha-backend, as the args of one resource: what a stack file holds
 * under `ha-backend:*`. Every value that decides which resources exist is plain; the TLS
 * material may be an Output (another stack's, a secret store's).
 */
export interface BackendArgs {
  /** Which backend: `ecommerce` or `blog` (checked when the program runs, like a stack file). */
  topology: string;
  /** Where it runs: `docker` (one engine) or `kubernetes` (a cluster). */
  platform: string;
  /**
   * The stack file's other keys, without the `ha-backend:` prefix: `environment`, `app`,
   * `balancer`, `database`, `cache`, `locks`, `docker`, `kubernetes`, `protectData`,
   * `credentialRotation`. Plain values, validated exactly like a stack file before anything is
   * created; to keep one secret, name its key in `secretSettings`.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any JSON value, as in a stack file (the schema's Any)
  settings?: { [key: string]: any };
  /**
   * Keys of `settings` to treat as a stack file's `--secret` values (`docker`, `kubernetes`,
   * `app`, `credentialRotation`): no message shows them, and what follows from them stays secret
   * (a remote Docker host in `url`; `app.env` as secret environment).
   */
  secretSettings?: string[];
  /**
   * Prefix of every Docker container, network and volume name, and the Kubernetes namespace
   * unless `settings.kubernetes.namespace` is set (a stack uses its stack name).
   * @default the resource's name
   */
  prefix?: string;
  /** PEM certificate chain for `balancer.tls: provided`. */
  tlsCertificate?: pulumi.Input<string>;
  /** PEM private key for `balancer.tls: provided`. Pass it as a secret; it is kept secret either way. */
  tlsKey?: pulumi.Input<string>;
}

/**
 * A whole highly available backend in one resource: the e-commerce or blog topology on Docker or
 * Kubernetes, with the same settings and checks as a stack file. The component that other
 * languages get from `pulumi package add`. One per program: its resources are named like a
 * stack's, so deploy two backends as two stacks.
 */
export class Backend extends pulumi.ComponentResource {
  /** The balancer's HTTP address. */
  public readonly url: pulumi.Output<string>;
  /** The balancer's HTTPS address; unset when `balancer.tls` is off. */
  public readonly httpsUrl: pulumi.Output<string | undefined>;
  /** The app's database URL with its password (of the catalog on e-commerce). Secret. */
  public readonly databaseUrl: pulumi.Output<string>;
  /** `mariadb`, `mysql` or `postgresql`. */
  public readonly databaseEngine: pulumi.Output<string>;
  /** Worst-case seconds from the database writer's death to writes resuming; unset: manual failover. */
  public readonly databaseFailoverBudgetSeconds: pulumi.Output<number | undefined>;
  /** `redis`, `memcached` or `none`. */
  public readonly cacheEngine: pulumi.Output<string>;
  /** The app servers' service address (host name inside the platform). */
  public readonly appServiceHost: pulumi.Output<string>;
  /** Docker: the networks a worker container joins to reach what the app servers reach. */
  public readonly appNetworks: pulumi.Output<string[] | undefined>;
  /** Kubernetes: the namespace of the app servers; a worker pod there with `appPodLabels` reaches what they reach. */
  public readonly appNamespace: pulumi.Output<string | undefined>;
  /** Kubernetes: the labels that admit a pod in `appNamespace` where the app servers are admitted. */
  public readonly appPodLabels: pulumi.Output<{ [key: string]: string } | undefined>;
  /**
   * Every output a stack of these settings exports, except the secret `databaseUrl`. Secret as a
   * whole when one of them is (`url` of a Docker host named in a secret setting).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a map of JSON values (the schema's Any)
  public readonly outputs: pulumi.Output<{ [key: string]: any }>;

  constructor(name: string, args: BackendArgs, opts?: pulumi.ComponentResourceOptions) {
    // Every check before the Backend itself is registered: bad args create nothing.
    const prefix = args.prefix ?? name;
    const { config, providedTls } = resolveBackendArgs(name, args, prefix);
    claimProgram(name);
    // New in this release: no earlier token to alias.
    super(`${TYPE_PACKAGE}:index:Backend`, name, {}, opts);
    const built = buildBackend(config, prefix, { parent: this, providedTls });
    // Secrets stay out of `outputs`: one secret value would make the whole map secret.
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- left out on purpose, see above
    const { databaseUrl, grafanaAdminPassword, ...rest } = built;
    const pick = <T>(key: string) => (built[key] ?? pulumi.output(undefined)) as pulumi.Output<T>;
    this.url = pick("url");
    this.httpsUrl = pick("httpsUrl");
    this.databaseUrl = pulumi.secret(databaseUrl as pulumi.Output<string>);
    this.databaseEngine = pick("databaseEngine");
    this.databaseFailoverBudgetSeconds = pick("databaseFailoverBudgetSeconds");
    this.cacheEngine = pick<string | undefined>("cacheEngine").apply((e) => e ?? "none");
    this.appServiceHost = pick("appServiceHost");
    this.appNetworks = pick("appNetworks");
    this.appNamespace = pick("appNamespace");
    this.appPodLabels = pick("appPodLabels");
    const all: Record<string, pulumi.Input<unknown>> = {
      topology: config.topology,
      platform: config.platform,
      ...rest,
    };
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see the field
    this.outputs = pulumi.output(all).apply((o): { [key: string]: any } => o);
    this.registerOutputs({
      url: this.url,
      httpsUrl: this.httpsUrl,
      databaseUrl: this.databaseUrl,
      databaseEngine: this.databaseEngine,
      databaseFailoverBudgetSeconds: this.databaseFailoverBudgetSeconds,
      cacheEngine: this.cacheEngine,
      appServiceHost: this.appServiceHost,
      appNetworks: this.appNetworks,
      appNamespace: this.appNamespace,
      appPodLabels: this.appPodLabels,
      outputs: this.outputs,
    });
  }
}
