/**
 * Runs the Pulumi program under the mocked engine (no CLI, no cloud, no network) and records
 * every registered resource. Shared by the unit tests and `npm run synth`.
 *
 * Facts this relies on (checked with @pulumi/pulumi 3.270): `setMocks` returns a promise;
 * `waitForRPCs` drains pending registrations; the mock monitor hands `newResource` inputs after
 * `deserializeProperties`, which lifts a secret leaf to its whole list or map, and leaves out
 * the parent and options. So the request itself is read too (see `recordRequests`).
 */
import * as pulumi from "@pulumi/pulumi";

/** The marker that replaces every secret value in recorded inputs and outputs. */
export const SECRET_MARKER = "[secret]";
/** How the RPC layer tags a secret value inside resource inputs. */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** One resource as the engine saw it. */
export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  /** `type::name` of the parent resource, if any (the root Stack is left out). */
  readonly parent?: string;
  readonly custom: boolean;
  /** `protect` resource option: pulumi refuses to delete it. */
  readonly protect: boolean;
  /** Inputs exactly as the mock monitor received them (secrets still wrapped). */
  readonly inputs: Record<string, unknown>;
}

export interface ProgramRun {
  readonly resources: RecordedResource[];
  /** Stack outputs with secret values replaced by {@link SECRET_MARKER}. */
  readonly outputs: Record<string, unknown>;
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
}

/** Deterministic fake outputs for the few resources whose outputs the program reads. */
function mockState(
  args: pulumi.runtime.MockResourceArgs,
  rotated: ReadonlySet<string>,
): Record<string, unknown> {
  const generation = rotated.has(args.name) ? " rotated" : "";
  switch (args.type) {
    case "random:index/randomPassword:RandomPassword":
      return { ...args.inputs, result: `mock-password-for-${args.name}${generation}` };
    case "tls:index/privateKey:PrivateKey":
      return {
        ...args.inputs,
        privateKeyPem: `-----BEGIN PRIVATE KEY-----\nmock ${args.name}${generation}\n-----END PRIVATE KEY-----\n`,
      };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return {
        ...args.inputs,
        certPem: `-----BEGIN CERTIFICATE-----\nmock ${args.name}\n-----END CERTIFICATE-----\n`,
      };
    case "tls:index/certRequest:CertRequest":
      return {
        ...args.inputs,
        certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\nmock ${args.name}\n-----END CERTIFICATE REQUEST-----\n`,
      };
    case "tls:index/locallySignedCert:LocallySignedCert":
      return {
        ...args.inputs,
        certPem: `-----BEGIN CERTIFICATE-----\nmock ${args.name}\n-----END CERTIFICATE-----\n`,
      };
    case "docker:index/image:Image":
      // A pushed image's digest (the engine reads it from the registry after the push).
      return { ...args.inputs, repoDigest: `${String(args.inputs.imageName).split(":")[0]}@sha256:mock` };
    case "docker:index/remoteImage:RemoteImage":
      return { ...args.inputs, imageId: `sha256:mock-${args.inputs.name}` };
    default:
      return args.inputs;
  }
}

/** True for the RPC layer's wrapper around a secret input value. */
export function isWrappedSecret(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/**
 * A deep copy of plain JSON-like data: each wrapped secret becomes `onSecret(value)` and every
 * other leaf `onLeaf(leaf)`; objects and lists keep their shape.
 */
function mapSecrets(
  v: unknown,
  onSecret: (value: unknown) => unknown,
  onLeaf = (leaf: unknown) => leaf,
): unknown {
  if (isWrappedSecret(v)) return onSecret(v.value);
  if (Array.isArray(v)) return v.map((x) => mapSecrets(x, onSecret, onLeaf));
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapSecrets(x, onSecret, onLeaf)]));
  }
  return onLeaf(v);
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

/** Resolves outputs to plain values, secrets as the marker. */
async function resolveOutputs(v: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(v)) {
    const out = v as pulumi.Output<unknown>;
    if (await pulumi.isSecret(out)) return SECRET_MARKER;
    return resolveOutputs(await new Promise<unknown>((resolve) => out.apply((x) => resolve(x))));
  }
  if (v instanceof Promise) return resolveOutputs(await v);
  if (Array.isArray(v)) return Promise.all(v.map(resolveOutputs));
  if (typeof v === "object" && v !== null && !pulumi.Resource.isInstance(v)) {
    const entries = await Promise.all(
      Object.entries(v).map(async ([k, x]) => [k, await resolveOutputs(x)] as const),
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
  readonly protect: boolean;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getProtect(): boolean;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
}

const raw = new Map<string, RawRegistration>();
let patched = false;

/** Wraps the mock monitor once so every registration request is read before it is deserialized. */
function recordRequests(): void {
  if (patched) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- internal module, not in the typings' exports
  const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as {
    MockMonitor: { prototype: { registerResource(req: RegisterRequest, cb: unknown): Promise<void> } };
  };
  const original = MockMonitor.prototype.registerResource;
  MockMonitor.prototype.registerResource = function (req: RegisterRequest, cb: unknown) {
    raw.set(`${req.getType()}::${req.getName()}`, {
      inputs: req.getObject()?.toJavaScript() ?? {},
      parentUrn: req.getParent(),
      protect: req.getProtect(),
    });
    return original.call(this, req, cb);
  };
  patched = true;
}

/** `urn:pulumi:stack::project::a$b$type::name` -> `type::name`; the root Stack is left out. */
function parentOf(urn: string): string | undefined {
  if (urn === "") return undefined;
  const parts = urn.split("::");
  const type = parts[2].split("$").pop() as string;
  return type === "pulumi:pulumi:Stack" ? undefined : `${type}::${parts.slice(3).join("::")}`;
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
  recordRequests();
  pulumi.runtime.setAllConfig(opts.config, opts.secretKeys ?? []);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const req = raw.get(`${args.type}::${args.name}`);
        recorded.push({
          type: args.type,
          name: args.name,
          parent: parentOf(req?.parentUrn ?? ""),
          custom: args.custom ?? true,
          protect: req?.protect ?? false,
          inputs: req?.inputs ?? (args.inputs as Record<string, unknown>),
        });
        return { id: `${args.name}-id`, state: mockState(args, rotated) };
      },
      call(args) {
        return args.inputs;
      },
    },
    project,
    opts.stack,
    false,
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
  return { resources: recorded.filter((r) => r.type !== "pulumi:pulumi:Stack"), outputs: resolved };
}
