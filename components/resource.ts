import type * as pulumi from "@pulumi/pulumi";
import { invalidArg } from "./errors";

/**
 * Every component's type token is `ha-backend:index:<Class>`, the form Pulumi's component provider
 * host and its schema use (`pulumi package add`). Earlier releases used `ha:<module>:<Class>`
 * (before 0.2) and then `ha-backend:<module>:<Class>`.
 */
export const TYPE_PACKAGE = "ha-backend";
const LEGACY_TOKENS = (module: string, cls: string) => [
  `ha:${module}:${cls}`,
  `${TYPE_PACKAGE}:${module}:${cls}`,
];

/**
 * A component's type token, and its options with aliases from the tokens that stacks created by
 * earlier releases carry, so they update in place: the engine matches the old URNs of the
 * component and, through it, of every child.
 */
export function componentToken(
  module: string,
  cls: string,
  opts: pulumi.ComponentResourceOptions | undefined,
): [string, pulumi.ComponentResourceOptions] {
  return [
    `${TYPE_PACKAGE}:index:${cls}`,
    {
      ...opts,
      aliases: [...(opts?.aliases ?? []), ...LEGACY_TOKENS(module, cls).map((type) => ({ type }))],
    },
  ];
}

/** Args every component takes for naming what it creates. */
export interface NamingArgs {
  /**
   * The base of every physical name (containers, Kubernetes objects, volumes) and child resource
   * name, instead of the component's name: like a Helm chart's `fullnameOverride`. Lets a
   * component be renamed in code (with an alias on the component) while its objects keep their
   * names and data. A DNS label.
   */
  readonly nameOverride?: string;
}

/** The base of the component's physical names: `nameOverride` when given, else its own name. */
export function physicalName(kind: string, name: string, args: NamingArgs): string {
  const override = args.nameOverride;
  if (override === undefined) return name;
  if (!/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/.test(override)) {
    invalidArg(
      kind,
      name,
      "nameOverride",
      "be a DNS label of at most 40 characters (a-z, 0-9, '-'; room for the suffixes of child names)",
      override,
      "Use the name the component had before, e.g. catalog.",
    );
  }
  return override;
}

/** Args of components that keep data. */
export interface DataArgs {
  /**
   * Protect the data: `protect` and `retainOnDelete` on the volumes, on whatever owns them (the
   * StatefulSet, whose claims are then retained) and on the generated credentials stored in that
   * data. Never on stateless parts (containers, routers, Deployments), which stay replaceable.
   * @default the component's `protect` resource option, else false
   */
  readonly protect?: boolean;
  /**
   * Generated secret name (e.g. `catalog-app-password`) to a token; a new token replaces that
   * secret once (a rotation). Other secrets are never replaced.
   */
  readonly credentialRotation?: Readonly<Record<string, pulumi.Input<string>>>;
}

/** Whether a component protects its data: its `protect` arg, else its own `protect` option. */
export function dataProtection(args: DataArgs, opts: pulumi.ComponentResourceOptions | undefined): boolean {
  return args.protect ?? opts?.protect ?? false;
}
