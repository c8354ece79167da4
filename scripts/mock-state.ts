/**
 * The mocked engine's answers for the few resources whose outputs programs read (generated
 * passwords and keys, certificates, image ids), and how the RPC layer wraps a secret. No
 * runtime import of the SDK: the example runner (test/support/example-runner.js) uses it with
 * the examples' own installed SDK.
 */
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";

/** How the RPC layer tags a secret value inside resource inputs. */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** True for the RPC layer's wrapper around a secret input value. */
export function isWrappedSecret(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/**
 * A deep copy of plain JSON-like data: each wrapped secret becomes `onSecret(value)` and every
 * other leaf `onLeaf(leaf)`; objects and lists keep their shape.
 */
export function mapSecrets(
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

/** How the mock engine makes generated secrets (see {@link RunOptions}). */
export interface SecretStyle {
  readonly rotated: boolean;
  readonly alternate: boolean;
  /** Appended to a generated secret's value: changes when the real value would (synth). */
  readonly generation: string;
}

/** Deterministic fake outputs for the few resources whose outputs the program reads. */
export function mockState(
  args: pulumi.runtime.MockResourceArgs,
  style: SecretStyle,
  preview: boolean,
): Record<string, unknown> {
  // A preview of a create: the provider echoes the inputs, everything it would compute is unknown.
  if (preview) return args.inputs;
  // No space: a fake password must be one the provider could generate (renderers refuse spaces).
  const generation = (style.rotated ? "-rotated" : "") + style.generation;
  // The alternate value shares no prefix with the usual one, so an encoding of it differs early.
  const alternate = createHash("sha256").update(`${args.name}${generation}`).digest("hex").slice(0, 24);
  switch (args.type) {
    case "random:index/randomPassword:RandomPassword":
      return {
        ...args.inputs,
        result: style.alternate ? `Z${alternate}` : `mock-password-for-${args.name}${generation}`,
      };
    case "tls:index/privateKey:PrivateKey":
      return {
        ...args.inputs,
        privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${style.alternate ? `Z${alternate}` : `mock ${args.name}${generation}`}\n-----END PRIVATE KEY-----\n`,
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
