import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { maskDifferences, readTree, synthStack, writeTree } from "../../scripts/synth";
import { binary, check, tempDir } from "../support/daemons";
import { manifestKinds, validateManifests } from "../support/manifests";
import { stackConfig, stackNames } from "../support/stack-files";

const ROOT = join(__dirname, "..", "..");
// Every stack file; what each one should produce is read from the file, never from its name.
const STACKS = stackNames();

describe.each(STACKS)("synth %s", (stack) => {
  let dirA: string;
  let tree: Map<string, string>;

  beforeAll(async () => {
    tree = await synthStack(stack);
    dirA = tempDir(`synth-${stack}-a`);
    writeTree(dirA, tree);
  });

  it("is byte-identical when run twice", async () => {
    const dirB = tempDir(`synth-${stack}-b`);
    writeTree(dirB, await synthStack(stack));
    const a = readTree(dirA);
    const b = readTree(dirB);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [path, content] of a) expect([path, b.get(path)]).toEqual([path, content]);
  });

  it("lists every resource with its parent, and hides every secret value", () => {
    const resources = JSON.parse(tree.get("resources.json") ?? "[]") as {
      type: string;
      name: string;
      parent: string | null;
    }[];
    expect(resources.length).toBeGreaterThan(5);
    const components = resources
      // ha-backend's own components (the platforms aside).
      .filter((r) => r.type.startsWith("ha-backend:index:") && !r.type.endsWith("Platform"))
      .map((r) => `${r.type}::${r.name}`);
    expect(components.length).toBeGreaterThanOrEqual(2);
    const workloads = resources.filter(
      (x) => x.type.startsWith("docker:index/container") || x.type.includes("apps/v1"),
    );
    expect(workloads.length).toBeGreaterThan(0);
    // Every container or Deployment belongs to the component that declared it.
    for (const r of workloads) expect([r.name, components.includes(r.parent ?? "")]).toEqual([r.name, true]);
    for (const [path, content] of tree) {
      // Neither the generated session key nor a TLS private key appears anywhere in the tree.
      expect([
        path,
        content.includes("mock-password"),
        /PRIVATE KEY-----\n(mock|offline)/.test(content),
      ]).toEqual([path, false, false]);
    }
    expect(tree.get("resources.json")).toContain('"[secret]"');
  });

  it("masks secret values in place: a file is whole-secret only when it is a credential itself", () => {
    const files = [...tree.entries()].filter(([p]) => p.startsWith("files/"));
    const whole = files.filter(([, c]) => c.trim() === "[secret]").map(([p]) => p);
    // Credential files (/run/secrets/*, passwords, private keys) are one secret value each.
    expect(whole.filter((p) => !/\/run\/secrets\/|password$|key(\.pem)?$/.test(p))).toEqual([]);
    // Files that hold a secret among other settings show the settings.
    const partly = files.filter(([, c]) => c.includes("[secret]") && c.trim() !== "[secret]");
    expect(partly.length).toBeGreaterThan(0);
    const secrets = JSON.parse(tree.get("secrets.json") ?? "{}") as {
      sources: Record<string, string>;
      files: Record<string, string[]>;
    };
    // Every masked file names the secrets in it, each with a fingerprint (never a value).
    for (const [p] of partly) expect([p, (secrets.files[p] ?? []).length > 0]).toEqual([p, true]);
    for (const fp of Object.values(secrets.sources)) expect(fp).toMatch(/^([0-9a-f]{12}|offline-stand-in)$/);
    // Every config file a daemon reads is in the tree, also those that hold secrets (Kubernetes
    // Secrets included): each Sentinel, Redis and Patroni workload has its file.
    const names = (JSON.parse(tree.get("resources.json") ?? "[]") as { type: string; name: string }[])
      .filter((r) => /Container$|StatefulSet$/.test(r.type))
      .map((r) => r.name);
    for (const [pattern, file] of [
      [/-sentinel(-\d+|-statefulset)$/, "/sentinel.conf"],
      [/-redis(-\d+|-statefulset)$/, "/redis.conf"],
      [/-pg(-\d+|-statefulset)$/, "/patroni.yml"],
    ] as const) {
      if (names.some((n) => pattern.test(n)))
        expect([file, files.some(([p]) => p.endsWith(file))]).toEqual([file, true]);
    }
    // No plain value holds a secret or follows one, but the config digest: an HMAC made to be
    // public, whose change tells a reviewer the pods restart.
    const inClear = (JSON.parse(tree.get("secrets.json") ?? "{}") as { inClear: string[] }).inClear;
    expect(
      inClear.filter((p) => !p.endsWith('.spec.template.metadata.annotations["ha-backend/config-digest"]')),
    ).toEqual([]);
    // No absolute path of this checkout.
    for (const [p, c] of tree) expect([p, c.includes(ROOT)]).toEqual([p, false]);
  });

  it("writes the generated app config, and the real nginx accepts it", () => {
    const configs = [...tree.keys()].filter((p) => p.startsWith("files/") && p.endsWith("/app/nginx.conf"));
    expect(configs.length).toBeGreaterThan(0);
    for (const path of configs) {
      const dir = tempDir("synth-nginx");
      mkdirSync(join(dir, "logs"));
      writeFileSync(join(dir, "nginx.conf"), tree.get(path) ?? "");
      const r = check(binary("nginx"), [
        "-t",
        "-q",
        "-c",
        join(dir, "nginx.conf"),
        "-p",
        dir,
        "-e",
        join(dir, "logs", "e.log"),
      ]);
      expect([path, r.code, r.output]).toEqual([path, 0, ""]);
    }
  });

  const config = stackConfig(stack);
  if (config.platform === "kubernetes") {
    it("writes Kubernetes manifests that validate against the Kubernetes OpenAPI schema", () => {
      const kinds = manifestKinds(tree);
      expect(new Set(kinds)).toEqual(
        new Set([
          "ConfigMap",
          "Deployment",
          "Namespace",
          "NetworkPolicy",
          "PodDisruptionBudget",
          "Secret",
          "Service",
          "StatefulSet",
        ]),
      );
      const r = validateManifests(join(dirA, "kubernetes"));
      expect(r.output).toMatch(new RegExp(`^${kinds.length} valid, 0 invalid$`, "m"));
      expect(r.code).toBe(0);
    });
  } else {
    it("writes Docker specs for containers, networks and the image", () => {
      const docker = [...tree.keys()].filter((p) => p.startsWith("docker/"));
      // The app servers and the balancer replicas the stack file asks for.
      expect(
        docker.filter((p) => /^docker\/container-(shop|blog)-app-\d+$/.test(p.replace(".json", ""))),
      ).toHaveLength(config.app.replicas);
      // The balancer's replicas (not their exporters, `<member>-metrics`).
      expect(docker.filter((p) => /^docker\/container-.*-lb-.*-\d+\.json$/.test(p))).toHaveLength(
        config.balancer.replicas,
      );
      expect(docker.some((p) => p.startsWith("docker/network-"))).toBe(true);
      const container = JSON.parse(
        tree.get(docker.find((p) => /^docker\/container-(shop|blog)-app-0/.test(p)) ?? "") ?? "{}",
      );
      // The credentials (SESSION_SECRET, the database URLs) are files: the env list names their
      // paths and stays reviewable, and their content is hidden in the uploads.
      expect(container.envs).toEqual(
        expect.arrayContaining([
          "DATABASE_URL_FILE=/run/secrets/DATABASE_URL",
          "SESSION_SECRET_FILE=/run/secrets/SESSION_SECRET",
        ]),
      );
      expect(container.envs).not.toContain("[secret]");
      const uploads = container.uploads as { file: string; content: string }[];
      expect(uploads.find((u) => u.file === "/run/secrets/SESSION_SECRET")?.content).toBe("[secret]");
      expect(container.restart).toBe("unless-stopped");
    });
  }
});

