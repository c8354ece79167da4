import * as pulumi from "@pulumi/pulumi";
import { isIP } from "node:net";
import { z } from "zod";
import { isCpuQuantity, isMemoryQuantity } from "../components/platform/quantity";
import { PATRONI_FAST_TIMINGS, timingsProblem } from "../components/database/render/patroni";
import { SENTINEL_MIN_DOWN_AFTER_MS } from "../components/cache/render/redis";
import { checkTlsMaterial, formatTlsProblem } from "../components/balancer/tls-material";
import {
  cidrProblem,
  hasControlCharacter,
  imageReferenceProblem,
  isDnsLabel,
  isDnsSubdomain,
  isEnvName,
  isUrlPath,
  SYSTEM_NAMESPACES,
} from "../components/validation";

/** The stack-config namespace: every key in `stacks/Pulumi.<stack>.yaml` that this program reads. */
export const NAMESPACE = "ha-backend";

/**
 * A check with its own rule and fix text. zod carries `params` on custom issues, so the error
 * formatter can say *how to fix* a specific rule instead of a generic hint.
 */
function rule<T>(check: (v: T) => boolean, ruleText: string, fix: string) {
  return [check, { message: ruleText, params: { fix } }] as const;
}

const PORT = z.int().min(1).max(65535);

/** A custom issue with its own rule and fix (see {@link rule}). */
function addRule(
  ctx: z.RefinementCtx,
  input: unknown,
  message: string,
  fix: string,
  path: PropertyKey[] = [],
): void {
  ctx.addIssue({ code: "custom", path, input, message, params: { fix } });
}

/** A single-line string: newlines and other control characters would reach files and flags. */
function line(fix: string) {
  return z.string().superRefine((s, ctx) => {
    if (hasControlCharacter(s)) addRule(ctx, s, "be a single line without control characters", fix);
  });
}

/** An image reference, parsed by the Docker reference grammar, pinned by a tag or digest. */
function imageSchema(fix: string) {
  return z.string().superRefine((s, ctx) => {
    const problem = imageReferenceProblem(s);
    if (problem !== undefined) addRule(ctx, s, problem, fix);
  });
}

const ResourcesSchema = z.strictObject({
  cpu: z
    .string()
    .refine(...rule(isCpuQuantity, "be a CPU quantity such as 250m, 0.5 or 2", "Write e.g. cpu: 250m.")),
  memory: z
    .string()
    .refine(
      ...rule(isMemoryQuantity, "be a memory quantity such as 256Mi or 1Gi", "Write e.g. memory: 256Mi."),
    ),
});

const AppSchema = z.strictObject({
  // Unset: the demo app (official nginx image with a generated config) serves.
  image: imageSchema(
    "Give an explicit version, e.g. image: registry.example.com:5000/shop:1.4.2 or nginx:1.28.0-alpine@sha256:…, or remove it to use the demo app.",
  ).optional(),
  replicas: z.int().min(1).max(50).default(2),
  port: PORT.default(8080),
  healthCheckPath: z
    .string()
    .refine(
      ...rule(
        isUrlPath,
        "be a URL path starting with / (letters, digits, / _ . -; at most 255)",
        "Write e.g. /healthz.",
      ),
    )
    .default("/healthz"),
  resources: ResourcesSchema.optional(),
  env: z
    .record(
      z
        .string()
        .refine(
          ...rule(
            isEnvName,
            "use names of letters, digits and _ that do not start with a digit",
            "Rename the variable, e.g. LOG_LEVEL.",
          ),
        ),
      z.string(),
    )
    .superRefine((env, ctx) => {
      const total = Object.entries(env).reduce(
        (n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v),
        0,
      );
      if (total > 512 * 1024) {
        // A Kubernetes object (the Deployment, or the Secret of a secret app.env) holds at most 1 MiB.
        addRule(
          ctx,
          `${Object.keys(env).length} variables, ${total} bytes`,
          "be at most 512 KiB in all (a Kubernetes object holds at most 1 MiB)",
          "Mount large data as a file instead.",
        );
      }
      for (const [name, value] of Object.entries(env)) {
        const reserved = reservedEnvName(name);
        if (reserved !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            input: name,
            message: `not set ${reserved} (the program sets it from the stack's own services; reserved: ${RESERVED_APP_ENV.join(", ")} and every name starting with ${RESERVED_APP_ENV_PREFIXES.join(", ")})`,
            params: {
              fix: "Rename your variable (e.g. with your app's own prefix), or change the service through its own keys.",
            },
          });
        }
        // A NUL ends a C string: the process would see a shorter value than the stack file says.
        // eslint-disable-next-line no-control-regex -- control characters are exactly what this finds
        if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value)) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            input: value,
            message: "hold no control characters other than tab and newline (a NUL ends the value early)",
            params: { fix: "Remove the control characters, or pass binary data base64-encoded." },
          });
        } else if (Buffer.byteLength(value) > 131_072) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            input: `${value.slice(0, 16)}… (${Buffer.byteLength(value)} bytes)`,
            message: "be at most 128 KiB (Linux refuses longer environment strings at exec)",
            params: { fix: "Mount large data as a file instead." },
          });
        }
      }
    })
    .default({}),
});

/**
 * Environment the program gives the app (service endpoints, credentials, the session key):
 * `app.env` may not override it, or the app would talk to something other than the stack's
 * services. Reserved whatever the topology, so a stack never changes meaning when a service is
 * turned on.
 */
export const RESERVED_APP_ENV: readonly string[] = ["APP_TOPOLOGY", "SESSION_SECRET"];
export const RESERVED_APP_ENV_PREFIXES: readonly string[] = [
  "DATABASE_",
  "ORDERS_SHARD_",
  "REDIS_",
  "MEMCACHED_",
  "LOCK_",
];

/** Why `name` is reserved (a phrase), or undefined. */
export function reservedEnvName(name: string): string | undefined {
  if (RESERVED_APP_ENV.includes(name)) return `${name}`;
  // Credentials reach the app as files named by NAME_FILE (ServerClusterArgs.credentials).
  const file = RESERVED_APP_ENV.find((r) => name === `${r}_FILE`);
  if (file !== undefined) return `${name} (it names the file of ${file})`;
  const prefix = RESERVED_APP_ENV_PREFIXES.find((p) => name.startsWith(p));
  return prefix === undefined ? undefined : `${name} (names starting with ${prefix} are reserved)`;
}

/** The seed's pairing: Nginx in front of the shop, HAProxy in front of the blog. */
export const DEFAULT_BALANCER_ENGINE = { ecommerce: "nginx", blog: "haproxy" } as const;

const COOKIE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

const BalancerSchema = z.strictObject({
  /** Unset: the topology's default engine. */
  engine: z.enum(["nginx", "haproxy"]).optional(),
  replicas: z.int().min(1).max(20).default(2),
  algorithm: z.enum(["round-robin", "least-conn", "ip-hash"]).default("round-robin"),
  /** Standby app servers that take traffic only when every primary is down. */
  backups: z.int().min(0).max(10).default(0),
  /** Relative weight of each primary app member, by index (Docker only). */
  weights: z.array(z.int().min(1).max(256)).optional(),
  tls: z.enum(["off", "self-signed", "provided"]).default("off"),
  rateLimit: z
    .strictObject({ perSecond: z.int().min(1).max(1_000_000), burst: z.int().min(0).max(1_000_000) })
    .optional(),
  stickyCookie: z
    .string()
    .refine(
      ...rule(
        (s: string) => COOKIE.test(s),
        "be a cookie name of letters, digits and _ (at most 32)",
        "Write e.g. SERVERID.",
      ),
    )
    .optional(),
  health: z
    .strictObject({
      intervalMs: z.int().min(100).max(60_000).default(2000),
      timeoutMs: z.int().min(50).max(60_000).default(1000),
      fall: z.int().min(1).max(20).default(3),
      rise: z.int().min(1).max(20).default(2),
    })
    .prefault({}),
  retries: z.int().min(0).max(10).default(2),
  resources: ResourcesSchema.optional(),
});

/**
 * PostgreSQL (Patroni) settings; only with database.engine: postgresql. No defaults here, so an
 * error can show exactly what the stack file says: {@link postgresqlSettings} fills them in.
 */
