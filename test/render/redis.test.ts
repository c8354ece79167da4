import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import {
  REDIS_MONITOR_COMMANDS,
  REDIS_MONITOR_USER,
  renderRedisConf,
  renderRedisPing,
  renderRedisStartScript,
  renderSentinelConf,
  SENTINEL_DEFAULT_TIMINGS,
  SENTINEL_FAST_TIMINGS,
  sentinelBudgetSeconds,
  type RedisRenderSpec,
} from "../../components/cache/render/redis";
import { binary, ProcessGroup, tempDir, waitFor } from "../support/daemons";
import { expectGolden } from "../support/golden";

const spec: RedisRenderSpec = {
  masterName: "cache",
  primaryHost: "cache-redis-0",
  port: 6379,
  sentinelPort: 26379,
  quorum: 2,
  timings: SENTINEL_FAST_TIMINGS,
  mode: "store",
  maxmemory: "256mb",
  minReplicasToWrite: 1,
  minReplicasMaxLagSeconds: 10,
  dataDir: "/data",
};
const creds = { password: "pw", sentinelPassword: "spw", configCommand: "CONFIG_abc" };

describe("renderRedisConf", () => {
  it("store mode: AOF, writes only with a recent replica, no eviction (golden)", () => {
    const conf = renderRedisConf(spec, creds);
    expectGolden("redis-store.conf", conf);
    for (const line of [
      "appendonly yes",
      "min-replicas-to-write 1",
      "min-replicas-max-lag 10",
      "maxmemory-policy noeviction",
      "requirepass pw",
      "masterauth pw",
      "protected-mode yes",
      'rename-command FLUSHALL ""',
      "rename-command CONFIG CONFIG_abc",
    ]) {
      expect(conf.split("\n")).toContain(line);
    }
  });

  it("cache mode: nothing on disk, LRU eviction, no write gate", () => {
    const conf = renderRedisConf({ ...spec, mode: "cache" }, creds).split("\n");
    expect(conf).toContain("appendonly no");
    expect(conf).toContain('save ""');
    expect(conf).toContain("maxmemory-policy allkeys-lru");
    expect(conf.some((l) => l.startsWith("min-replicas-to-write"))).toBe(false);
  });
});

describe("renderSentinelConf", () => {
  it("monitors the first primary by name with the fast timings and is told the renamed CONFIG (golden)", () => {
    const conf = renderSentinelConf(spec, creds);
    expectGolden("sentinel.conf", conf);
    const lines = conf.split("\n");
    // Sentinel reads hostnames only after this line.
    expect(lines.indexOf("sentinel resolve-hostnames yes")).toBeLessThan(
      lines.indexOf("sentinel monitor cache cache-redis-0 6379 2"),
    );
    expect(lines).toContain("sentinel down-after-milliseconds cache 2000");
    expect(lines).toContain("sentinel rename-command cache CONFIG CONFIG_abc");
    expect(lines).toContain("sentinel sentinel-pass spw");
  });

  it("budgets down-after plus 4 s of Sentinel's own steps", () => {
    expect(sentinelBudgetSeconds(SENTINEL_FAST_TIMINGS)).toBe(6);
    expect(sentinelBudgetSeconds(SENTINEL_DEFAULT_TIMINGS)).toBe(34);
  });
});

/** Runs the start script with `cat` as the server, so it prints the config it would start with. */
function startAs(
  kind: "redis" | "sentinel",
  home: string,
  member: string,
  template: string,
): { code: number | null; conf: string } {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, "template.conf"), template);
  const paths = { template: join(home, "template.conf"), config: join(home, "live.conf"), binary: "cat" };
  writeFileSync(join(home, "start.sh"), renderRedisStartScript(kind, spec, paths));
  const r = spawnSync("sh", [join(home, "start.sh")], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, REDIS_MEMBER: member, REDIS_HOST: member },
  });
  return { code: r.status, conf: r.stdout };
}

