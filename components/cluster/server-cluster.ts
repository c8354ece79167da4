import type { ScrapeTarget } from "../monitoring/render/plan";
import * as pulumi from "@pulumi/pulumi";
import type { MemberAddress, Platform, ResourceSpec, WorkloadSpec } from "../platform/types";
import { renderDemoApp } from "./render/demo-app";
import { credentialPath, FILE_SUFFIX } from "./credentials";
import { isUrlPath } from "../validation";
import { checkResources, invalidArg } from "../errors";
import { componentToken, physicalName, type NamingArgs } from "../resource";

/**
 * The default app image: the official nginx image serving {@link renderDemoApp}'s config, which
 * answers on the health path and names the replica that served each request.
 */
export const DEMO_APP_IMAGE = "nginx:1.28.0-alpine";
/** The official nginx image's unprivileged `nginx` user. */
const DEMO_APP_UID = 101;
const DEMO_APP_CONFIG = "/etc/ha-backend/app/nginx.conf";

export interface ServerClusterArgs extends NamingArgs {
  /** Where the members run. */
  readonly platform: Platform;
  /**
   * Number of app servers. Two or more survive the loss of one.
   * @default 2
   */
  readonly replicas?: number;
  /**
   * App image, pinned by tag. Without it, a small demo server (official nginx image) answers.
   * May be an Output (another stack's output, a CI build's tag): a plain value is validated
   * before anything is created, an Output when it resolves, with the same message. Whether it
   * is given (not its value) decides between the demo app and a custom image.
   * @default {@link DEMO_APP_IMAGE}
   */
  readonly image?: pulumi.Input<string>;
  /**
   * Port the app listens on.
   * @default 8080
   */
  readonly port?: number;
  /**
   * HTTP path that answers 2xx while a member can serve traffic.
   * @default "/healthz"
   */
  readonly healthCheckPath?: string;
  /** Overrides the entrypoint of a custom image. */
  readonly command?: string[];
  /** Plain environment for the app; never credentials (use `credentials`). */
  readonly env?: Record<string, pulumi.Input<string>>;
  /**
   * Credentials for the app (database URLs, session keys), by variable name. Each reaches the
   * members as a file, never as environment: `NAME` becomes `/run/secrets/NAME` (the value
   * exactly, no trailing newline; Docker: mode 0400, owned by `credentialsOwner`; Kubernetes: a
   * mounted Secret), and the plain variable `NAME_FILE` holds that path, the Docker official
   * images' convention. Apps read them with `readCredential("NAME")` (`ha-backend`), or by
   * reading the file `$NAME_FILE` names. Names: letters, digits and `_`.
   * @default none
   */
  readonly credentials?: Record<string, pulumi.Input<string>>;
  /**
   * The uid that owns the credential files on Docker (they are mode 0400): the uid the app's
   * processes run as when they read them. A custom image that runs unprivileged needs it, or
   * its own user cannot read its credentials. Kubernetes mounts them for the pod's user.
   * @default 101 (the demo app's `nginx` user); for a custom image 0 (root)
   */
  readonly credentialsOwner?: number;
  /**
   * Credentials as plain environment variables, for an image that cannot read a file. On
   * Docker `docker inspect` shows them to anyone who reaches the engine (Kubernetes keeps them
   * in a Secret and references it).
   * @deprecated Use `credentials`: files, with `NAME_FILE` in the environment.
   */
  readonly secretEnv?: Record<string, pulumi.Input<string>>;
  /**
   * CPU and memory per member; either may be an Output (checked when it resolves, with the same
   * message as a plain value gets before anything is created).
   * @default none on Docker (no limits); 250m and 256Mi on Kubernetes
   */
  readonly resources?: ResourceSpec;
  /** Tiers allowed to call the app (the load balancer's tier). @default ["edge"] */
  readonly allowFrom?: string[];
  /** Health-check cadence: seconds between checks. @default 5 */
  readonly healthCheckIntervalSeconds?: number;
  /**
   * Docker only: the command that checks health inside a custom image (Docker has no HTTP
   * probe). @default busybox `wget` against the health path
   */
  readonly dockerHealthCommand?: string[];
}

