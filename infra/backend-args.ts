/**
 * The Backend's checks: its args as a validated stack config, in the args' own terms, before
 * anything is created; one Backend per program.
 */
import * as pulumi from "@pulumi/pulumi";
import type { BackendArgs } from "./backend";
import {
  NAMESPACE,
  parseStackConfig,
  StackConfigError,
  type StackConfig,
  type StackConfigSource,
} from "./config";
import { preflightProblems } from "./preflight";

/** Stack settings the Backend takes as arguments of its own, not inside `settings`. */
const OWN_ARGS = ["topology", "platform", "tlsCertificate", "tlsKey"] as const;
/** Settings that may hold a secret (a remote engine's address, a kubeconfig, app env, rotation tokens). */
const SECRET_CAPABLE = ["app", "credentialRotation", "docker", "kubernetes"] as const;

/** The programs (by their Stack resource) that already hold a Backend, with its name. */
const backendsByProgram = new WeakMap<object, string>();

/** Refuses a second Backend in one program: its resources would take the first one's URNs. */
export function claimProgram(name: string): void {
  const program = pulumi.runtime.getStackResource();
  if (program === undefined) return;
  const first = backendsByProgram.get(program);
  if (first !== undefined) {
    throw new StackConfigError(
      [
        `A program holds one Backend: its resources are named like a stack's, so a second would take the URNs of the first (${JSON.stringify(first)}), but a second was declared. ` +
          "Deploy each backend as a stack (or project) of its own, and connect them with a StackReference.",
      ],
      `Backend "${name}"`,
    );
  }
  backendsByProgram.set(program, name);
}

/** The first path in `v` that holds an Output or a Promise (a value known only later), if any. */
function pendingPath(v: unknown, path: string): string | undefined {
  if (pulumi.Output.isInstance(v) || v instanceof Promise) return path;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const p = pendingPath(x, `${path}[${i}]`);
      if (p !== undefined) return p;
    }
  } else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      const p = pendingPath(x, `${path}.${k}`);
      if (p !== undefined) return p;
    }
  }
  return undefined;
}

/**
 * A stack-file problem in the words of the Backend's args: `settings.<key>` for `ha-backend:<key>`,
 * the args' own names, `prefix` for the stack name, and fixes a Backend caller can apply.
 */
function inArgsTerms(problem: string): string {
  return problem
    .replace(
      /Run: pulumi config set (--secret )?ha-backend:(\w+) < \w+\.pem/g,
      (_, secret: string | undefined, key: string) =>
        `Pass ${key}${secret ? " (as a secret)" : ""} next to settings.`,
    )
    .replace(new RegExp(`${NAMESPACE}:(\\w+)`, "g"), (_, key: string) =>
      (OWN_ARGS as readonly string[]).includes(key) ? key : `settings.${key}`,
    )
    .replace(/^The stack name/, "prefix (the resource's name unless set)")
    .replace(/Rename the stack \(pulumi stack rename\), e\.g\./, "Set prefix, e.g.")
    .replace(/\(infra\/config\.ts lists every key\)/, "(the README's Stacks section lists every key)");
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
  const fail = (problems: string[]): never => {
    throw new StackConfigError(problems.map(inArgsTerms), source);
  };
  const parse = (raw: Record<string, unknown>, opts: StackConfigSource): StackConfig => {
    try {
      return parseStackConfig(raw, opts);
    } catch (e) {
      if (e instanceof StackConfigError) fail(e.problems);
      throw e;
    }
  };
  const pending = pendingPath(args.settings, "settings");
  if (pending !== undefined) {
    fail([
      `${pending} must be a plain value known when the program runs (settings decide which resources exist), but an Output (a secret or another resource's output) was provided. ` +
        "Pass plain values; to keep a setting secret, name its key in secretSettings.",
    ]);
  }
  const settings = args.settings ?? {};
  const secretSettings = args.secretSettings ?? [];
  const unknownSecret = secretSettings.filter((k) => !(SECRET_CAPABLE as readonly string[]).includes(k));
  if (unknownSecret.length > 0) {
    fail([
      `secretSettings must name only ${SECRET_CAPABLE.join(", ")}, but ${JSON.stringify(unknownSecret)} was provided. ` +
        "Remove those keys (pass the TLS key as tlsKey).",
    ]);
  }
  const misplaced = OWN_ARGS.filter((k) => k in settings).map(
    (k) =>
      `settings.${k} must not be set: it is an argument of the Backend itself, but ${
        k === "tlsKey" ? "a value (not shown)" : JSON.stringify(settings[k])
      } was provided. Pass ${k} next to settings instead.`,
  );
  if (misplaced.length > 0) fail(misplaced);
  const tls = { tlsCertificate: args.tlsCertificate, tlsKey: args.tlsKey };
  const plainTls = Object.fromEntries(Object.entries(tls).filter(([, v]) => typeof v === "string"));
  const pendingKeys = (["tlsCertificate", "tlsKey"] as const).filter(
    (k) => tls[k] !== undefined && typeof tls[k] !== "string",
  );
  const raw = { ...settings, topology: args.topology, platform: args.platform, ...plainTls };
  // A given key is a secret whatever the caller passed: no message shows it.
  const secretKeys = [...secretSettings, ...(args.tlsKey === undefined ? [] : ["tlsKey"])];
  const from = { source, secretKeys, stack: prefix };
  const config = parse(raw, { ...from, pendingKeys });
  const problems = preflightProblems(config, prefix);
  if (problems.length > 0) fail(problems);
  for (const warning of config.warnings) void pulumi.log.warn(inArgsTerms(warning));
  if (args.tlsCertificate === undefined || args.tlsKey === undefined) return { config };
  const certificate = args.tlsCertificate;
  // Both plain: checked above.
  if (pendingKeys.length === 0)
    return { config, providedTls: { certificate, privateKey: pulumi.secret(args.tlsKey) } };
  // Resolved values get the stack file's PEM checks (expiry, key match) before any use: the
  // key's one Output carries the check, so a bad pair fails the resources that read it.
  const privateKey = pulumi.secret(
    pulumi.all([certificate, args.tlsKey]).apply(([tlsCertificate, tlsKey]) => {
      parse({ ...raw, tlsCertificate, tlsKey }, from);
      return tlsKey;
    }),
  );
  return { config, providedTls: { certificate, privateKey } };
}
