/**
 * The Backend component: a whole stack's settings as one resource's args (what other languages
 * get from `pulumi package add`). It must build what the stack file builds, under itself, check
 * its args like a stack file before anything exists, and keep its secrets secret.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Backend, type BackendArgs } from "../../infra/backend";
import { resolveBackendArgs } from "../../infra/backend-args";
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

  it("accepts the settings of the README's Python example", () => {
    const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
    const block = /```python\n([\s\S]*?ha\.Backend\([\s\S]*?)```/.exec(readme)?.[1] ?? "";
    const str = (key: string) => new RegExp(`${key}="([^"]*)"`).exec(block)?.[1] ?? "";
    // The settings dict as JSON: Python's literal differs only by trailing commas here.
    const dict = /settings=(\{[\s\S]*?\n {4}\}),/.exec(block)?.[1] ?? "";
    const settings = JSON.parse(dict.replace(/,(\s*[}\]])/g, "$1")) as Record<string, unknown>;
    expect(Object.keys(settings).length).toBeGreaterThan(3);
    const { config } = resolveBackendArgs(
      "shop",
      { topology: str("topology"), platform: str("platform"), settings },
      "shop",
    );
    expect([config.topology, config.platform]).toEqual(["ecommerce", "docker"]);
  });

  it.each<[string, BackendArgs, string]>([
    [
      "an unknown topology",
      { topology: "shop", platform: "docker" },
      'topology must be one of ecommerce, blog, but "shop" was provided.',
    ],
    [
      "an unknown platform",
      { topology: "blog", platform: "swarm" },
      'platform must be one of docker, kubernetes, but "swarm" was provided.',
    ],
    [
      "a setting the Backend takes as its own arg",
      { topology: "blog", platform: "docker", settings: { platform: "kubernetes" } },
      'settings.platform must not be set: it is an argument of the Backend itself, but "kubernetes" was provided. Pass platform next to settings instead.',
    ],
    [
      "a setting out of range",
      { topology: "blog", platform: "docker", settings: { database: { members: 2, mode: "galera" } } },
      "settings.database.members must be",
    ],
    [
      "a setting given as an Output (settings decide which resources exist)",
      {
        topology: "blog",
        platform: "docker",
        settings: { docker: { host: pulumi.secret("ssh://ops@build-1") } },
      },
      "settings.docker.host must be a plain value known when the program runs (settings decide which resources exist), but an Output (a secret or another resource's output) was provided. Pass plain values; to keep a setting secret, name its key in secretSettings.",
    ],
    [
      "a secret setting that cannot hold a secret",
      { topology: "blog", platform: "docker", secretSettings: ["database"] },
      'secretSettings must name only app, credentialRotation, docker, kubernetes, but ["database"] was provided.',
    ],
    [
      "balancer.tls provided without a key",
      {
        topology: "blog",
        platform: "docker",
        settings: { balancer: { tls: "provided" } },
        tlsCertificate: OFFLINE_TLS_CERTIFICATE,
      },
      "tlsKey must be set when balancer.tls is provided, but nothing was provided. Pass tlsKey (as a secret) next to settings.",
    ],
    [
      "a prefix Docker cannot use",
      { topology: "blog", platform: "docker", prefix: "Blog Site" },
      "prefix (the resource's name unless set) must be lowercase letters",
    ],
  ])("refuses %s before creating anything, naming the key", async (_, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      new Backend("site", args);
    }, message);
  });

  it("holds one Backend per program: a second would take the first's URNs", async () => {
    await expect(
      runComponents(() => {
        new Backend("shop", { topology: "blog", platform: "docker" });
        new Backend("blog", { topology: "blog", platform: "docker" });
      }),
    ).rejects.toThrow(
      /Invalid Backend "blog" \(1 problem\):\n {2}- A program holds one Backend: its resources are named like a stack's, so a second would take the URNs of the first \("shop"\)/,
    );
  });

  it("says nothing was provided for a missing value, even under a secret setting", () => {
    expect(() =>
      resolveBackendArgs(
        "site",
        {
          topology: "blog",
          platform: "docker",
          settings: { docker: { host: "ssh://ops@build-1" } },
          secretSettings: ["docker"],
        },
        "site",
      ),
    ).toThrow(
      "settings.docker.bindAddress must be set when docker.host is a remote engine (unset, ports bind 127.0.0.1 on that host, which no one here can reach), but nothing was provided. Set settings.docker.bindAddress",
    );
  });

  it("keeps a setting named in secretSettings secret, and what follows from it (a remote Docker host in url)", async () => {
    const host = "ssh://ops@build-1.internal";
    let b: Backend | undefined;
    const run = await runComponents(() => {
      b = new Backend("site", {
        topology: "blog",
        platform: "docker",
        settings: { docker: { host, bindAddress: "0.0.0.0" } },
        secretSettings: ["docker"],
      });
      return { url: b.url, outputs: b.outputs };
    });
    expect(await pulumi.isSecret(b!.url)).toBe(true);
    expectSecretsHidden(run, [host, "build-1.internal"]);
    expect(unwrapSecrets(run.rawOutputs.url)).toBe("http://build-1.internal:8080");
    // The map of every output is then secret as a whole.
    expect(await pulumi.isSecret(b!.outputs)).toBe(true);
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
      /Invalid Backend "site" args \(1 problem\):\n {2}- tlsKey must be exactly one PEM private key block/,
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
        /^error serializing property "uploads": .*Invalid Backend "site" args \(1 problem\):\n {2}- tlsKey must be exactly one PEM private key block and nothing else, but a secret value \(not shown\) was provided\./,
      ),
    ]);
    expect(end.registered.filter((r) => /::blog-lb-(nginx|haproxy)-\d$/.test(r))).toEqual([]);
  });
});
