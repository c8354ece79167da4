/**
 * ha-backend as other projects use it: the `npm pack` tarball (what a registry, git or path
 * install delivers), the two example projects installed from it, and the multi-language schema
 * the component provider serves. Every project is installed by npm into a temporary directory,
 * type-checked with its own strict TypeScript and run with its own SDK under mocks.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isWrappedSecret, runStack, unwrapSecrets } from "../support/engine";
import { expectGoldenAt } from "../support/golden";
import {
  compileAndRun,
  installProject,
  leaksOf,
  packThisCheckout,
  ROOT,
  run,
  type ExampleRun,
  type Packed,
} from "../support/package";

jest.setTimeout(300_000);

const EXAMPLE_FILES = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts"];
let packed: Packed;
const installed: string[] = [];

beforeAll(() => {
  packed = packThisCheckout();
});
afterAll(() => {
  packed?.remove();
  for (const dir of installed) rmSync(dir, { recursive: true, force: true });
});

function install(project: string, files = EXAMPLE_FILES): string {
  const dir = installProject(join(ROOT, project), files, packed.tarball);
  installed.push(dir);
  return dir;
}

describe("npm pack", () => {
  it("ships the built library, its image build context, README and LICENSE; no tests, stacks, fixtures or scripts", () => {
    const files = packed.files;
    for (const f of [
      "package.json",
      "README.md",
      "LICENSE",
      "dist/components/index.js",
      "dist/components/index.d.ts",
      "dist/components/coordination/lock-client.js",
      "dist/components/coordination/lock-client.d.ts",
      "dist/components/database/image/Dockerfile",
      "dist/infra/backend.js",
    ]) {
      expect([f, files.includes(f)]).toEqual([f, true]);
    }
    const unwanted = files.filter((f) =>
      /^(test|stacks|scripts|bench|examples|provider|infra|components|\.github|\.ci)\/|fixtures|golden|\.test\.|\.map$|^dist\/infra\/index\.|Pulumi\.[^/]*\.yaml$/.test(
        f,
      ),
    );
    expect(unwanted).toEqual([]);
    // Only built JavaScript and declarations under dist/, besides the Dockerfile.
    expect(files.filter((f) => f.startsWith("dist/") && !/\.(js|d\.ts)$|\/Dockerfile$/.test(f))).toEqual([]);
  });

  it("declares @pulumi/* as peer dependencies whose ranges admit the versions this repo tests with", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      private?: boolean;
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      engines: { node: string };
      exports: Record<string, string | Record<string, string>>;
    };
    expect(pkg.private).toBeUndefined();
    expect(Object.keys(pkg.dependencies).filter((d) => d.startsWith("@pulumi/"))).toEqual([]);
    const peers = Object.keys(pkg.peerDependencies).sort();
    expect(peers).toEqual([
      "@pulumi/docker",
      "@pulumi/kubernetes",
      "@pulumi/pulumi",
      "@pulumi/random",
      "@pulumi/tls",
    ]);
    for (const p of peers) {
      const pinned = pkg.devDependencies[p];
      expect([p, pinned]).toEqual([p, expect.stringMatching(/^\d+\.\d+\.\d+$/)]);
      // A caret range from the tested version: the same major, that version or newer.
      expect([p, pkg.peerDependencies[p]]).toEqual([p, `^${pinned}`]);
    }
    const sdk = JSON.parse(readFileSync(join(ROOT, "node_modules/@pulumi/pulumi/package.json"), "utf8")) as {
      engines: { node: string };
    };
    expect(pkg.engines.node).toBe(sdk.engines.node);
    // Every export target is in the tarball.
    const targets = Object.values(pkg.exports).flatMap((t) =>
      typeof t === "string" ? [t] : Object.values(t),
    );
    expect(targets.map((t) => t.replace(/^\.\//, "")).filter((t) => !packed.files.includes(t))).toEqual([]);
  });
});

describe("examples/library-consumer (installed from the tarball)", () => {
  let result: ExampleRun;
  let dir: string;
  beforeAll(() => {
    dir = install("examples/library-consumer");
    result = compileAndRun(dir);
  });

  it("imports the package and the lock-client entry point from the installed tarball", () => {
    const probe = run(
      process.execPath,
      [
        "-e",
        'const m = require("ha-backend"); const b = require("ha-backend/backend"); const l = require("ha-backend/lock-client"); console.log(JSON.stringify([require.resolve("ha-backend"), typeof m.ServerCluster, typeof b.Backend, typeof l.EtcdLockClient]))',
      ],
      dir,
    );
    const [resolved, ...kinds] = JSON.parse(probe) as string[];
    expect(resolved).toBe(join(dir, "node_modules/ha-backend/dist/components/index.js"));
    expect(kinds).toEqual(["function", "function", "function"]);
  });

  it("types every entry point for TypeScript with moduleResolution node (Pulumi's templates) as well as node16", () => {
    writeFileSync(
      join(dir, "probe.ts"),
      [
        'import { ServerCluster, type ServerClusterArgs } from "ha-backend";',
        'import { Backend, type BackendArgs } from "ha-backend/backend";',
        'import { EtcdLockClient, type HeldLock } from "ha-backend/lock-client";',
        "export const kinds: [typeof ServerCluster, typeof Backend, typeof EtcdLockClient] = [ServerCluster, Backend, EtcdLockClient];",
        "export type Used = [ServerClusterArgs, BackendArgs, HeldLock];",
        "",
      ].join("\n"),
    );
    const tsc = join(dir, "node_modules", "typescript", "bin", "tsc");
    for (const [moduleKind, resolution] of [
      ["commonjs", "node"],
      ["node16", "node16"],
    ]) {
      run(
        process.execPath,
        [
          tsc,
          "--noEmit",
          "--strict",
          "--types",
          "node",
          "--module",
          moduleKind,
          "--moduleResolution",
          resolution,
          "probe.ts",
        ],
        dir,
      );
    }
  });

  it("builds app servers behind HAProxy and Redis with Sentinel on Docker", () => {
    const names = (type: string) =>
      result.resources
        .filter((r) => r.type === type)
        .map((r) => r.name)
        .sort();
    expect(names("ha-backend:index:ServerCluster")).toEqual(["api"]);
    expect(names("ha-backend:index:LoadBalancer")).toEqual(["api-lb"]);
    expect(names("ha-backend:index:RedisCache")).toEqual(["sessions"]);
    const containers = names("docker:index/container:Container");
    expect(containers.filter((n) => n.startsWith("api-app-"))).toEqual(["api-app-0", "api-app-1"]);
    expect(containers.filter((n) => n.startsWith("api-lb-haproxy-"))).toHaveLength(2);
    expect(containers.filter((n) => /^sessions-sentinel-\d$/.test(n))).toHaveLength(3);
    expect(containers.filter((n) => /^sessions-redis-\d$/.test(n))).toHaveLength(2);
    expect(result.outputs.url).toBe("http://localhost:8090");
    expect(result.outputs.sessionSentinels).toEqual([
      "sessions-sentinel-0:26379",
      "sessions-sentinel-1:26379",
      "sessions-sentinel-2:26379",
    ]);
  });

  it("keeps the generated Redis passwords secret in every resource", () => {
    const passwords = result.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
    expect(passwords.length).toBeGreaterThanOrEqual(2);
    // The mocked engine's generated value for each (scripts/mock-state.ts).
    for (const p of passwords)
      expect([p.name, leaksOf(result, `mock-password-for-${p.name}`)]).toEqual([p.name, []]);
  });
});

describe("examples/app-on-backend (StackReference to ecommerce-dev)", () => {
  const REF = "organization/ha-backend/ecommerce-dev";
  let upstream: { outputs: Record<string, unknown>; secretOutputNames: string[] };
  let databaseUrl: string;
  let dir: string;
  beforeAll(async () => {
    // What the engine answers for ecommerce-dev: its outputs from a mocked run of the real stack.
    const stack = await runStack("ecommerce-dev");
    const secretOutputNames = Object.keys(stack.rawOutputs).filter((k) =>
      isWrappedSecret(stack.rawOutputs[k]),
    );
    upstream = { outputs: unwrapSecrets(stack.rawOutputs) as Record<string, unknown>, secretOutputNames };
    databaseUrl = String(upstream.outputs.databaseUrl);
    dir = install("examples/app-on-backend");
  });

  it("reads ecommerce-dev's outputs, with the database URL among its secret ones", () => {
    expect(upstream.secretOutputNames).toContain("databaseUrl");
    expect(databaseUrl).toMatch(/^mysql:\/\/shop:[^@]+@catalog-router:3306\/catalog$/);
    expect(upstream.outputs.appNetworks).toEqual(
      expect.arrayContaining([expect.stringMatching(/^ecommerce-dev-/)]),
    );
  });

  it("puts its workers on ecommerce-dev's app-tier networks, with the cache endpoints and the URL as a secret file", () => {
    const r = compileAndRun(dir, { [REF]: upstream });
    const workers = r.resources.filter((x) => x.type === "docker:index/container:Container");
    expect(workers.map((w) => w.name).sort()).toEqual(["worker-0", "worker-1"]);
    for (const w of workers) {
      expect((w.inputs.networksAdvanced as { name: string }[]).map((n) => n.name)).toEqual(
        upstream.outputs.appNetworks,
      );
      expect(w.inputs.envs).toContain(
        `REDIS_SENTINELS=${(upstream.outputs.cacheSentinels as string[]).join(",")}`,
      );
      expect(w.inputs.envs).toContain("REDIS_MASTER_NAME=cache");
      // Handed over (the file's content) and, with no plain-text leak below, only under a secret marker.
      expect(JSON.stringify(w.inputs.uploads)).toContain(databaseUrl);
    }
    expect(leaksOf(r, databaseUrl)).toEqual([]);
    // The password itself, not only the whole URL.
    expect(leaksOf(r, databaseUrl.split(":")[2].split("@")[0])).toEqual([]);
  });

  it("control: the same check reports the URL when the reference hands it over in plain text", () => {
    const r = compileAndRun(dir, { [REF]: { ...upstream, secretOutputNames: [] } });
    expect(leaksOf(r, databaseUrl)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^docker:index\/container:Container::worker-0\.uploads/),
      ]),
    );
  });
});

describe("provider/ (pulumi package add): the schema other languages are generated from", () => {
  const PROVIDER_FILES = ["PulumiPlugin.yaml", "package.json", "tsconfig.json", "index.ts"];
  let schema: {
    name: string;
    resources: Record<
      string,
      {
        isComponent: boolean;
        inputProperties: Record<string, Record<string, unknown>>;
        requiredInputs: string[];
        properties: Record<string, Record<string, unknown>>;
      }
    >;
  };
  let text: string;
  let dir: string;
  beforeAll(() => {
    dir = install("provider", PROVIDER_FILES);
    // provider/index.ts itself, compiled with its own strict tsconfig and run with the host
    // stubbed: the options it passes are what `pulumi package add` would serve. Then the SDK's
    // own analyzer on them, as the host runs it on GetSchema (no CLI).
    run(process.execPath, [join(dir, "node_modules", "typescript", "bin", "tsc"), "-p", dir], dir);
    const script = [
      'const host = require.resolve("@pulumi/pulumi/provider/experimental", { paths: [process.cwd()] });',
      "const real = require(host);",
      "let options;",
      "require.cache[host].exports = { ...real, componentProviderHost: (o) => { options = o; return Promise.resolve(); } };",
      'require("./index.js");',
      'const { ComponentProvider } = require(require.resolve("@pulumi/pulumi/provider/experimental/provider", { paths: [process.cwd()] }));',
      "new ComponentProvider(options)",
      "  .getSchema().then((s) => process.stdout.write(s), (e) => { console.error(e); process.exit(1); });",
    ].join("\n");
    text = `${JSON.stringify(JSON.parse(run(process.execPath, ["-e", script], dir)), null, 2)}\n`;
    schema = JSON.parse(text) as typeof schema;
  });

  it("matches the checked-in schema (provider/schema.json): an API change shows in review", () => {
    expectGoldenAt(join(ROOT, "provider", "schema.json"), text);
  });

  it("exposes Backend as ha-backend:index:Backend with its settings as plain inputs and the TLS material as Inputs", () => {
    expect(schema.name).toBe("ha-backend");
    // One version for the package and its provider.
    const version = (f: string) =>
      (JSON.parse(readFileSync(join(ROOT, f), "utf8")) as { version: string }).version;
    expect(version("provider/package.json")).toBe(version("package.json"));
    expect(Object.keys(schema.resources)).toEqual(["ha-backend:index:Backend"]);
    const backend = schema.resources["ha-backend:index:Backend"];
    expect(backend.isComponent).toBe(true);
    expect(backend.requiredInputs).toEqual(["platform", "topology"]);
    const inputs = backend.inputProperties;
    // Values that decide which resources exist are plain (known when the program runs).
    expect(inputs.secretSettings).toMatchObject({ type: "array", items: { type: "string" }, plain: true });
    for (const k of ["topology", "platform", "prefix"])
      expect([k, inputs[k]]).toMatchObject([k, { type: "string", plain: true }]);
    expect(inputs.settings).toMatchObject({
      type: "object",
      plain: true,
      additionalProperties: { $ref: "pulumi.json#/Any" },
    });
    // Passed through: may be another stack's output, a secret.
    for (const k of ["tlsCertificate", "tlsKey"]) {
      expect([k, inputs[k]]).toMatchObject([k, { type: "string", optional: true }]);
      expect([k, inputs[k].plain]).toEqual([k, undefined]);
    }
    // The analyzer has no notion of secret inputs or outputs (no `secret: true` anywhere): the
    // key and the database URL are kept secret by the component itself (test/unit/backend.test.ts).
    expect(text).not.toMatch(/"secret"/);
    expect(Object.keys(backend.properties).sort()).toEqual([
      "appNamespace",
      "appNetworks",
      "appPodLabels",
      "appServiceHost",
      "cacheEngine",
      "databaseEngine",
      "databaseFailoverBudgetSeconds",
      "databaseUrl",
      "httpsUrl",
      "outputs",
      "url",
    ]);
  });

  it("the other components stay TypeScript-only: the analyzer refuses their Platform argument", () => {
    // An entry point that exports every component, next to the installed package.
    const all = join(dir, "all");
    mkdirSync(all, { recursive: true });
    writeFileSync(join(all, "package.json"), JSON.stringify({ name: "ha-backend", version: "0.0.0" }));
    writeFileSync(join(all, "index.ts"), 'export * from "ha-backend";\n');
    writeFileSync(
      join(all, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "commonjs", moduleResolution: "node" },
        files: ["index.ts"],
      }),
    );
    const script = [
      'const { Analyzer } = require(require.resolve("@pulumi/pulumi/provider/experimental/analyzer", { paths: [process.cwd()] }));',
      "const out = {};",
      'for (const c of ["ServerCluster", "LoadBalancer", "RedisCache", "PostgresCluster", "MysqlCluster"]) {',
      '  try { new Analyzer(process.cwd(), "ha-backend", require("./package.json"), new Set([c])).analyze(); out[c] = "accepted"; }',
      '  catch (e) { out[c] = e.message.split("\\n")[0]; }',
      "}",
      "process.stdout.write(JSON.stringify(out));",
    ].join("\n");
    const verdicts = JSON.parse(run(process.execPath, ["-e", script], all)) as Record<string, string>;
    for (const [component, verdict] of Object.entries(verdicts)) {
      // If one is ever accepted, expose it in provider/index.ts and update the README's table.
      expect([component, verdict]).toEqual([
        component,
        `Union types are not supported for component '${component}' property 'Platform.kind': type 'PlatformKind'`,
      ]);
    }
  });
});
