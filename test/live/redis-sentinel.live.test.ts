import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import {
  renderRedisConf,
  renderRedisRouter,
  SENTINEL_DEFAULT_TIMINGS,
  SENTINEL_FAST_TIMINGS,
  sentinelBudgetSeconds,
} from "../../components/cache/render/redis";
import {
  haproxyServerStates,
  KILL_MS,
  ProcessGroup,
  SLOW_MACHINE_FACTOR,
  startHaproxy,
  tempDir,
  waitFor,
} from "../support/daemons";
import { failFastRedis, startRedisMember, type RedisMember, type RedisStoreSet } from "../support/redis";

/**
 * A Redis primary, two replicas and three Sentinels (Debian's redis 7.0) started by the
 * generated start scripts from the generated redis.conf and sentinel.conf, in store mode. Each
 * daemon sees the members by name (its own /etc/hosts in a private mount namespace), as in a
 * container; the test's client maps those names to loopback (ioredis natMap). The primary is
 * killed with -9 under write load.
 */
const NET = 150;
const creds = { password: "redis-pass-1", sentinelPassword: "sentinel-pass-1", configCommand: "CONFIG_t3st" };
const members = [0, 1, 2].map((i) => ({ name: `cache-redis-${i}`, ip: `127.0.0.${NET + 1 + i}` }));
const sentinels = [0, 1, 2].map((i) => ({ name: `cache-sentinel-${i}`, ip: `127.0.0.${NET + 4 + i}` }));
const hosts = Object.fromEntries([...members, ...sentinels].map((m) => [m.name, m.ip]));
// The component's timings, or with HA_BACKEND_SENTINEL_DEFAULTS=1 Redis's own (down-after 30 s),
// for a side-by-side figure.
const TIMINGS =
  process.env.HA_BACKEND_SENTINEL_DEFAULTS === "1" ? SENTINEL_DEFAULT_TIMINGS : SENTINEL_FAST_TIMINGS;
const natMap = Object.fromEntries(members.map((m) => [`${m.name}:6379`, { host: m.ip, port: 6379 }]));

// Where the bounds below come from. Sentinel's own periods are fixed in sentinel.c: a PING to
// every instance each second, a hello message each 2 s, an INFO each 10 s (each second during
// a failover).
const SENTINEL_PING_MS = 1000;
const SENTINEL_HELLO_MS = 2000;
const SENTINEL_INFO_MS = 10_000;
/** A daemon's start-up, which no timer governs (redis, Sentinel and HAProxy start in well under a second here). */
const START_CAP_MS = 15_000;
const STARTED = "start-up: no timer governs it; a cap for a loaded 2-core machine";
/** The generated router's health checks. */
const ROUTER_CHECK = { intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 };
/** A server changes state in the router after `fall` (or `rise`) checks, each up to interval + timeout apart. */
const ROUTER_FLIP_MS =
  Math.max(ROUTER_CHECK.fall, ROUTER_CHECK.rise) * (ROUTER_CHECK.intervalMs + ROUTER_CHECK.timeoutMs);
const ROUTER_FLIP = `router checks: max(fall ${ROUTER_CHECK.fall}, rise ${ROUTER_CHECK.rise}) × (inter ${ROUTER_CHECK.intervalMs} + timeout ${ROUTER_CHECK.timeoutMs} ms)`;
/**
 * From the primary's death to a promoted replica: Sentinel's budget (down-after + 4 s), ×3 for a
 * loaded machine, plus one retried election: after a split vote no Sentinel tries again before
 * 2 × failover-timeout.
 */
const FAILOVER_MS =
  SLOW_MACHINE_FACTOR * sentinelBudgetSeconds(TIMINGS) * 1000 + 2 * TIMINGS.failoverTimeoutMs;
const FAILOVER =
  `Sentinel budget ${sentinelBudgetSeconds(TIMINGS)} s (down-after ${TIMINGS.downAfterMs} ms + 4 s) ×${SLOW_MACHINE_FACTOR}` +
  ` + one retried election (2 × failover-timeout ${TIMINGS.failoverTimeoutMs} ms)`;
