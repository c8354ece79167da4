/**
 * etcd and Patroni-managed PostgreSQL for live tests, started from the generated files as an
 * unprivileged user (PostgreSQL and Patroni refuse root), each member on its own loopback
 * address with its real ports.
 */
import { execFile, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";
import type { ProcessGroup } from "./daemons";
import { binary, httpGet, signalIfAlive, waitFor, type WaitBound } from "./daemons";

/** The unprivileged user the database processes run as; created on first use. */
export const PG_USER = "hapg";

export function ensureUser(): { uid: number; gid: number } {
  if (spawnSync("id", ["-u", PG_USER]).status !== 0) {
    if (process.getuid?.() !== 0) {
      throw new Error(
        `the live tests create the user ${PG_USER} and start daemons as it: run them as root (scripts/test.sh)`,
      );
    }
    // useradd is in /usr/sbin, which a PATH kept through sudo may lack.
    const r = spawnSync(
      binary("useradd"),
      ["--system", "--create-home", "--shell", "/usr/sbin/nologin", PG_USER],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`useradd ${PG_USER}: ${r.error?.message ?? r.stderr}`);
  }
  const id = (flag: string) => Number(spawnSync("id", [flag, PG_USER], { encoding: "utf8" }).stdout.trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** A directory the unprivileged user owns (mode 700, as PostgreSQL requires for its data). */
export function ownedDir(path: string): string {
  mkdirSync(path, { recursive: true });
  const r = spawnSync("chown", ["-R", `${PG_USER}:${PG_USER}`, path]);
  if (r.status !== 0) throw new Error(`chown ${path} failed`);
  chmodSync(path, 0o700);
  return path;
}

/**
 * setpriv's arguments that run `cmd` as the unprivileged user with HOME set, PATH set to `path`
 * and `env` added; `clean` drops the rest of the caller's environment (`env -i`).
 */
function asUser(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  path: string,
  clean: boolean,
): string[] {
  return [
    `--reuid=${PG_USER}`,
    `--regid=${PG_USER}`,
    "--init-groups",
    "env",
    ...(clean ? ["-i"] : []),
    `HOME=/home/${PG_USER}`,
    `PATH=${path}`,
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cmd,
    ...args,
  ];
}

/**
 * Starts `cmd` as the unprivileged user; setpriv execs in place, so the PID is the daemon's. It
 * runs in the user's home: the checkout may be in a directory only root can enter (a CI clone in
 * `mktemp -d`), and initdb and Patroni stop when they cannot enter their working directory.
 */
export function startAsUser(
  procs: ProcessGroup,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): ChildProcess {
  return procs.start(
    "setpriv",
    asUser(cmd, args, env, "/usr/lib/postgresql/15/bin:/usr/bin:/bin", false),
    `/home/${PG_USER}`,
  );
}

/** A finished command: its exit code (-1 when killed or not started) and its stdout and stderr. */
export interface Run {
  readonly code: number;
  readonly output: string;
}

/**
 * Runs a command (`patronictl`, a rendered script) as the unprivileged user in its home, with
 * only `env` and a plain PATH, asynchronously (a synchronous call would block the event loop,
 * and with it the bounds of the waits around it); killed after `timeoutMs`.
 */
export function runAsUser(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      "setpriv",
      asUser(cmd, args, env, "/usr/bin:/bin", true),
      { encoding: "utf8", timeout: timeoutMs, cwd: `/home/${PG_USER}` },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          output: stdout + stderr,
        }),
    );
  });
}

/** A single etcd member (3.4, v3 API) on one loopback address. */
export function startEtcd(procs: ProcessGroup, dir: string, host: string): ChildProcess {
  const data = ownedDir(join(dir, "etcd"));
  return startAsUser(procs, "etcd", [
    "--name=etcd-0",
    `--data-dir=${data}`,
    `--listen-client-urls=http://${host}:2379`,
    `--advertise-client-urls=http://${host}:2379`,
    `--listen-peer-urls=http://${host}:2380`,
    `--initial-advertise-peer-urls=http://${host}:2380`,
    `--initial-cluster=etcd-0=http://${host}:2380`,
    "--initial-cluster-state=new",
    "--initial-cluster-token=ha-backend-test",
  ]);
}

/** Patroni's view of a member: `primary`, `replica` or unreachable. */
export async function role(host: string, port = 8008): Promise<"primary" | "replica" | "none"> {
  try {
    if ((await httpGet(host, port, "/primary")).status === 200) return "primary";
    if ((await httpGet(host, port, "/replica")).status === 200) return "replica";
  } catch {
    return "none";
  }
  return "none";
}

/** Waits until Patroni's REST API on `host` reports `want`; resolves with the milliseconds it took. */
export async function waitForRole(
  host: string,
  want: "primary" | "replica",
  bound: WaitBound,
): Promise<number> {
  return waitFor(`${host} ${want}`, async () => (await role(host)) === want, bound);
}

/** A PostgreSQL connection to a loopback address. */
export async function pgConnect(
  host: string,
  port: number,
  user: string,
  password: string,
  database: string,
): Promise<Client> {
  if (!host.startsWith("127.")) throw new Error("tests connect to loopback only");
  const c = new Client({
    host,
    port,
    user,
    password,
    database,
    connectionTimeoutMillis: 3_000,
    query_timeout: 10_000,
  });
  c.on("error", () => undefined); // a killed server surfaces on the next query instead
  await c.connect();
  return c;
}

export function writeOwned(path: string, content: string, mode = 0o600): void {
  writeFileSync(path, content, { mode });
  spawnSync("chown", [`${PG_USER}:${PG_USER}`, path]);
}

/**
 * PostgreSQL's postmaster runs in a session of its own (Patroni starts it detached, so that
 * Patroni dying does not take the database down): find it by its pid file and kill it and its
 * backends by that PID's process group.
 */
export function killPostmaster(dataDir: string): number | undefined {
  let pid: number | undefined;
  try {
    pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  for (const target of [-pid, pid]) signalIfAlive(target, "SIGKILL");
  return pid;
}
