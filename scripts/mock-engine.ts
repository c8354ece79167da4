/**
 * Runs the Pulumi program under the mocked engine (no CLI, no cloud, no network) and records
 * every registered resource. Shared by the unit tests and `npm run synth`.
 *
 * Facts this relies on (checked with @pulumi/pulumi 3.270): `setMocks` returns a promise;
 * `waitForRPCs` drains pending registrations; the mock monitor hands `newResource` inputs after
 * `deserializeProperties`, which lifts a secret leaf to its whole list or map, and leaves out
 * the parent and options. So the request itself is read too (see `recordRequests`).
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { isWrappedSecret, mapSecrets, mockState, SECRET_SIG, SIG_KEY } from "./mock-state";

export { isWrappedSecret };

/** The marker that replaces every secret value in recorded inputs and outputs. */
export const SECRET_MARKER = "[secret]";

/** An alias as the program declared it: a whole URN, or the parts that differ from today's. */
export interface RecordedAlias {
  readonly urn?: string;
  readonly name?: string;
  readonly type?: string;
  /** The old parent's URN; `null` when the alias says the resource had no parent. */
  readonly parentUrn?: string | null;
}

/** The resource options the engine receives with a registration (defaults left out as the SDK sends them). */
export interface RecordedOptions {
  /** `type::name` of the explicit provider; undefined for the default provider. */
  readonly provider?: string;
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  /** `type::name` of every resource this one waits for: explicit `dependsOn` and the inputs' sources. */
  readonly dependencies: readonly string[];
  readonly aliases: readonly RecordedAlias[];
  readonly ignoreChanges: readonly string[];
  readonly customTimeouts?: { readonly create?: string; readonly update?: string; readonly delete?: string };
  readonly additionalSecretOutputs: readonly string[];
}

/** One resource as the engine saw it. */
export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  /** The URN the engine gives it (the root Stack's type is not part of it, as in the engine). */
  readonly urn: string;
  /** `type::name` of the parent resource, if any (the root Stack is left out). */
  readonly parent?: string;
  /** The parent's URN; empty for children of the root Stack. */
  readonly parentUrn: string;
  readonly custom: boolean;
  /** `protect` resource option: pulumi refuses to delete it (also in `options`). */
  readonly protect: boolean;
  readonly options: RecordedOptions;
  /** Inputs exactly as the mock monitor received them (secrets still wrapped). */
  readonly inputs: Record<string, unknown>;
}

/**
 * A secret value the run knows in full, so a reader (synth) can mask exactly it inside a larger
 * text: a generated password or key as the mock engine made it, or a stack-config secret's
 * offline stand-in. Never a real secret: offline tools cannot decrypt one.
 */
export interface SecretSource {
  readonly value: string;
  /** Where it comes from, e.g. `random:index/randomPassword:RandomPassword::cache-redis-password`. */
  readonly label: string;
  /**
   * Changes exactly when the real value would: for a generated secret, a hash of the inputs
   * that replace it (and of a simulated rotation); for a config secret, of its ciphertext.
   */
  readonly fingerprint: string;
}

export interface ProgramRun {
  readonly resources: RecordedResource[];
  /** Stack outputs with secret values replaced by {@link SECRET_MARKER}. */
  readonly outputs: Record<string, unknown>;
  /** Stack outputs as the program returned them, secrets still wrapped (see {@link isWrappedSecret}). */
  readonly rawOutputs: Record<string, unknown>;
  /** What each component registered as its outputs (`type::name` -> outputs, secrets wrapped). */
  readonly componentOutputs: ReadonlyMap<string, Record<string, unknown>>;
  /** Every generated secret the mock engine made in this run, and the config secrets it was given. */
  readonly secretSources: readonly SecretSource[];
}

/** A short, stable hash of plain data (object keys sorted). */
export function fingerprintOf(v: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(sortKeys(v)))
    .digest("hex")
    .slice(0, 12);
}

/** A copy of plain data with object keys sorted at every level (lists keep their order). */
export function sortKeys(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(sortKeys);
  if (typeof x === "object" && x !== null) {
    return Object.fromEntries(
      Object.keys(x)
        .sort()
        .map((k) => [k, sortKeys((x as Record<string, unknown>)[k])]),
    );
  }
  return x;
}

