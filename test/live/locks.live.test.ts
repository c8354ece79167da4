import { spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { etcdEnvironment, etcdMemberEnv } from "../../components/coordination/etcd-cluster";
import { EtcdLockClient, LockTimeoutError, type HeldLock } from "../../components/coordination/lock-client";
import { memberValues } from "../../components/platform/docker";
import { ProcessGroup, tempDir, waitFor } from "../support/daemons";
import { ensureUser, ownedDir, PG_USER } from "../support/postgres";
import { testCa, testCert } from "../support/tls";

/**
 * The lock service as deployed: three etcd members (Debian's etcd 3.4, unprivileged)
 * configured only by the environment LockService generates, serving HTTPS to clients with a
 * certificate its CA signed; locks taken with the exported EtcdLockClient.
 */
const NET = 170;
const members = [0, 1, 2].map((i) => ({ name: `locks-etcd-${i}`, host: `127.0.0.${NET + 1 + i}` }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("locks on etcd with client certificates (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("locks");
  const running = new Map<string, ChildProcess>();
  let client: () => EtcdLockClient;
  let endpoints: string[];
  let ca: ReturnType<typeof testCa>;

  beforeAll(async () => {
    ensureUser();
    ownedDir(dir);
    const certs = ownedDir(join(dir, "tls"));
    ca = testCa(certs);
    const server = testCert(
      certs,
      ca,
      "server",
      ["serverAuth", "clientAuth"],
      [...members.map((m) => `IP:${m.host}`), "IP:127.0.0.1", "DNS:localhost"],
    );
    const app = testCert(certs, ca, "client", ["clientAuth"]);
    spawnSync("chown", ["-R", `${PG_USER}:${PG_USER}`, certs]);
    const shared = etcdEnvironment("locks", members, {
      ca: ca.certFile,
      cert: server.certFile,
      key: server.keyFile,
    });
    for (const m of members) {
      const own = {
        ...shared,
        ...memberValues(etcdMemberEnv(true), m.name, m.host),
        ETCD_DATA_DIR: ownedDir(join(dir, m.name)),
        ETCD_LISTEN_CLIENT_URLS: `https://${m.host}:2379`,
        ETCD_LISTEN_PEER_URLS: `http://${m.host}:2380`,
      };
      running.set(
        m.name,
        procs.start("setpriv", [
          `--reuid=${PG_USER}`,
          `--regid=${PG_USER}`,
          "--init-groups",
          "env",
          ...Object.entries(own).map(([k, v]) => `${k}=${v}`),
          "etcd",
        ]),
      );
    }
    endpoints = members.map((m) => `https://${m.host}:2379`);
    client = () => new EtcdLockClient({ endpoints, tls: { ca: ca.cert, cert: app.cert, key: app.key } });
    await waitFor(
      "etcd answers a lock request",
      async () => {
        await client().holder("probe");
        return true;
      },
      { attempts: 100, intervalMs: 200 },
    );
  }, 60_000);

  afterAll(() => procs.stopAll());

  it("refuses a client without a certificate the CA signed", async () => {
    const anonymous = new EtcdLockClient({
      endpoints,
      tls: { ca: ca.cert, cert: "", key: "" },
      requestTimeoutMs: 1000,
    });
    await expect(anonymous.holder("x")).rejects.toThrow();
    const plainHttp = new EtcdLockClient({
      endpoints: members.map((m) => `http://${m.host}:2379`),
      requestTimeoutMs: 1000,
    });
    await expect(plainHttp.holder("x")).rejects.toThrow();
  });

  it("never lets two contenders hold the lock at once, and fencing tokens only grow", async () => {
    let holders = 0;
    let maxHolders = 0;
    const tokens: bigint[] = [];
    const contender = async (id: string) => {
      const c = client();
      // Bounded: 20 rounds each, every acquire waits at most 10 s.
      for (let round = 0; round < 20; round++) {
        const lock = await c.acquire("stock:sku-1", { ttlSeconds: 10, waitMs: 10_000, pollMs: 20 });
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        tokens.push(BigInt(lock.fencingToken));
        await sleep(3); // the critical section, long enough for the other to try
        holders--;
        await c.release(lock);
      }
      return id;
    };
    const started = Date.now();
    await Promise.all([contender("a"), contender("b")]);
    console.log(
      `locks: 40 acquisitions by 2 contenders in ${Date.now() - started} ms, at most ${maxHolders} holder at a time`,
    );
    expect(maxHolders).toBe(1);
    expect(tokens).toHaveLength(40);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i] > tokens[i - 1]).toBe(true);
  }, 60_000);

  it("gives the lock to the next contender once a dead holder's lease runs out", async () => {
    const dead: HeldLock = await client().acquire("report:nightly", { ttlSeconds: 2 });
    const acquiredAt = Date.now();
    // The holder "dies": it neither renews nor releases. While its lease lives, nobody else
    // gets the lock (checked by outcome, not by the clock).
    await expect(client().acquire("report:nightly", { waitMs: 500 })).rejects.toBeInstanceOf(
      LockTimeoutError,
    );
    expect((await client().holder("report:nightly"))?.fencingToken).toBe(dead.fencingToken);
    const next = await client().acquire("report:nightly", { ttlSeconds: 10, waitMs: 10_000 });
    const after = Date.now() - acquiredAt;
    console.log(
      `locks: holder with a 2 s lease died; the next contender got the lock ${after} ms after it was taken`,
    );
    expect(BigInt(next.fencingToken) > BigInt(dead.fencingToken)).toBe(true);
    await client().release(next);
  }, 30_000);

  it("keeps a renewed lease alive past its TTL", async () => {
    const c = client();
    const lock = await c.acquire("renewed", { ttlSeconds: 2 });
    for (let i = 0; i < 4; i++) {
      await sleep(1000);
      expect(await c.keepAlive(lock)).toBeGreaterThan(0);
    }
    expect((await c.holder("renewed"))?.fencingToken).toBe(lock.fencingToken);
    await c.release(lock);
    expect(await c.holder("renewed")).toBeUndefined();
    await expect(c.keepAlive(lock)).rejects.toThrow("the lock is lost");
  }, 30_000);

  it("keeps locking with one of three members killed with -9", async () => {
    await procs.kill(running.get(members[0].name)!, "SIGKILL");
    const killedAt = Date.now();
    const c = client();
    const lock = await c.acquire("stock:sku-2", { ttlSeconds: 10, waitMs: 15_000 });
    console.log(`locks: first lock after killing ${members[0].name} taken in ${Date.now() - killedAt} ms`);
    await c.release(lock);
    for (let i = 0; i < 5; i++) await c.release(await c.acquire("stock:sku-2", { waitMs: 5_000 }));
  }, 30_000);
});
