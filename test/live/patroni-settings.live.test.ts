import { execFile } from "node:child_process";
import { rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { parse } from "yaml";
import {
  failoverBudgetSeconds,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  type PatroniTimings,
} from "../../components/database/render/patroni";
import {
  APPLY_SETTINGS_EXIT,
  patroniDynamicConfig,
  settingsDigest,
} from "../../components/database/render/patroni-settings";
import { PostgresCluster } from "../../components/database/postgres-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { httpGet, SLOW_MACHINE_FACTOR, waitFor, type HttpResult } from "../support/daemons";
import { runComponents } from "../support/engine";
import {
  CLUSTER_START_TIMEOUT_MS,
  LivePatroniCluster,
  ROUTER_CHECK,
  waitForSyncStandby,
  WAL_RETRY_MS,
} from "../support/patroni";
import { synthesizedSettingsTask, type SynthesizedSettingsTask } from "../support/patroni-task";
import { ensureUser, runAsUser, type Run } from "../support/postgres";

/**
 * Changing Patroni's dynamic settings on a running cluster: three members bootstrapped with
 * Patroni's own timings (A), then the task a PostgresCluster with settings B (fast timings)
 * declares — its command line, script, settings file, credential variables and password file,
 * taken from the container the mocked engine records — run against their REST API as the
 * unprivileged user, then the leader killed with -9 to show the cluster fails over on B's clock,
 * not A's.
 */
const REST_USER = "patroni";
const REST_PASSWORD = "rest-pass-1";

/** Settings A: what the cluster is created with (Patroni's defaults: ttl 30, loop_wait 10, retry_timeout 10). */
const A: { timings: PatroniTimings; lag: number } = { timings: PATRONI_DEFAULT_TIMINGS, lag: 1_048_576 };
/** Settings B: what the apply script brings it to (ttl 10, loop_wait 2, retry_timeout 3, twice the lag). */
const B: { timings: PatroniTimings; lag: number } = { timings: PATRONI_FAST_TIMINGS, lag: 2_097_152 };

// Where the bounds below come from (and WAL_RETRY_MS in ../support/patroni).
const LOOP_A_MS = A.timings.loopWait * 1000;
const LOOP_B_MS = B.timings.loopWait * 1000;
const BUDGET_A_MS = failoverBudgetSeconds(A.timings, ROUTER_CHECK) * 1000;
const BUDGET_B_MS = failoverBudgetSeconds(B.timings, ROUTER_CHECK) * 1000;
/** 100 synchronous commits on loopback take well under a second; a cap for a loaded machine. */
const PRE_KILL_CAP_MS = 30_000;
/** etcdctl and patronictl give up on a request after a few seconds; a process start on top. */
const CTL_TIMEOUT_MS = 15_000;
/**
 * The task runs exactly as the component declares it, with the script's own bounds (deadline
 * 300 s): this is the create timeout the component gives the task (360 s), the cap each run of it
 * gets here (checked in beforeAll). Members confirm within their next loop (loop_wait A, 10 s).
 */
const TASK_CAP_MS = 360_000;

/** etcdctl (v3 API) against the cluster's etcd, asynchronously and bounded. */
function etcdctl(host: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      "etcdctl",
      [`--endpoints=http://${host}:2379`, "--command-timeout=3s", ...args],
      { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: CTL_TIMEOUT_MS },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : -1, output: error === null ? stdout : stdout + stderr }),
    );
  });
}

/**
 * The TTL etcd granted the lease a key is attached to: a member that applied a new `ttl` grants
 * itself a new lease with it and moves its keys there. Lease ids are int64, beyond a JSON number's
 * precision: read as text.
 */
async function grantedTtl(host: string, key: string): Promise<number | undefined> {
  const got = await etcdctl(host, "get", key, "-w", "json");
  const lease = /"lease":(\d+)/.exec(got.output)?.[1];
  if (got.code !== 0 || lease === undefined) return undefined;
  const ttl = await etcdctl(host, "lease", "timetolive", BigInt(lease).toString(16), "-w", "json");
  const granted = /"granted-ttl":(\d+)/.exec(ttl.output)?.[1];
  return ttl.code === 0 && granted !== undefined ? Number(granted) : undefined;
}

