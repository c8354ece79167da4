/**
 * The Backend component: a whole stack's settings as one resource's args (what other languages
 * get from `pulumi package add`). It must build what the stack file builds, under itself, check
 * its args like a stack file before anything exists, and keep its secrets secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { Backend, resolveBackendArgs, type BackendArgs } from "../../components";
import { readStackFile } from "../../scripts/stack-file";
import { OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY } from "../../scripts/offline-tls";
import { decodeConfigValue } from "../../infra/config";
import {
  expectRejectedBeforeAnyResource,
  expectSecretsHidden,
  isWrappedSecret,
  ofType,
  runComponents,
  runStack,
  unwrapSecrets,
  valueOf,
} from "../support/engine";
import { runFailingProgram } from "../support/output-failures";

/** A stack file's settings as Backend args: its `ha-backend:*` keys, topology and platform apart. */
function argsOf(stack: string): BackendArgs {
  const { config } = readStackFile(stack);
  const settings: Record<string, unknown> = Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k.slice("ha-backend:".length), decodeConfigValue(v)]),
  );
  const { topology, platform, tlsCertificate, tlsKey, ...rest } = settings;
  return {
    topology: String(topology),
    platform: String(platform),
    settings: rest,
    ...(tlsCertificate === undefined ? {} : { tlsCertificate: String(tlsCertificate) }),
    ...(tlsKey === undefined ? {} : { tlsKey: pulumi.secret(String(tlsKey)) }),
  };
}

