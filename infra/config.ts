import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { isCpuQuantity, isMemoryQuantity } from "../components/platform/quantity";

/** The stack-config namespace: every key in `stacks/Pulumi.<stack>.yaml` that this program reads. */
export const NAMESPACE = "ha-backend";

/**
 * A check with its own rule and fix text. zod carries `params` on custom issues, so the error
 * formatter can say *how to fix* a specific rule instead of a generic hint.
 */
function rule<T>(check: (v: T) => boolean, ruleText: string, fix: string) {
  return [check, { message: ruleText, params: { fix } }] as const;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PORT = z.int().min(1).max(65535);

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
  image: z
    .string()
    .refine(
      ...rule(
        (s: string) => /^[^\s:]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*)$/.test(s) && !s.endsWith(":latest"),
        "be an image pinned by a tag other than latest (name:tag)",
        "Give an explicit version, e.g. image: nginx:1.28.0-alpine, or remove it to use the demo app.",
      ),
    )
    // Unset: the demo app (official nginx image with a generated config) serves.
    .optional(),
  replicas: z.int().min(1).max(50).default(2),
  port: PORT.default(8080),
  healthCheckPath: z
    .string()
    .refine(
      ...rule(
        (s: string) => /^\/[A-Za-z0-9/_.-]*$/.test(s),
        "be a URL path starting with /",
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
            (s: string) => ENV_NAME.test(s),
            "use names of letters, digits and _ that do not start with a digit",
            "Rename the variable, e.g. LOG_LEVEL.",
          ),
        ),
      z.string(),
    )
    .default({}),
});

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

const DatabaseSchema = z.strictObject({
  engine: z.enum(["mariadb", "mysql"]).default("mariadb"),
  mode: z.enum(["replication", "galera"]).default("replication"),
  /** Servers per cluster. Unset: 2 for replication (primary + replica), 3 for Galera. */
  members: z.int().min(1).max(9).optional(),
  semiSync: z.boolean().default(false),
  /** E-commerce only: independent clusters the orders are split across. */
  shards: z.int().min(1).max(64).default(1),
  storageGi: z.int().min(1).max(16_384).default(10),
  /** Keep data volumes on destroy/replace. Unset: on for Kubernetes, off for Docker. */
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
});

const DockerSchema = z.strictObject({
  /** Host port of the balancer's plain HTTP listener. */
  publicPort: PORT.default(8080),
  /** Host port of the HTTPS listener (when balancer.tls is on). */
  httpsPort: PORT.default(8443),
});

const KubernetesSchema = z.strictObject({
  namespace: z
    .string()
    .refine(
      ...rule((s: string) => DNS_LABEL.test(s), "be a DNS label (a-z, 0-9, -)", "Write e.g. ecommerce-prod."),
    )
    .optional(),
  storageClass: z.string().min(1).optional(),
});

