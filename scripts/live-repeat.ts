/**
 * The flake finder: runs the live tier N times, each in a fresh jest process with fresh data
 * (its own TMPDIR), then prints per test and per bounded wait: runs, failures, and the slowest
 * duration against its bound.
 *
 *   npm run test:live:repeat -- 10                 # the whole live tier, ten times
 *   npm run test:live:repeat -- 5 patroni --hog    # one file, with a CPU hog on one core
 *
 * `--hog[=K]` keeps K cores busy (default 1) for the whole run, to model a noisy CI neighbour.
 * A run's data is removed when it passed and kept (with its output) when it did not. Processes a
 * run left behind are killed and count as a failure of that run. Exit code 0 only if every run
 * passed.
 */
import { spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { signalIfAlive, type WaitRecord } from "../test/support/daemons";
import type { TimedRecord } from "../test/support/timed-environment";

const ROOT = join(__dirname, "..");
/** One live-tier run takes about 3 minutes here; a run still going after 30 is stuck. */
const RUN_TIMEOUT_MS = 30 * 60_000;

interface Options {
  runs: number;
  pattern?: string;
  hogCores: number;
  /** Live files to leave out (a jest path pattern), e.g. the long ones in CI's hog pass. */
  except?: string;
}

export function parseArgs(argv: readonly string[]): Options {
  const usage = "usage: npm run test:live:repeat -- <runs> [pattern] [--hog[=cores]] [--except=pattern]";
  const positional = argv.filter((a) => !a.startsWith("--"));
  const runs = Number(positional[0]);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    throw new Error(
      `runs must be a whole number from 1 to 100, but ${JSON.stringify(positional[0])} was given. ${usage}`,
    );
  }
  let hogCores = 0;
  let except: string | undefined;
  for (const flag of argv.filter((a) => a.startsWith("--"))) {
    const skip = /^--except=(.+)$/.exec(flag);
    if (skip !== null) {
      except = skip[1];
      continue;
    }
    const m = /^--hog(?:=(\d+))?$/.exec(flag);
    if (m === null) throw new Error(`unknown option ${flag}. ${usage}`);
    hogCores = m[1] === undefined ? 1 : Number(m[1]);
  }
  return { runs, pattern: positional[1], hogCores, ...(except !== undefined ? { except } : {}) };
}

/** The run in progress: its jest process group and directory, stopped on Ctrl-C. */
let current: { pid: number; dir: string } | undefined;

/**
 * Busy loops, one per core, stopped by the returned function; unref'd, so they never keep this
 * process alive.
 */
function startHogs(cores: number): { count: number; stop: () => void } {
  const hogs = Array.from({ length: cores }, () =>
    spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }),
  );
  for (const h of hogs) h.unref();
  return { count: hogs.length, stop: () => hogs.forEach((h) => h.kill("SIGKILL")) };
}

/**
 * On Ctrl-C or SIGTERM: the run's jest (in a group of its own, so the terminal's signal never
 * reaches it) and every daemon it started go too, or they would hold the loopback ports and fail
 * the next run; then the hogs, then this process.
 */
function stopOnSignals(hogs: { stop: () => void }): void {
  process.on("exit", hogs.stop);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(signal, () => {
      if (current !== undefined) {
        signalIfAlive(-current.pid, "SIGKILL");
        for (const p of leftovers(current.dir)) signalIfAlive(p.pid, "SIGKILL");
      }
      hogs.stop();
      process.exit(code);
    });
  }
}

function readJsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

/** Set in every process a run starts (daemons inherit it), to find the ones a test failed to stop. */
const RUN_MARKER = "HA_BACKEND_LIVE_RUN";

/**
 * Processes a run left behind: those whose environment carries the run's marker (setpriv, env and
 * the daemons keep it) or whose command line names the run's directory.
 */