const PostgresqlSchema = z.strictObject({
  /** Leader lease, housekeeping loop and retry budget, in seconds (loopWait + 2 × retryTimeout ≤ ttl). */
  ttl: z.int().min(5).max(3600).optional(),
  loopWait: z.int().min(1).max(600).optional(),
  retryTimeout: z.int().min(1).max(600).optional(),
  maximumLagOnFailover: z.int().min(0).max(1_099_511_627_776).optional(),
  /** Unset: on with 2+ members. */
  synchronousMode: z.boolean().optional(),
  synchronousModeStrict: z.boolean().optional(),
  /** A prebuilt Patroni image; unset: built from components/database/image at `pulumi up`. */
  image: imageSchema(
    "Give the tag you pushed, e.g. registry.example.com/patroni:15.18-1, or remove it to build the image.",
  ).optional(),
  /** Docker only: etcd members for Patroni's store. Unset: 1 (one host has one failure domain). */
  etcdMembers: z
    .int()
    .refine(
      ...rule(
        (n: number) => [1, 3, 5].includes(n),
        "be 1, 3 or 5 (a majority must survive; an even count adds nothing)",
        "Use 1 on one Docker host, 3 to survive the loss of a member.",
      ),
    )
    .optional(),
  sharedBuffers: z
    .string()
    .refine(
      ...rule(
        (s: string) =>
          /^[1-9][0-9]{0,6}(kB|MB|GB)$/.test(s) && !(s.endsWith("kB") && Number(s.slice(0, -2)) < 128),
        "be a PostgreSQL size such as 128MB or 2GB (at least 128kB, at most 7 digits)",
        "Write e.g. sharedBuffers: 256MB.",
      ),
    )
    .optional(),
  maxConnections: z.int().min(10).max(10_000).optional(),
});

/** database.postgresql's defaults: Patroni's fast timings (the live tests' figures). */
export const POSTGRESQL_DEFAULTS = {
  ttl: PATRONI_FAST_TIMINGS.ttl,
  loopWait: PATRONI_FAST_TIMINGS.loopWait,
  retryTimeout: PATRONI_FAST_TIMINGS.retryTimeout,
  maximumLagOnFailover: 1_048_576,
  synchronousModeStrict: false,
  sharedBuffers: "128MB",
  maxConnections: 200,
} as const;

/** database.postgresql with every default filled in. */
export function postgresqlSettings(d: { postgresql?: z.infer<typeof PostgresqlSchema> }) {
  return { ...POSTGRESQL_DEFAULTS, ...d.postgresql };
}

const DatabaseSchema = z.strictObject({
  engine: z.enum(["mariadb", "mysql", "postgresql"]).default("mariadb"),
  /**
   * MySQL family: `galera` (MariaDB, synchronous, automatic failover) or `replication` (GTID
   * replicas, manual failover: needs failover: manual). Unset: galera for MariaDB, replication
   * for MySQL (no Galera), which then needs failover: manual too.
   */
  mode: z.enum(["replication", "galera"]).optional(),
  /**
   * `manual` acknowledges that replication mode has no automatic failover (a person runs the
   * promotion script). Unset: automatic, which replication mode refuses.
   */
  failover: z.enum(["automatic", "manual"]).optional(),
  /**
   * Servers per cluster. Unset: 2 for replication (primary + replica), 3 for Galera; PostgreSQL
   * 3 on Kubernetes, 2 on Docker.
   */
  members: z.int().min(1).max(9).optional(),
  semiSync: z.boolean().default(false),
  /** E-commerce only: independent clusters the orders are split across. */
  shards: z.int().min(1).max(64).default(1),
  storageGi: z.int().min(1).max(16_384).default(10),
  /** Replaced by the stack-wide `protectData`; kept here only to say so. */
  protect: z.boolean().optional(),
  resources: ResourcesSchema.optional(),
  routerReplicas: z.int().min(1).max(10).default(2),
  galera: z
    .strictObject({
      suspectTimeoutMs: z.int().min(500).max(60_000).optional(),
      inactiveTimeoutMs: z.int().min(1000).max(120_000).optional(),
      inactiveCheckPeriodMs: z.int().min(100).max(10_000).optional(),
      keepalivePeriodMs: z.int().min(100).max(10_000).optional(),
    })
    .optional(),
  postgresql: PostgresqlSchema.optional(),
});

/** Where each topology keeps its cache unless the stack says otherwise. */
export const DEFAULT_CACHE_ENGINE = { ecommerce: "redis", blog: "memcached" } as const;
/** Redis's default use per topology: the shop keeps sessions and carts (store), the blog caches pages. */
export const DEFAULT_REDIS_MODE = { ecommerce: "store", blog: "cache" } as const;

const RedisSchema = z.strictObject({
  /** `cache` (memory only, LRU) or `store` (AOF, writes need a replica). Unset: per topology. */
  mode: z.enum(["cache", "store"]).optional(),
  replicas: z.int().min(0).max(8).default(2),
  sentinels: z
    .int()
    .refine(
      ...rule(
        (n: number) => [1, 3, 5, 7].includes(n),
        "be 1, 3, 5 or 7 (an even count adds no vote a majority needs)",
        "Use 3 (survives the loss of one).",
      ),
    )
    .default(3),
  /** Sentinels that must agree the primary is down. Unset: a majority. */
  quorum: z.int().min(1).max(7).optional(),
  /** At least 2000: Sentinel pings once a second, and less can fail over a primary it just promoted. */
  downAfterMs: z.int().min(SENTINEL_MIN_DOWN_AFTER_MS).max(600_000).default(SENTINEL_MIN_DOWN_AFTER_MS),
  failoverTimeoutMs: z.int().min(1000).max(3_600_000).default(10_000),
  parallelSyncs: z.int().min(1).max(8).default(1),
  maxmemory: z
    .string()
    .refine(
      ...rule(
        (s: string) => /^[1-9][0-9]{0,6}(mb|gb)$/.test(s),
        "be a Redis size such as 256mb or 2gb (at most 7 digits)",
        "Write e.g. maxmemory: 256mb.",
      ),
    )
    .default("256mb"),
  /** Store mode: connected replicas a write needs. Unset: 1. */
  minReplicasToWrite: z.int().min(0).max(8).optional(),
  /** Store mode: the append-only file's volume per member. Unset: 1. */
  storageGi: z.int().min(1).max(16_384).optional(),
});

const MemcachedSchema = z.strictObject({
  members: z.int().min(1).max(32).default(3),
  memoryMb: z.int().min(16).max(65_536).default(64),
  maxConnections: z.int().min(64).max(65_536).default(1024),
});

const CacheSchema = z.strictObject({
  /** Unset: redis for the shop (sessions, carts), memcached for the blog (pages). */
  engine: z.enum(["redis", "memcached", "none"]).optional(),
  redis: RedisSchema.optional(),
  memcached: MemcachedSchema.optional(),
  resources: ResourcesSchema.optional(),
});

const LocksSchema = z.strictObject({
  /** Unset: on for the shop (stock reservations), off for the blog. */
  enabled: z.boolean().optional(),
  /** etcd members. Unset: 1 on Docker, 3 on Kubernetes. */
  members: z
    .int()
    .refine(
      ...rule(
        (n: number) => [1, 3, 5].includes(n),
        "be 1, 3 or 5 (a majority must survive; an even count adds nothing)",
        "Use 3; 1 only for development.",
      ),
    )
    .optional(),
  /** Lease TTL apps are told to use. Unset: 10. */
  ttlSeconds: z.int().min(2).max(3600).optional(),
});