export interface RunOptions {
  /** Stack config as Pulumi passes it: full keys (`ha-backend:app`) to string values. */
  readonly config: Record<string, string>;
  /** Config keys whose values are secrets. */
  readonly secretKeys?: string[];
  readonly stack: string;
  readonly project?: string;
  /** The program: returns the stack outputs. Imported lazily by the caller, after mocks are set. */
  readonly program: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /**
   * Names of generated secrets (RandomPassword, tls PrivateKey) whose mock result differs from
   * the usual one, as after a replacement: what a rotation changes is then visible.
   */
  readonly rotated?: readonly string[];
  /**
   * Run as `pulumi preview` does before anything exists: the engine returns only the inputs, so
   * every computed output (ids, generated passwords, image ids, load balancer addresses) is
   * unknown, and code that assumes a known value fails here rather than in a user's preview.
   */
  readonly preview?: boolean;
  /** Config secrets in full (their offline stand-ins), to be listed in {@link ProgramRun.secretSources}. */
  readonly configSecrets?: readonly SecretSource[];
  /**
   * Every generated secret gets a second, different mock value (the same resources otherwise).
   * Synth runs a program twice, once this way, to find text derived from a secret that masking
   * the known values missed: whatever differs between the two runs.
   */
  readonly alternateSecrets?: boolean;
  /**
   * A generated secret's value carries a hash of its inputs, as a real one changes exactly when a
   * changed input replaces it: what reads the secret (a config digest) then changes too. Synth
   * sets it; tests that look for a value by name leave it off.
   */
  readonly secretsFollowInputs?: boolean;
}

/** Every leaf value replaced by the marker; object keys and list lengths stay visible. */
function redactLeaves(v: unknown): unknown {
  return mapSecrets(v, redactLeaves, () => SECRET_MARKER);
}

/**
 * A deep copy with every secret value replaced by the marker: what a reviewer may see. A secret
 * map (Kubernetes lifts secretness to a whole field) keeps its keys, e.g. a Secret's variable
 * names, so a diff still shows which secret changed shape.
 */
export function redactSecrets(v: unknown): unknown {
  return mapSecrets(v, redactLeaves);
}

/** A deep copy with secrets unwrapped to their values (tests use it to read what was passed). */
export function unwrapSecrets(v: unknown): unknown {
  return mapSecrets(v, unwrapSecrets);
}

/** Marks an output whose value a preview cannot know yet (as `pulumi preview` prints it). */
export const UNKNOWN_MARKER = "[unknown]";

/**
 * Resolves outputs to plain values, secrets as the marker (or, with `keepSecrets`, wrapped as the
 * RPC layer wraps them), unknowns (previews) as theirs.
 */
async function resolveOutputs(v: unknown, keepSecrets = false): Promise<unknown> {
  if (pulumi.Output.isInstance(v)) {
    const out = v as pulumi.Output<unknown> & { isKnown: Promise<boolean> };
    const secret = await pulumi.isSecret(out);
    if (secret && !keepSecrets) return SECRET_MARKER;
    if (!(await out.isKnown)) return UNKNOWN_MARKER;
    const value = await resolveOutputs(
      await new Promise<unknown>((resolve) => out.apply((x) => resolve(x))),
      keepSecrets,
    );
    return secret ? { [SIG_KEY]: SECRET_SIG, value } : value;
  }
  if (v instanceof Promise) return resolveOutputs(await v, keepSecrets);
  if (Array.isArray(v)) return Promise.all(v.map((x) => resolveOutputs(x, keepSecrets)));
  if (typeof v === "object" && v !== null && !pulumi.Resource.isInstance(v)) {
    const entries = await Promise.all(
      Object.entries(v).map(async ([k, x]) => [k, await resolveOutputs(x, keepSecrets)] as const),
    );
    return Object.fromEntries(entries.filter(([, x]) => x !== undefined));
  }
  return v;
}

/** What the engine itself would receive for a resource, read from the gRPC request. */
interface RawRegistration {
  /** Inputs as serialized: secrets wrapped exactly where they are, leaf by leaf. */
  readonly inputs: Record<string, unknown>;
  readonly parentUrn: string;
  readonly options: RecordedOptions;
}

interface AliasSpecMessage {
  getName(): string;
  getType(): string;
  getParenturn(): string;
  getNoparent(): boolean;
}