export const StackConfigSchema = z
  .strictObject({
    topology: z.enum(["ecommerce", "blog"]),
    platform: z.enum(["docker", "kubernetes"]),
    app: AppSchema.prefault({}),
    balancer: BalancerSchema.prefault({}),
    database: DatabaseSchema.prefault({}),
    /** PEM certificate chain for balancer.tls: provided (`pulumi config set ha-backend:tlsCertificate`). */
    tlsCertificate: z.string().optional(),
    /** PEM private key for balancer.tls: provided; must be a secret (`pulumi config set --secret`). */
    tlsKey: z.string().optional(),
    docker: DockerSchema.optional(),
    kubernetes: KubernetesSchema.optional(),
  })
  .superRefine((c, ctx) => {
    // A platform section that the chosen platform ignores is almost always a copy-paste slip.
    const other = c.platform === "docker" ? "kubernetes" : "docker";
    if (c[other] !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [other],
        input: c[other],
        message: `only be set when platform is ${other} (platform is ${c.platform})`,
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
        `list one weight per app member (app.replicas is ${c.app.replicas})`,
        `Give ${c.app.replicas} weights, or remove them for equal shares.`,
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
    const members = d.members ?? (d.mode === "galera" ? 3 : 2);
    if (d.mode === "galera" && d.engine === "mysql") {
      issue(
        ["database", "mode"],
        d.mode,
        "be replication when database.engine is mysql (Galera here is MariaDB's)",
        `Set ${NAMESPACE}:database.engine: mariadb, or mode: replication.`,
      );
    }
    if (d.mode === "galera" && members < 3) {
      issue(
        ["database", "members"],
        members,
        "be at least 3 for galera (a majority must survive one loss)",
        `Set ${NAMESPACE}:database.members: 3.`,
      );
    }
    if (d.semiSync && d.mode === "galera") {
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
        `have a replica to acknowledge writes (database.members is ${members})`,
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
    if (d.galera !== undefined && d.mode !== "galera") {
      issue(
        ["database", "galera"],
        d.galera,
        "only be set when database.mode is galera",
        `Remove ${NAMESPACE}:database.galera.`,
      );
    }
    if (b.tls === "provided") {
      for (const key of ["tlsCertificate", "tlsKey"] as const) {
        if (c[key] === undefined) {
          issue(
            [key],
            undefined,
            "be set when balancer.tls is provided",
            `Run: pulumi config set ${key === "tlsKey" ? "--secret " : ""}${NAMESPACE}:${key} < ${key === "tlsKey" ? "key" : "cert"}.pem`,
          );
        } else if (!(c[key] as string).includes("-----BEGIN ")) {
          issue([key], "(not shown)", "be PEM text (-----BEGIN …)", "Give the PEM file's contents.");
        }
      }
    } else {
      for (const key of ["tlsCertificate", "tlsKey"] as const) {
        if (c[key] !== undefined) {
          issue(
            [key],
            "(not shown)",
            `only be set when balancer.tls is provided (it is ${b.tls})`,
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

/** The validated stack config, with every default filled in. */
export type StackConfig = z.infer<typeof StackConfigSchema>;
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

/** A zod issue as `<key> must <rule>, but <value> was provided. <fix>`. */
function describe(issue: z.core.$ZodIssue): string[] {
  const key = keyName(issue.path);
  const given = (issue as { input?: unknown }).input;
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
        describe({ ...inner, path: issue.path, input: given } as z.core.$ZodIssue),
      );
    case "custom": {
      const fix = (issue.params as { fix?: string } | undefined)?.fix ?? "";
      return [sentence(issue.message, fix).trimEnd()];
    }
    default:
      return [`${key}: ${issue.message} (value: ${shown(given)}).`];
  }
}

/**
 * Validates raw stack config (keys without the `ha-backend:` prefix). Pure: tests call it with
 * plain objects. Throws {@link StackConfigError} listing every problem at once.
 */
export function parseStackConfig(
  raw: Record<string, unknown>,
  source = "stack config",
  secretKeys: readonly string[] = [],
): StackConfig {
  const result = StackConfigSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    throw new StackConfigError(result.error.issues.flatMap(describe), source);
  }
  if (result.data.tlsKey !== undefined && !secretKeys.includes("tlsKey")) {
    // A key stored in plain text sits unencrypted in the stack file and in every clone of it.
    throw new StackConfigError(
      [
        `${NAMESPACE}:tlsKey must be stored as a secret, but a plain value was provided. ` +
          `Run: pulumi config set --secret ${NAMESPACE}:tlsKey < key.pem`,
      ],
      source,
    );
  }
  return result.data;
}

/**
 * Pulumi hands config to the program as strings; structured values (YAML maps and lists) arrive
 * as JSON text. Decode those; leave plain scalars as the strings the user wrote.
 */
export function decodeConfigValue(value: string): unknown {
  const t = value.trim();
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
    // Secret values stay raw strings (PEM text is never JSON).
    raw[name] = runtime.isConfigSecret(key) ? value : decodeConfigValue(value);
    if (runtime.isConfigSecret(key)) secretKeys.push(name);
  }
  const stack = pulumi.getStack();
  return parseStackConfig(raw, `stack config of stack "${stack}" (stacks/Pulumi.${stack}.yaml)`, secretKeys);
}
