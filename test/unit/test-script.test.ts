import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/daemons";
import { standIns } from "../support/stand-ins";

const SCRIPT = join(__dirname, "..", "..", "scripts", "test.sh");

/**
 * A checkout holding scripts/test.sh and a package-lock.json, with a stand-in
 * install-test-deps.sh that records who ran it (never apt-get on the machine running the tests).
 */
function checkout(log: string, opts: { nodeModules?: "fresh" | "stale" } = {}): string {
  const dir = tempDir("test-sh");
  mkdirSync(join(dir, "scripts"));
  copyFileSync(SCRIPT, join(dir, "scripts", "test.sh"));
  writeFileSync(
    join(dir, "scripts", "install-test-deps.sh"),
    `echo "install-test-deps uid=$(id -u)" >> ${log}\n`,
  );
  writeFileSync(join(dir, "package-lock.json"), "{}\n");
  if (opts.nodeModules !== undefined) {
    mkdirSync(join(dir, "node_modules"));
    writeFileSync(join(dir, "node_modules", ".package-lock.json"), "{}\n");
    // npm ci writes node_modules/.package-lock.json after package-lock.json; a pull changes the latter.
    const [lock, installed] = opts.nodeModules === "fresh" ? [1_000, 2_000] : [2_000, 1_000];
    utimesSync(join(dir, "package-lock.json"), lock, lock);
    utimesSync(join(dir, "node_modules", ".package-lock.json"), installed, installed);
  }
  return dir;
}

/**
 * Stand-ins: `id -u` answers `uid`; npm records its arguments, the user it runs as and the PATH
 * it got; sudo (unless absent) records and runs its command; node reports `nodeMajor`.
 */
function tools(opts: { uid: number; sudo?: boolean; nodeMajor?: number }) {
  const t: Record<string, string> = {
    id: `if [ "\${FAKE_ROOT-}" = 1 ]; then echo 0; else echo ${opts.uid}; fi`,
    npm: 'echo "npm $* uid=$(id -u) path=$PATH x=${HA_BACKEND_X-unset} tmpdir=${TMPDIR-unset}" >> "$LOG"',
    node: `case "$1" in -p) echo ${opts.nodeMajor ?? 22};; --version) echo v${opts.nodeMajor ?? 22}.0.0;; esac`,
  };
  // Like sudo on Debian: a reset environment (env_reset) and its own PATH (secure_path), as root.
  if (opts.sudo ?? true) {
    t.sudo =
      'echo "sudo $1" >> "$LOG"\nexec env -i PATH="$(dirname "$0"):/usr/bin:/bin" HOME=/root FAKE_ROOT=1 "$@"';
  }
  return standIns(t, ["bash", "sh", "cat", "date", "env", "dirname"]);
}

function run(dir: string, path: string, args: string[] = [], extra: NodeJS.ProcessEnv = {}) {
  const env: NodeJS.ProcessEnv = {
    HOME: process.env.HOME,
    PATH: path,
    TMPDIR: "/home/someone/tmp",
    ...extra,
  };
  return spawnSync("bash", [join(dir, "scripts", "test.sh"), ...args], {
    env,
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("scripts/test.sh", () => {
  it("as root on a fresh clone: npm ci, the daemons, then npm test with sbin on PATH", () => {
    const t = tools({ uid: 0 });
    const r = run(checkout(t.log), t.path, [], { HA_BACKEND_X: "1" });
    expect([r.status, r.stderr]).toEqual([0, ""]);
    const sbin = `${t.path}:/usr/local/sbin:/usr/sbin:/sbin`;
    expect(t.calls()).toEqual([
      `npm ci --no-audit --no-fund uid=0 path=${t.path} x=1 tmpdir=/home/someone/tmp`,
      "install-test-deps uid=0",
      `npm test -- uid=0 path=${sbin} x=1 tmpdir=/home/someone/tmp`,
    ]);
    expect(r.stdout).toMatch(/^=== test\.sh: npm test \(\d+s\)$/m);
  });

  it("as a user with sudo: npm ci as the user, the daemons and npm test as root, arguments to jest", () => {
    const t = tools({ uid: 1000 });
    const r = run(checkout(t.log), t.path, ["test/unit", "-t", "deploy"], { HA_BACKEND_X: "1" });
    expect([r.status, r.stderr]).toEqual([0, ""]);
    const calls = t.calls();
    expect(calls[0]).toMatch(/^npm ci --no-audit --no-fund uid=1000 /);
    expect(calls.slice(1, 4)).toEqual(["sudo bash", "install-test-deps uid=0", "sudo env"]);
    // Through sudo: the caller's PATH (the same node) plus sbin, HA_BACKEND_* kept, TMPDIR not
    // (the test user must be able to enter the daemons' directories).
    expect(calls[4]).toMatch(
      /^npm test -- test\/unit -t deploy uid=0 path=\S+:\/usr\/local\/sbin:\/usr\/sbin:\/sbin /,
    );
    expect(calls[4]).toContain(`path=${t.path}:`);
    expect(calls[4]).toMatch(/ x=1 tmpdir=unset$/);
  });

  it("stops before installing anything when it is not root and sudo is missing", () => {
    const t = tools({ uid: 1000, sudo: false });
    const r = run(checkout(t.log), t.path);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("this is not root and sudo is not installed");
    expect(t.calls()).toEqual([]);
  });

  it("stops on a Node.js older than 20", () => {
    const t = tools({ uid: 0, nodeMajor: 18 });
    const r = run(checkout(t.log), t.path);
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining("Node.js v18.0.0 is too old")]);
    expect(t.calls()).toEqual([]);
  });

  it.each([
    ["node_modules is up to date", "fresh" as const, [], false],
    ["package-lock.json changed since", "stale" as const, [], true],
    ["--clean is given", "fresh" as const, ["--clean"], true],
  ])("runs npm ci only when needed: %s", (_label, nodeModules, args, ci) => {
    const t = tools({ uid: 0 });
    expect(run(checkout(t.log, { nodeModules }), t.path, args).status).toBe(0);
    expect(t.calls().some((c) => c.startsWith("npm ci "))).toBe(ci);
    expect(t.calls().some((c) => c.startsWith("npm test -- uid"))).toBe(true);
  });

  it("sets up without testing with --setup-only (CI lints and builds in between)", () => {
    const t = tools({ uid: 0 });
    expect(run(checkout(t.log), t.path, ["--clean", "--setup-only"]).status).toBe(0);
    expect(t.calls().map((c) => c.split(" uid=")[0])).toEqual([
      "npm ci --no-audit --no-fund",
      "install-test-deps",
    ]);
  });
});