const MonitoringSchema = z.strictObject({
  /**
   * An exporter beside every tier (postgres_exporter, mysqld_exporter, redis_exporter,
   * memcached_exporter, nginx-prometheus-exporter; HAProxy, Patroni and etcd serve their own),
   * each logged in with its own least-privilege user, on internal ports only. Default: on.
   */
  exporters: z.boolean().default(true),
  /**
   * Docker: the stack's own Prometheus, Alertmanager, Grafana and blackbox prober, provisioned
   * with the scrape config, the alert rules and the dashboard, on 127.0.0.1 only. Default: off.
   */
  enabled: z.boolean().default(false),
  /**
   * Kubernetes: a PodMonitor per job and a PrometheusRule for the cluster's Prometheus Operator.
   * Default: off (no CRD objects, so a cluster without the operator still works).
   */
  prometheusOperator: z.boolean().default(false),
  /** How often Prometheus scrapes and evaluates; the alerts' `for:` follow it. Default: 15. */
  scrapeIntervalSeconds: z.int().min(1).max(300).default(15),
  /** Docker: host ports (on 127.0.0.1) of the UIs. Defaults: 9090, 9093, 3000. */
  ports: z
    .strictObject({
      prometheus: PORT.default(9090),
      alertmanager: PORT.default(9093),
      grafana: PORT.default(3000),
    })
    .prefault({}),
  /**
   * Kubernetes: where the scraping Prometheus runs; the NetworkPolicies admit its pods to the
   * metrics ports, and nothing else. Default: namespace monitoring, pods labelled
   * app.kubernetes.io/name: prometheus (the Prometheus Operator's).
   */
  scraper: z
    .strictObject({
      namespace: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
        .max(63)
        .default("monitoring"),
      podLabels: z
        .record(z.string().min(1).max(253), z.string().max(63))
        .default({ "app.kubernetes.io/name": "prometheus" }),
    })
    .prefault({}),
  /**
   * Kubernetes: labels on the PodMonitors and the PrometheusRule that the operator's Prometheus
   * selects them by (kube-prometheus-stack: `release: <its release name>`). Default: none.
   */
  labels: z.record(z.string().min(1).max(253), z.string().max(63)).default({}),
  /** Alert thresholds (see docs/runbooks.md). */
  thresholds: z
    .strictObject({
      volumeFullRatio: z.number().gt(0).lt(1).optional(),
      connectionsRatio: z.number().gt(0).lt(1).optional(),
      edgeErrorRatio: z.number().gt(0).lt(1).optional(),
      certificateDays: z.int().min(1).max(365).optional(),
      mysqlLagSeconds: z.int().min(1).max(86_400).optional(),
    })
    .prefault({}),
});

/**
 * An Alertmanager webhook receiver's URL, as Go's url.Parse takes it: WHATWG's parser would
 * silently drop spaces, tabs and newlines that Alertmanager refuses to start on.
 */
