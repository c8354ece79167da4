import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runStackVariant } from "../support/stack-variants";
import { standIns } from "../support/stand-ins";

const SCRIPT = join(__dirname, "..", "..", "scripts", "deploy-dev.sh");
const ROOT = join(__dirname, "..", "..");

/** The URL outputs `ecommerce-dev` exports (checked against the program below). */
const OUTPUTS = { url: "http://localhost:8080", httpsUrl: "https://localhost:8443" };

/** A PATH with stand-ins for the pulumi and docker CLIs that record how they were called. */
function fakeTools(opts: { pulumi: boolean; docker: "ok" | "down" | "missing" }) {
  const tools: Record<string, string> = {};
  if (opts.pulumi) {
    tools.pulumi =
      `echo "pulumi $* backend=$PULUMI_BACKEND_URL passphrase_set=\${PULUMI_CONFIG_PASSPHRASE+yes}" >> "$LOG"\n` +
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

function deploy(path: string, ...args: string[]) {
  return deployWith(path, {}, ...args);
}

function deployWith(path: string, extra: NodeJS.ProcessEnv, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path, ...extra };
  if (!("PULUMI_CONFIG_PASSPHRASE" in extra)) delete env.PULUMI_CONFIG_PASSPHRASE;
  if (!("PULUMI_CONFIG_PASSPHRASE_FILE" in extra)) delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  return spawnSync("bash", [SCRIPT, ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 30_000 });
}

describe("scripts/deploy-dev.sh", () => {
  it("deploys ecommerce-dev with a local backend under the repo and no cloud login", () => {
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    const r = deploy(tools.path);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const calls = readFileSync(tools.log, "utf8").trim().split("\n");
    const backend = `backend=file://${ROOT}/.pulumi-state passphrase_set=yes`;
    expect(calls).toEqual([
      "docker info",
      `pulumi stack select ecommerce-dev --create ${backend}`,
      `pulumi up --stack ecommerce-dev ${backend}`,
      `pulumi stack output --stack ecommerce-dev httpsUrl ${backend}`,
    ]);
    expect(r.stdout).toContain("curl -k https://localhost:8443/");
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
  });

  it("leaves the passphrase to PULUMI_CONFIG_PASSPHRASE_FILE when that is set", () => {
    // Pulumi reads PULUMI_CONFIG_PASSPHRASE first, even empty: setting it would hide the file.
    const tools = fakeTools({ pulumi: true, docker: "ok" });
    const r = deployWith(tools.path, { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/passphrase" });
    expect(r.status).toBe(0);
    expect(tools.calls()).toContain(
      `pulumi up --stack ecommerce-dev backend=file://${ROOT}/.pulumi-state passphrase_set=`,
    );
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
