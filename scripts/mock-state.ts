/**
 * The mocked engine's answers for the few resources whose outputs programs read (generated
 * passwords and keys, certificates, image ids). No runtime import of the SDK: the example runner
 * (test/support/example-runner.js) uses it with the examples' own installed SDK.
 */
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";

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
