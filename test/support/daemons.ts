/**
 * Real daemons for render and live tests: locate binaries, check configs with the daemon's own
 * checker, start processes owned by the test and stop every one of them by PID.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CURRENT_TEST } from "./current-test";

/** Finds a daemon binary on PATH or in sbin (Debian puts nginx and haproxy in /usr/sbin). */
export function binary(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    const p = join(dir, name);
    if (dir !== "" && existsSync(p)) return p;
  }
  throw new Error(
    `${name} is not installed: run scripts/test.sh, or scripts/install-test-deps.sh as root, first`,
  );
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ha-backend-${prefix}-`));
}

/**
 * Runs a checker (`nginx -t`, `haproxy -c`) and returns its exit code and combined output.
 * Output goes to a file, not a pipe: Node's child pipes are sockets, which a daemon cannot
 * reopen as /dev/stdout (ENXIO), while a container's stdout can be reopened.
 */
export function check(cmd: string, args: string[]): { code: number; output: string } {
  const out = join(tempDir("check-out"), "output.log");
  const fd = openSync(out, "w");
  try {
    const r = spawnSync(cmd, args, { stdio: ["ignore", fd, fd], timeout: 20_000 });
    return { code: r.status ?? -1, output: readFileSync(out, "utf8") };
  } finally {
    closeSync(fd);
  }
}

/** Runs `cmd` with its own /etc/hosts (names mapped to loopback) in a private mount namespace. */
export function checkWithHosts(hosts: Record<string, string>, cmd: string, args: string[]) {
  if (Object.keys(hosts).length === 0) return check(cmd, args);
  return check("unshare", withHosts(hosts, cmd, args));
}

/**
 * Arguments for `unshare` that run `cmd` with its own /etc/hosts (a private mount namespace,
 * the machine's file untouched), with `env` added. unshare, sh and env all exec in place, so
 * the started PID is the daemon's.
 */
export function withHosts(
  hosts: Record<string, string>,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): string[] {
  const hostsFile = join(tempDir("hosts"), "hosts");
  writeFileSync(
    hostsFile,
    ["127.0.0.1 localhost", ...Object.entries(hosts).map(([h, ip]) => `${ip} ${h}`), ""].join("\n"),
  );
  return [
    "-m",
    "sh",
    "-c",
    `mount --bind "$0" /etc/hosts && exec "$@"`,
    hostsFile,
    "env",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cmd,
    ...args,
  ];
}

/**
 * The longest {@link ProcessGroup.kill} waits for a killed process to exit (it resolves then in
 * any case: the signal went to the whole group at once). Tests add it to their timeouts.
 */
export const KILL_MS = 5_000;

/**
 * A loaded 2-core machine (CI with a noisy neighbour) runs daemons and tests more slowly than
 * their timers assume: a wait derived from a timer gets this many times what the mechanism takes
 * at worst.
 */
export const SLOW_MACHINE_FACTOR = 3;

/**
 * `process.kill` for a PID (or, negative, a process group) that may be gone already: ESRCH is
 * what a test's clean-up expects, not an error.
 */
export function signalIfAlive(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch {
    // ESRCH: it is gone already.
  }
}

/**
 * Processes a test started. Each runs in its own process group (its PID is the group id), so
 * killing it by PID also takes the workers it forked (nginx, haproxy, postgres): a bare kill of
 * a master leaves orphaned workers holding ports and pipes.
 */
export class ProcessGroup {
  private readonly children: ChildProcess[] = [];
  readonly logs = new Map<number, string>();

  /** Starts `cmd` in a process group of its own; `cwd` defaults to this process's. */
  start(cmd: string, args: string[], cwd?: string): ChildProcess {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached: true, cwd });
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    const pid = child.pid;
    this.logs.set(pid, "");
    const append = (d: Buffer) => this.logs.set(pid, (this.logs.get(pid) ?? "") + d.toString());
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.children.push(child);
    return child;
  }

  /** Sends `signal` to the process and everything it forked; resolves once it exited (bounded). */
  kill(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL", timeoutMs = KILL_MS): Promise<void> {
    return new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.killGroup(child.pid as number, "SIGKILL"); // workers may outlive their master
        return resolve();
      }
      const timer = setTimeout(resolve, timeoutMs);
      child.once("exit", () => {
        clearTimeout(timer);
        this.killGroup(child.pid as number, "SIGKILL");
        resolve();
      });
      this.killGroup(child.pid as number, signal);
    });
  }

  private killGroup(pid: number, signal: NodeJS.Signals): void {
    signalIfAlive(-pid, signal);
  }

  /**
   * SIGKILL to every started process group, by PID; then each process's output is written to
   * `logDir` (`<pid>.log`, its command line first; a new temporary directory by default), so a
   * failed run can be read afterwards (the repeat runner keeps a failed run's TMPDIR).
   */
  async stopAll(logDir: string = tempDir("process-logs")): Promise<void> {
    await Promise.all(this.children.map((c) => this.kill(c, "SIGKILL")));
    for (const c of this.children) {
      c.stdout?.destroy();
      c.stderr?.destroy();
    }
    mkdirSync(logDir, { recursive: true });
    for (const c of this.children) {
      const pid = c.pid as number;
      writeFileSync(join(logDir, `${pid}.log`), `# ${c.spawnargs.join(" ")}\n${this.logs.get(pid) ?? ""}`);
    }
  }
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to a loopback address, with a hard timeout. */
export function httpGet(host: string, port: number, path: string, timeoutMs = 2_000): Promise<HttpResult> {
  if (!host.startsWith("127.")) throw new Error(`tests only send traffic to loopback, not ${host}`);
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: "GET", timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * How long a wait may take, and why. Every bound in the live tests follows from the mechanism it
 * waits for (a daemon's timer or setting, or a cap on a process start that no timer governs),
 * and `because` says which, so a wait that trips names what it expected.
 */
export interface WaitBound {
  /** Give up after this many milliseconds. */
  readonly withinMs: number;
  /** Pause between probes. @default 100 */
  readonly intervalMs?: number;
  /** Where `withinMs` comes from: the mechanism and the settings it is computed from. */
  readonly because: string;
}

/** One finished wait, as the repeat runner reads it (`HA_BACKEND_WAIT_LOG`, one JSON per line). */
export interface WaitRecord {
  readonly file: string;
  readonly test: string;
  readonly what: string;
  readonly withinMs: number;
  readonly because: string;
  readonly elapsedMs: number;
  readonly ok: boolean;
}

/** Why the last probe said no: its error's first line, or that it answered false. */
function outcome(e: unknown): string {
  if (e === false) return "answered false";
  const text = e instanceof Error ? e.message : String(e);
  return `threw "${text.split("\n")[0].slice(0, 200)}"`;
}

function recordWait(r: Omit<WaitRecord, "file" | "test">): void {
  const log = process.env.HA_BACKEND_WAIT_LOG;
  if (log === undefined || log === "") return;
  const state = typeof expect === "undefined" ? undefined : expect.getState();
  // The test or suite hook running now, as the test environment names it.
  const current = (globalThis as Record<string, unknown>)[CURRENT_TEST];
  const line: WaitRecord = {
    file: state?.testPath ?? "",
    test: typeof current === "string" ? current : (state?.currentTestName ?? "(outside a test)"),
    ...r,
  };
  appendFileSync(log, `${JSON.stringify(line)}\n`);
}

/**
 * Polls `probe` until it returns true, at most `bound.withinMs` (and so a bounded number of
 * probes). A probe that throws counts as "not yet"; when the bound is reached the error names
 * the bound's reason and what the last probe said (a refused connection reads differently from
 * a wrong answer). Resolves with the milliseconds it took.
 */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  bound: WaitBound,
): Promise<number> {
  const intervalMs = bound.intervalMs ?? 100;
  const started = Date.now();
  const deadline = started + bound.withinMs;
  const maxProbes = Math.ceil(bound.withinMs / intervalMs) + 1;
  let last: unknown = "never probed";
  let probes = 0;
  while (probes < maxProbes) {
    probes++;
    // A probe that hangs must not outlive the bound: it gets what is left (at least one interval).
    const left = Math.max(deadline - Date.now(), intervalMs);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`probe still running after ${left} ms`)), left);
    });
    try {
      if (await Promise.race([probe(), timeout])) {
        const elapsedMs = Date.now() - started;
        recordWait({ what, withinMs: bound.withinMs, because: bound.because, elapsedMs, ok: true });
        return elapsedMs;
      }
      last = false;
    } catch (e) {
      last = e;
    } finally {
      clearTimeout(timer);
    }
    const now = Date.now();
    if (now >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, deadline - now)));
  }
  const elapsedMs = Date.now() - started;
  recordWait({ what, withinMs: bound.withinMs, because: bound.because, elapsedMs, ok: false });
  throw new Error(
    `${what}: not within ${bound.withinMs} ms (${bound.because}); ${probes} probes, the last ${outcome(last)}`,
  );
}