function isWebhookUrl(s: string): boolean {
  if (/\s/.test(s) || hasControlCharacter(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}

/** A Docker engine address as `DOCKER_HOST` takes it. */
function isDockerHost(s: string): boolean {
  if (/^unix:\/\/\/\S+$/.test(s) || /^npipe:\/\/\S+$/.test(s)) return true;
  if (!/^(tcp|ssh):\/\//.test(s)) return false;
  try {
    return new URL(s).hostname !== "";
  } catch {
    return false;
  }
}

const DockerSchema = z.strictObject({
  /**
   * The engine to deploy to, as `DOCKER_HOST` takes it: `ssh://user@host`, `tcp://host:2376`
   * (with TLS from the DOCKER_CERT_PATH of the shell), `unix:///var/run/docker.sock`. Unset: the
   * local engine (DOCKER_HOST of the shell running `pulumi up`, or the default socket).
   */
  host: z
    .string()
    .refine(
      ...rule(
        isDockerHost,
        "be a Docker engine address: ssh://user@host, tcp://host:port or unix:///path",
        "Write e.g. host: ssh://deploy@build-1.example.com.",
      ),
    )
    .optional(),
  /**
   * The host address published ports bind. Unset: 127.0.0.1, so a dev stack is reachable from
   * this machine only; 0.0.0.0 (or a LAN address) opens it to the network, knowingly.
   */
  bindAddress: z
    .string()
    .refine(
      ...rule(
        (s: string) => isIP(s) !== 0,
        "be an IP address of this host (IPv4 or IPv6, no port)",
        "Write e.g. bindAddress: 127.0.0.1, or 0.0.0.0 to publish on every interface.",
      ),
    )
    .optional(),
  /** Host port of the balancer's plain HTTP listener. */
  publicPort: PORT.default(8080),
  /** Host port of the HTTPS listener (only with balancer.tls on). Unset: 8443. */
  httpsPort: PORT.optional(),
});

/** An optional, non-empty list of IPv4 or IPv6 networks in CIDR notation; `fix` says what to write. */
function cidrList(fix: string) {
  return z
    .array(
      z.string().superRefine((c, ctx) => {
        const problem = cidrProblem(c);
        if (problem !== undefined) addRule(ctx, c, problem, fix);
      }),
    )
    .min(1)
    .optional();
}

const KubernetesSchema = z.strictObject({
  /**
   * The kubeconfig context to deploy to (`kubectl config get-contexts`). Required in production
   * stacks, so `pulumi up` never lands on whatever context is current.
   */
  context: line("Write the context's name as `kubectl config get-contexts` shows it.")
    .pipe(z.string().min(1))
    .optional(),
  /** Path of the kubeconfig file holding `context`. Unset: KUBECONFIG, then ~/.kube/config. */
  kubeconfig: line("Write the file's path, e.g. ~/.kube/prod.yaml.").pipe(z.string().min(1)).optional(),
  /** Unset: the stack's name. Never a system namespace (kube-system, default…) unless allowSystemNamespace. */
  namespace: z
    .string()
    .refine(
      ...rule(
        isDnsLabel,
        "be a DNS label (a-z, 0-9, '-', at most 63, starting and ending with a letter or digit)",
        "Write e.g. ecommerce-prod.",
      ),
    )
    .optional(),
  /**
   * Deploy into a namespace Kubernetes owns (default, kube-system, kube-public, kube-node-lease)
   * on purpose. @default false
   */
  allowSystemNamespace: z.boolean().optional(),
  storageClass: z
    .string()
    .refine(
      ...rule(
        isDnsSubdomain,
        "be a StorageClass name (lowercase DNS subdomain: a-z, 0-9, '-', '.')",
        "Write the name `kubectl get storageclass` shows, e.g. fast-ssd.",
      ),
    )
    .optional(),
  /** Where `pulumi up` pushes images it builds (the Patroni image), e.g. registry.example.com/shop. */
  imageRegistry: z
    .string()
    .refine(
      ...rule(
        (s: string) => /^[a-z0-9.-]+(:[0-9]+)?(\/[a-z0-9._-]+)*$/.test(s),
        "be a registry host with an optional path, lowercase, without a tag",
        "Write e.g. registry.example.com/shop.",
      ),
    )
    .optional(),
  /** Pod address ranges for pg_hba. Unset: 10/8, 172.16/12, 192.168/16. */
  podNetworks: cidrList("Write e.g. podNetworks: [10.244.0.0/16, fd00:10:244::/56]."),
  /** The API server's addresses, for the egress of workloads that use it (Patroni). Unset: anywhere. */
  apiServerCidrs: cidrList(
    "Write e.g. apiServerCidrs: [172.18.0.2/32] (kubectl get endpoints kubernetes -n default).",
  ),
  /** How the balancer's public ports are exposed. */
  serviceType: z.enum(["LoadBalancer", "NodePort", "ClusterIP"]).optional(),
  /** Minutes `pulumi up` waits for the public Service's address before failing. */
  serviceTimeoutMinutes: z.int().min(1).max(60).optional(),
});

type RawConfig = {
  platform: "docker" | "kubernetes";
  database: z.infer<typeof DatabaseSchema>;
  kubernetes?: z.infer<typeof KubernetesSchema>;
};
type AddIssue = (path: (string | number)[], input: unknown, message: string, fix: string) => void;

/** The stack's environment, with the platform's default filled in. */
export function stackEnvironment(c: {
  readonly platform: "docker" | "kubernetes";
  readonly environment?: "development" | "production";
}): "development" | "production" {
  return c.environment ?? (c.platform === "kubernetes" ? "production" : "development");
}

/** Whether the stack protects its data (`protectData`, on in production by default). */
export function dataProtected(
  c: Parameters<typeof stackEnvironment>[0] & { readonly protectData?: boolean },
): boolean {
  return c.protectData ?? stackEnvironment(c) === "production";
}

/**
 * The MySQL-family mode, with the engine's default filled in: Galera (automatic failover) for
 * MariaDB, replication for MySQL (Galera is MariaDB's). PostgreSQL: replication (Patroni).
 */
export function databaseMode(d: Pick<RawConfig["database"], "engine" | "mode">): "replication" | "galera" {
  return d.mode ?? (d.engine === "mariadb" ? "galera" : "replication");
}

/** Servers per database cluster, with the engine's and platform's default filled in. */
export function databaseMembers(c: RawConfig): number {
  const d = c.database;
  if (d.members !== undefined) return d.members;
  if (d.engine === "postgresql") return c.platform === "kubernetes" ? 3 : 2;
  return databaseMode(d) === "galera" ? 3 : 2;
}

/** The rules PostgresCluster enforces, said in stack-config keys. */
function postgresIssues(c: RawConfig, members: number, issue: AddIssue): void {
  const d = c.database;
  const pg = postgresqlSettings(d);
  if (d.mode === "galera") {
    issue(
      ["database", "mode"],
      d.mode,
      "be replication when database.engine is postgresql (Patroni streams to replicas; Galera is MariaDB's)",
      `Remove ${NAMESPACE}:database.mode.`,
    );
  }
  const sync = pg.synchronousMode ?? members >= 2;
  if (sync && members < 2) {
    issue(
      ["database", "postgresql", "synchronousMode"],
      true,
      `have a standby to wait for (database.members is ${from("database", members)})`,
      `Set ${NAMESPACE}:database.members: 2 or more, or database.postgresql.synchronousMode: false.`,
    );
  }
  if (sync && members < 2) {
    // Reported above; a strictness problem on top would say the same thing twice.
  } else if (pg.synchronousModeStrict && !sync) {
    issue(
      ["database", "postgresql", "synchronousModeStrict"],
      true,
      "only be set with synchronousMode",
      `Set ${NAMESPACE}:database.postgresql.synchronousMode: true, or remove synchronousModeStrict.`,
    );
  } else if (pg.synchronousModeStrict && members < 3) {
    issue(
      ["database", "postgresql", "synchronousModeStrict"],
      true,
      `have two standbys (database.members is ${from("database", members)}): with one, losing it stops every write`,
      `Set ${NAMESPACE}:database.members: 3, or synchronousModeStrict: false.`,
    );
  }
  const problem = timingsProblem({ ttl: pg.ttl, loopWait: pg.loopWait, retryTimeout: pg.retryTimeout });
  if (problem !== undefined) {
    issue(
      ["database", "postgresql", "ttl"],
      pg.ttl,
      `leave room for a loop and two retries: loopWait + 2 × retryTimeout ≤ ttl (${problem})`,
      `Raise ${NAMESPACE}:database.postgresql.ttl, or lower loopWait or retryTimeout (e.g. ttl 10, loopWait 2, retryTimeout 3).`,
    );
  }
  if (c.platform === "kubernetes" && pg.image === undefined && c.kubernetes?.imageRegistry === undefined) {
    issue(
      ["kubernetes", "imageRegistry"],
      undefined,
      "be set when database.engine is postgresql on Kubernetes and no database.postgresql.image is given (pulumi up builds the Patroni image and pushes it there)",
      `Set ${NAMESPACE}:kubernetes.imageRegistry (and docker login to it), or database.postgresql.image to an image you built from components/database/image.`,
    );
  }
  if (c.platform === "kubernetes" && pg.etcdMembers !== undefined) {
    issue(
      ["database", "postgresql", "etcdMembers"],
      pg.etcdMembers,
      "only be set on the docker platform (on Kubernetes Patroni keeps its state in the Kubernetes API)",
      `Remove ${NAMESPACE}:database.postgresql.etcdMembers.`,
    );
  }
}

/** The rules RedisCache and Memcached enforce, said in stack-config keys. */
function cacheIssues(
  c: {
    topology: "ecommerce" | "blog";
    platform: "docker" | "kubernetes";
    cache: z.infer<typeof CacheSchema>;
  },
  issue: AddIssue,
): void {
  const engine = c.cache.engine ?? DEFAULT_CACHE_ENGINE[c.topology];
  for (const other of ["redis", "memcached"] as const) {
    if (c.cache[other] !== undefined && engine !== other) {
      issue(
        ["cache", other],
        c.cache[other],
        `only be set when cache.engine is ${other} (it is ${from("cache", engine)})`,
        `Remove ${NAMESPACE}:cache.${other}, or set cache.engine: ${other}.`,
      );
    }
  }
  if (engine !== "redis") return;
  const r = c.cache.redis ?? RedisSchema.parse({});
  const mode = r.mode ?? DEFAULT_REDIS_MODE[c.topology];
  if (c.platform === "kubernetes" && r.sentinels < 3) {
    issue(
      ["cache", "redis", "sentinels"],
      r.sentinels,
      "be at least 3 on Kubernetes (one Sentinel is never highly available: its loss stops every failover)",
      `Set ${NAMESPACE}:cache.redis.sentinels: 3.`,
    );
  }
  if (r.quorum !== undefined && r.quorum > r.sentinels) {
    issue(
      ["cache", "redis", "quorum"],
      r.quorum,
      `not exceed cache.redis.sentinels (${r.sentinels}): that many could never agree`,
      `Set ${NAMESPACE}:cache.redis.quorum to a majority, e.g. ${Math.floor(r.sentinels / 2) + 1}.`,
    );
  }
  if (mode === "store" && r.replicas < 1) {
    issue(
      ["cache", "redis", "replicas"],
      r.replicas,
      "be at least 1 in store mode (a write must reach a replica before the primary can be lost)",
      `Set ${NAMESPACE}:cache.redis.replicas: 2, or cache.redis.mode: cache.`,
    );
  } else if (r.minReplicasToWrite !== undefined && (mode !== "store" || r.minReplicasToWrite > r.replicas)) {
    issue(
      ["cache", "redis", "minReplicasToWrite"],
      r.minReplicasToWrite,
      mode === "store"
        ? `not exceed cache.redis.replicas (${r.replicas})`
        : "only be set in store mode (a cache takes writes without waiting for replicas)",
      `Lower ${NAMESPACE}:cache.redis.minReplicasToWrite, or remove it.`,
    );
  }
  if (r.failoverTimeoutMs <= r.downAfterMs) {
    issue(
      ["cache", "redis", "failoverTimeoutMs"],
      r.failoverTimeoutMs,
      `exceed cache.redis.downAfterMs (${r.downAfterMs})`,
      `Set ${NAMESPACE}:cache.redis.failoverTimeoutMs to e.g. 10 × downAfterMs.`,
    );
  }
}

/**
 * Monitoring keys that the platform would ignore, or that need the exporters: refused with the
 * key that does apply.
 */
function monitoringIssues(
  c: {
    platform: "docker" | "kubernetes";
    monitoring: z.infer<typeof MonitoringSchema>;
    alertWebhookUrl?: string;
    docker?: { publicPort: number; httpsPort?: number };
    balancer: { tls: string };
  },
  issue: AddIssue,
): void {
  const m = c.monitoring;
  if (m.enabled && c.platform === "docker") {
    // Every host port of the stack takes one listener: the balancer's, then the UIs'.
    const taken = new Map<number, string>([[c.docker?.publicPort ?? 8080, "docker.publicPort"]]);
    if (c.balancer.tls !== "off") taken.set(c.docker?.httpsPort ?? 8443, "docker.httpsPort");
    for (const ui of ["prometheus", "alertmanager", "grafana"] as const) {
      const port = m.ports[ui];
      const holder = taken.get(port);
      if (holder !== undefined) {
        issue(
          ["monitoring", "ports", ui],
          port,
          `differ from ${holder} (${port}): a host port takes one listener`,
          `Set ${NAMESPACE}:monitoring.ports.${ui} to a free port (a second stack on this engine needs its own, e.g. 9091, 9094, 3001).`,
        );
      } else {
        taken.set(port, `monitoring.ports.${ui}`);
      }
    }
  }
  if (m.enabled && c.platform === "kubernetes") {
    issue(
      ["monitoring", "enabled"],
      m.enabled,
      "only be true on the docker platform (it runs Prometheus, Alertmanager and Grafana containers)",
      `On Kubernetes set ${NAMESPACE}:monitoring.prometheusOperator: true (your cluster's Prometheus Operator scrapes the stack).`,
    );
  }
  if (m.prometheusOperator && c.platform === "docker") {
    issue(
      ["monitoring", "prometheusOperator"],
      m.prometheusOperator,
      "only be true on the kubernetes platform (Docker has no Prometheus Operator)",
      `On Docker set ${NAMESPACE}:monitoring.enabled: true (the stack's own Prometheus, on 127.0.0.1).`,
    );
  }
  if (c.alertWebhookUrl !== undefined && !m.enabled) {
    issue(
      ["alertWebhookUrl"],
      c.alertWebhookUrl,
      "only be set when monitoring.enabled is true (it configures the stack's own Alertmanager)",
      c.platform === "docker"
        ? `Set ${NAMESPACE}:monitoring.enabled: true, or remove ${NAMESPACE}:alertWebhookUrl.`
        : `Remove ${NAMESPACE}:alertWebhookUrl; configure your cluster's Alertmanager's receivers there.`,
    );
  }
  if (!m.exporters && (m.enabled || m.prometheusOperator)) {
    const key = m.enabled ? "enabled" : "prometheusOperator";
    issue(
      ["monitoring", "exporters"],
      m.exporters,
      `be true when monitoring.${key} is true (there would be nothing to scrape)`,
      `Remove ${NAMESPACE}:monitoring.exporters: false, or set ${NAMESPACE}:monitoring.${key}: false.`,
    );
  }
}

/**
 * Settings the chosen topology, engine or platform would ignore: refused, with where they apply,
 * because a setting that silently does nothing is a setting the user believes in.
 */
function doNothingIssues(
  c: {
    topology: "ecommerce" | "blog";
    platform: "docker" | "kubernetes";
    balancer: { tls: string; engine?: string; algorithm: string; stickyCookie?: string };
    database: RawConfig["database"];
    cache: z.infer<typeof CacheSchema>;
    locks: z.infer<typeof LocksSchema>;
    docker?: z.infer<typeof DockerSchema>;
    kubernetes?: z.infer<typeof KubernetesSchema>;
  },
  issue: AddIssue,
): void {
  const locksOn = c.locks.enabled ?? c.topology === "ecommerce";
  if (!locksOn) {
    for (const key of ["members", "ttlSeconds"] as const) {
      if (c.locks[key] !== undefined) {
        issue(
          ["locks", key],
          c.locks[key],
          `only be set when locks are on (locks.enabled is ${c.locks.enabled === undefined ? `unset, off for the ${c.topology} topology` : "false"})`,
          `Remove ${NAMESPACE}:locks.${key}, or set locks.enabled: true.`,
        );
      }
    }
  }
  const cacheEngine = c.cache.engine ?? DEFAULT_CACHE_ENGINE[c.topology];
  if (cacheEngine === "none" && c.cache.resources !== undefined) {
    issue(
      ["cache", "resources"],
      c.cache.resources,
      "only be set when there is a cache (cache.engine is none)",
      `Remove ${NAMESPACE}:cache.resources, or set cache.engine: redis or memcached.`,
    );
  }
  const redisMode = c.cache.redis?.mode ?? DEFAULT_REDIS_MODE[c.topology];
  if (cacheEngine === "redis" && redisMode === "cache" && c.cache.redis?.storageGi !== undefined) {
    issue(
      ["cache", "redis", "storageGi"],
      c.cache.redis.storageGi,
      "only be set in store mode (a cache keeps nothing on disk)",
      `Remove ${NAMESPACE}:cache.redis.storageGi, or set cache.redis.mode: store.`,
    );
  }
  const engine = c.balancer.engine ?? DEFAULT_BALANCER_ENGINE[c.topology];
  if (engine === "nginx" && c.balancer.stickyCookie !== undefined && c.balancer.algorithm !== "round-robin") {
    issue(
      ["balancer", "algorithm"],
      c.balancer.algorithm,
      "be left unset with nginx and a stickyCookie (nginx balances by the cookie's hash; the algorithm would do nothing)",
      `Remove ${NAMESPACE}:balancer.algorithm, or use engine: haproxy (cookie for known clients, the algorithm for new ones).`,
    );
  }
  if (c.platform === "docker" && c.docker?.host !== undefined && /^(ssh|tcp):/.test(c.docker.host)) {
    if (c.docker.bindAddress === undefined) {
      issue(
        ["docker", "bindAddress"],
        undefined,
        "be set when docker.host is a remote engine (unset, ports bind 127.0.0.1 on that host, which no one here can reach)",
        `Set ${NAMESPACE}:docker.bindAddress to the remote host's address clients use (or 0.0.0.0), or reach it through an SSH tunnel to a local engine.`,
      );
    }
  }
  if (c.platform === "docker" && c.docker !== undefined) {
    const http = c.docker.publicPort;
    const https = c.docker.httpsPort;
    if (c.balancer.tls === "off" && https !== undefined) {
      issue(
        ["docker", "httpsPort"],
        https,
        "only be set when balancer.tls is on (it is off: nothing listens for HTTPS)",
        `Remove ${NAMESPACE}:docker.httpsPort, or set balancer.tls: self-signed or provided.`,
      );
    } else if (c.balancer.tls !== "off" && (https ?? 8443) === http) {
      issue(
        ["docker", "httpsPort"],
        https ?? 8443,
        `differ from docker.publicPort (${http}): a host port takes one listener`,
        `Set ${NAMESPACE}:docker.httpsPort and docker.publicPort to two free ports, e.g. 8443 and 8080.`,
      );
    }
  }
  const k = c.kubernetes;
  if (c.platform === "kubernetes" && k !== undefined) {
    const pg = c.database.engine === "postgresql";
    if (k.apiServerCidrs !== undefined && !pg) {
      issue(
        ["kubernetes", "apiServerCidrs"],
        k.apiServerCidrs,
        `only be set when database.engine is postgresql (only Patroni talks to the Kubernetes API; the engine is ${from("database", c.database.engine)})`,
        `Remove ${NAMESPACE}:kubernetes.apiServerCidrs.`,
      );
    }
    if (k.podNetworks !== undefined && !pg) {
      issue(
        ["kubernetes", "podNetworks"],
        k.podNetworks,
        `only be set when database.engine is postgresql (they go into pg_hba; the engine is ${from("database", c.database.engine)}, and NetworkPolicies pick pods by label)`,
        `Remove ${NAMESPACE}:kubernetes.podNetworks.`,
      );
    }
    if (k.serviceTimeoutMinutes !== undefined && (k.serviceType ?? "LoadBalancer") !== "LoadBalancer") {
      issue(
        ["kubernetes", "serviceTimeoutMinutes"],
        k.serviceTimeoutMinutes,
        `only be set with serviceType LoadBalancer (only a load balancer's address is waited for; serviceType is ${k.serviceType})`,
        `Remove ${NAMESPACE}:kubernetes.serviceTimeoutMinutes.`,
      );
    }
    if (k.imageRegistry !== undefined && !(pg && c.database.postgresql?.image === undefined)) {
      issue(
        ["kubernetes", "imageRegistry"],
        k.imageRegistry,
        pg
          ? "only be set when pulumi up builds the Patroni image (database.postgresql.image is given, so nothing is built)"
          : `only be set when pulumi up builds an image (only the Patroni image is built, and the engine is ${from("database", c.database.engine)})`,
        `Remove ${NAMESPACE}:kubernetes.imageRegistry${pg ? ", or remove database.postgresql.image to build it" : ""}.`,
      );
    }
    if (
      k.allowSystemNamespace !== undefined &&
      (k.namespace === undefined || !SYSTEM_NAMESPACES.includes(k.namespace))
    ) {
      issue(
        ["kubernetes", "allowSystemNamespace"],
        k.allowSystemNamespace,
        `only be set with a system kubernetes.namespace (${SYSTEM_NAMESPACES.join(", ")})`,
        `Remove ${NAMESPACE}:kubernetes.allowSystemNamespace.`,
      );
    } else if (
      k.namespace !== undefined &&
      SYSTEM_NAMESPACES.includes(k.namespace) &&
      k.allowSystemNamespace !== true
    ) {
      issue(
        ["kubernetes", "namespace"],
        k.namespace,
        `not be a namespace Kubernetes owns (${SYSTEM_NAMESPACES.join(", ")}): the stack's objects, policies and quotas would mix with the cluster's own`,
        `Use a namespace of the stack's own (e.g. the stack name), or set ${NAMESPACE}:kubernetes.allowSystemNamespace: true if you mean it.`,
      );
    }
  }
}

export const StackConfigSchema = z
  .strictObject({
    topology: z.enum(["ecommerce", "blog"]),
    platform: z.enum(["docker", "kubernetes"]),
    app: AppSchema.prefault({}),
    balancer: BalancerSchema.prefault({}),
    database: DatabaseSchema.prefault({}),
    cache: CacheSchema.prefault({}),
    locks: LocksSchema.prefault({}),
    monitoring: MonitoringSchema.prefault({}),
    /** PEM certificate chain for balancer.tls: provided (`pulumi config set ha-backend:tlsCertificate`). */
    tlsCertificate: z.string().optional(),
    /** PEM private key for balancer.tls: provided; must be a secret (`pulumi config set --secret`). */
    tlsKey: z.string().optional(),
    /**
     * Docker (with `monitoring.enabled`): where the stack's Alertmanager sends alerts, a webhook
     * receiver (a chat bridge, an incident tool). Such URLs carry tokens: it must be stored with
     * `pulumi config set --secret ha-backend:alertWebhookUrl <url>`, and no message ever shows it.
     * Unset: alerts stay in Alertmanager (its UI and API list them).
     */
    alertWebhookUrl: z
      .string()
      .refine(
        ...rule(
          isWebhookUrl,
          "be an http:// or https:// URL with a host, without spaces or control characters",
          "Give the receiver's full URL, e.g. https://alerts.example.com/hooks/ha-backend.",
        ),
      )
      .optional(),
    docker: DockerSchema.optional(),
    kubernetes: KubernetesSchema.optional(),
    /**
     * `production` stacks must name the Docker host or Kubernetes context they deploy to, and
     * protect their data by default. Unset: production on Kubernetes, development on Docker.
     */
    environment: z.enum(["development", "production"]).optional(),
    /**
     * `protect` and `retainOnDelete` on what holds data: volumes, StatefulSets (their claims are
     * kept), and the generated credentials stored in that data. Never on stateless parts.
     * Unset: on in production, off in development.
     */
    protectData: z.boolean().optional(),
    /**
     * Rotates generated credentials: generated secret name (`catalog-app-password`, as in
     * `pulumi stack --show-urns`) to any token; a new token replaces that secret once. Keep the
     * entry afterwards (removing it is a change too). See the README's rotation procedure.
     */
    credentialRotation: z
      .record(
        z
          .string()
          .refine(
            ...rule(
              isDnsLabel,
              "name generated secrets (lowercase letters, digits and '-')",
              'Write e.g. catalog-app-password: "2027-01".',
            ),
          ),
        z.string().min(1).max(64),
      )
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.database.protect !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["database", "protect"],
        input: c.database.protect,
        message: "not be set: one stack-wide key, protectData, now protects every tier's data",
        params: { fix: `Move it: ${NAMESPACE}:protectData: ${String(c.database.protect)}.` },
      });
    }
    if (stackEnvironment(c) === "production") {
      const target =
        c.platform === "kubernetes"
          ? { key: ["kubernetes", "context"], given: c.kubernetes?.context, example: "context: prod-cluster" }
          : {
              key: ["docker", "host"],
              given: c.docker?.host,
              example: "host: ssh://deploy@prod-1.example.com",
            };
      if (target.given === undefined) {
        ctx.addIssue({
          code: "custom",
          path: target.key,
          input: undefined,
          message:
            c.platform === "kubernetes"
              ? "be set in a production stack (unset, pulumi up deploys to the kubeconfig's current context, whichever cluster that is)"
              : "be set in a production stack (unset, pulumi up deploys to the DOCKER_HOST of whoever runs it)",
          params: {
            fix: `Set ${NAMESPACE}:${target.key.join(".")} in the stack file (e.g. ${target.example}), or ${NAMESPACE}:environment: development.`,
          },
        });
      }
    }
    monitoringIssues(c, (path, input, message, fix) =>
      ctx.addIssue({ code: "custom", path, input, message, params: { fix } }),
    );
    // A platform section that the chosen platform ignores is almost always a copy-paste slip.
    const other = c.platform === "docker" ? "kubernetes" : "docker";
    if (c[other] !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [other],
        input: c[other],
        message: `only be set when platform is ${other} (platform is ${from("platform", c.platform)})`,
        params: { fix: `Remove ${NAMESPACE}:${other}, or set ${NAMESPACE}:platform: ${other}.` },
      });
    }
    const b = c.balancer;
    const engine = b.engine ?? DEFAULT_BALANCER_ENGINE[c.topology];
    const issue = (path: (string | number)[], input: unknown, message: string, fix: string) =>
      ctx.addIssue({ code: "custom", path, input, message, params: { fix } });
    if (b.weights !== undefined && c.platform === "kubernetes") {
      issue(
        ["balancer", "weights"],
        b.weights,
        "only be set on the docker platform (Kubernetes pods have no stable address)",
        `Remove ${NAMESPACE}:balancer.weights.`,
      );
    } else if (b.weights !== undefined && b.weights.length !== c.app.replicas) {
      issue(
        ["balancer", "weights"],
        b.weights,
        `list one weight per app member (app.replicas is ${from("app", c.app.replicas)})`,
        `Give ${from("app", c.app.replicas)} weights, or remove them for equal shares.`,
      );
    }
    // nginx on Kubernetes reaches the pods through the Service's virtual IP (no `resolve` before
    // 1.27.3): kube-proxy picks the pod per connection, so no cookie or client-IP hash can hold one.
    const viaServiceIp =
      "when nginx runs on Kubernetes (nginx reaches the pods through the Service's virtual IP, where kube-proxy picks the pod)";
    if (engine === "nginx" && c.platform === "kubernetes" && b.stickyCookie !== undefined) {
      issue(
        ["balancer", "stickyCookie"],
        b.stickyCookie,
        `not be set ${viaServiceIp}`,
        `Set ${NAMESPACE}:balancer.engine: haproxy (a cookie per pod), or remove ${NAMESPACE}:balancer.stickyCookie.`,
      );
    }
    if (engine === "nginx" && c.platform === "kubernetes" && b.algorithm === "ip-hash") {
      issue(
        ["balancer", "algorithm"],
        b.algorithm,
        `not be ip-hash ${viaServiceIp}`,
        `Set ${NAMESPACE}:balancer.engine: haproxy (client IPs hashed over the pods), or algorithm: round-robin or least-conn.`,
      );
    }
    if (engine === "nginx" && b.backups > 0 && (b.algorithm === "ip-hash" || b.stickyCookie !== undefined)) {
      issue(
        ["balancer", "backups"],
        b.backups,
        `be 0 when nginx balances by ${b.algorithm === "ip-hash" ? "client IP (ip-hash)" : "sticky cookie"} (nginx rejects backup servers with hash balancing)`,
        `Set ${NAMESPACE}:balancer.backups: 0, use algorithm round-robin or least-conn, or engine: haproxy.`,
      );
    }
    const d = c.database;
    const members = databaseMembers(c);
    if (d.engine === "postgresql") {
      postgresIssues(c, members, issue);
    } else if (d.postgresql !== undefined) {
      issue(
        ["database", "postgresql"],
        d.postgresql,
        `only be set when database.engine is postgresql (it is ${from("database", d.engine)})`,
        `Remove ${NAMESPACE}:database.postgresql, or set database.engine: postgresql.`,
      );
    }
    const mode = databaseMode(d);
    if (d.mode === "galera" && d.engine === "mysql") {
      issue(
        ["database", "mode"],
        d.mode,
        "be replication when database.engine is mysql (Galera here is MariaDB's; MySQL Group Replication is not supported)",
        `Set ${NAMESPACE}:database.engine: mariadb for Galera (automatic failover), or mode: replication with failover: manual.`,
      );
    } else if (d.engine !== "postgresql" && mode === "replication" && d.failover !== "manual") {
      issue(
        ["database", "failover"],
        d.failover ?? "automatic (the default)",
        d.engine === "mysql"
          ? "be manual with database.engine mysql: MySQL runs GTID replication here, and nothing promotes a replica when the primary dies (Galera is MariaDB's; MySQL Group Replication is not supported)"
          : "be manual when database.mode is replication: nothing promotes a replica when the primary dies; writes stop until someone runs the promotion script (README: Replication mode)",
        d.engine === "mysql"
          ? `Set ${NAMESPACE}:database.failover: manual to accept manual failover, or database.engine: mariadb (Galera) or postgresql (Patroni) for automatic failover.`
          : `Set ${NAMESPACE}:database.failover: manual to accept manual failover, or remove database.mode (Galera: automatic failover).`,
      );
    } else if (d.failover === "manual" && (d.engine === "postgresql" || mode !== "replication")) {
      issue(
        ["database", "failover"],
        d.failover,
        `only be manual in replication mode (${d.engine === "postgresql" ? "Patroni" : "Galera"} fails over by itself)`,
        `Remove ${NAMESPACE}:database.failover.`,
      );
    }
    if (mode === "galera" && members < 3) {
      issue(
        ["database", "members"],
        members,
        "be at least 3 for galera (a majority must survive one loss)",
        `Set ${NAMESPACE}:database.members: 3.`,
      );
    }
    if (d.semiSync && d.engine === "postgresql") {
      issue(
        ["database", "semiSync"],
        d.semiSync,
        "only be set for MySQL-family engines (PostgreSQL uses database.postgresql.synchronousMode)",
        `Remove ${NAMESPACE}:database.semiSync; set database.postgresql.synchronousMode: true instead.`,
      );
    } else if (d.semiSync && mode === "galera") {
      issue(
        ["database", "semiSync"],
        d.semiSync,
        "only be set in replication mode (Galera is synchronous already)",
        `Remove ${NAMESPACE}:database.semiSync.`,
      );
    } else if (d.semiSync && members < 2) {
      issue(
        ["database", "semiSync"],
        d.semiSync,
        `have a replica to acknowledge writes (database.members is ${from("database", members)})`,
        `Set ${NAMESPACE}:database.members: 2 or more, or semiSync: false.`,
      );
    }
    if (d.shards > 1 && c.topology !== "ecommerce") {
      issue(
        ["database", "shards"],
        d.shards,
        "be 1 for the blog topology (one database; only e-commerce orders are sharded)",
        `Remove ${NAMESPACE}:database.shards.`,
      );
    }
    if (d.galera !== undefined && (d.engine === "postgresql" || mode !== "galera")) {
      issue(
        ["database", "galera"],
        d.galera,
        "only be set when database.mode is galera",
        `Remove ${NAMESPACE}:database.galera.`,
      );
    }
    cacheIssues(c, issue);
    doNothingIssues(c, issue);
    if (b.tls === "provided") {
      for (const key of ["tlsCertificate", "tlsKey"] as const) {
        if (c[key] === undefined) {
          issue(
            [key],
            undefined,
            "be set when balancer.tls is provided",
            `Run: pulumi config set ${key === "tlsKey" ? "--secret " : ""}${NAMESPACE}:${key} < ${key === "tlsKey" ? "key" : "cert"}.pem`,
          );
        }
        // The PEM checks themselves run after the schema (parseStackConfig): they need the clock.
      }
    } else {
      for (const key of ["tlsCertificate", "tlsKey"] as const) {
        if (c[key] !== undefined) {
          issue(
            [key],
            "(not shown)",
            `only be set when balancer.tls is provided (it is ${from("balancer", b.tls)})`,
            `Set ${NAMESPACE}:balancer.tls: provided, or remove ${NAMESPACE}:${key}.`,
          );
        }
      }
    }
  })
  .transform((c) => ({
    ...c,
    balancer: { ...c.balancer, engine: c.balancer.engine ?? DEFAULT_BALANCER_ENGINE[c.topology] },
  }));

