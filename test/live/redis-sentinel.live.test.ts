import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import {
  renderRedisConf,
  renderRedisRouter,
  renderRedisStartScript,
  renderSentinelConf,
  SENTINEL_DEFAULT_TIMINGS,
  SENTINEL_FAST_TIMINGS,
  sentinelBudgetSeconds,
  type RedisRenderSpec,
} from "../../components/cache/render/redis";
import { ProcessGroup, tempDir, waitFor, withHosts } from "../support/daemons";

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

describe("Redis with Sentinel from the generated configs, store mode (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("redis");
  const running = new Map<string, ChildProcess>();
  const budget = sentinelBudgetSeconds(TIMINGS);

  const spec = (m: { ip: string }, dataDir: string): RedisRenderSpec => ({
    masterName: "cache",
    primaryHost: members[0].name,
    port: 6379,
    sentinelPort: 26379,
    quorum: 2,
    timings: TIMINGS,
    mode: "store",
    maxmemory: "64mb",
    minReplicasToWrite: 1,
    minReplicasMaxLagSeconds: 10,
    dataDir,
    bind: m.ip,
    sentinelBind: m.ip,
  });

  /** Writes the member's files once (a restart reuses them, as a container restart does). */
  function start(kind: "redis" | "sentinel", m: { name: string; ip: string }): void {
    const home = join(dir, m.name);
    const script = join(home, "start.sh");
    try {
      readFileSync(script);
    } catch {
      mkdirSync(home, { recursive: true });
      const s = spec(m, home);
      const template = join(home, "template.conf");
      writeFileSync(template, kind === "redis" ? renderRedisConf(s, creds) : renderSentinelConf(s, creds));
      const paths = {
        template,
        config: join(home, kind === "redis" ? "redis.conf" : "sentinel.conf"),
        binary: kind === "redis" ? "redis-server" : "redis-sentinel",
      };
      writeFileSync(script, renderRedisStartScript(kind, s, paths));
    }
    const env = { REDIS_MEMBER: m.name, REDIS_HOST: m.name };
    running.set(m.name, procs.start("unshare", withHosts(hosts, "sh", [script], env)));
  }

  const direct = (ip: string, port = 6379, password = creds.password) => {
    const c = new Redis({
      host: ip,
      port,
      password,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      retryStrategy: () => null,
    });
    c.on("error", () => undefined); // surfaced by the command that fails instead
    return c;
  };

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

  const router = { ip: `127.0.0.${NET + 7}`, port: 16379, stats: 18409 };

  /**
   * The primary every Sentinel names and that says it is one. Right after a failover the other
   * Sentinels learn the new configuration from the winner's hello messages (every 2 s), so
   * asking a single Sentinel can give the old answer for a moment.
   */
  async function agreedPrimary(): Promise<string> {
    let agreed = "";
    await waitFor(
      "Sentinels agree on the primary",
      async () => {
        const views = await Promise.all(sentinels.map((x) => sentinelSays(x.ip)));
        const m = members.find((x) => x.name === views[0]);
        if (m === undefined || views.some((v) => v !== views[0]) || (await roleOf(m.ip)) !== "master")
          return false;
        agreed = m.name;
        return true;
      },
      { attempts: 100, intervalMs: 200 },
    );
    return agreed;
  }

  beforeAll(async () => {
    for (const m of members) start("redis", m);
    for (const m of members)
      await waitFor(`${m.name} up`, async () => (await roleOf(m.ip)) !== "", { attempts: 100 });
    for (const s of sentinels) start("sentinel", s);
    // Every Sentinel knows the primary, both replicas and the two other Sentinels.
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
      { attempts: 150, intervalMs: 200 },
    );
    // The plain endpoint: HAProxy with the generated router config, checking role:master.
    const routerDir = tempDir("redis-router");
    writeFileSync(
      join(routerDir, "haproxy.cfg"),
      renderRedisRouter(
        {
          listenAddress: router.ip,
          statsAddress: router.ip,
          port: router.port,
          statsPort: router.stats,
          members: members.map((m) => ({ name: m.name, host: m.ip, port: 6379 })),
          check: { intervalMs: 500, timeoutMs: 400, fall: 2, rise: 2 },
          clientTimeoutMs: 60_000,
        },
        creds.password,
      ),
    );
    procs.start("haproxy", ["-f", join(routerDir, "haproxy.cfg"), "-db"]);
    await waitFor("router up", async () => (await routerRole()) === "master", { attempts: 100 });
  }, 60_000);

  afterAll(() => procs.stopAll());

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
    const replica = direct(members[1].ip);
    await replica.connect();
    await waitFor("replicated", async () => (await replica.get("hello")) === "world", { attempts: 50 });
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

  it("promotes a replica when the primary is killed with -9, and writes resume through Sentinel", async () => {
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
      connectTimeout: 1000,
      commandTimeout: 1000,
      retryStrategy: () => 100,
      sentinelRetryStrategy: () => 100,
    });
    client.on("error", () => undefined);
    await waitFor("client ready", async () => client.status === "ready", { attempts: 50 });
    const acked: number[] = [];
    let killedAt = 0;
    let firstAfterKill = 0;
    let failures = 0;
    const started = Date.now();
    // Bounded: 20000 writes or 70 s; the primary dies after 200 acknowledged writes.
    for (let i = 0; i < 20_000 && Date.now() - started < 70_000; i++) {
      if (acked.length === 200 && killedAt === 0) {
        killedAt = Date.now();
        await procs.kill(running.get(members[0].name)!, "SIGKILL");
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
    const promoted = await sentinelSays(sentinels[0].ip);
    expect(firstAfterKill).toBeGreaterThan(0);
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
    // The router's port follows: a write through it lands on the new primary.
    const viaRouter = direct(router.ip, router.port);
    const ms = await waitFor(
      "router on the new primary",
      async () => {
        try {
          if (viaRouter.status !== "ready") await viaRouter.connect();
          return (await viaRouter.set("via-router", "1")) === "OK";
        } catch {
          viaRouter.disconnect();
          return false;
        }
      },
      { attempts: 100, intervalMs: 100 },
    );
    viaRouter.disconnect();
    // Checked once the write loop ended: this says the port follows, not how fast it did.
    console.log(
      `redis: the router's port reaches the new primary (a write through it ${ms} ms after the loop ended)`,
    );
  }, 100_000);

  it("takes the old primary back as a replica of the new one, after exactly one failover", async () => {
    start("redis", members[0]);
    const replication = async () => {
      const c = direct(members[0].ip);
      try {
        await c.connect();
        return await c.info("replication");
      } finally {
        c.disconnect();
      }
    };
    // Sentinel converts a returning old primary (and fixes a replica that follows the wrong
    // primary): wait until it replicates, in sync, from the primary every Sentinel names.
    let now = "";
    const ms = await waitFor(
      "old primary follows the agreed primary",
      async () => {
        now = await agreedPrimary();
        const info = await replication();
        return info.includes(`master_host:${now}`) && info.includes("master_link_status:up");
      },
      { attempts: 200, intervalMs: 200 },
    );
    console.log(`redis: old primary back as a replica of ${now} ${ms} ms after restart`);
    // One kill, one failover: no Sentinel switched primaries twice (a down-after too close to
    // Sentinel's 1 s ping period did that: it failed over the primary it had just promoted).
    for (const x of sentinels) {
      const switches = (procs.logs.get(running.get(x.name)!.pid!) ?? "").split("+switch-master").length - 1;
      expect([x.name, switches]).toEqual([x.name, 1]);
    }
    // Sentinel follows its REPLICAOF with a CONFIG REWRITE (a separate command, so a moment
    // later): the config copy then says so, and the member stays a replica across restarts.
    const conf = join(dir, members[0].name, "redis.conf");
    const line = new RegExp(`^replicaof ${now} 6379$`, "m");
    await waitFor("config rewritten", async () => line.test(readFileSync(conf, "utf8")), { attempts: 100 });
    expect(readFileSync(conf, "utf8")).toMatch(line);
  }, 100_000);

  it("keeps a restarted Sentinel on the new primary (its rewritten config survives the restart)", async () => {
    const now = await agreedPrimary();
    await procs.kill(running.get(sentinels[2].name)!, "SIGKILL");
    start("sentinel", sentinels[2]);
    await waitFor("sentinel back", async () => (await sentinelSays(sentinels[2].ip)) !== undefined, {
      attempts: 100,
    });
    expect(await sentinelSays(sentinels[2].ip)).toBe(now);
  }, 30_000);
});

describe("Redis in cache mode from the generated redis.conf (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("redis-cache");
  const ip = `127.0.0.${NET + 8}`;

  afterAll(() => procs.stopAll());

  it("keeps nothing on disk and evicts the least recently used keys instead of refusing writes", async () => {
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
      await waitFor("redis up", async () => (await c.ping()) === "PONG", { attempts: 50 });
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
  });
});
