import { spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { etcdEnvironment, etcdMemberEnv } from "../../components/coordination/etcd-cluster";
import { EtcdLockClient, LockTimeoutError, type HeldLock } from "../../components/coordination/lock-client";
import { memberValues } from "../../components/platform/docker";
import { KILL_MS, ProcessGroup, SLOW_MACHINE_FACTOR, tempDir, waitFor } from "../support/daemons";
import { ensureUser, ownedDir, PG_USER, startAsUser } from "../support/postgres";
import { testCa, testCert } from "../support/tls";

/**
 * The lock service as deployed: three etcd members (Debian's etcd 3.4, unprivileged)
 * configured only by the environment LockService generates, serving HTTPS to clients with a
 * certificate its CA signed; locks taken with the exported EtcdLockClient, configured from the
 * app's environment (EtcdLockClient.fromEnv: the client key from the file LOCK_CLIENT_KEY_PEM_FILE
 * names).
 */
const NET = 170;
const members = [0, 1, 2].map((i) => ({ name: `locks-etcd-${i}`, host: `127.0.0.${NET + 1 + i}` }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Where the bounds below come from.
/** etcd's election timeout: the generated environment sets none, so etcd's default (1000 ms) applies. */
const ELECTION_TIMEOUT_MS = Number(etcdEnvironment("locks", members).ETCD_ELECTION_TIMEOUT ?? 1000);
/** A leader after one is lost: followers wait a randomised 1–2 election timeouts, then vote (loopback: ms). */
const ELECTION_MS = 2 * ELECTION_TIMEOUT_MS;
/** The lock client's per-request timeout (its default, given explicitly so the bounds can use it). */
const REQUEST_TIMEOUT_MS = 2000;
/** etcd's start-up (well under a few seconds here): no timer governs it, a cap for a loaded 2-core machine. */
const START_CAP_MS = 20_000;
/**
 * Taking a lock while a member is lost: a request sent during the election may hang until the
 * client's timeout and is retried; the election itself is `ELECTION_MS`. ×3 for a loaded machine.
 */
const LOCK_AFTER_LOSS_MS = SLOW_MACHINE_FACTOR * (ELECTION_MS + REQUEST_TIMEOUT_MS);
/** The set-up: the certificates (openssl, a cap of 30 s) and the first answer. */
const SET_UP_MS = 30_000 + START_CAP_MS + LOCK_AFTER_LOSS_MS;
const LOCK_AFTER_LOSS = `election 2 × ${ELECTION_TIMEOUT_MS} ms (etcd's default election timeout) + a request timed out at ${REQUEST_TIMEOUT_MS} ms, ×${SLOW_MACHINE_FACTOR}`;

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
      running.set(m.name, startAsUser(procs, "etcd", [], own));
    }
    endpoints = members.map((m) => `https://${m.host}:2379`);
    // The app's environment as LockService.appEnv() and a ServerCluster give it: plain settings,
    // and the client key only as a file that LOCK_CLIENT_KEY_PEM_FILE names.
    const appEnv = {
      LOCK_ENDPOINTS: endpoints.join(","),
      LOCK_CA_PEM: ca.cert,
      LOCK_CLIENT_CERT_PEM: app.cert,
      LOCK_CLIENT_KEY_PEM_FILE: app.keyFile,
      LOCK_TTL_SECONDS: "10",
    };
    client = () => EtcdLockClient.fromEnv(appEnv, "LOCK_", { requestTimeoutMs: REQUEST_TIMEOUT_MS });
    await waitFor(
      "etcd answers a lock request",
      async () => {
        await client().holder("probe");
        return true;
      },
      {
        withinMs: START_CAP_MS + LOCK_AFTER_LOSS_MS,
        intervalMs: 200,
        because: `etcd start-up: no timer governs it, a cap of ${START_CAP_MS} ms; then the first ${LOCK_AFTER_LOSS}`,
      },
    );
  }, SET_UP_MS);

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it(
    "refuses a client without a certificate the CA signed",
    async () => {
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
    },
    2 *
      members.length *
      1000 *
      SLOW_MACHINE_FACTOR /* two requests, each trying every endpoint for at most 1 s */,
  );

  it(
    "never lets two contenders hold the lock at once, and fencing tokens only grow",
    async () => {
      let holders = 0;
      let maxHolders = 0;
      const tokens: bigint[] = [];
      let longestWait = 0;
      const contender = async (id: string) => {
        const c = client();
        // Bounded: 20 rounds each. A contender waits for the other's turn (a few ms of holding and
        // a release; acquire is not fair, so no timer governs it): capped at the lease TTL, the
        // longest a holder keeps the lock even if it died.
        for (let round = 0; round < 20; round++) {
          const asked = Date.now();
          const lock = await c.acquire("stock:sku-1", { ttlSeconds: 10, waitMs: 10_000, pollMs: 20 });
          longestWait = Math.max(longestWait, Date.now() - asked);
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
        `locks: 40 acquisitions by 2 contenders in ${Date.now() - started} ms (the longest wait ${longestWait} ms), ` +
          `at most ${maxHolders} holder at a time`,
      );
      expect(maxHolders).toBe(1);
      expect(tokens).toHaveLength(40);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i] > tokens[i - 1]).toBe(true);
    },
    60_000 /* 40 contended acquisitions took under 0.5 s here: no timer governs them, a cap */,
  );

  // The dead holder's lease: the check that nobody else gets the lock meanwhile (a 500 ms wait and
  // two requests, well under a second here) must end inside it, on a loaded machine too.
  const DEAD_TTL_S = 5;
  // etcd's leader revokes an expired lease at its next expiry check (every 500 ms), through raft.
  const EXPIRED_MS = SLOW_MACHINE_FACTOR * (DEAD_TTL_S * 1000 + 500);
  // Besides that wait, about ten requests, each trying every member for at most the request timeout.
  const DEAD_HOLDER_TEST_MS = EXPIRED_MS + 10 * members.length * REQUEST_TIMEOUT_MS;

  it(
    "gives the lock to the next contender once a dead holder's lease runs out",
    async () => {
      const dead: HeldLock = await client().acquire("report:nightly", { ttlSeconds: DEAD_TTL_S });
      const acquiredAt = Date.now();
      // The holder "dies": it neither renews nor releases. While its lease lives, nobody else
      // gets the lock (checked by outcome, not by the clock).
      await expect(client().acquire("report:nightly", { waitMs: 500 })).rejects.toBeInstanceOf(
        LockTimeoutError,
      );
      expect((await client().holder("report:nightly"))?.fencingToken).toBe(dead.fencingToken);
      // Within the lease TTL and etcd's expiry check (every 500 ms), ×3 for a loaded machine.
      const next = await client().acquire("report:nightly", { ttlSeconds: 10, waitMs: EXPIRED_MS });
      const after = Date.now() - acquiredAt;
      console.log(
        `locks: holder with a ${DEAD_TTL_S} s lease died; the next contender got the lock ${after} ms after it was taken`,
      );
      expect(BigInt(next.fencingToken) > BigInt(dead.fencingToken)).toBe(true);
      await client().release(next);
    },
    DEAD_HOLDER_TEST_MS,
  );

  // Renewed at a third of the TTL (as etcd's own clients do), so a renewal may come up to two
  // thirds of the TTL late before the lease runs out; renewed for twice the TTL.
  const RENEW_TTL_S = 3;
  const RENEW_EVERY_MS = (RENEW_TTL_S * 1000) / 3;
  const RENEWALS = 6;
  // The pauses, and a dozen requests, each trying every member for at most the request timeout.
  const RENEW_TEST_MS = RENEWALS * RENEW_EVERY_MS + (RENEWALS + 6) * members.length * REQUEST_TIMEOUT_MS;

  it(
    "keeps a renewed lease alive past its TTL",
    async () => {
      const c = client();
      const lock = await c.acquire("renewed", { ttlSeconds: RENEW_TTL_S });
      for (let i = 0; i < RENEWALS; i++) {
        await sleep(RENEW_EVERY_MS);
        expect(await c.keepAlive(lock)).toBeGreaterThan(0);
      }
      expect((await c.holder("renewed"))?.fencingToken).toBe(lock.fencingToken);
      await c.release(lock);
      expect(await c.holder("renewed")).toBeUndefined();
      await expect(c.keepAlive(lock)).rejects.toThrow("the lock is lost");
    },
    RENEW_TEST_MS,
  );

  // The kill, then six acquisitions and six releases (each trying every member at most once).
  const KILLED_TEST_MS = KILL_MS + 6 * (LOCK_AFTER_LOSS_MS + members.length * REQUEST_TIMEOUT_MS);

  it(
    "keeps locking with one of three members killed with -9",
    async () => {
      await procs.kill(running.get(members[0].name)!, "SIGKILL", KILL_MS);
      const killedAt = Date.now();
      const c = client();
      // If the killed member led, the others elect a leader first; a request meanwhile fails and is retried.
      const lock = await c.acquire("stock:sku-2", { ttlSeconds: 10, waitMs: LOCK_AFTER_LOSS_MS });
      console.log(`locks: first lock after killing ${members[0].name} taken in ${Date.now() - killedAt} ms`);
      await c.release(lock);
      for (let i = 0; i < 5; i++)
        await c.release(await c.acquire("stock:sku-2", { waitMs: LOCK_AFTER_LOSS_MS }));
    },
    KILLED_TEST_MS,
  );
});
