import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProgramRun } from "../../scripts/mock-engine";
import { tempDir } from "../support/daemons";
import { devCheckout } from "../support/dev-checkout";
import { runStackVariant } from "../support/stack-variants";
import { standIns } from "../support/stand-ins";

/** `od`, which the scripts read /dev/urandom with, besides the stand-ins' basic tools. */
const OD = spawnSync("sh", ["-c", "command -v od"], { encoding: "utf8" }).stdout.trim();

/** A fresh copy of the scripts and stack files: each test's state and passphrase stay in it. */
let root: string;
beforeEach(() => {
  root = devCheckout();
});
const passphraseFile = () => join(root, ".pulumi-state", "passphrase");
/** What the pulumi stand-in records after its arguments: the local backend and the generated passphrase. */
const backend = () => `backend=file://${root}/.pulumi-state passphrase= file=${passphraseFile()}`;

/**
 * A stack's state as `pulumi stack export` prints it (4-space indented JSON; `protect` only where
 * set), built from the resources the program really registers; `protectTypes` get `protect`.
 */
function exportedState(stack: string, run: ProgramRun, protectTypes: readonly string[] = []): string {
  const resources = run.resources.map((r) => ({
    urn: `urn:pulumi:${stack}::ha-backend::${r.type}::${r.name}`,
    type: r.type,
    ...(r.protect || protectTypes.includes(r.type) ? { protect: true } : {}),
  }));
  return JSON.stringify({ version: 3, deployment: { manifest: {}, resources } }, null, 4) + "\n";
}

/**
 * Stand-ins for pulumi and docker. The pulumi one keeps `state` in a file and behaves as the real
 * CLI does with it: `stack select` (without --create) fails for a stack that was never created,
 * `destroy` fails while a resource is protected, `state unprotect --all` clears every protect.
 */
function fakeTools(opts: { state?: string; docker?: "ok" | "down" }) {
  const dir = tempDir("destroy-state");
  const state = join(dir, "state.json");
  if (opts.state !== undefined) writeFileSync(state, opts.state);
  return standIns({
    pulumi: [
      `echo "pulumi $* backend=$PULUMI_BACKEND_URL passphrase=\${PULUMI_CONFIG_PASSPHRASE+set} file=\${PULUMI_CONFIG_PASSPHRASE_FILE-}" >> "$LOG"`,
      `case "$1 $2" in`,
      `  "stack select") [ -f ${state} ] && exit 0`,
      `    echo "error: no stack named '$3' found" >&2; exit 255;;`,
      `  "stack export") cat ${state}; exit 0;;`,
      `  "state unprotect") sed -i 's/"protect": true/"protect": false/' ${state}; exit 0;;`,
      `  "stack rm") rm ${state}; exit 0;;`,
      `esac`,
      `if [ "$1" = destroy ]; then`,
      `  if grep -q '"protect": true' ${state}; then`,
      `    echo "error: Preview failed: unable to delete resource as it is currently marked for protection" >&2`,
      `    exit 255`,
      `  fi`,
      `  echo "Resources: deleted"; exit 0`,
      `fi`,
      `exit 0`,
    ].join("\n"),
    docker: `echo "docker $*" >> "$LOG"\nexit ${(opts.docker ?? "ok") === "ok" ? 0 : 1}`,
    od: `exec ${OD} "$@"`,
  });
}

function destroy(path: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path };
  delete env.PULUMI_CONFIG_PASSPHRASE;
  delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  const script = join(root, "scripts", "destroy-dev.sh");
  return spawnSync("bash", [script, ...args], { cwd: root, env, encoding: "utf8", timeout: 30_000 });
}