/**
 * A throwaway self-signed certificate (EC P-256) at `<dir>/<file>` and its key at `<file>.key`,
 * valid for `days` (an edge whose certificate expires within the alert's 14 days would fire it).
 */
export function selfSignedCert(dir: string, commonName = "localhost", days = 1, file = "server.pem"): string {
  const cert = join(dir, file);
  const r = spawnSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      String(days),
      "-subj",
      `/CN=${commonName}`,
      "-addext",
      `subjectAltName=DNS:${commonName}`,
      "-keyout",
      `${cert}.key`,
      "-out",
      cert,
    ],
    { encoding: "utf8", timeout: 20_000 },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return cert;
}

/** `nginx -t` on a config file, with host names mapped to loopback in a private mount namespace. */
export function nginxTest(
  config: string,
  hosts: Record<string, string> = {},
): { code: number; output: string } {
  const dir = tempDir("nginx-t");
  mkdirSync(join(dir, "logs"));
  const file = join(dir, "nginx.conf");
  writeFileSync(file, config);
  // nginx resolves upstream names while checking: names are mapped to loopback.
  return checkWithHosts(hosts, binary("nginx"), [
    "-t",
    "-q",
    "-c",
    file,
    "-p",
    dir,
    "-e",
    join(dir, "logs", "error.log"),
  ]);
}

