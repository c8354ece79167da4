import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
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
