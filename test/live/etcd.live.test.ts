import { execFile, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ETCD_MEMBER_ENV, etcdEnvironment } from "../../components/coordination/etcd-cluster";
import { memberValues } from "../../components/platform/docker";
import { KILL_MS, ProcessGroup, SLOW_MACHINE_FACTOR, tempDir, waitFor } from "../support/daemons";
import { ensureUser, ownedDir, startAsUser } from "../support/postgres";

/**
 * Three etcd members (Debian's etcd 3.4, unprivileged) configured only by the environment the
 * EtcdCluster component generates; what a container's own network gives it (listen addresses,
 * data directory) is the only thing mapped. One member is killed with -9: the others keep a
 * quorum and serve.
 */
const NET = 140;

// Where the bounds below come from.
/** etcdctl gives up on a request after this long (`--command-timeout`). */
const COMMAND_TIMEOUT_MS = 3000;
/** etcd's start-up (well under a few seconds here): no timer governs it, a cap for a loaded 2-core machine. */
const START_CAP_MS = 20_000;

interface Ctl {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * etcdctl, asynchronously: a synchronous call would block the event loop, and with it the bound
 * of the wait that runs it. Killed if it outlives its own command timeout by a start-up's worth.
 */
function etcdctl(endpoints: string[], ...args: string[]): Promise<Ctl> {
  const argv = [
    `--endpoints=${endpoints.join(",")}`,
    `--command-timeout=${COMMAND_TIMEOUT_MS / 1000}s`,
    ...args,
  ];
  return new Promise((resolve) => {
    execFile(
      "etcdctl",
      argv,
      { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: COMMAND_TIMEOUT_MS + 7_000 },
      (error, stdout, stderr) =>
        resolve({
          status: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout,
          stderr,
        }),
    );
  });
}

describe("etcd from the generated environment (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("etcd");
  const members = [0, 1, 2].map((i) => ({ name: `dcs-etcd-${i}`, host: `127.0.0.${NET + 1 + i}` }));
  const endpoints = members.map((m) => `http://${m.host}:2379`);
  const running = new Map<string, ChildProcess>();
  const shared = etcdEnvironment("dcs", members);
  // etcd's election timeout: the generated environment sets none, so etcd's default (1000 ms)
  // applies. A leader is elected within a randomised 1–2 election timeouts (loopback votes: ms).
  const electionTimeoutMs = Number(shared.ETCD_ELECTION_TIMEOUT ?? 1000);
  const ELECTION_MS = 2 * electionTimeoutMs;
  // A request sent during an election may hang until etcdctl's command timeout, and is retried.
  const LEADER_MS = SLOW_MACHINE_FACTOR * (ELECTION_MS + COMMAND_TIMEOUT_MS);
  const LEADER = `election 2 × ${electionTimeoutMs} ms (etcd's default election timeout) + a command timed out at ${COMMAND_TIMEOUT_MS} ms, ×${SLOW_MACHINE_FACTOR}`;

  beforeAll(
    async () => {
      ensureUser();
      ownedDir(dir);
      for (const m of members) {
        const own = {
          ...shared,
          ...memberValues(ETCD_MEMBER_ENV, m.name, m.host),
          ETCD_DATA_DIR: ownedDir(join(dir, m.name)),
          ETCD_LISTEN_CLIENT_URLS: `http://${m.host}:2379`,
          ETCD_LISTEN_PEER_URLS: `http://${m.host}:2380`,
        };
        running.set(m.name, startAsUser(procs, "etcd", [], own));
      }
      await waitFor(
        "etcd cluster healthy",
        async () => (await etcdctl(endpoints, "endpoint", "health")).status === 0,
        {
          withinMs: START_CAP_MS + LEADER_MS,
          intervalMs: 200,
          because: `etcd start-up: no timer governs it, a cap of ${START_CAP_MS} ms; then the first ${LEADER}`,
        },
      );
    },
    START_CAP_MS + LEADER_MS + COMMAND_TIMEOUT_MS,
  );

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it("forms one cluster of three members named as generated", async () => {
    const list = (await etcdctl(endpoints, "member", "list")).stdout;
    expect(list.split("\n").filter(Boolean)).toHaveLength(3);
    for (const m of members)
      expect(list).toContain(`${m.name}, http://${m.host}:2380, http://${m.host}:2379`);
  });

  it(
    "keeps serving reads and writes with one member killed",
    async () => {
      await procs.kill(running.get(members[2].name)!, "SIGKILL", KILL_MS);
      const alive = endpoints.slice(0, 2);
      // If the killed member led, the other two elect a new leader first (1–2 election
      // timeouts); a write during that election fails and a client retries, as this loop does.
      const ms = await waitFor(
        "a write after the kill",
        async () => (await etcdctl(alive, "put", "/ha-backend/test", "after-kill")).status === 0,
        { withinMs: LEADER_MS, because: LEADER },
      );
      console.log(`etcd: first write accepted ${ms} ms after one of three members was killed`);
      // The write was committed by a leader the read reaches too (a linearizable read).
      const read = await etcdctl(alive, "get", "/ha-backend/test", "--print-value-only");
      expect(read.stdout.trim()).toBe("after-kill");
    },
    KILL_MS + LEADER_MS + COMMAND_TIMEOUT_MS,
  );
});
