import * as pulumi from "@pulumi/pulumi";
import { TYPE_PACKAGE } from "../components/resource";
import { parseStackConfig, StackConfigError, type StackConfig } from "./config";
import { preflightProblems } from "./preflight";
import { buildBackend } from "./program";

/** Stack settings the Backend takes as arguments of its own, not inside `settings`. */
const OWN_ARGS = ["topology", "platform", "tlsCertificate", "tlsKey"] as const;

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
   * `credentialRotation`. Validated exactly like a stack file, before anything is created.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any JSON value, as in a stack file (the schema's Any)
  settings?: { [key: string]: any };
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
 * languages get from `pulumi package add`.
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
  /** Kubernetes: the namespace a worker pod runs in to reach what the app servers reach. */
  public readonly appNamespace: pulumi.Output<string | undefined>;
  /** Every output a stack of these settings exports, except the secret `databaseUrl`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a map of JSON values (the schema's Any)
  public readonly outputs: pulumi.Output<{ [key: string]: any }>;

  constructor(name: string, args: BackendArgs, opts?: pulumi.ComponentResourceOptions) {
    // New in this release: no earlier token to alias.
    super(`${TYPE_PACKAGE}:index:Backend`, name, {}, opts);
    const prefix = args.prefix ?? name;
    const { config, providedTls } = resolveBackendArgs(name, args, prefix);
    const built = buildBackend(config, prefix, { parent: this, providedTls });
    const { databaseUrl, ...rest } = built;
    const pick = <T>(key: string) => (built[key] ?? pulumi.output(undefined)) as pulumi.Output<T>;
    this.url = pick("url");
    this.httpsUrl = pick("httpsUrl");
    this.databaseUrl = pulumi.secret(databaseUrl as pulumi.Output<string>);
    this.databaseEngine = pick("databaseEngine");
    this.databaseFailoverBudgetSeconds = pick("databaseFailoverBudgetSeconds");
    this.cacheEngine = pulumi.output(pick<string | undefined>("cacheEngine")).apply((e) => e ?? "none");
    this.appServiceHost = pick("appServiceHost");
    this.appNetworks = pick("appNetworks");
    this.appNamespace = pick("appNamespace");
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
      outputs: this.outputs,
    });
  }
}

/**
 * The Backend's args as a validated stack config (throws {@link StackConfigError} before anything
 * exists), and the TLS material given as args. A certificate or key that is an Output is checked
 * with the same rules when it resolves.
 */
export function resolveBackendArgs(
  name: string,
  args: BackendArgs,
  prefix: string,
): {
  config: StackConfig;
  providedTls?: { certificate: pulumi.Input<string>; privateKey: pulumi.Input<string> };
} {
  const source = `Backend "${name}" args`;
  const settings = args.settings ?? {};
  const misplaced = OWN_ARGS.filter((k) => k in settings).map(
    (k) =>
      `settings.${k} must not be set: it is an argument of the Backend itself, but ${
        k === "tlsKey" ? "a value (not shown)" : JSON.stringify(settings[k])
      } was provided. Pass ${k} next to settings instead.`,
  );
  if (misplaced.length > 0) throw new StackConfigError(misplaced, source);
  const plainTls = Object.fromEntries(
    (["tlsCertificate", "tlsKey"] as const).flatMap((k) =>
      typeof args[k] === "string" ? [[k, args[k]]] : [],
    ),
  );
  const pendingKeys = (["tlsCertificate", "tlsKey"] as const).filter(
    (k) => args[k] !== undefined && typeof args[k] !== "string",
  );
  const raw = { ...settings, topology: args.topology, platform: args.platform, ...plainTls };
  // The key is a secret whatever the caller passed: no message shows it.
  const config = parseStackConfig(raw, { source, secretKeys: ["tlsKey"], stack: prefix, pendingKeys });
  const problems = preflightProblems(config, prefix);
  if (problems.length > 0) throw new StackConfigError(problems, source);
  for (const warning of config.warnings) void pulumi.log.warn(warning);
  if (args.tlsCertificate === undefined || args.tlsKey === undefined) return { config };
  // Resolved values get the stack file's PEM checks (expiry, key match) before any use: the
  // same checks as plain strings, on the key's one Output, so a bad pair fails what reads it.
  const privateKey = pulumi.secret(
    pulumi.all([args.tlsCertificate, args.tlsKey]).apply(([tlsCertificate, tlsKey]) => {
      if (pendingKeys.length > 0) resolveBackendArgs(name, { ...args, tlsCertificate, tlsKey }, prefix);
      return tlsKey;
    }),
  );
  return { config, providedTls: { certificate: args.tlsCertificate, privateKey } };
}