interface RegisterOutputsRequest {
  getUrn(): string;
  getOutputs(): { toJavaScript(): Record<string, unknown> } | undefined;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getProtect(): boolean;
  getProvider(): string;
  getRetainondelete(): boolean;
  getDeletebeforereplace(): boolean;
  getDependenciesList(): string[];
  getIgnorechangesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getAliasesList(): { getUrn(): string; getSpec(): AliasSpecMessage | undefined }[];
  getCustomtimeouts(): { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
}

/** `urn:pulumi:s::p::a$b$type::name` -> `type::name`. */
function shortUrn(urn: string): string {
  const parts = urn.split("::");
  return `${parts[2].split("$").pop() as string}::${parts.slice(3).join("::")}`;
}

/** The options of a registration request, in the engine's terms. */
function optionsOf(req: RegisterRequest): RecordedOptions {
  const ref = req.getProvider();
  const timeouts = req.getCustomtimeouts();
  const customTimeouts = timeouts && {
    ...(timeouts.getCreate() ? { create: timeouts.getCreate() } : {}),
    ...(timeouts.getUpdate() ? { update: timeouts.getUpdate() } : {}),
    ...(timeouts.getDelete() ? { delete: timeouts.getDelete() } : {}),
  };
  return {
    // A provider reference is `<provider urn>::<id>`.
    provider: ref === "" ? undefined : shortUrn(ref.split("::").slice(0, -1).join("::")),
    protect: req.getProtect(),
    retainOnDelete: req.getRetainondelete(),
    deleteBeforeReplace: req.getDeletebeforereplace(),
    dependencies: [...new Set(req.getDependenciesList().map(shortUrn))].sort(),
    aliases: req.getAliasesList().map((a) => {
      const spec = a.getSpec();
      if (spec === undefined) return { urn: a.getUrn() };
      return {
        ...(spec.getName() ? { name: spec.getName() } : {}),
        ...(spec.getType() ? { type: spec.getType() } : {}),
        ...(spec.getNoparent()
          ? { parentUrn: null }
          : spec.getParenturn()
            ? { parentUrn: rootless(spec.getParenturn()) }
            : {}),
      };
    }),
    ignoreChanges: req.getIgnorechangesList(),
    ...(customTimeouts && Object.keys(customTimeouts).length > 0 ? { customTimeouts } : {}),
    additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
  };
}

const raw = new Map<string, RawRegistration>();
/** Component outputs as registered (`type::name` -> outputs), for the current run. */
const componentOutputs = new Map<string, Record<string, unknown>>();
const NO_OPTIONS: RecordedOptions = {
  protect: false,
  retainOnDelete: false,
  deleteBeforeReplace: false,
  dependencies: [],
  aliases: [],
  ignoreChanges: [],
  additionalSecretOutputs: [],
};
let patched = false;

/** Wraps the mock monitor once so every registration request is read before it is deserialized. */
function recordRequests(): void {
  if (patched) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- internal module, not in the typings' exports
  const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as {
    MockMonitor: {
      prototype: {
        registerResource(req: RegisterRequest, cb: unknown): Promise<void>;
        registerResourceOutputs(req: RegisterOutputsRequest, cb: unknown): void;
      };
    };
  };
  const originalOutputs = MockMonitor.prototype.registerResourceOutputs;
  MockMonitor.prototype.registerResourceOutputs = function (req: RegisterOutputsRequest, cb: unknown) {
    const short = shortUrn(req.getUrn());
    if (!short.startsWith("pulumi:pulumi:Stack::")) {
      componentOutputs.set(short, req.getOutputs()?.toJavaScript() ?? {});
    }
    return originalOutputs.call(this, req, cb);
  };
  const original = MockMonitor.prototype.registerResource;
  MockMonitor.prototype.registerResource = function (req: RegisterRequest, cb: unknown) {
    raw.set(`${req.getType()}::${req.getName()}`, {
      inputs: req.getObject()?.toJavaScript() ?? {},
      parentUrn: req.getParent(),
      options: optionsOf(req),
    });
    return original.call(this, req, cb);
  };
  patched = true;
}

/** `urn:pulumi:stack::project::a$b$type::name` -> `type::name`; the root Stack is left out. */
function parentOf(urn: string): string | undefined {
  if (urn === "") return undefined;
  const short = shortUrn(urn);
  return short.startsWith("pulumi:pulumi:Stack::") ? undefined : short;
}

/** The qualified type (`parent$…$type`) in a URN, without the root Stack (as the engine writes it). */
function qualifiedType(urn: string): string {
  return urn
    .split("::")[2]
    .split("$")
    .filter((t) => t !== "pulumi:pulumi:Stack")
    .join("$");
}

/** A parent URN as the engine writes it; the root Stack (no parent in the engine's terms) is empty. */
function rootless(urn: string): string {
  if (urn === "" || parentOf(urn) === undefined) return "";
  const parts = urn.split("::");
  return [parts[0], parts[1], qualifiedType(urn), ...parts.slice(3)].join("::");
}

/** The URN the engine gives a resource of this type and name under `parentUrn`. */
export function urnOf(stack: string, project: string, type: string, name: string, parentUrn: string): string {
  const parent = parentUrn === "" ? "" : qualifiedType(parentUrn);
  return `urn:pulumi:${stack}::${project}::${parent === "" ? type : `${parent}$${type}`}::${name}`;
}

/** The name part of a URN. */
function urnName(urn: string): string {
  return urn.split("::").slice(3).join("::");
}

/**
 * Every URN by which the engine would find this resource's earlier state, computed as the engine
 * does: its own aliases (a spec's missing parts default to today's), and for each alias URN of
 * its parent the URN it had under that parent, with the parent's name prefix swapped for the
 * alias's (a child named `<parent>-x` was `<old parent>-x`). Checking an old run's URNs against
 * these proves an update keeps the resources instead of replacing them.
 */
export function aliasUrns(r: RecordedResource, byUrn: ReadonlyMap<string, RecordedResource>): string[] {
  const [head, project] = r.urn.split("::");
  const stack = head.slice("urn:pulumi:".length);
  const parent = r.parentUrn === "" ? undefined : byUrn.get(r.parentUrn);
  const own = r.options.aliases.map((a) =>
    a.urn !== undefined
      ? a.urn
      : urnOf(
          stack,
          project,
          a.type ?? r.type,
          a.name ?? r.name,
          a.parentUrn === null ? "" : (a.parentUrn ?? r.parentUrn),
        ),
  );
  const inherited =
    parent === undefined
      ? []
      : aliasUrns(parent, byUrn).flatMap((old) => {
          const renamed = r.name.startsWith(parent.name)
            ? urnName(old) + r.name.slice(parent.name.length)
            : r.name;
          return [
            urnOf(stack, project, r.type, renamed, old),
            // The engine multiplies the child's own aliases (their type and name) by the parent's.
            ...r.options.aliases
              .filter((a) => a.urn === undefined)
              .map((a) => urnOf(stack, project, a.type ?? r.type, a.name ?? renamed, old)),
          ];
        });
  return [...new Set([...own, ...inherited])].filter((u) => u !== r.urn).sort();
}

/**
 * Runs `program` for one stack under mocks. Resolves with every registered resource and the
 * stack outputs; rejects with the program's own error (e.g. invalid config), in which case
 * `recorded` (if given) shows what had been registered before the error.
 */
export async function runProgramWithMocks(
  opts: RunOptions,
  recorded: RecordedResource[] = [],
): Promise<ProgramRun> {
  const project = opts.project ?? "ha-backend";
  const rotated = new Set(opts.rotated ?? []);
  const preview = opts.preview ?? false;
  const alternate = opts.alternateSecrets ?? false;
  const sources: SecretSource[] = [...(opts.configSecrets ?? [])];
  recordRequests();
  componentOutputs.clear();
  pulumi.runtime.setAllConfig(opts.config, opts.secretKeys ?? []);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const req = raw.get(`${args.type}::${args.name}`);
        const options = req?.options ?? NO_OPTIONS;
        recorded.push({
          type: args.type,
          name: args.name,
          urn: urnOf(opts.stack, project, args.type, args.name, req?.parentUrn ?? ""),
          parent: parentOf(req?.parentUrn ?? ""),
          parentUrn: rootless(req?.parentUrn ?? ""),
          custom: args.custom ?? true,
          protect: options.protect,
          options,
          inputs: req?.inputs ?? (args.inputs as Record<string, unknown>),
        });
        // A preview has no ids yet: the engine answers an empty one, which the SDK reads as unknown.
        const fingerprint = fingerprintOf([unwrapSecrets(args.inputs), rotated.has(args.name)]);
        const state = mockState(
          args,
          {
            rotated: rotated.has(args.name),
            alternate,
            generation: opts.secretsFollowInputs ? `-${fingerprint.slice(0, 8)}` : "",
          },
          preview,
        );
        const generated =
          args.type === "random:index/randomPassword:RandomPassword"
            ? state.result
            : args.type === "tls:index/privateKey:PrivateKey"
              ? state.privateKeyPem
              : undefined;
        if (typeof generated === "string") {
          sources.push({
            value: generated,
            label: `${args.type}::${args.name}`,
            // A replacement (new value) follows a change of any input; a rotation is one too.
            fingerprint,
          });
        }
        return { id: preview ? undefined : `${args.name}-id`, state };
      },
      call(args) {
        return args.inputs;
      },
    },
    project,
    opts.stack,
    preview,
  );

  let failure: unknown;
  // Kept as the program returned them: the value runInPulumiStack resolves to is plain data,
  // with every secret already unwrapped.
  let outputs: Record<string, unknown> = {};
  await pulumi.runtime.runInPulumiStack(async () => {
    try {
      outputs = await opts.program();
      return outputs;
    } catch (e) {
      failure = e;
      return {};
    }
  });
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  if (failure !== undefined) throw failure;
  const resolved = (await resolveOutputs(outputs)) as Record<string, unknown>;
  return {
    resources: recorded.filter((r) => r.type !== "pulumi:pulumi:Stack"),
    outputs: resolved,
    rawOutputs: (await resolveOutputs(outputs, true)) as Record<string, unknown>,
    componentOutputs: new Map(componentOutputs),
    secretSources: sources,
  };
}
