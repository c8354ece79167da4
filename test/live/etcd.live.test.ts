import { spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ETCD_MEMBER_ENV, etcdEnvironment } from "../../components/coordination/etcd-cluster";
import { memberValues } from "../../components/platform/docker";
import { ProcessGroup, tempDir, waitFor } from "../support/daemons";
import { ensureUser, ownedDir, PG_USER } from "../support/postgres";

/**
 * Three etcd members (Debian's etcd 3.4, unprivileged) configured only by the environment the
 * EtcdCluster component generates; what a container's own network gives it (listen addresses,
 * data directory) is the only thing mapped. One member is killed with -9: the others keep a
 * quorum and serve.
 */
const NET = 140;

function etcdctl(endpoints: string[], ...args: string[]) {
  return spawnSync("etcdctl", [`--endpoints=${endpoints.join(",")}`, "--command-timeout=3s", ...args], {
    encoding: "utf8",
    env: { ...process.env, ETCDCTL_API: "3" },
    timeout: 10_000,
  });
}

describe("etcd from the generated environment (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("etcd");
  const members = [0, 1, 2].map((i) => ({ name: `dcs-etcd-${i}`, host: `127.0.0.${NET + 1 + i}` }));
  const endpoints = members.map((m) => `http://${m.host}:2379`);
  const running = new Map<string, ChildProcess>();

  beforeAll(async () => {
    ensureUser();
    ownedDir(dir);
    const shared = etcdEnvironment("dcs", members);
    for (const m of members) {
      const own = {
        ...shared,
        ...memberValues(ETCD_MEMBER_ENV, m.name, m.host),
        ETCD_DATA_DIR: ownedDir(join(dir, m.name)),
        ETCD_LISTEN_CLIENT_URLS: `http://${m.host}:2379`,
        ETCD_LISTEN_PEER_URLS: `http://${m.host}:2380`,
      };
      const env = Object.entries(own).map(([k, v]) => `${k}=${v}`);
      running.set(
        m.name,
        procs.start("setpriv", [
          `--reuid=${PG_USER}`,
          `--regid=${PG_USER}`,
          "--init-groups",
          "env",
          ...env,
          "etcd",
        ]),
      );
    }
    await waitFor("etcd cluster healthy", async () => etcdctl(endpoints, "endpoint", "health").status === 0, {
      attempts: 100,
      intervalMs: 200,
    });
  }, 60_000);

  afterAll(() => procs.stopAll());

  it("forms one cluster of three members named as generated", () => {
    const list = etcdctl(endpoints, "member", "list").stdout;
    expect(list.split("\n").filter(Boolean)).toHaveLength(3);
    for (const m of members)
      expect(list).toContain(`${m.name}, http://${m.host}:2380, http://${m.host}:2379`);
  });

  it("keeps serving reads and writes with one member killed", async () => {
    await procs.kill(running.get(members[2].name)!, "SIGKILL");
    const alive = endpoints.slice(0, 2);
    // If the killed member led, the other two elect a new leader first (about one election
    // timeout); a write during that election fails and a client retries, as this loop does.
    const ms = await waitFor(
      "a write after the kill",
      async () => etcdctl(alive, "put", "/ha-backend/test", "after-kill").status === 0,
      {
        attempts: 50,
        intervalMs: 100,
      },
    );
    console.log(`etcd: first write accepted ${ms} ms after one of three members was killed`);
    expect(etcdctl(alive, "get", "/ha-backend/test", "--print-value-only").stdout.trim()).toBe("after-kill");
  });
});
