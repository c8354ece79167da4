import { spawnSync } from "node:child_process";
import { cpSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import {
  COMMENT_LIMIT,
  compareStack,
  configDiff,
  renderReport,
  REPORT_MARKER,
  scrub,
  type StackDiff,
} from "../../scripts/config-diff";
import { dockerPaths, networkPolicyPaths, type TreeResource } from "../../scripts/diff-model";
import { tempDir } from "../support/daemons";

/**
 * The config diff on real commits: a temporary git repository holding this project's program and
 * stack files (node_modules linked), a base commit, and one commit per case on top of it. Each
 * case runs the tool as a pull request's job does (base via git worktree, both sides synthesized)
 * and reads the report.
 */
const ROOT = join(__dirname, "..", "..");
const repo = tempDir("config-diff-repo");
let baseSha = "";

function git(...args: string[]): string {
  const r = spawnSync("git", args, { cwd: repo, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

type StackDoc = { config: Record<string, Record<string, unknown> | string> };

function readStack(stack: string): StackDoc {
  return parse(readFileSync(join(repo, "stacks", `Pulumi.${stack}.yaml`), "utf8")) as StackDoc;
}

function writeStack(stack: string, doc: StackDoc): void {
  writeFileSync(join(repo, "stacks", `Pulumi.${stack}.yaml`), stringify(doc));
}

/** Edits a stack file's config in place. */
function editStack(stack: string, edit: (config: StackDoc["config"]) => void): void {
  const doc = readStack(stack);
  edit(doc.config);
  writeStack(stack, doc);
}

/** Asks for a new value of a generated secret, as the README's rotation procedure does. */
function rotate(stack: string, secret: string): void {
  editStack(stack, (config) => {
    config["ha-backend:credentialRotation"] = { [secret]: "2027-01" };
  });
}

/** Checks out a fresh branch at the base commit, applies `edit`, commits it. */
function commitCase(name: string, edit: () => void): void {
  git("checkout", "-q", "-B", name, baseSha);
  edit();
  git("add", "-A");
  git("commit", "-q", "-m", name);
}

async function diffOf(stacks: string[]): Promise<{ diffs: StackDiff[]; comment: string; full: string }> {
  const { diffs, meta } = await configDiff({ repo, base: baseSha, head: "HEAD", stacks });
  return { diffs, ...renderReport(diffs, meta) };
}

const flagsOf = (d: StackDiff, kind: string) => d.flags.filter((f) => f.kind === kind).map((f) => f.text);

/** What must never appear in a report: mock secret values, offline stand-ins, key material. */
function expectNoSecretValues(text: string): void {
  expect(text).not.toMatch(/mock-password-for|offline-placeholder-secret|PRIVATE KEY|-----BEGIN/);
}

beforeAll(() => {
  for (const part of [
    "components",
    "infra",
    "scripts",
    "stacks",
    "package.json",
    "tsconfig.json",
    "Pulumi.yaml",
  ]) {
    cpSync(join(ROOT, part), join(repo, part), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(repo, "node_modules"), "dir");
  writeFileSync(join(repo, ".gitignore"), "node_modules\n");
  // A PostgreSQL stack (Patroni on Docker) beside the committed ones.
  const blog = readStack("blog-dev");
  blog.config["ha-backend:database"] = { engine: "postgresql" };
  writeStack("blogpg-dev", blog);
  git("init", "-q", "-b", "main");
  git("config", "user.email", "test@example.invalid");
  git("config", "user.name", "test");
  git("add", "-A");
  git("commit", "-q", "-m", "base");
  baseSha = git("rev-parse", "HEAD");
});

describe("npm run diff on fixture commits", () => {
  it("an app-only change: the app servers are recreated, nothing stateful, no config or secret flag", async () => {
    commitCase("app-only", () =>
      editStack("ecommerce-dev", (config) => {
        const app = config["ha-backend:app"] as { env?: Record<string, string> };
        app.env = { ...(app.env ?? {}), FEATURE_CHECKOUT_V2: "on" };
      }),
    );
    const { diffs, comment } = await diffOf(["ecommerce-dev"]);
    const [d] = diffs;
    expect(d.status).toBe("changed");
    const apps = d.resources.filter((r) => /-app-\d+$/.test(r.name));
    expect(apps.length).toBeGreaterThan(0);
    for (const r of apps) {
      expect(r.action).toBe("replace");
      expect(r.properties.map((p) => p.after)).toContain('"FEATURE_CHECKOUT_V2=on"');
    }
    expect(d.resources.filter((r) => !/-app-\d+$/.test(r.name)).map((r) => r.name)).toEqual([]);
    for (const kind of ["stateful", "config", "budget", "secret", "protection", "network"]) {
      expect([kind, flagsOf(d, kind)]).toEqual([kind, []]);
    }
    expect(comment.startsWith(`${REPORT_MARKER}\n`)).toBe(true);
    expect(comment).toContain("FEATURE_CHECKOUT_V2=on");
    expectNoSecretValues(comment);
  });

  it("a Redis memory change: shows the config line and flags a restart of the Redis members", async () => {
    commitCase("redis-memory", () =>
      editStack("ecommerce-dev", (config) => {
        (config["ha-backend:cache"] as { redis: Record<string, unknown> }).redis.maxmemory = "96mb";
      }),
    );
    const { diffs, comment } = await diffOf(["ecommerce-dev"]);
    const [d] = diffs;
    const conf = d.files.filter((f) => f.path.endsWith("/redis.conf"));
    expect(conf.length).toBeGreaterThanOrEqual(2);
    for (const f of conf) {
      expect(f.hunks).toMatch(/^-maxmemory \d+mb$/m);
      expect(f.hunks).toMatch(/^\+maxmemory 96mb$/m);
      // The password lines around it are there, masked, not hidden with the whole file.
      expect(f.hunks).toMatch(/^ (requirepass|masterauth) \[secret\]$/m);
    }
    const stateful = flagsOf(d, "stateful").join("\n");
    expect(stateful).toMatch(/RedisCache `cache`/);
    expect(stateful).toMatch(
      /`cache-redis-0`[^\n]* recreated \(restart; data volumes kept\) \(changed: uploads\)/,
    );
    expect(stateful).toMatch(/`cache-redis-1`[^\n]* recreated/);
    expect(flagsOf(d, "config").join("\n")).toMatch(
      /cache config `\/etc\/ha-backend\/redis\/redis.conf` changed/,
    );
    expect(flagsOf(d, "secret")).toEqual([]);
    expect(comment).toContain("+maxmemory 96mb");
    expectNoSecretValues(comment);
  });

  it("a memcached memory change: a cache setting on the command line is flagged as cache config", async () => {
    commitCase("memcached-memory", () =>
      editStack("blog-dev", (config) => {
        (config["ha-backend:cache"] as { memcached: Record<string, unknown> }).memcached.memoryMb = 128;
      }),
    );
    const { diffs, comment } = await diffOf(["blog-dev"]);
    const [d] = diffs;
    const config = flagsOf(d, "config").join("\n");
    expect(config).toMatch(/^cache settings changed: .*"128".* in `[a-z-]+-0`, `[a-z-]+-1`$/m);
    // memcached keeps nothing on disk: no stateful flag, the members are simply recreated.
    expect(flagsOf(d, "stateful")).toEqual([]);
    expect(d.resources.filter((r) => r.action === "replace").length).toBeGreaterThanOrEqual(2);
    expect(comment).toContain("cache settings changed");
  });

  it("a Patroni timing change: flags the failover budget, old -> new seconds", async () => {
    commitCase("patroni-timing", () =>
      editStack("blogpg-dev", (config) => {
        config["ha-backend:database"] = {
          engine: "postgresql",
          postgresql: { ttl: 30, loopWait: 10, retryTimeout: 10 },
        };
      }),
    );
    const { diffs, comment } = await diffOf(["blogpg-dev"]);
    const [d] = diffs;
    const budget = flagsOf(d, "budget");
    expect(budget.join("\n")).toMatch(/`databaseFailoverBudgetSeconds`: 13 → \d+ s/);
    const [, after] = /`databaseFailoverBudgetSeconds`: 13 → (\d+) s/.exec(budget.join("\n")) ?? [];
    expect(Number(after)).toBeGreaterThan(13);
    expect(flagsOf(d, "config").join("\n")).toMatch(/database config/);
    expect(comment).toMatch(/Failover budget changed/);
    // The same change in patroni.yml, with its passwords masked in place.
    const patroni = d.files.filter((f) => f.path.endsWith("/patroni.yml"));
    expect(patroni.length).toBeGreaterThan(0);
    expect(patroni[0].hunks).toMatch(/^\+\s+ttl: 30$/m);
    expectNoSecretValues(comment);
  });

  it("a secret rotation: 'secret changed', never a value", async () => {
    commitCase("rotation", () => rotate("ecommerce-dev", "cache-password"));
    const { diffs, comment, full } = await diffOf(["ecommerce-dev"]);
    const [d] = diffs;
    const secret = flagsOf(d, "secret");
    expect(secret).toHaveLength(1);
    expect(secret[0]).toMatch(/RandomPassword `cache-password`: secret changed/);
    // Files holding it: listed as changed, with no other line changed.
    const redis = d.files.find((f) => f.path.endsWith("cache-redis-0/etc/ha-backend/redis/redis.conf"));
    expect(redis?.secretsChanged.join()).toContain("cache-password");
    expect(redis?.hunks).toBe("");
    // The members that read it restart; the rotated password is a replaced RandomPassword.
    expect(flagsOf(d, "stateful").join("\n")).toMatch(/`cache-redis-0`[^\n]* recreated/);
    expect(d.resources.find((r) => r.name === "cache-password")?.action).toBe("replace");
    expect(comment).toContain("secret changed");
    expectNoSecretValues(full);
  });

  it("a secret rotation on Kubernetes: the Secret is replaced and the stateful pods roll (the config digest follows)", async () => {
    commitCase("rotation-k8s", () => rotate("ecommerce-prod", "cache-password"));
    const { diffs, full } = await diffOf(["ecommerce-prod"]);
    const [d] = diffs;
    expect(d.resources.find((r) => r.name === "cache-redis-statefulset")?.action).toBe("restart");
    expect(d.resources.find((r) => r.name === "cache-redis-secret-files")?.action).toBe("replace");
    expect(flagsOf(d, "stateful").join("\n")).toMatch(
      /`cache-redis-statefulset`[^\n]* restarted \(rolling update of the pods\) \(changed: spec.template.metadata.annotations\)/,
    );
    expect(flagsOf(d, "secret").join("\n")).toMatch(/RandomPassword `cache-password`: secret changed/);
    expectNoSecretValues(full);
  });

  it("a change large enough to trim: the summary stays, the comment fits, the full report has it all", async () => {
    commitCase("large", () => {
      for (const stack of ["ecommerce-prod", "blog-prod"]) {
        editStack(stack, (config) => {
          (config["ha-backend:kubernetes"] as Record<string, unknown>).namespace = `${stack}-moved`;
        });
      }
    });
    const { diffs, comment, full } = await diffOf(["ecommerce-prod", "blog-prod"]);
    console.log(`large change: full report ${full.length} characters, comment ${comment.length}`);
    expect(full.length).toBeGreaterThan(COMMENT_LIMIT);
    expect(comment.length).toBeLessThanOrEqual(COMMENT_LIMIT);
    expect(comment).toContain("Trimmed to fit one comment");
    // The summary: every stack's row and every flag heading of the full report.
    for (const d of diffs) {
      expect(comment).toContain(`| \`${d.stack}\` | changed |`);
      expect(d.flags.length).toBeGreaterThan(0);
    }
    const headings = (t: string) => t.split("\n").filter((l) => /^- \*\*/.test(l) || /^### ⚠️/.test(l));
    expect(headings(comment)).toEqual(headings(full));
    expectNoSecretValues(full);
  });

  it("fails with a clear message for a ref or a stack that does not exist, and leaves no worktree behind", async () => {
    await expect(configDiff({ repo, base: "no-such-ref", stacks: ["blog-dev"] })).rejects.toThrow(
      /"no-such-ref" is not a commit/,
    );
    await expect(configDiff({ repo, base: baseSha, stacks: ["blog-dve"] })).rejects.toThrow(
      /no stack file for blog-dve in either side/,
    );
    expect(git("worktree", "list").split("\n")).toHaveLength(1);
  });
});

describe("the change model", () => {
  const resource = (
    type: string,
    name: string,
    inputs: Record<string, unknown>,
    options = {},
  ): TreeResource => ({
    type,
    name,
    parent: null,
    custom: true,
    options: { protect: false, retainOnDelete: false, ...options },
    inputs,
  });
  const tree = (resources: TreeResource[]) => new Map([["resources.json", JSON.stringify(resources)]]);
  const policy = (from: string[]) =>
    resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "db-netpol", {
      metadata: { name: "db", namespace: "shop" },
      spec: {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [
          {
            from: [{ podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: from }] } }],
            ports: [{ port: 5432, protocol: "TCP" }],
          },
        ],
      },
    });

  it("names each path a NetworkPolicy allows; widening a selector opens a new one", () => {
    // No policyTypes and no egress rules: Kubernetes leaves egress open as far as this policy goes.
    expect(networkPolicyPaths(policy(["app"]))).toEqual([
      "out of shop/pods(app=db) to anywhere on all ports (not isolated by this policy)",
      "into shop/pods(app=db) from pods(tier=app) on 5432/TCP",
    ]);
    const d = compareStack("s", tree([policy(["app"])]), tree([policy(["app", "batch"])]));
    expect(d.flags).toEqual([
      {
        kind: "network",
        text: "NetworkPolicy allows a new path: into shop/pods(app=db) from pods(tier=batch) on 5432/TCP",
      },
    ]);
    expect(compareStack("s", tree([policy(["app", "batch"])]), tree([policy(["app"])])).flags).toEqual([]);
  });

  it("opens a path when a policy stops isolating a direction (policyTypes)", () => {
    const withTypes = (types: string[]) => {
      const p = policy(["app"]);
      return { ...p, inputs: { ...p.inputs, spec: { ...(p.inputs.spec as object), policyTypes: types } } };
    };
    const d = compareStack("s", tree([withTypes(["Ingress", "Egress"])]), tree([withTypes(["Ingress"])]));
    expect(d.flags.map((f) => f.text)).toEqual([
      "NetworkPolicy allows a new path: out of shop/pods(app=db) to anywhere on all ports (not isolated by this policy)",
    ]);
  });

  it("matches resources by URN and alias, as the engine does", () => {
    const vol = (name: string, urn: string, aliasUrns?: string[]) => ({
      ...resource("docker:index/volume:Volume", name, { name: "v" }),
      urn,
      ...(aliasUrns ? { aliasUrns } : {}),
    });
    const old = vol("data", "urn:pulumi:s::p::a:b:Old$docker:index/volume:Volume::data");
    // Renamed under a new parent with an alias to the old URN: the same resource, kept.
    const aliased = compareStack(
      "s",
      tree([old]),
      tree([vol("data", "urn:pulumi:s::p::a:b:New$docker:index/volume:Volume::data", [old.urn])]),
    );
    expect(aliased.resources.map((r) => [r.name, r.action, r.properties[0]?.path])).toEqual([
      ["data", "alias", "(urn)"],
    ]);
    expect(aliased.flags).toEqual([]);
    // The same move without the alias: deleted and created again, and said so.
    const moved = compareStack(
      "s",
      tree([old]),
      tree([vol("data", "urn:pulumi:s::p::a:b:New$docker:index/volume:Volume::data")]),
    );
    expect(moved.resources.map((r) => r.action).sort()).toEqual(["create", "delete"]);
    expect(moved.flags.map((f) => f.text)).toEqual(
      expect.arrayContaining([expect.stringMatching(/`data` moves to a new URN without an alias/)]),
    );
  });

  it("keeps secrets, key material, HTML and the checkout's path out of an error it reports", () => {
    const message =
      "Error in /tmp/wt/base/infra/x.ts: bad value mock-password-for-db-1a2b3c4d <b>x</b> `y`\n-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----";
    expect(scrub(message, "/tmp/wt/base")).toBe(
      "Error in <checkout>/infra/x.ts: bad value [secret] &lt;b&gt;x&lt;/b&gt; 'y' [secret]".replace(
        "<checkout>",
        "&lt;checkout&gt;",
      ),
    );
  });

  it("finds Docker paths: containers on one network, published ports", () => {
    const net = resource("docker:index/network:Network", "n", { name: "n", internal: true });
    const c = (name: string, ports: unknown[] = []) =>
      resource("docker:index/container:Container", name, { name, networksAdvanced: [{ name: "n" }], ports });
    expect([
      ...dockerPaths([net, c("a"), c("b", [{ internal: 80, external: 8080, ip: "127.0.0.1" }])]).keys(),
    ]).toEqual(["a <-> b", "host 127.0.0.1:8080 to b:80/TCP"]);
    // The same pair on another network is no new path.
    const moved = resource("docker:index/container:Container", "b", {
      name: "b",
      networksAdvanced: [{ name: "m" }],
    });
    const movedA = resource("docker:index/container:Container", "a", {
      name: "a",
      networksAdvanced: [{ name: "m" }],
    });
    expect(compareStack("s", tree([net, c("a"), c("b")]), tree([net, movedA, moved])).flags).toEqual([]);
    const before = tree([net, c("a"), c("b", [{ internal: 80, external: 8080, ip: "127.0.0.1" }])]);
    const after = tree([net, c("a"), c("b", [{ internal: 80, external: 8080, ip: "0.0.0.0" }]), c("x")]);
    const flags = compareStack("s", before, after)
      .flags.filter((f) => f.kind === "network")
      .map((f) => f.text);
    expect(flags).toEqual([
      "Docker: new path a <-> x (network n)",
      "Docker: new path b <-> x (network n)",
      "Docker: new path host 0.0.0.0:8080 to b:80/TCP (published port)",
    ]);
  });

  it("flags lost protection, and a protected or data-holding resource that would be replaced", () => {
    const vol = (labels: string[], options = {}) =>
      resource("docker:index/volume:Volume", "db-0-data", { name: "db-0-data", labels }, options);
    const sts = (claim: string, protect: boolean) =>
      resource(
        "kubernetes:apps/v1:StatefulSet",
        "db",
        { spec: { volumeClaimTemplates: [{ metadata: { name: claim } }], template: {} } },
        { protect, retainOnDelete: protect },
      );
    const d = compareStack(
      "s",
      tree([vol(["a"]), sts("data", true)]),
      tree([vol(["b"]), sts("pgdata", false)]),
    );
    const text = d.flags.map((f) => `${f.kind}: ${f.text}`);
    expect(text).toEqual(
      expect.arrayContaining([
        "stateful: Volume `db-0-data` would be replaced — its data is lost",
        "stateful: (no component): stateful member `db` replaced (changed: spec.volumeClaimTemplates)",
        "protection: `db` (StatefulSet) loses `protect`",
        "protection: `db` (StatefulSet) loses `retainOnDelete`",
        "protection: `db` is protected: `pulumi up` refuses to replace it until protection is removed",
      ]),
    );
    expect(d.resources.find((r) => r.name === "db")?.action).toBe("replace");
  });
});