describe("the start script", () => {
  it("first start: member 0 is the primary, the others replicate from it; each announces its name", () => {
    const dir = tempDir("redis-start");
    const zero = startAs("redis", join(dir, "0"), "cache-redis-0", "port 6379\n");
    expect(zero).toEqual({ code: 0, conf: "port 6379\nreplica-announce-ip cache-redis-0\n" });
    const one = startAs("redis", join(dir, "1"), "cache-redis-1", "port 6379\n");
    expect(one.conf).toBe("port 6379\nreplica-announce-ip cache-redis-1\nreplicaof cache-redis-0 6379\n");
  });

  it("a restart with the same template keeps what Sentinel wrote", () => {
    const home = join(tempDir("redis-start"), "1");
    startAs("redis", home, "cache-redis-1", "port 6379\n");
    writeFileSync(join(home, "live.conf"), "port 6379\n# rewritten by Sentinel\n");
    expect(startAs("redis", home, "cache-redis-1", "port 6379\n").conf).toBe(
      "port 6379\n# rewritten by Sentinel\n",
    );
  });

  it("a changed template keeps the member's current role: the replicaof Sentinel set, or none on a promoted primary", () => {
    const dir = tempDir("redis-start");
    const replica = join(dir, "0");
    startAs("redis", replica, "cache-redis-0", "port 6379\n");
    writeFileSync(join(replica, "live.conf"), "port 6379\nreplicaof cache-redis-2 6379\n");
    expect(startAs("redis", replica, "cache-redis-0", "port 6380\n").conf).toBe(
      "port 6380\nreplica-announce-ip cache-redis-0\nreplicaof cache-redis-2 6379\n",
    );
    const promoted = join(dir, "2");
    startAs("redis", promoted, "cache-redis-2", "port 6379\n");
    writeFileSync(join(promoted, "live.conf"), "port 6379\n");
    expect(startAs("redis", promoted, "cache-redis-2", "port 6380\n").conf).toBe(
      "port 6380\nreplica-announce-ip cache-redis-2\n",
    );
  });

  it("a Sentinel with a changed template keeps following the primary it last agreed on", () => {
    const home = join(tempDir("sentinel-start"), "s");
    const first = startAs(
      "sentinel",
      home,
      "cache-sentinel-0",
      "sentinel monitor cache cache-redis-0 6379 2\n",
    );
    expect(first.conf).toBe(
      "sentinel monitor cache cache-redis-0 6379 2\nsentinel announce-ip cache-sentinel-0\n",
    );
    writeFileSync(join(home, "live.conf"), "sentinel monitor cache cache-redis-1 6379 2\n");
    const next = startAs(
      "sentinel",
      home,
      "cache-sentinel-0",
      "sentinel monitor cache cache-redis-0 6379 3\n",
    );
    expect(next.conf).toBe(
      "sentinel monitor cache cache-redis-1 6379 3\nsentinel announce-ip cache-sentinel-0\n",
    );
    // The copy is private to the server's user: it holds passwords.
    expect(spawnSync("stat", ["-c", "%a", join(home, "live.conf")], { encoding: "utf8" }).stdout.trim()).toBe(
      "600",
    );
    expect(readFileSync(join(home, "live.conf.template"), "utf8")).toContain("6379 3");
  });
});

describe("renderRedisPing (the members' health check)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("redis-ping");
  // A port of its own on 127.0.0.1 (the check asks 127.0.0.1, as inside a container).
  const port = 16390;
  afterAll(() => procs.stopAll(join(dir, "logs")));

  /** The check as the container runs it, with a clean environment: no password anywhere in it. */
  const check = (config: string) =>
    spawnSync(renderRedisPing(port, config)[0], renderRedisPing(port, config).slice(1), {
      encoding: "utf8",
      env: { PATH: process.env.PATH },
      timeout: 10_000,
    });

  it("answers PONG with the password of the config it reads, and fails with another", async () => {
    // GIVEN redis-server running the generated redis.conf (password "pw")
    const conf = join(dir, "redis.conf");
    writeFileSync(conf, renderRedisConf({ ...spec, port, bind: "127.0.0.1", dataDir: dir }, creds));
    procs.start(binary("redis-server"), [conf]);
    await waitFor("redis-server answers the check", async () => check(conf).status === 0, {
      withinMs: 15_000,
      because: "redis-server start-up: no timer governs it; a cap for a loaded machine",
    });
    // WHEN the check reads a config with another password THEN it fails (NOAUTH/WRONGPASS, no PONG)
    const other = join(dir, "other.conf");
    writeFileSync(other, renderRedisConf({ ...spec, port, dataDir: dir }, { ...creds, password: "not-pw" }));
    expect(check(other).status).not.toBe(0);
    // AND the password never is in the command line the platform runs
    expect(renderRedisPing(port, conf).join(" ")).not.toContain(creds.password);
    expect(renderRedisPing(port, conf)).toEqual([
      "sh",
      "-c",
      `REDISCLI_AUTH="$(sed -n 's/^requirepass //p' ${conf})" redis-cli -h 127.0.0.1 -p ${port} ping | grep -q PONG`,
    ]);
  });
});