/** Every Sentinel names the new primary: the failover, then one hello period for the others to hear of it. */
const AGREED_MS = FAILOVER_MS + SLOW_MACHINE_FACTOR * SENTINEL_HELLO_MS;
const AGREED = `${FAILOVER}, then hello every ${SENTINEL_HELLO_MS} ms ×${SLOW_MACHINE_FACTOR}`;
/** ioredis's connect (and, for the Sentinel client, command) timeout in these tests. */
const CLIENT_TIMEOUT_MS = 1000;
/** Redis answers the 400 writes and the reads of a test in about a second: no timer governs it, a cap. */
const WRITES_CAP_MS = 20_000;
/** The Sentinel client is ready after asking the Sentinels, then connecting to the primary. */
const CLIENT_READY_MS = SLOW_MACHINE_FACTOR * (sentinels.length + 1) * CLIENT_TIMEOUT_MS;
/** The write loop: its writes (a cap) and the failover between them. */
const WRITE_LOOP_MS = WRITES_CAP_MS + FAILOVER_MS;

describe("Redis with Sentinel from the generated configs, store mode (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("redis");
  const running = new Map<string, ChildProcess>();
  const budget = sentinelBudgetSeconds(TIMINGS);

  const redisSet: RedisStoreSet = { primaryHost: members[0].name, timings: TIMINGS, creds, hosts };

  /** Writes the member's files once (a restart reuses them, as a container restart does). */
  function start(kind: "redis" | "sentinel", m: RedisMember): void {
    running.set(m.name, startRedisMember(procs, redisSet, kind, m, join(dir, m.name)));
  }

  /** A fail-fast client, each connect within CLIENT_TIMEOUT_MS. */
  const direct = (ip: string, port = 6379, password = creds.password) =>
    failFastRedis({ host: ip, port, password, connectTimeoutMs: CLIENT_TIMEOUT_MS });

  async function roleOf(ip: string): Promise<string> {
    const c = direct(ip);
    try {
      await c.connect();
      return ((await c.role()) as unknown[])[0] as string;
    } finally {
      c.disconnect();
    }
  }

  async function sentinelSays(ip: string): Promise<string | undefined> {
    const c = direct(ip, 26379, creds.sentinelPassword);
    try {
      await c.connect();
      const addr = (await c.call("SENTINEL", "get-master-addr-by-name", "cache")) as string[] | null;
      return addr?.[0];
    } finally {
      c.disconnect();
    }
  }

  /** `INFO replication` of a member, on a fresh connection (members restart under the tests). */
  async function replicationOf(ip: string): Promise<string> {
    const c = direct(ip);
    try {
      await c.connect();
      return await c.info("replication");
    } finally {
      c.disconnect();
    }
  }

  const router = { ip: `127.0.0.${NET + 7}`, port: 16379, stats: 18409 };

  /** The primary every Sentinel names, if they agree and it says it is one (one look, no waiting). */
  async function agreement(): Promise<string | undefined> {
    const views = await Promise.all(sentinels.map((x) => sentinelSays(x.ip)));
    const m = members.find((x) => x.name === views[0]);
    if (m === undefined || views.some((v) => v !== views[0]) || (await roleOf(m.ip)) !== "master")
      return undefined;
    return m.name;
  }

  /**
   * The primary every Sentinel names and that says it is one. Right after a failover the other
   * Sentinels learn the new configuration from the winner's hello messages (every 2 s), so
   * asking a single Sentinel can give the old answer for a moment.
   */
  async function agreedPrimary(): Promise<string> {
    let agreed: string | undefined;
    await waitFor("Sentinels agree on the primary", async () => (agreed = await agreement()) !== undefined, {
      withinMs: AGREED_MS,
      intervalMs: 200,
      because: AGREED,
    });
    return agreed as string;
  }

  /** Servers the router sends connections to (state UP, or UP and failing checks: "UP 1/2"), from its stats CSV. */
  async function routerServersUp(): Promise<string[]> {
    const states = await haproxyServerStates(router.ip, router.stats, CLIENT_TIMEOUT_MS);
    return members.filter((m) => states.get(`redis/${m.name}`)?.startsWith("UP")).map((m) => m.name);
  }

  // Set-up's bounds, summed for beforeAll's timeout.
  const SENTINELS_KNOW_MS = START_CAP_MS + SLOW_MACHINE_FACTOR * (SENTINEL_INFO_MS + SENTINEL_HELLO_MS);
  const ROUTER_UP_MS = START_CAP_MS + SLOW_MACHINE_FACTOR * ROUTER_FLIP_MS;
  const SET_UP_MS = members.length * START_CAP_MS + START_CAP_MS + SENTINELS_KNOW_MS + ROUTER_UP_MS;

  beforeAll(async () => {
    for (const m of members) start("redis", m);
    for (const m of members)
      await waitFor(`${m.name} up`, async () => (await roleOf(m.ip)) !== "", {
        withinMs: START_CAP_MS,
        because: `redis-server ${STARTED}`,
      });
    // Both replicas in sync before anything writes: store mode refuses writes (NOREPLICAS) until
    // one is. A replica retries its primary from replicationCron, once a second, and the
    // disk-less sync (delay 0) of an empty data set takes milliseconds.
    await waitFor(
      "both replicas online",
      async () =>
        ((await replicationOf(members[0].ip)).match(/^slave\d+:.*state=online/gm) ?? []).length === 2,
      { withinMs: START_CAP_MS, because: `replica handshake and initial sync: ${STARTED}` },
    );
    for (const s of sentinels) start("sentinel", s);
    // Every Sentinel knows the primary, both replicas (from the primary's INFO, every 10 s) and
    // the two other Sentinels (from their hello messages, every 2 s).
    await waitFor(
      "sentinels agree",
      async () => {
        for (const s of sentinels) {
          const c = direct(s.ip, 26379, creds.sentinelPassword);
          try {
            await c.connect();
            const replicas = (await c.call("SENTINEL", "replicas", "cache")) as unknown[];
            const peers = (await c.call("SENTINEL", "sentinels", "cache")) as unknown[];
            if (replicas.length !== 2 || peers.length !== 2) return false;
          } finally {
            c.disconnect();
          }
        }
        return true;
      },
      {
        withinMs: SENTINELS_KNOW_MS,
        intervalMs: 200,
        because: `redis-sentinel ${STARTED}; then Sentinel INFO every ${SENTINEL_INFO_MS} ms + hello every ${SENTINEL_HELLO_MS} ms, ×${SLOW_MACHINE_FACTOR}`,
      },
    );
    // The plain endpoint: HAProxy with the generated router config, checking role:master.
    startHaproxy(
      procs,
      tempDir("redis-router"),
      renderRedisRouter(
        {
          listenAddress: router.ip,
          statsAddress: router.ip,
          port: router.port,
          statsPort: router.stats,
          members: members.map((m) => ({ name: m.name, host: m.ip, port: 6379 })),
          check: ROUTER_CHECK,
          clientTimeoutMs: 60_000,
        },
        creds.password,
      ),
    );
    // HAProxy starts with every server UP: it is ready once its checks took the replicas out.
    await waitFor(
      "router sends only to the primary",
      async () => (await routerServersUp()).join() === members[0].name,
      { withinMs: ROUTER_UP_MS, because: `haproxy ${STARTED}; then ${ROUTER_FLIP} ×${SLOW_MACHINE_FACTOR}` },
    );
    expect(await routerRole()).toBe("master");
  }, SET_UP_MS);

  afterAll(() => procs.stopAll(join(dir, "logs")));

  /** The role of whichever member the router's port reaches. */
  async function routerRole(): Promise<string> {
    const c = direct(router.ip, router.port);
    try {
      await c.connect();
      return ((await c.role()) as unknown[])[0] as string;
    } finally {
      c.disconnect();
    }
  }

  it("replicates to both replicas by name, which refuse writes; FLUSHALL and CONFIG are gone", async () => {
    expect(await roleOf(members[0].ip)).toBe("master");
    const primary = direct(members[0].ip);
    await primary.connect();
    await primary.set("hello", "world");
    const info = await primary.info("replication");
    expect(info).toContain("connected_slaves:2");
    expect(info).toContain(`ip=${members[1].name},port=6379`);
    await expect(primary.flushall()).rejects.toThrow(/unknown command/);
    await expect(primary.config("GET", "dir")).rejects.toThrow(/unknown command/);
    // The renamed command is the one Sentinel uses.
    expect(await primary.call(creds.configCommand, "GET", "appendonly")).toEqual(["appendonly", "yes"]);
    primary.disconnect();
    // The replica is online (set-up waited for it): the primary streams each write to it at once.
    const replica = direct(members[1].ip);
    await replica.connect();
    await waitFor("replicated", async () => (await replica.get("hello")) === "world", {
      withinMs: 10_000,
      because:
        "an online replica gets each write at once: no timer governs it; a cap for a loaded 2-core machine",
    });
    await expect(replica.set("x", "1")).rejects.toThrow(/READONLY/);
    replica.disconnect();
    // Without the password nothing is served (no ready check: it would fail the same way).
    const anonymous = new Redis({
      host: members[0].ip,
      lazyConnect: true,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    anonymous.on("error", () => undefined);
    try {
      await anonymous.connect();
      await expect(anonymous.get("hello")).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
    }
  });

  it(
    "promotes a replica when the primary is killed with -9, and writes resume through Sentinel",
    async () => {
      const client = new Redis({
        sentinels: sentinels.map((s) => ({ host: s.ip, port: 26379 })),
        name: "cache",
        password: creds.password,
        sentinelPassword: creds.sentinelPassword,
        natMap,
        // Sentinels announce names this process cannot resolve: keep to the list given.
        updateSentinels: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: CLIENT_TIMEOUT_MS,
        commandTimeout: CLIENT_TIMEOUT_MS,
        retryStrategy: () => 100,
        sentinelRetryStrategy: () => 100,
      });
      client.on("error", () => undefined);
      await waitFor("client ready", async () => client.status === "ready", {
        withinMs: CLIENT_READY_MS,
        because: `ioredis asks the Sentinels, then connects to the primary: up to ${sentinels.length + 1} connects of ${CLIENT_TIMEOUT_MS} ms, ×${SLOW_MACHINE_FACTOR}`,
      });
      const acked: number[] = [];
      let killedAt = 0;
      let firstAfterKill = 0;
      let failures = 0;
      const started = Date.now();
      // Bounded in count and time: the writes themselves (a cap) and the failover between them.
      // A failed attempt backs off 50 ms, so the count is never what ends the loop.
      for (let i = 0; i < 20_000 && Date.now() - started < WRITE_LOOP_MS; i++) {
        if (acked.length === 200 && killedAt === 0) {
          killedAt = Date.now();
          await procs.kill(running.get(members[0].name)!, "SIGKILL", KILL_MS);
        }
        try {
          await client.set(`order:${i}`, String(i));
          acked.push(i);
          if (killedAt !== 0 && firstAfterKill === 0) firstAfterKill = Date.now();
          if (killedAt !== 0 && acked.length >= 400) break;
        } catch {
          failures++;
          await new Promise((r) => setTimeout(r, 50)); // back-off within the loop's bounds
        }
      }
      const outage = (firstAfterKill - killedAt) / 1000;
      expect(firstAfterKill).toBeGreaterThan(0);
      // The client asked one Sentinel; the others may hear of the promotion a hello period later.
      const promoted = await agreedPrimary();
      expect(promoted).toBeDefined();
      expect(promoted).not.toBe(members[0].name);
      // Every acknowledged write, looked up on the new primary.
      const values = await client.mget(...acked.map((i) => `order:${i}`));
      const lost = acked.filter((_, k) => values[k] === null);
      client.disconnect();
      console.log(
        `redis: primary killed; writes resumed on ${promoted} after ${outage.toFixed(1)} s ` +
          `(budget ${budget} s from down-after ${TIMINGS.downAfterMs} ms); ` +
          `${failures} failed attempts; acknowledged writes lost: ${lost.length} of ${acked.length}`,
      );
      // Replication is asynchronous: the figure is printed, not asserted. What must hold is that
      // the new primary took writes.
      expect(acked.length).toBeGreaterThanOrEqual(400);
      // The router's port follows: a write through it lands on the new primary (a fresh connection
      // each probe: the router cut the ones to the dead primary).
      const ms = await waitFor(
        "router on the new primary",
        async () => {
          const viaRouter = direct(router.ip, router.port);
          try {
            await viaRouter.connect();
            return (await viaRouter.set("via-router", "1")) === "OK";
          } finally {
            viaRouter.disconnect();
          }
        },
        { withinMs: SLOW_MACHINE_FACTOR * ROUTER_FLIP_MS, because: `${ROUTER_FLIP} ×${SLOW_MACHINE_FACTOR}` },
      );
      // Checked once the write loop ended: this says the port follows, not how fast it did.
      console.log(
        `redis: the router's port reaches the new primary (a write through it ${ms} ms after the loop ended)`,
      );
    },
    CLIENT_READY_MS +
      WRITE_LOOP_MS +
      KILL_MS +
      AGREED_MS +
      WRITES_CAP_MS +
      SLOW_MACHINE_FACTOR * ROUTER_FLIP_MS,
  );

  // Sentinel converts a returning old primary at its first INFO to it (every 10 s) once the
  // member has reported role:master, without being down, for 4 hello periods (sentinel.c); the
  // link comes back within a PING period. Then a disk-less sync (delay 0) of a small data set.
  const CONVERTED_MS =
    START_CAP_MS + SLOW_MACHINE_FACTOR * (SENTINEL_PING_MS + SENTINEL_INFO_MS + 4 * SENTINEL_HELLO_MS);
  // Sentinel sends REPLICAOF and CONFIG REWRITE in one MULTI/EXEC (sentinelSendSlaveOf): the
  // file is rewritten before the member reports its new primary. A cap of one INFO period.
  const REWRITTEN_MS = SENTINEL_INFO_MS;
  // Sentinel logs +switch-master before it answers with the new primary: only the pipe to
  // this process is left, well within a hello period ×3.
  const LOGGED_MS = SLOW_MACHINE_FACTOR * SENTINEL_HELLO_MS;

  it(
    "takes the old primary back as a replica of the new one, after exactly one failover",
    async () => {
      start("redis", members[0]);
      // Sentinel converts a returning old primary (and fixes a replica that follows the wrong
      // primary): wait until it replicates, in sync, from the primary every Sentinel names.
      let now: string | undefined;
      const ms = await waitFor(
        "old primary follows the agreed primary",
        async () => {
          now = await agreement();
          if (now === undefined) return false;
          const info = await replicationOf(members[0].ip);
          return info.includes(`master_host:${now}`) && info.includes("master_link_status:up");
        },
        {
          withinMs: CONVERTED_MS,
          intervalMs: 200,
          because:
            `redis-server ${STARTED}; then Sentinel's conversion: PING ${SENTINEL_PING_MS} + INFO ${SENTINEL_INFO_MS}` +
            ` + 4 × hello ${SENTINEL_HELLO_MS} ms, ×${SLOW_MACHINE_FACTOR}`,
        },
      );
      console.log(`redis: old primary back as a replica of ${now} ${ms} ms after restart`);
      // One kill, one failover: no Sentinel switched primaries twice (a down-after too close to
      // Sentinel's 1 s ping period did that: it failed over the primary it had just promoted).
      const switches = (x: { name: string }) =>
        (procs.logs.get(running.get(x.name)!.pid!) ?? "").split("+switch-master").length - 1;
      await waitFor("every Sentinel logged its switch", async () => sentinels.every((x) => switches(x) > 0), {
        withinMs: LOGGED_MS,
        because: `logged before Sentinel answers with the new primary; the pipe's delivery: hello ${SENTINEL_HELLO_MS} ms ×${SLOW_MACHINE_FACTOR} as a cap`,
      });
      for (const x of sentinels) expect([x.name, switches(x)]).toEqual([x.name, 1]);
      // The member stays a replica across restarts: its config copy says so.
      const conf = join(dir, members[0].name, "redis.conf");
      const line = new RegExp(`^replicaof ${now} 6379$`, "m");
      await waitFor("config rewritten", async () => line.test(readFileSync(conf, "utf8")), {
        withinMs: REWRITTEN_MS,
        because: `REPLICAOF and CONFIG REWRITE go in one MULTI (written already); a cap of one INFO period, ${SENTINEL_INFO_MS} ms`,
      });
      expect(readFileSync(conf, "utf8")).toMatch(line);
    },
    CONVERTED_MS + LOGGED_MS + REWRITTEN_MS + WRITES_CAP_MS,
  );

  it(
    "keeps a restarted Sentinel on the new primary (its rewritten config survives the restart)",
    async () => {
      const now = await agreedPrimary();
      await procs.kill(running.get(sentinels[2].name)!, "SIGKILL", KILL_MS);
      start("sentinel", sentinels[2]);
      await waitFor("sentinel back", async () => (await sentinelSays(sentinels[2].ip)) !== undefined, {
        withinMs: START_CAP_MS,
        because: `redis-sentinel ${STARTED}`,
      });
      // Deliberately one look, not a wait: it answers from its config file at once, and a wait
      // would let the others' hello messages (every 2 s) hide a config that did not survive.
      expect(await sentinelSays(sentinels[2].ip)).toBe(now);
    },
    AGREED_MS + KILL_MS + START_CAP_MS + WRITES_CAP_MS,
  );
});

describe("Redis in cache mode from the generated redis.conf (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("redis-cache");
  const ip = `127.0.0.${NET + 8}`;

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it(
    "keeps nothing on disk and evicts the least recently used keys instead of refusing writes",
    async () => {
      const conf = join(dir, "redis.conf");
      writeFileSync(
        conf,
        renderRedisConf(
          {
            masterName: "pages",
            primaryHost: "pages-redis-0",
            port: 6379,
            sentinelPort: 26379,
            quorum: 2,
            timings: SENTINEL_FAST_TIMINGS,
            mode: "cache",
            maxmemory: "2mb",
            minReplicasToWrite: 0,
            minReplicasMaxLagSeconds: 10,
            dataDir: dir,
            bind: ip,
          },
          creds,
        ),
      );
      procs.start("redis-server", [conf]);
      const c = new Redis({
        host: ip,
        password: creds.password,
        maxRetriesPerRequest: 0,
        retryStrategy: () => 100, // reconnects while the server starts; closed in finally
      });
      c.on("error", () => undefined);
      try {
        await waitFor("redis up", async () => (await c.ping()) === "PONG", {
          withinMs: START_CAP_MS,
          because: `redis-server ${STARTED}`,
        });
        const value = "x".repeat(1024);
        // 4 MB into a 2 MB cache: every write succeeds, the oldest keys make room.
        for (let i = 0; i < 4000; i++) await c.set(`page:${i}`, value);
        const stats = await c.info("stats");
        const evicted = Number(/evicted_keys:(\d+)/.exec(stats)?.[1]);
        console.log(`redis cache mode: 4000 writes of 1 KiB into maxmemory 2mb, ${evicted} keys evicted`);
        expect(evicted).toBeGreaterThan(0);
        expect(await c.get("page:3999")).toBe(value);
        expect((await c.info("persistence")).match(/aof_enabled:(\d)/)?.[1]).toBe("0");
      } finally {
        c.disconnect();
      }
    },
    START_CAP_MS + WRITES_CAP_MS,
  );
});