/** One request with a JSON body to a loopback address, optional basic auth, hard timeout. */
function httpSend(
  host: string,
  port: number,
  method: string,
  path: string,
  body: unknown,
  auth?: { user: string; password: string },
): Promise<HttpResult> {
  const data = JSON.stringify(body);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(data)),
  };
  if (auth)
    headers.Authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, headers, timeout: 5_000, agent: false }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout after 5000 ms")));
    req.on("error", reject);
    req.end(data);
  });
}

describe("Patroni dynamic settings changed on a running cluster by the PostgresCluster's settings task (live)", () => {
  const cluster = new LivePatroniCluster({
    name: "patroni-settings",
    net: 230,
    timings: A.timings,
    maximumLagOnFailover: A.lag,
    restApi: { username: REST_USER, password: REST_PASSWORD },
  });
  const { dir, etcdHost, members, router, scope } = cluster;
  /** The settings task for B, as the component declares it: set in beforeAll. */
  let task: SynthesizedSettingsTask;
  /** Tests that ran to their end: all of them, and the whole directory goes in afterAll. */
  let finished = 0;
  const TESTS = 4;

  const configA = patroniDynamicConfig(cluster.spec(members[0]));
  /**
   * Settings A as the DCS holds them after bootstrap: Patroni reads patroni.yml with PyYAML, a
   * YAML 1.1 parser, for which an unquoted `on` is a boolean (YAML 1.2, and the renderer, say a
   * string). PostgreSQL and Patroni treat both alike; the first apply stores the strings.
   */
  const seededA = {
    ...configA,
    postgresql: {
      ...configA.postgresql,
      parameters: { ...configA.postgresql.parameters, hot_standby: true, wal_log_hints: true },
    },
  };
  const configB = patroniDynamicConfig({
    ...cluster.spec(members[0]),
    timings: B.timings,
    maximumLagOnFailover: B.lag,
  });

  /** The DCS's dynamic configuration as `patronictl show-config` prints it (YAML). */
  async function showConfig(): Promise<unknown> {
    const r = await runAsUser(
      "patronictl",
      ["-c", cluster.ymlPath(members[0].name), "show-config"],
      {},
      CTL_TIMEOUT_MS,
    );
    if (r.code !== 0) throw new Error(`patronictl show-config exited ${r.code}: ${r.output}`);
    return parse(r.output);
  }

  /**
   * A PostgresCluster with settings B and the live cluster's other settings (its name gives the
   * live members' names), on Docker under the mocked engine: the task `pulumi up` would run.
   */
  async function declaredTaskB(): Promise<SynthesizedSettingsTask> {
    const live = cluster.spec(members[0]);
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "live" });
      const db = new PostgresCluster(scope, {
        platform,
        members: members.length,
        etcdMembers: 1,
        database: live.appDatabase,
        user: live.appUser,
        timings: B.timings,
        maximumLagOnFailover: B.lag,
        synchronousMode: live.synchronousMode,
        synchronousModeStrict: live.synchronousModeStrict,
        maxConnections: live.maxConnections,
        sharedBuffers: live.sharedBuffers,
        storageGi: 10,
      });
      return { settingsApplied: db.settingsApplied };
    });
    return synthesizedSettingsTask(run, members, dir);
  }

  /**
   * The task's command line as it is, with the live cluster's REST API user in its variable and
   * `password` in the file the component uploads it to (that file's mode and owner kept).
   */
  async function runTask(password = REST_PASSWORD): Promise<Run> {
    writeFileSync(task.passwordFile, password);
    const env = {
      ...task.otherEnv,
      [task.credentialEnv.username]: REST_USER,
      [task.credentialEnv.passwordFile]: task.passwordFile,
    };
    const [cmd, ...args] = task.command;
    return runAsUser(cmd, args, env, task.timeoutMs);
  }

  /** The config key's revision in etcd: it moves only when something writes the configuration. */
  async function configRevision(): Promise<string | undefined> {
    const r = await etcdctl(etcdHost, "get", `/ha-backend/${scope}/config`, "-w", "json");
    return /"mod_revision":(\d+)/.exec(r.output)?.[1];
  }

  const leader = (withinMs: number, not?: string) =>
    cluster.leader(
      {
        withinMs,
        because:
          "a leader holds the lock within the failover budget, and its REST API says so within a few loops",
      },
      not,
    );

  beforeAll(async () => {
    await cluster.start();
    // Its files go into the cluster's directory, which start() made the unprivileged user's.
    task = await declaredTaskB();
    if (task.timeoutMs > TASK_CAP_MS) {
      throw new Error(
        `the task's timeout (${task.timeoutMs} ms) is above TASK_CAP_MS (${TASK_CAP_MS} ms): raise it`,
      );
    }
    const rw = await cluster.appConnect(router.host, router.rw);
    await rw.query("CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT)");
    await rw.end();
  }, CLUSTER_START_TIMEOUT_MS);

  afterAll(async () => {
    await cluster.stop();
    if (finished === TESTS) {
      rmSync(dir, { recursive: true, force: true });
    } else {
      // Keep only the processes' output for the failed run; the data goes.
      for (const d of ["etcd", ...members.map((m) => m.name)])
        rmSync(join(dir, d), { recursive: true, force: true });
      console.log(`patroni-settings: a test failed; process logs kept in ${join(dir, "logs")}`);
    }
  });

  it(
    "starts from settings A: the DCS holds bootstrap.dcs, the members run with ttl A",
    async () => {
      expect(await showConfig()).toEqual(seededA);
      for (const key of ["leader", ...members.map((m) => `members/${m.name}`)]) {
        expect(await grantedTtl(etcdHost, `/ha-backend/${scope}/${key}`)).toBe(A.timings.ttl);
      }
      finished++;
    },
    6 * CTL_TIMEOUT_MS,
  );

  it(
    "applies settings B with the component's task: patronictl shows B, every member runs with ttl B, a re-run writes nothing",
    async () => {
      // GIVEN the task the component declares for settings B: the file it reads holds B, and the
      // task is named after B's digest (a new task per change of settings)
      expect(JSON.parse(task.settingsJson)).toEqual(configB);
      expect(task.name).toBe(`${scope}-pg-dcs-${settingsDigest(configB)}`);
      // and it reads the password from a file only its user may read (the Docker upload's 0400)
      const file = statSync(task.passwordFile);
      expect([file.mode & 0o777, file.uid]).toEqual([0o400, ensureUser().uid]);
      // WHEN its command line runs against the members' REST API
      const startedAt = Date.now();
      const applied = await runTask();
      const applyMs = Date.now() - startedAt;
      console.log(
        `patroni-settings: task ${task.name} (${task.command.join(" ")}) took ${applyMs} ms:\n${applied.output}`,
      );
      expect(applied.output).not.toContain(REST_PASSWORD);
      expect(applied.output).toContain(
        "setting(s) to change: loop_wait, maximum_lag_on_failover, postgresql.parameters.hot_standby, postgresql.parameters.wal_log_hints, retry_timeout, ttl",
      );
      expect(applied.code).toBe(APPLY_SETTINGS_EXIT.ok);

      // THEN the DCS holds B
      expect(await showConfig()).toEqual(configB);
      // and the running members took it: each grants itself a lease with B's ttl in its next loop
      // and moves its key (and the leader its leader key) there.
      const keys = ["leader", ...members.map((m) => `members/${m.name}`)];
      const adoptedMs = await waitFor(
        `every member's lease granted with ttl ${B.timings.ttl}`,
        async () => {
          for (const key of keys) {
            if ((await grantedTtl(etcdHost, `/ha-backend/${scope}/${key}`)) !== B.timings.ttl) return false;
          }
          return true;
        },
        {
          withinMs: SLOW_MACHINE_FACTOR * 3 * LOOP_A_MS,
          intervalMs: 250,
          because: `a member reads the new configuration in its next loop (loop_wait A, ${LOOP_A_MS} ms) and grants a new lease at its next refresh: three loops, on a loaded machine`,
        },
      );
      console.log(
        `patroni-settings: every member's lease carried ttl ${B.timings.ttl} ${adoptedMs} ms after the script returned`,
      );

      // and nothing in it needs a PostgreSQL restart (true and "on" are the same setting to Patroni).
      for (const m of members) {
        const status = JSON.parse((await httpGet(m.host, 8008, "/patroni")).body);
        expect({ member: m.name, pendingRestart: status.pending_restart ?? false }).toEqual({
          member: m.name,
          pendingRestart: false,
        });
      }

      // AND a re-run with the same settings is a no-op success: the config key is not rewritten.
      const revision = await configRevision();
      expect(revision).toBeDefined();
      const again = await runTask();
      expect(again.output).toContain("done: already in place");
      expect(again.code).toBe(APPLY_SETTINGS_EXIT.ok);
      expect(await configRevision()).toBe(revision);
      finished++;
    },
    2 * TASK_CAP_MS + SLOW_MACHINE_FACTOR * 3 * LOOP_A_MS + 6 * CTL_TIMEOUT_MS,
  );

  it(
    "refuses a PATCH without or with wrong credentials (401), while the health-check GETs stay open",
    async () => {
      const leaderNow = await leader(BUDGET_B_MS);
      const patchBack = { ttl: A.timings.ttl, loop_wait: A.timings.loopWait };
      const anonymous = await httpSend(leaderNow.host, 8008, "PATCH", "/config", patchBack);
      const wrong = await httpSend(leaderNow.host, 8008, "PATCH", "/config", patchBack, {
        user: REST_USER,
        password: "not-the-password",
      });
      console.log(
        `patroni-settings: PATCH /config without credentials -> ${anonymous.status}, with a wrong password -> ${wrong.status}`,
      );
      expect(anonymous.status).toBe(401);
      expect(wrong.status).toBe(401);
      expect(await showConfig()).toEqual(configB);

      // The task with a wrong password stops with its own code and never prints the password.
      const badPassword = "wrong-pass-77";
      const refused = await runTask(badPassword);
      expect(refused.code).toBe(APPLY_SETTINGS_EXIT.refused);
      expect(refused.output).toContain("refused the credentials (HTTP 401)");
      expect(refused.output).not.toContain(badPassword);

      // What the router and the platform's probes ask needs no credentials.
      const replica = members.find((m) => m.name !== leaderNow.name) as (typeof members)[number];
      expect((await httpGet(leaderNow.host, 8008, "/primary")).status).toBe(200);
      expect((await httpGet(replica.host, 8008, "/replica")).status).toBe(200);
      expect((await httpGet(replica.host, 8008, "/readiness")).status).toBe(200);
      expect((await httpGet(replica.host, 8008, "/liveness")).status).toBe(200);
      expect((await httpGet(replica.host, 8008, "/config")).status).toBe(200);
      finished++;
    },
    BUDGET_B_MS + TASK_CAP_MS + 2 * CTL_TIMEOUT_MS + 30_000,
  );

  it(
    "fails over on B's clock when the leader is killed with -9, losing no acknowledged write",
    async () => {
      const old = await leader(BUDGET_B_MS + 5 * LOOP_B_MS);
      const su = await cluster.superuserConnect(old.host);
      try {
        await waitForSyncStandby(su, LOOP_B_MS, "loop_wait B");
      } finally {
        await su.end();
      }
      // Bounded in ids and in time: 100 writes, the kill, then writes until 200 are acknowledged,
      // for at most SLOW_MACHINE_FACTOR × A's budget (so a cluster still on A is measured too).
      const run = await cluster.writeThroughFailover(old, {
        firstId: 1,
        endId: 5000,
        ackedBeforeKill: 100,
        ackedInAll: 200,
        preKillCapMs: PRE_KILL_CAP_MS,
        afterKillCapMs: SLOW_MACHINE_FACTOR * BUDGET_A_MS,
      });
      expect(run.killedAt).toBeGreaterThan(0);
      expect(run.firstAfterKill).toBeGreaterThan(0);
      const now = await leader(BUDGET_B_MS + 5 * LOOP_B_MS, old.name);
      const outageMs = run.firstAfterKill - run.killedAt;
      console.log(
        `patroni-settings: leader ${old.name} killed; writes resumed on ${now.name} after ${(outageMs / 1000).toFixed(1)} s. ` +
          `Budget B ${BUDGET_B_MS / 1000} s (ttl ${B.timings.ttl}, loop_wait ${B.timings.loopWait}), ` +
          `budget A ${BUDGET_A_MS / 1000} s (ttl ${A.timings.ttl}, loop_wait ${A.timings.loopWait}); ` +
          `router ${ROUTER_CHECK.rise} × ${ROUTER_CHECK.intervalMs} ms; asserted bound ${(SLOW_MACHINE_FACTOR * BUDGET_B_MS) / 1000} s`,
      );
      // Within B's budget, with the slack every failover test allows a loaded machine.
      expect(outageMs).toBeLessThanOrEqual(SLOW_MACHINE_FACTOR * BUDGET_B_MS);
      // Synchronous mode: every acknowledged write is on the new leader.
      expect(await cluster.lostWrites(now.host, run)).toEqual([]);
      finished++;
    },
    2 * (WAL_RETRY_MS + 2 * LOOP_B_MS) + PRE_KILL_CAP_MS + SLOW_MACHINE_FACTOR * BUDGET_A_MS + 60_000,
  );
});