describe("the monitor user (redis_exporter's ACL user)", () => {
  const monitored = { ...creds, monitorPassword: "m.pw-1" };
  const aclLines = (conf: string) => conf.split("\n").filter((l) => l.startsWith("user "));

  it("is defined only with monitorPassword, in redis.conf and sentinel.conf, each with its own commands", () => {
    expect(aclLines(renderRedisConf(spec, creds))).toEqual([]);
    expect(aclLines(renderSentinelConf(spec, creds))).toEqual([]);
    expect(REDIS_MONITOR_USER).toBe("metrics");
    expect(aclLines(renderRedisConf(spec, monitored))).toEqual([
      "user metrics on >m.pw-1 resetkeys resetchannels -@all +info +client|setname +latency|latest +latency|histogram +slowlog|len",
    ]);
    expect(aclLines(renderSentinelConf(spec, monitored))).toEqual([
      "user metrics on >m.pw-1 resetkeys resetchannels -@all +info +client|setname +sentinel|masters +sentinel|sentinels +sentinel|slaves +sentinel|ckquorum",
    ]);
    // Never CONFIG (it reads the passwords), never a key or a write.
    for (const cmd of [...REDIS_MONITOR_COMMANDS.redis, ...REDIS_MONITOR_COMMANDS.sentinel]) {
      expect(cmd.split("|")[0]).not.toMatch(
        /^(config|keys|scan|get|set|del|flushall|flushdb|acl|debug|eval|module)$/,
      );
      expect(cmd).not.toBe("slowlog|get");
    }
    // The default user is configured exactly as without it.
    const without = (conf: string) =>
      conf.split("\n").filter((l) => !l.startsWith("user ") && !l.startsWith("# The metrics"));
    expect(without(renderRedisConf(spec, monitored))).toEqual(renderRedisConf(spec, creds).split("\n"));
    expect(without(renderSentinelConf(spec, monitored))).toEqual(renderSentinelConf(spec, creds).split("\n"));
  });

  it("refuses a password that would split the ACL line, without showing it", () => {
    expect(() => renderRedisConf(spec, { ...creds, monitorPassword: "a b" })).toThrow(
      "renderRedisConf: monitorPassword must be letters, digits, ., _, ~, +, = and - (1 to 256 characters), but a secret of 3 characters (not shown) was provided.",
    );
    expect(() =>
      renderSentinelConf(spec, { ...creds, monitorPassword: "x\nuser evil on nopass +@all" }),
    ).toThrow(
      /^renderSentinelConf: monitorPassword must .* but a secret of 27 characters \(not shown\) was provided\.$/,
    );
  });

  describe("in redis-server and redis-sentinel, from the generated files", () => {
    const procs = new ProcessGroup();
    const dir = tempDir("redis-acl");
    // Addresses of their own (the live tests' range ends at .199): one server, one Sentinel.
    const host = "127.0.0.199";
    const ports = { redis: 16391, sentinel: 26391 };
    const clients: Redis[] = [];
    afterAll(async () => {
      for (const c of clients) c.disconnect();
      await procs.stopAll(join(dir, "logs"));
    });

    /** A client that fails fast: one connect, no retries, errors surface on the command. */
    const client = (port: number, username: string | undefined, password: string) => {
      const c = new Redis({
        host,
        port,
        username,
        password,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        connectTimeout: 2_000,
        retryStrategy: () => null,
      });
      c.on("error", () => undefined);
      clients.push(c);
      return c;
    };
    const started = {
      withinMs: 15_000,
      because: "redis-server/redis-sentinel start-up: no timer governs it; a cap for a loaded machine",
    };

    it("the metrics user reads INFO and the latency and slow-log counts, and nothing else; the default user is unchanged", async () => {
      // GIVEN redis-server running the generated redis.conf with the monitor user
      const s = { ...spec, mode: "cache" as const, port: ports.redis, bind: host, dataDir: dir };
      const conf = join(dir, "redis.conf");
      writeFileSync(conf, renderRedisConf(s, monitored));
      procs.start(binary("redis-server"), [conf]);
      const admin = client(ports.redis, undefined, creds.password);
      await waitFor(
        "redis-server answers",
        async () => (await admin.connect().then(() => admin.ping())) === "PONG",
        started,
      );
      // WHEN the exporter's user logs in THEN it runs what the exporter runs
      const metrics = client(ports.redis, REDIS_MONITOR_USER, monitored.monitorPassword);
      await metrics.connect();
      expect(await metrics.info("replication")).toContain("role:master");
      expect(await metrics.call("CLIENT", "SETNAME", "redis_exporter")).toBe("OK");
      expect(await metrics.call("LATENCY", "LATEST")).toEqual([]);
      expect(await metrics.call("SLOWLOG", "LEN")).toBe(0);
      // AND nothing else: no CONFIG under its new name (it would read the passwords), no key, no write
      await expect(metrics.call(creds.configCommand, "GET", "requirepass")).rejects.toThrow(/NOPERM/);
      await expect(metrics.call("CONFIG", "GET", "requirepass")).rejects.toThrow(/unknown command/);
      for (const denied of [
        ["ACL", "WHOAMI"],
        ["ACL", "LIST"],
        ["SET", "k", "v"],
        ["GET", "k"],
        ["KEYS", "*"],
        ["SCAN", "0"],
        ["SLOWLOG", "GET", "1"],
        ["CLIENT", "KILL", "ID", "1"],
        ["SUBSCRIBE", "__sentinel__:hello"],
        ["REPLICAOF", "NO", "ONE"],
      ]) {
        await expect(metrics.call(denied[0], ...denied.slice(1))).rejects.toThrow(/NOPERM/);
      }
      // AND the default user works exactly as before: the password, every command, CONFIG renamed
      expect(await admin.call("ACL", "WHOAMI")).toBe("default");
      expect(await admin.set("k", "v")).toBe("OK");
      expect(await admin.call(creds.configCommand, "GET", "maxmemory-policy")).toEqual([
        "maxmemory-policy",
        "allkeys-lru",
      ]);
      // The server's own view of the user: on, no keys, no channels, only the exporter's commands.
      const user = (await admin.call("ACL", "GETUSER", REDIS_MONITOR_USER)) as unknown[];
      const field = (name: string) => user[user.indexOf(name) + 1];
      expect(field("flags")).toEqual(["on"]);
      expect(field("keys")).toBe("");
      expect(field("channels")).toBe("");
      expect(String(field("commands")).split(" ").sort()).toEqual(
        ["-@all", ...REDIS_MONITOR_COMMANDS.redis.map((c) => `+${c}`)].sort(),
      );
    });

    it("Sentinel starts with its own rules, and the metrics user reads only its master list", async () => {
      // GIVEN redis-sentinel running the generated sentinel.conf (it must start: an unknown
      // command in an ACL rule would stop it), monitoring the server above
      const s = {
        ...spec,
        primaryHost: host,
        port: ports.redis,
        sentinelPort: ports.sentinel,
        quorum: 1,
        sentinelBind: host,
        dataDir: dir,
      };
      const conf = join(dir, "sentinel.conf");
      writeFileSync(conf, renderSentinelConf(s, monitored));
      procs.start(binary("redis-sentinel"), [conf]);
      const admin = client(ports.sentinel, undefined, creds.sentinelPassword);
      await waitFor(
        "redis-sentinel answers",
        async () => (await admin.connect().then(() => admin.ping())) === "PONG",
        started,
      );
      const metrics = client(ports.sentinel, REDIS_MONITOR_USER, monitored.monitorPassword);
      await metrics.connect();
      // WHEN the exporter's user asks THEN it gets the master list, its Sentinels, replicas and quorum
      const masters = (await metrics.call("SENTINEL", "MASTERS")) as string[][];
      expect(masters[0].slice(0, 2)).toEqual(["name", "cache"]);
      expect(await metrics.call("SENTINEL", "SENTINELS", "cache")).toEqual([]);
      expect(await metrics.call("SENTINEL", "SLAVES", "cache")).toEqual([]);
      expect(await metrics.call("SENTINEL", "CKQUORUM", "cache")).toMatch(/^OK/);
      expect(await metrics.info("sentinel")).toContain("sentinel_masters:1");
      // AND it cannot reconfigure, fail over, or read the monitored server's password
      for (const denied of [
        ["SENTINEL", "SET", "cache", "quorum", "2"],
        ["SENTINEL", "FAILOVER", "cache"],
        ["SENTINEL", "CONFIG", "GET", "*"],
        ["SENTINEL", "RESET", "*"],
        ["SENTINEL", "REMOVE", "cache"],
        ["ACL", "LIST"],
      ]) {
        await expect(metrics.call(denied[0], ...denied.slice(1))).rejects.toThrow(/NOPERM/);
      }
      // AND Sentinel's own rewrite of its file (it saves its state there) keeps the user.
      await admin.call("SENTINEL", "FLUSHCONFIG");
      expect(readFileSync(conf, "utf8")).toMatch(/^user metrics on #[0-9a-f]{64} .*\+sentinel\|masters/m);
    });
  });
});