/** Arguments after defaults and validation; what {@link ServerCluster} builds from. */
export interface ResolvedServerClusterArgs {
  readonly replicas: number;
  readonly image: pulumi.Input<string>;
  readonly port: number;
  readonly healthCheckPath: string;
  readonly usesDemoApp: boolean;
  /** Who owns the credential files: see {@link ServerClusterArgs.credentialsOwner}. */
  readonly credentialsOwner: number | undefined;
  /** The resources to deploy with, Outputs carrying their check (see `checkResources`). */
  readonly resources: ResourceSpec | undefined;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function fail(name: string, field: string, rule: string, value: unknown, fix: string): never {
  return invalidArg("ServerCluster", name, field, rule, value, fix);
}

/** Defaults and validation, before any resource exists (pure; tests call it directly). */
export function resolveServerClusterArgs(name: string, args: ServerClusterArgs): ResolvedServerClusterArgs {
  const replicas = args.replicas ?? 2;
  const port = args.port ?? 8080;
  const healthCheckPath = args.healthCheckPath ?? "/healthz";
  const image = args.image ?? DEMO_APP_IMAGE;
  if (!Number.isInteger(replicas) || replicas < 1) {
    fail(
      name,
      "replicas",
      "be a whole number of at least 1",
      replicas,
      "Set replicas: 2 or more for high availability.",
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail(
      name,
      "port",
      "be a whole number from 1 to 65535",
      port,
      "Use the port the app listens on, e.g. 8080.",
    );
  }
  if (!isUrlPath(healthCheckPath)) {
    fail(
      name,
      "healthCheckPath",
      "be a URL path starting with / (letters, digits, / _ . -)",
      healthCheckPath,
      "Use e.g. /healthz.",
    );
  }
  const resources = checkResources("ServerCluster", name, args.resources, {
    minMemoryMb: 32,
    needs: "an app server needs to start",
  });
  const usesDemoApp = args.image === undefined;
  if (usesDemoApp && port < 1024) {
    fail(name, "port", "be 1024 or above for the demo app (it runs unprivileged)", port, "Use e.g. 8080.");
  }
  for (const key of Object.keys(args.credentials ?? {})) {
    if (!ENV_NAME.test(key)) {
      fail(
        name,
        "credentials",
        "use names of letters, digits and '_' (not starting with a digit): each is a file name and a variable name",
        key,
        "Rename the credential, e.g. DATABASE_URL.",
      );
    }
    const taken = [key, `${key}${FILE_SUFFIX}`].find(
      (k) => k in (args.env ?? {}) || k in (args.secretEnv ?? {}),
    );
    if (taken !== undefined) {
      fail(
        name,
        "credentials",
        `not name a variable that env or secretEnv also sets (${taken})`,
        key,
        `Pass ${key} in credentials only.`,
      );
    }
  }
  const credentialsOwner = args.credentialsOwner ?? (usesDemoApp ? DEMO_APP_UID : undefined);
  if (credentialsOwner !== undefined && (!Number.isInteger(credentialsOwner) || credentialsOwner < 0)) {
    fail(
      name,
      "credentialsOwner",
      "be a numeric user id (0 or more)",
      credentialsOwner,
      "Use the uid your image runs as, e.g. 1000.",
    );
  }
  return { replicas, image, port, healthCheckPath, usesDemoApp, credentialsOwner, resources };
}

/**
 * N identical app servers with health checks, env and credentials (as files: see
 * {@link ServerClusterArgs.credentials}), rolled one at a time on Kubernetes. Outputs the
 * addresses a load balancer needs.
 */
export class ServerCluster extends pulumi.ComponentResource {
  /** Host name that reaches any ready member. */
  public readonly serviceHost: pulumi.Output<string>;
  /** DNS name that resolves to every ready member (for balancers that discover members). */
  public readonly discoveryHost: pulumi.Output<string>;
  /** Stable per-member addresses (every Docker member; empty on Kubernetes, see `discoveryHost`). */
  public readonly members: pulumi.Output<MemberAddress[]>;
  /** Port every member listens on. */
  public readonly port: pulumi.Output<number>;
  /** Health-check path a balancer should probe. */
  public readonly healthCheckPath: pulumi.Output<string>;
  /** Number of members. */
  public readonly replicas: pulumi.Output<number>;
  /** Changes when members are re-created; balancers that resolve names at start restart with it. */
  public readonly membersRevision: pulumi.Output<string>;
  /**
   * Each member's health URL as the platform's scraper reaches it (Docker; empty on Kubernetes,
   * where the Deployment's readiness is watched instead): the backend probes of the monitoring.
   */
  public readonly healthTargets: readonly ScrapeTarget[];

  constructor(name: string, args: ServerClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("cluster", "ServerCluster", opts);
    super(token, name, {}, options);
    name = physicalName("ServerCluster", name, args);
    const r = resolveServerClusterArgs(name, args);
    const credentials = Object.entries(args.credentials ?? {}).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );

    const spec: WorkloadSpec = {
      kind: "stateless",
      replicas: r.replicas,
      image: r.image,
      command: r.usesDemoApp ? ["nginx", "-g", "daemon off;", "-c", DEMO_APP_CONFIG] : args.command,
      // Only the paths: the values are in the files.
      env:
        credentials.length === 0
          ? args.env
          : {
              ...args.env,
              ...Object.fromEntries(credentials.map(([k]) => [`${k}${FILE_SUFFIX}`, credentialPath(k)])),
            },
      secretEnv: args.secretEnv,
      files: r.usesDemoApp
        ? { [DEMO_APP_CONFIG]: renderDemoApp({ port: r.port, healthPath: r.healthCheckPath, service: name }) }
        : undefined,
      secretFiles:
        credentials.length === 0
          ? undefined
          : Object.fromEntries(credentials.map(([k, v]) => [credentialPath(k), pulumi.secret(v)])),
      fileOwner: r.credentialsOwner,
      ports: { http: r.port },
      healthCheck: {
        httpGet: { path: r.healthCheckPath, port: "http" },
        intervalSeconds: args.healthCheckIntervalSeconds,
        dockerCommand: args.dockerHealthCommand,
      },
      resources: r.resources,
      tier: "app",
      allowFrom: args.allowFrom ?? ["edge"],
      runAsUser: r.usesDemoApp ? DEMO_APP_UID : undefined,
      // The demo app writes only under /tmp; a user's image is not known.
      writablePaths: r.usesDemoApp ? [] : undefined,
      defaultResources: { cpu: "250m", memory: "256Mi" },
      // The stack's own prober (a platform with a scraper tier: Docker) reads each server's health
      // path: the backends behind nginx, which keeps no per-server state of its own.
      ...(args.platform.scraperTier !== undefined
        ? { metricsPorts: [{ port: "http", path: r.healthCheckPath }] }
        : {}),
    };
    const workload = args.platform.deploy(`${name}-app`, spec, { parent: this });
    this.healthTargets = (workload.metrics.http ?? []).map((t) => ({
      instance: t.instance,
      address: `http://${t.address}${t.path}`,
    }));

    this.serviceHost = pulumi.output(workload.serviceHost);
    this.discoveryHost = pulumi.output(workload.discoveryHost);
    this.members = pulumi.output([...workload.members]);
    this.port = pulumi.output(r.port);
    this.healthCheckPath = pulumi.output(r.healthCheckPath);
    this.replicas = pulumi.output(r.replicas);
    this.membersRevision = workload.membersRevision;
    this.registerOutputs({
      serviceHost: this.serviceHost,
      discoveryHost: this.discoveryHost,
      members: this.members,
      port: this.port,
      healthCheckPath: this.healthCheckPath,
      replicas: this.replicas,
      membersRevision: this.membersRevision,
    });
  }
}
