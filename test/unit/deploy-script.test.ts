import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { devCheckout } from "../support/dev-checkout";
import { runStackVariant } from "../support/stack-variants";
import { standIns } from "../support/stand-ins";

/** `od`, which the script reads /dev/urandom with, besides the stand-ins' basic tools. */
const OD = spawnSync("sh", ["-c", "command -v od"], { encoding: "utf8" }).stdout.trim();

/** The URL outputs `ecommerce-dev` exports (checked against the program below). */
const OUTPUTS = { url: "http://localhost:8080", httpsUrl: "https://localhost:8443" };

/**
 * A PATH with stand-ins for the pulumi and docker CLIs that record how they were called (pulumi
 * also its whole environment, in `$LOG.env`).
 */
function fakeTools(opts: { pulumi: boolean; docker: "ok" | "down" | "missing" }) {
  const tools: Record<string, string> = { od: `exec ${OD} "$@"` };
  if (opts.pulumi) {
    tools.pulumi =
      `echo "pulumi $* backend=$PULUMI_BACKEND_URL passphrase=\${PULUMI_CONFIG_PASSPHRASE+set} file=\${PULUMI_CONFIG_PASSPHRASE_FILE-}" >> "$LOG"\n` +
      `env >> "$LOG.env"\n` +
      // Answers only the outputs the program exports (as the real CLI, which fails on others).
      `if [ "$1 $2" = "stack output" ]; then case "$5" in\n` +
      Object.entries(OUTPUTS)
        .map(([k, v]) => `  ${k}) echo ${v}; exit 0;;\n`)
        .join("") +
      `  *) echo "error: current stack does not have output property '$5'" >&2; exit 255;;\nesac; fi\nexit 0`;
  }
  if (opts.docker !== "missing")
    tools.docker = `echo "docker $*" >> "$LOG"\nexit ${opts.docker === "ok" ? 0 : 1}`;
  return standIns(tools);
}

/** A fresh copy of the scripts and stack files: each test's state and passphrase stay in it. */
let root: string;
beforeEach(() => {
  root = devCheckout();
});
const passphraseFile = () => join(root, ".pulumi-state", "passphrase");
/** What the pulumi stand-in records after its arguments when the script generated the passphrase. */
const generated = () =>
  `backend=file://${root}/.pulumi-state passphrase= file=${root}/.pulumi-state/passphrase`;

function deploy(path: string, ...args: string[]) {
  return deployWith(path, {}, ...args);
}

function deployWith(path: string, extra: NodeJS.ProcessEnv, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path, ...extra };
  if (!("PULUMI_CONFIG_PASSPHRASE" in extra)) delete env.PULUMI_CONFIG_PASSPHRASE;
  if (!("PULUMI_CONFIG_PASSPHRASE_FILE" in extra)) delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  const script = join(root, "scripts", "deploy-dev.sh");
  return spawnSync("bash", [script, ...args], { cwd: root, env, encoding: "utf8", timeout: 30_000 });
}