describe("masking what differs between two runs", () => {
  it("masks the tokens that differ (a value derived from a secret), keeps the rest", () => {
    expect(maskDifferences("auth md5abc x\nport 1", "auth md5def x\nport 1")).toBe("auth [secret] x\nport 1");
    // Lines that do not line up: the line; line counts that differ: the whole value.
    expect(maskDifferences("  a b c", "  a bc")).toBe("  [secret]");
    expect(maskDifferences("a\nb", "a")).toBe("[secret]");
  });
});

describe("the manifest validator", () => {
  it("rejects an invalid manifest (so the check above can fail)", () => {
    const dir = tempDir("bad-manifest");
    writeFileSync(
      join(dir, "bad.yaml"),
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: three\n  selector: {}\n  template: {}\n",
    );
    const r = validateManifests(dir);
    expect(r.output).toContain("INVALID");
    expect(r.output).toContain("0 valid, 1 invalid");
    expect(r.code).toBe(1);
  });

  it("rejects a kind it has no schema for, instead of skipping it", () => {
    const dir = tempDir("unknown-kind");
    writeFileSync(join(dir, "x.yaml"), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n");
    expect(validateManifests(dir).code).toBe(1);
  });
});

describe("npm run synth", () => {
  it("works from the command line and refuses to empty a folder it did not make", () => {
    const out = tempDir("synth-cli");
    const run = (dir: string) =>
      spawnSync("npm", ["run", "--silent", "synth", "--", "blog-dev", "--out", dir], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 120_000,
      });
    const ok = run(out);
    expect(ok.stdout).toMatch(/^synth blog-dev: \d+ resources, \d+ files in /m);
    expect(ok.status).toBe(0);
    expect(readTree(out).has("resources.json")).toBe(true);

    const foreign = tempDir("not-synth");
    writeFileSync(join(foreign, "keep.txt"), "mine");
    const refused = run(foreign);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("is not empty and was not made by synth");
    expect(readFileSync(join(foreign, "keep.txt"), "utf8")).toBe("mine");
  });

  it("fails with the config error for a stack that does not exist", () => {
    const r = spawnSync("npm", ["run", "--silent", "synth", "--", "nope-dev"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("Pulumi.nope-dev.yaml");
  });
});