function leftovers(dir: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      if (environ.includes(`${RUN_MARKER}=${dir}`) || cmd.includes(dir)) found.push({ pid, cmd });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/**
 * Leftovers still there after a grace of 2 s (4 looks, 500 ms apart): a process SIGKILLed as the
 * run ended may need a moment to be reaped.
 */
async function lingering(dir: string): Promise<{ pid: number; cmd: string }[]> {
  let found = leftovers(dir);
  for (let look = 0; look < 4 && found.length > 0; look++) {
    await new Promise((r) => setTimeout(r, 500));
    found = leftovers(dir);
  }
  return found;
}

/** The path pattern jest gets: the live tier, narrowed to files matching `pattern` (a file path works too). */
export function livePathPattern(pattern: string | undefined): string {
  // One pattern: jest ORs separate ones.
  return pattern === undefined
    ? "test/live/"
    : `test/live/.*(?:${pattern.replace(/^(\.\/)?test\/live\//, "")})`;
}

interface RunResult {
  ok: boolean;
  seconds: number;
  problems: string[];
  tests: TimedRecord[];
  waits: WaitRecord[];
}

function runOnce(i: number, o: Options, root: string): Promise<RunResult> {
  const dir = join(root, `run-${i}`);
  const tmp = join(dir, "tmp");
  mkdirSync(tmp, { recursive: true });
  // Like /tmp: the tests' unprivileged users (PostgreSQL, etcd, MariaDB) reach and write it.
  chmodSync(dir, 0o755);
  chmodSync(tmp, 0o1777);
  const env = {
    ...process.env,
    TMPDIR: tmp,
    HA_BACKEND_WAIT_LOG: join(dir, "waits.jsonl"),
    HA_BACKEND_TEST_LOG: join(dir, "tests.jsonl"),
    [RUN_MARKER]: dir,
  };
  const jest = require.resolve("jest/bin/jest");
  const args = [
    jest,
    "--runInBand",
    livePathPattern(o.pattern),
    ...(o.except !== undefined ? [`--testPathIgnorePatterns=${o.except}`] : []),
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    current = { pid: child.pid as number, dir };
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => out.push(d));
    const timer = setTimeout(() => {
      out.push(Buffer.from(`\nlive-repeat: run still going after ${RUN_TIMEOUT_MS / 60_000} min: killed\n`));
      signalIfAlive(-(child.pid as number), "SIGKILL");
    }, RUN_TIMEOUT_MS);
    child.on("close", async (code, signal) => {
      clearTimeout(timer);
      current = undefined;
      writeFileSync(join(dir, "output.log"), Buffer.concat(out));
      const problems: string[] = [];
      const tests = readJsonLines<TimedRecord>(env.HA_BACKEND_TEST_LOG);
      const waits = readJsonLines<WaitRecord>(env.HA_BACKEND_WAIT_LOG);
      for (const t of tests.filter((x) => !x.ok))
        problems.push(`failed: ${relative(ROOT, t.file)}: ${t.name}`);
      for (const w of waits.filter((x) => !x.ok))
        problems.push(`wait tripped: ${w.what} (bound ${w.withinMs} ms: ${w.because})`);
      if (code !== 0 && problems.length === 0)
        problems.push(`jest exited with ${code ?? signal} (see output.log)`);
      const stray = await lingering(dir);
      for (const p of stray) {
        problems.push(`left running: pid ${p.pid} ${p.cmd.slice(0, 160)}`);
        signalIfAlive(p.pid, "SIGKILL");
      }
      const ok = problems.length === 0 && code === 0;
      // Fresh data for every run: a passing run's data goes; a failing run's stays for a look.
      if (ok) rmSync(tmp, { recursive: true, force: true });
      resolve({ ok, seconds: (Date.now() - started) / 1000, problems, tests, waits });
    });
  });
}

interface Row {
  name: string;
  runs: number;
  failures: number;
  slowestMs: number;
  boundMs: number;
  because?: string;
}

function addRow(
  rows: Map<string, Row>,
  key: string,
  init: Omit<Row, "runs" | "failures" | "slowestMs">,
  ms: number,
  ok: boolean,
) {
  const row = rows.get(key) ?? { ...init, runs: 0, failures: 0, slowestMs: 0 };
  row.runs++;
  if (!ok) row.failures++;
  row.slowestMs = Math.max(row.slowestMs, ms);
  row.boundMs = Math.max(row.boundMs, init.boundMs);
  rows.set(key, row);
}

function table(title: string, rows: Row[], withBecause: boolean): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const header = ["runs", "failed", "slowest", "bound", "used", title];
  const lines = rows.map((r) => [
    String(r.runs),
    String(r.failures),
    s(r.slowestMs),
    s(r.boundMs),
    `${Math.round((100 * r.slowestMs) / r.boundMs)}%`,
    withBecause && r.because !== undefined ? `${r.name} — ${r.because}` : r.name,
  ]);
  const width = header.map((h, c) => Math.max(h.length, ...lines.map((l) => (c < 5 ? l[c].length : 0))));
  const fmt = (cells: string[]) =>
    cells.map((cell, c) => (c < 5 ? cell.padStart(width[c]) : cell)).join("  ");
  return [fmt(header), ...lines.map(fmt)].join("\n");
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), "ha-backend-repeat-"));
  chmodSync(root, 0o755);
  const hogs = startHogs(o.hogCores);
  stopOnSignals(hogs);
  console.log(
    `live-repeat: ${o.runs} run(s) of test/live${o.pattern ? ` matching ${o.pattern}` : ""}` +
      `${hogs.count ? `, with a CPU hog on ${hogs.count} core(s)` : ""}; data and logs under ${root}`,
  );
  const testRows = new Map<string, Row>();
  const waitRows = new Map<string, Row>();
  let failedRuns = 0;
  try {
    for (let i = 1; i <= o.runs; i++) {
      const r = await runOnce(i, o, root);
      if (!r.ok) failedRuns++;
      console.log(
        `run ${i}/${o.runs}: ${r.ok ? "passed" : "FAILED"} in ${r.seconds.toFixed(0)} s` +
          `${r.ok ? "" : ` (kept: ${join(root, `run-${i}`)})`}`,
      );
      for (const p of r.problems) console.log(`  ${p}`);
      for (const t of r.tests) {
        const name = `${relative(ROOT, t.file)}: ${t.name}`;
        addRow(testRows, name, { name, boundMs: t.timeoutMs }, t.durationMs, t.ok);
      }
      for (const w of r.waits) {
        const name = `${relative(ROOT, w.file)}: ${w.what}`;
        addRow(
          waitRows,
          `${name}\0${w.test}`,
          { name, boundMs: w.withinMs, because: w.because },
          w.elapsedMs,
          w.ok,
        );
      }
    }
  } finally {
    hogs.stop();
  }
  const summary = [
    `live-repeat: ${o.runs - failedRuns} of ${o.runs} runs passed` +
      `${o.hogCores ? ` (CPU hog on ${o.hogCores} core(s))` : ""}`,
    "",
    "Tests and suite hooks (bound: the timeout that fails them):",
    table("test", [...testRows.values()], false),
    "",
    "Bounded waits (bound: withinMs, and where it comes from):",
    table("wait", [...waitRows.values()], true),
    "",
  ].join("\n");
  writeFileSync(join(root, "summary.txt"), summary);
  console.log(`\n${summary}`);
  process.exitCode = failedRuns === 0 ? 0 : 1;
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 2;
  });
}