describe("scripts/deploy-dev.sh", () => {
  it("deploys ecommerce-dev with a local backend under the repo and no cloud login", () => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    const r = deploy(tools.path);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const calls = readFileSync(tools.log, "utf8").trim().split("\n");
    expect(calls).toEqual([
      "docker info",
      `pulumi stack select ecommerce-dev --create ${generated()}`,
      `pulumi up --stack ecommerce-dev ${generated()}`,
      `pulumi stack output --stack ecommerce-dev httpsUrl ${generated()}`,
    ]);
    expect(r.stdout).toContain("curl -k https://localhost:8443/");
  });

  it("generates the passphrase on first use, 0600, reuses it, and never shows it", () => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    // GIVEN a checkout that never deployed
    expect(existsSync(passphraseFile())).toBe(false);
    // WHEN it deploys twice
    const first = deploy(tools.path);
    expect([first.status, first.stderr]).toEqual([0, ""]);
    const phrase = readFileSync(passphraseFile(), "utf8");
    const second = deploy(tools.path, "blog-dev");
    expect([second.status, second.stderr]).toEqual([0, ""]);
    // THEN 32 random bytes were written once, readable by the user only, and read again
    expect(phrase).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(passphraseFile()).mode & 0o777).toBe(0o600);
    expect(readFileSync(passphraseFile(), "utf8")).toBe(phrase);
    expect(tools.calls().filter((c) => c.startsWith("pulumi up"))).toEqual([
      `pulumi up --stack ecommerce-dev ${generated()}`,
      `pulumi up --stack blog-dev ${generated()}`,
    ]);
    // …and it is in no output, command line or environment: pulumi gets the file's path.
    const env = readFileSync(`${tools.log}.env`, "utf8");
    expect(env).toContain(`PULUMI_CONFIG_PASSPHRASE_FILE=${passphraseFile()}`);
    const secret = phrase.trim();
    const seen = [first.stdout, first.stderr, second.stdout, second.stderr, tools.calls().join("\n"), env];
    expect(seen.map((text) => text.includes(secret))).toEqual(seen.map(() => false));
  });

  it("refuses a stack created with another passphrase before the file existed, and says how to go on", () => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    // GIVEN ecommerce-dev deployed by an earlier version of the script (the empty passphrase)
    appendFileSync(join(root, "stacks", "Pulumi.ecommerce-dev.yaml"), "encryptionsalt: v1:c2FsdA==:v1:x:y\n");
    const r = deploy(tools.path);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("deploy-dev: ecommerce-dev was created with another passphrase");
    expect(r.stderr).toContain("PULUMI_CONFIG_PASSPHRASE= ./scripts/deploy-dev.sh ecommerce-dev");
    expect(r.stderr).toContain("PULUMI_CONFIG_PASSPHRASE= ./scripts/destroy-dev.sh ecommerce-dev --rm-stack");
    expect(tools.calls().filter((c) => c.startsWith("pulumi"))).toEqual([]);
    expect(existsSync(passphraseFile())).toBe(false);
    // The way out it names works: the old (empty) passphrase, set explicitly.
    const kept = deployWith(tools.path, { PULUMI_CONFIG_PASSPHRASE: "" });
    expect([kept.status, kept.stderr]).toEqual([0, ""]);
    expect(tools.calls()).toContain(
      `pulumi up --stack ecommerce-dev backend=file://${root}/.pulumi-state passphrase=set file=`,
    );
  });

  it("hints at outputs the program really exports", async () => {
    const run = await runStackVariant("ecommerce-dev");
    expect(Object.fromEntries(Object.keys(OUTPUTS).map((k) => [k, run.outputs[k]]))).toEqual(OUTPUTS);
  });

  it("passes extra arguments to pulumi up for another Docker stack", () => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    expect(deploy(tools.path, "blog-dev", "--yes").status).toBe(0);
    expect(readFileSync(tools.log, "utf8")).toContain("pulumi up --stack blog-dev --yes ");
  });

  it.each([
    ["pulumi is missing", { pulumi: false, docker: "ok" as const }, 1, "the Pulumi CLI is not installed"],
    ["docker is missing", { pulumi: true, docker: "missing" as const }, 1, "the docker CLI is not installed"],
    [
      "the Docker engine is down",
      { pulumi: true, docker: "down" as const },
      1,
      "the Docker engine is not reachable",
    ],
  ])("stops with advice when %s", (_label, tools, code, message) => {
    const t = fakeTools(tools);
    const r = deploy(t.path);
    expect(r.stderr).toContain(message);
    expect(r.status).toBe(code);
    expect(existsSync(t.log) ? readFileSync(t.log, "utf8") : "").not.toContain("pulumi up");
    expect(existsSync(passphraseFile())).toBe(false);
  });

  it.each<[string, NodeJS.ProcessEnv, string]>([
    // Pulumi reads PULUMI_CONFIG_PASSPHRASE first, even empty: setting it would hide the file.
    [
      "PULUMI_CONFIG_PASSPHRASE_FILE",
      { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/passphrase" },
      "passphrase= file=/run/secrets/passphrase",
    ],
    ["PULUMI_CONFIG_PASSPHRASE", { PULUMI_CONFIG_PASSPHRASE: "mine" }, "passphrase=set file="],
    ["an empty PULUMI_CONFIG_PASSPHRASE", { PULUMI_CONFIG_PASSPHRASE: "" }, "passphrase=set file="],
  ])("leaves the passphrase to %s when that is set, and generates none", (_label, env, recorded) => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    const r = deployWith(tools.path, env);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(tools.calls()).toContain(
      `pulumi up --stack ecommerce-dev backend=file://${root}/.pulumi-state ${recorded}`,
    );
    expect(existsSync(passphraseFile())).toBe(false);
  });

  it("refuses a Kubernetes stack and an unknown stack", () => {
    const t = fakeTools({ pulumi: true, docker: "ok" });
    const prod = deploy(t.path, "ecommerce-prod");
    expect([prod.status, prod.stderr]).toEqual([2, expect.stringContaining("does not run on Docker")]);
    const unknown = deploy(t.path, "no-such-stack");
    expect([unknown.status, unknown.stderr]).toEqual([
      2,
      expect.stringContaining("no stack file stacks/Pulumi.no-such-stack.yaml"),
    ]);
  });
});