/**
 * The validated stack config, with every default filled in, and the top-level keys stored with
 * `--secret`: what comes from them stays secret (app.env values become secret env).
 */
export type StackConfig = z.infer<typeof StackConfigSchema> & {
  readonly secretKeys: readonly string[];
  /** Sentences for `pulumi up` to print as warnings (a certificate close to expiry). */
  readonly warnings: readonly string[];
};
export type Topology = StackConfig["topology"];

/**
 * Thrown for invalid stack config; `problems` holds one complete sentence per problem. A
 * `RunError`, so `pulumi up` prints the sentences without a stack trace.
 */
export class StackConfigError extends pulumi.RunError {
  constructor(
    public readonly problems: string[],
    source: string,
  ) {
    super(
      `Invalid ${source} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "StackConfigError";
  }
}

function keyName(path: readonly PropertyKey[]): string {
  return path.length === 0 ? `${NAMESPACE} config` : `${NAMESPACE}:${path.map(String).join(".")}`;
}

function shown(v: unknown): string {
  if (v === REDACTED) return "a secret value (not shown)";
  return v === undefined ? "nothing" : JSON.stringify(v);
}

/** zod's type names as a stack-file author would say them. */
const TYPE_WORDS: Record<string, string> = {
  int: "a whole number",
  number: "a number",
  string: "a string",
  boolean: "true or false",
  object: "a map of settings (key: value lines)",
  record: "a map of settings (key: value lines)",
  array: "a list",
};

/** Keys whose values no message shows, stored with `--secret` or not. */
const ALWAYS_HIDDEN = ["alertWebhookUrl"] as const;

/** Shown instead of any value under a key stored with `--secret`. */
export const REDACTED = "[secret]";

/**
 * The top-level keys stored with --secret, while {@link parseStackConfig} runs (zod's refinements
 * take no parameters): a rule that quotes another key's value quotes it through {@link from}.
 */
let parsingSecretKeys: readonly string[] = [];

/** `value`, or "secret" when it comes from a key stored with --secret. */
function from(top: string, value: unknown): string {
  return parsingSecretKeys.includes(top) ? "secret" : String(value);
}

/** A zod issue as `<key> must <rule>, but <value> was provided. <fix>`; secret values are never shown. */
function describe(issue: z.core.$ZodIssue, secretKeys: readonly string[]): string[] {
  const key = keyName(issue.path);
  const secret = issue.path.length > 0 && secretKeys.includes(String(issue.path[0]));
  const input = (issue as { input?: unknown }).input;
  // Nothing given is said as such, even under a secret key: there is no value to hide.
  const given = secret && input !== undefined ? REDACTED : input;
  const sentence = (ruleText: string, fix: string) =>
    `${key} must ${ruleText}, but ${shown(given)} was provided. ${fix}`;
  switch (issue.code) {
    case "invalid_type": {
      const expected = TYPE_WORDS[issue.expected] ?? `a ${issue.expected}`;
      if (given === undefined) return [sentence(`be set to ${expected}`, `Add ${key} to the stack file.`)];
      if (typeof given === "string" && (issue.expected === "number" || issue.expected === "int")) {
        return [sentence(`be ${expected}`, "Write the number without quotes.")];
      }
      if (issue.expected === "string" && (typeof given === "number" || typeof given === "boolean")) {
        // YAML reads 3 or true as a number or boolean: a string value needs quotes.
        return [sentence(`be ${expected}`, `Put it in quotes: "${String(given)}".`)];
      }
      return [sentence(`be ${expected}`, `Write it as ${expected}.`)];
    }
    case "invalid_value": {
      const options = issue.values.map(String).join(", ");
      if (given === undefined)
        return [sentence(`be set to one of ${options}`, `Add ${key} to the stack file.`)];
      return [sentence(`be one of ${options}`, `Use one of: ${options}.`)];
    }
    case "too_small": {
      const min = Number(issue.minimum);
      const what = issue.origin === "string" ? `at least ${min} characters long` : `at least ${min}`;
      return [
        sentence(
          issue.inclusive === false ? `be greater than ${min}` : `be ${what}`,
          `Set it to ${min} or more.`,
        ),
      ];
    }
    case "too_big": {
      const max = Number(issue.maximum);
      return [sentence(`be at most ${max}`, `Set it to ${max} or less.`)];
    }
    case "unrecognized_keys":
      return issue.keys.map((k) => {
        const full = issue.path.length === 0 ? `${NAMESPACE}:${k}` : `${key}.${k}`;
        return (
          `${full} is not a known setting: ${key} must only contain known keys, but ${JSON.stringify(k)} ` +
          "was provided. Remove it or fix its spelling (infra/config.ts lists every key)."
        );
      });
    case "invalid_key":
      // A map key failed its own check (an env variable name): report it with the key as the value.
      return issue.issues.flatMap((inner) =>
        describe({ ...inner, path: issue.path, input: given } as z.core.$ZodIssue, secretKeys),
      );
    case "custom": {
      const fix = (issue.params as { fix?: string } | undefined)?.fix ?? "";
      return [sentence(issue.message, fix).trimEnd()];
    }
    default:
      return [`${key}: ${issue.message} (value: ${shown(given)}).`];
  }
}

/** What {@link parseStackConfig} knows besides the values. */
export interface StackConfigSource {
  /** Where the values came from, for the error's first line. @default "stack config" */
  readonly source?: string;
  /** Top-level keys stored with `--secret` (without the `ha-backend:` prefix). */
  readonly secretKeys?: readonly string[];
  /** The stack's name: the default Kubernetes namespace and the Docker name prefix. */
  readonly stack?: string;
  /** The time certificates are checked against. @default now */
  readonly now?: Date;
  /**
   * Keys given as values that arrive later (the Backend component's `tlsKey` as a secret Output):
   * they count as set, and the caller checks their content when they resolve.
   */
  readonly pendingKeys?: readonly ("tlsKey" | "tlsCertificate")[];
}

/**
 * Validates raw stack config (keys without the `ha-backend:` prefix). Pure: tests call it with
 * plain objects. Throws {@link StackConfigError} listing every problem at once; no message shows
 * a value stored with `--secret`.
 */
export function parseStackConfig(
  raw: Record<string, unknown>,
  from: StackConfigSource | string = {},
  legacySecretKeys: readonly string[] = [],
): StackConfig {
  const opts = typeof from === "string" ? { source: from, secretKeys: legacySecretKeys } : from;
  const source = opts.source ?? "stack config";
  const secretKeys = opts.secretKeys ?? [];
  // Never shown in a message, even stored in plain text (which is refused): it carries a token.
  const hidden = [...secretKeys, ...ALWAYS_HIDDEN];
  const pending = opts.pendingKeys ?? [];
  parsingSecretKeys = hidden;
  let result: ReturnType<typeof StackConfigSchema.safeParse>;
  try {
    const present = Object.fromEntries(pending.map((k) => [k, "(pending)"]));
    result = StackConfigSchema.safeParse({ ...raw, ...present }, { reportInput: true });
  } finally {
    parsingSecretKeys = [];
  }
  const problems = result.success ? [] : result.error.issues.flatMap((i) => describe(i, hidden));
  problems.push(...stackNameProblems(raw, opts.stack));
  const warnings: string[] = [];
  // The PEM checks need only the two strings: run them even when another key is wrong, so every
  // problem is reported in one round.
  const tlsMode = (raw.balancer as { tls?: unknown } | undefined)?.tls;
  const cert = raw.tlsCertificate;
  const key = pending.includes("tlsKey") ? undefined : raw.tlsKey;
  if (
    tlsMode === "provided" &&
    !pending.includes("tlsCertificate") &&
    typeof cert === "string" &&
    (key === undefined || typeof key === "string")
  ) {
    const check = checkTlsMaterial(cert, key, opts.now ?? new Date());
    // A certificate stored with --secret is not even described (its subject, its dates).
    problems.push(
      ...check.problems.map((p) =>
        formatTlsProblem(
          secretKeys.includes(p.key) ? { ...p, description: "a secret value (not shown)" } : p,
          `${NAMESPACE}:${p.key}`,
        ),
      ),
    );
    warnings.push(...check.warnings.map((w) => `${NAMESPACE}:tlsCertificate: ${w}`));
  }
  if (raw.alertWebhookUrl !== undefined && !secretKeys.includes("alertWebhookUrl")) {
    // A receiver's URL carries its token: in plain text it sits in the stack file and every clone.
    problems.push(
      `${NAMESPACE}:alertWebhookUrl must be stored as a secret, but a plain value was provided. ` +
        `Run: pulumi config set --secret ${NAMESPACE}:alertWebhookUrl <url>`,
    );
  }
  if (
    result.success &&
    raw.tlsKey !== undefined &&
    !pending.includes("tlsKey") &&
    !secretKeys.includes("tlsKey")
  ) {
    // A key stored in plain text sits unencrypted in the stack file and in every clone of it.
    problems.push(
      `${NAMESPACE}:tlsKey must be stored as a secret, but a plain value was provided. ` +
        `Run: pulumi config set --secret ${NAMESPACE}:tlsKey < key.pem`,
    );
  }
  if (problems.length > 0 || !result.success) throw new StackConfigError(problems, source);
  const data = { ...result.data };
  for (const k of pending) delete data[k];
  return { ...data, secretKeys: [...secretKeys].sort(), warnings };
}

/**
 * The stack's name becomes the Docker prefix of every container, network and volume, and the
 * Kubernetes namespace unless one is set: it must be a valid name for both.
 */
function stackNameProblems(raw: Record<string, unknown>, stack: string | undefined): string[] {
  if (stack === undefined) return [];
  const platform = raw.platform;
  const k = (typeof raw.kubernetes === "object" && raw.kubernetes !== null ? raw.kubernetes : {}) as {
    namespace?: unknown;
  };
  if (platform === "docker" && !/^[a-z0-9][a-z0-9_.-]*$/.test(stack)) {
    return [
      `The stack name must be lowercase letters, digits, '.', '_' or '-' on the docker platform (it prefixes every container, network and volume), but ${JSON.stringify(stack)} was provided. ` +
        `Rename the stack (pulumi stack rename), e.g. ${JSON.stringify(stack.toLowerCase().replace(/[^a-z0-9_.-]/g, "-"))}.`,
    ];
  }
  if (platform === "kubernetes" && k.namespace === undefined) {
    if (!isDnsLabel(stack)) {
      return [
        `${NAMESPACE}:kubernetes.namespace must be set when the stack name is not a DNS label (unset, the namespace is the stack name, here ${JSON.stringify(stack)}), but nothing was provided. ` +
          `Set ${NAMESPACE}:kubernetes.namespace, e.g. ${JSON.stringify(
            stack
              .toLowerCase()
              .replace(/[^a-z0-9-]/g, "-")
              .replace(/^-+|-+$/g, "")
              .slice(0, 63) || "shop",
          )}.`,
      ];
    }
    if (SYSTEM_NAMESPACES.includes(stack)) {
      return [
        `${NAMESPACE}:kubernetes.namespace must be set when the stack is named like a namespace Kubernetes owns (unset, the namespace is the stack name, here ${JSON.stringify(stack)}), but nothing was provided. ` +
          `Set ${NAMESPACE}:kubernetes.namespace to a namespace of the stack's own.`,
      ];
    }
  }
  return [];
}