describe("scripts/destroy-dev.sh", () => {
  let plainState: string;
  let protectedState: string;

  beforeAll(async () => {
    // GIVEN ecommerce-dev as committed (dev stacks do not protect data), and the same with its
    // data volumes protected, as protectData: true leaves them on Docker.
    const run = await runStackVariant("ecommerce-dev");
    plainState = exportedState("ecommerce-dev", run);
    protectedState = exportedState("ecommerce-dev", run, ["docker:index/volume:Volume"]);
  });

  it("starts from the program's state: nothing protected as committed, volumes to protect", () => {
    expect(plainState).not.toContain('"protect": true');
    expect(protectedState.split('"protect": true').length - 1).toBeGreaterThan(0);
  });

  it("destroys ecommerce-dev with the local backend and passphrase of deploy-dev.sh", () => {
    const tools = fakeTools({ state: plainState });
    const r = destroy(tools.path);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(tools.calls()).toEqual([
      "docker info",
      `pulumi stack select ecommerce-dev ${backend()}`,
      `pulumi destroy --stack ecommerce-dev ${backend()}`,
    ]);
  });

  it("opens the stack with the passphrase file deploy-dev.sh generated, unchanged", () => {
    // GIVEN the passphrase a deploy from this checkout wrote
    mkdirSync(join(root, ".pulumi-state"));
    writeFileSync(passphraseFile(), "0123456789abcdef\n", { mode: 0o600 });
    const tools = fakeTools({ state: plainState });
    const r = destroy(tools.path);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(tools.calls()).toContain(`pulumi destroy --stack ecommerce-dev ${backend()}`);
    expect(readFileSync(passphraseFile(), "utf8")).toBe("0123456789abcdef\n");
    expect(r.stdout + r.stderr).not.toContain("0123456789abcdef");
  });

  it("refuses a stack created with another passphrase before the file existed, and says how to go on", () => {
    appendFileSync(join(root, "stacks", "Pulumi.ecommerce-dev.yaml"), "encryptionsalt: v1:c2FsdA==:v1:x:y\n");
    const tools = fakeTools({ state: plainState });
    const r = destroy(tools.path, "--yes");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("PULUMI_CONFIG_PASSPHRASE= ./scripts/destroy-dev.sh ecommerce-dev");
    expect(tools.calls().filter((c) => c.startsWith("pulumi"))).toEqual([]);
    expect(existsSync(passphraseFile())).toBe(false);
  });

  it("passes other arguments to pulumi destroy for another Docker stack", () => {
    const tools = fakeTools({ state: plainState });
    expect(destroy(tools.path, "blog-dev", "--yes", "--skip-preview").status).toBe(0);
    expect(tools.calls()).toContain(`pulumi destroy --stack blog-dev --yes --skip-preview ${backend()}`);
  });

  it("says how to lift protection when protected resources stop pulumi destroy, and lifts nothing", () => {
    const tools = fakeTools({ state: protectedState });
    const r = destroy(tools.path, "--yes");
    expect(r.status).toBe(255);
    const count = protectedState.split('"protect": true').length - 1;
    expect(r.stderr).toContain(`destroy-dev: ecommerce-dev has ${count} protected resource(s)`);
    expect(r.stderr).toContain("./scripts/destroy-dev.sh ecommerce-dev --unprotect");
    expect(r.stderr).toContain(
      `PULUMI_BACKEND_URL=file://${root}/.pulumi-state PULUMI_CONFIG_PASSPHRASE_FILE=${passphraseFile()} ` +
        "pulumi state unprotect --all -s ecommerce-dev",
    );
    expect(tools.calls().filter((c) => c.includes("unprotect"))).toEqual([]);
  });

  it("unprotects every resource first with --unprotect, then destroys", () => {
    const tools = fakeTools({ state: protectedState });
    const r = destroy(tools.path, "--unprotect", "--yes");
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(tools.calls().slice(2)).toEqual([
      `pulumi state unprotect --all --yes --stack ecommerce-dev ${backend()}`,
      `pulumi destroy --stack ecommerce-dev --yes ${backend()}`,
    ]);
  });

  it("removes the stack but keeps its stack file with --rm-stack, only after a destroy that succeeded", () => {
    const ok = fakeTools({ state: plainState });
    expect(destroy(ok.path, "blog-dev", "--rm-stack", "--yes").status).toBe(0);
    expect(ok.calls().slice(-1)).toEqual([
      `pulumi stack rm --yes --preserve-config --stack blog-dev ${backend()}`,
    ]);

    const stopped = fakeTools({ state: protectedState });
    expect(destroy(stopped.path, "--rm-stack", "--yes").status).toBe(255);
    expect(stopped.calls().filter((c) => c.includes("stack rm"))).toEqual([]);
  });

  it("refuses pulumi destroy --remove, which would delete the stack file in stacks/", () => {
    const tools = fakeTools({ state: plainState });
    const r = destroy(tools.path, "blog-dev", "--remove");
    expect([r.status, r.stderr]).toEqual([2, expect.stringContaining("use --rm-stack")]);
    expect(tools.calls()).toEqual([]);
  });

  it("has nothing to destroy for a stack that was never deployed", () => {
    const tools = fakeTools({});
    const r = destroy(tools.path);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nothing to destroy: no stack ecommerce-dev in .pulumi-state/");
    expect(tools.calls().some((c) => c.startsWith("pulumi destroy"))).toBe(false);
  });

  it("refuses a Kubernetes stack and an unknown stack, and stops when the Docker engine is down", () => {
    const tools = fakeTools({ state: plainState });
    const prod = destroy(tools.path, "ecommerce-prod");
    expect([prod.status, prod.stderr]).toEqual([2, expect.stringContaining("does not run on Docker")]);
    const unknown = destroy(tools.path, "no-such-stack");
    expect([unknown.status, unknown.stderr]).toEqual([
      2,
      expect.stringContaining("no stack file stacks/Pulumi.no-such-stack.yaml"),
    ]);
    const down = fakeTools({ state: plainState, docker: "down" });
    const r = destroy(down.path);
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining("the Docker engine is not reachable")]);
    expect(down.calls()).toEqual(["docker info"]);
  });
});