/** `haproxy -c` on a config file (names that must resolve at start mapped to loopback). */
export function haproxyCheck(
  config: string,
  hosts: Record<string, string> = {},
): { code: number; output: string } {
  const dir = tempDir("haproxy-c");
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, config);
  return checkWithHosts(hosts, binary("haproxy"), ["-c", "-f", file]);
}

/** Writes `config` to `<dir>/haproxy.cfg` and starts HAProxy on it in the foreground (`-db`). */
export function startHaproxy(procs: ProcessGroup, dir: string, config: string): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, config);
  return procs.start(binary("haproxy"), ["-f", file, "-db"]);
}

/**
 * Every server's state in HAProxy's stats CSV, keyed `<proxy>/<server>` (`UP`, `DOWN`, `UP 1/2`
 * while a check fails, …). The column is found by its header, not its position.
 */
export async function haproxyServerStates(
  host: string,
  statsPort: number,
  timeoutMs?: number,
): Promise<Map<string, string>> {
  const [header, ...rows] = (await httpGet(host, statsPort, "/stats;csv", timeoutMs)).body
    .split("\n")
    .filter((l) => l !== "");
  const status = header.replace(/^# /, "").split(",").indexOf("status");
  return new Map(rows.map((r) => r.split(",")).map((f) => [`${f[0]}/${f[1]}`, f[status]]));
}