/**
 * Pulumi hands config to the program as strings; structured values (YAML maps and lists) arrive
 * as JSON text. Decode those; leave plain scalars as the strings the user wrote.
 */
export function decodeConfigValue(value: string): unknown {
  const t = value.trim();
  // A top-level YAML boolean (protectData: true) arrives as the text "true".
  if (t === "true" || t === "false") return t === "true";
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  return value;
}

/** Reads every `ha-backend:*` key of the current stack and validates it. */
export function loadStackConfig(): StackConfig {
  const raw: Record<string, unknown> = {};
  const secretKeys: string[] = [];
  const prefix = `${NAMESPACE}:`;
  // Exported by the runtime but not in its typings: tells secret config (secure: in the stack file) apart.
  const runtime = pulumi.runtime as unknown as { isConfigSecret(key: string): boolean };
  for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    // Secret structured values (`--secret --path`) arrive decrypted as JSON, like plain ones: decode
    // them for validation too; the key is remembered as secret, so no message shows the value.
    raw[name] = decodeConfigValue(value);
    if (runtime.isConfigSecret(key)) secretKeys.push(name);
  }
  const stack = pulumi.getStack();
  const config = parseStackConfig(raw, {
    source: `stack config of stack "${stack}" (stacks/Pulumi.${stack}.yaml)`,
    secretKeys,
    stack,
  });
  for (const warning of config.warnings) void pulumi.log.warn(warning);
  return config;
}