describe("Backend", () => {
  it.each(["ecommerce-dev", "blog-dev", "ecommerce-prod"])(
    "builds what stack %s builds, every resource under the Backend",
    async (stack) => {
      const viaStack = await runStack(stack);
      const viaBackend = await runComponents(() => {
        new Backend(stack, argsOf(stack));
      });
      const key = (r: { type: string; name: string }) => `${r.type}::${r.name}`;
      const backend = viaBackend.resources.filter((r) => r.type !== "ha-backend:index:Backend");
      expect(backend.map(key).sort()).toEqual(viaStack.resources.map(key).sort());
      // The stack's top-level resources are the Backend's children; the rest keep their parents.
      const isTopLevel = (r: { parent?: string | null }) => r.parent === undefined || r.parent === null;
      const topLevel = new Set(viaStack.resources.filter(isTopLevel).map(key));
      expect(topLevel.size).toBeGreaterThan(3);
      for (const r of backend) {
        expect([key(r), r.parent]).toEqual([
          key(r),
          topLevel.has(key(r))
            ? `ha-backend:index:Backend::${stack}`
            : viaStack.resources.find((s) => key(s) === key(r))!.parent,
        ]);
      }
      // Same physical names (the prefix is the resource's name, like a stack's name).
      const containerNames = (run: typeof viaStack) =>
        ofType(run, "docker:index/container:Container")
          .map((c) => c.inputs.name)
          .sort();
      expect(containerNames(viaBackend)).toEqual(containerNames(viaStack));
    },
  );

  it("exports the stack's outputs, the database URL only as a secret", async () => {
    let b: Backend | undefined;
    const run = await runComponents(() => {
      b = new Backend("shop", argsOf("ecommerce-dev"));
      return { databaseUrl: b.databaseUrl, outputs: b.outputs, url: b.url, appNetworks: b.appNetworks };
    });
    expect(await pulumi.isSecret(b!.databaseUrl)).toBe(true);
    expect(isWrappedSecret(run.rawOutputs.databaseUrl)).toBe(true);
    expect(unwrapSecrets(run.rawOutputs.databaseUrl)).toMatch(
      /^mysql:\/\/shop:mock-password-for-[^@]+@catalog-router:3306\/catalog$/,
    );
    const outputs = run.outputs.outputs as Record<string, unknown>;
    expect(outputs).not.toHaveProperty("databaseUrl");
    expect(outputs).toMatchObject({ topology: "ecommerce", platform: "docker", cacheMasterName: "cache" });
    expect(run.outputs.url).toBe("http://localhost:8080");
    expect(await valueOf(b!.cacheEngine)).toBe("redis");
    expect(run.outputs.appNetworks).toEqual(
      expect.arrayContaining(["shop-catalog-router-from-app", "shop-cache-sentinel-from-app"]),
    );
  });

  it.each<[string, BackendArgs, string]>([
    [
      "an unknown topology",
      { topology: "shop", platform: "docker" },
      'ha-backend:topology must be one of ecommerce, blog, but "shop" was provided.',
    ],
    [
      "an unknown platform",
      { topology: "blog", platform: "swarm" },
      'ha-backend:platform must be one of docker, kubernetes, but "swarm" was provided.',
    ],
    [
      "a setting the Backend takes as its own arg",
      { topology: "blog", platform: "docker", settings: { platform: "kubernetes" } },
      'settings.platform must not be set: it is an argument of the Backend itself, but "kubernetes" was provided. Pass platform next to settings instead.',
    ],
    [
      "a setting out of range",
      { topology: "blog", platform: "docker", settings: { database: { members: 2, mode: "galera" } } },
      "ha-backend:database.members",
    ],
    [
      "a prefix Docker cannot use",
      { topology: "blog", platform: "docker", prefix: "Blog Site" },
      "The stack name must be lowercase letters",
    ],
  ])("refuses %s before creating anything, naming the key", async (_, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      new Backend("site", args);
    }, message);
  });

  it("takes the TLS key as an Input (another stack's secret) and keeps it secret in the balancer", async () => {
    const run = await runComponents(() => {
      new Backend("site", {
        topology: "blog",
        platform: "docker",
        settings: { balancer: { tls: "provided" } },
        tlsCertificate: OFFLINE_TLS_CERTIFICATE,
        // As a StackReference or a secret store hands it over: an Output, not a string.
        tlsKey: pulumi.output(OFFLINE_TLS_KEY),
      });
    });
    const keyLine = OFFLINE_TLS_KEY.split("\n")[1];
    const balancers = ofType(run, "docker:index/container:Container").filter((c) => /-lb-/.test(c.name));
    expect(balancers.length).toBeGreaterThanOrEqual(2);
    expectSecretsHidden(run, [keyLine]);
    // It is there, under the secret marker.
    expect(balancers.some((c) => JSON.stringify(unwrapSecrets(c.inputs)).includes(keyLine))).toBe(true);
  });

  it("checks the TLS pair with the stack file's rules: a plain one at once, an Output one when it resolves", async () => {
    const args: BackendArgs = {
      topology: "blog",
      platform: "docker",
      settings: { balancer: { tls: "provided" } },
      tlsCertificate: OFFLINE_TLS_CERTIFICATE,
    };
    expect(() => resolveBackendArgs("site", { ...args, tlsKey: "not a key" }, "site")).toThrow(
      /Invalid Backend "site" args \(1 problem\):\n {2}- ha-backend:tlsKey must be exactly one PEM private key block/,
    );
    // An Output defers the same call until it resolves (a bad one then fails the deployment).
    const { providedTls } = resolveBackendArgs(
      "site",
      { ...args, tlsKey: pulumi.output(OFFLINE_TLS_KEY) },
      "site",
    );
    expect(await pulumi.isSecret(pulumi.output(providedTls!.privateKey))).toBe(true);
    expect(await valueOf(pulumi.output(providedTls!.privateKey))).toBe(OFFLINE_TLS_KEY);
  });

  it("fails the program with that message when a TLS key given as an Output is bad, before any balancer member", () => {
    const end = runFailingProgram("backend-bad-tls-key");
    expect(end.thrown).toBeUndefined();
    expect(end.unhandled).toEqual([
      expect.stringMatching(
        // The engine names the property it was serializing: the balancer's key file.
        /^error serializing property "uploads": .*Invalid Backend "site" args \(1 problem\):\n {2}- ha-backend:tlsKey must be exactly one PEM private key block and nothing else, but a secret value \(not shown\) was provided\./,
      ),
    ]);
    expect(end.registered.filter((r) => /::blog-lb-(nginx|haproxy)-\d$/.test(r))).toEqual([]);
  });
});
