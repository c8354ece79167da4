import { execFile, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import Redis from "ioredis";
import { parse } from "yaml";
import { ETCD_TLS_PATHS } from "../../components/coordination/etcd-cluster";
import {
  httpGet,
  KILL_MS,
  ProcessGroup,
  SLOW_MACHINE_FACTOR,
  tempDir,
  waitFor,
  type WaitBound,
} from "../support/daemons";
import { connectRetryMs } from "../support/mariadb";
import { runStack, ofType, plain } from "../support/engine";
import { ensureUser, ownedDir, PG_USER, pgConnect, role, startEtcd } from "../support/postgres";
import {
  etcdImage,
  mariadbImage,
  patroniImage,
  podNames,
  redisImage,
  runStackVariant,
  statefulSetOf,
  StatefulSetModel,
  type ImageModel,
  type StatefulSetManifest,
} from "../support/statefulset-model";
import { testCa, testCert } from "../support/tls";
import type { ProgramRun } from "../../scripts/mock-engine";

/**
 * First boot and full restart of every stateful tier under StatefulSet rules: each tier's
 * StatefulSet as the real program synthesizes it for Kubernetes (ecommerce-prod, blog-prod and
 * variants, under the mocked engine), run by a model of the StatefulSet controller and kubelet
 * (test/support/statefulset-model.ts) with real daemons on loopback: `OrderedReady` starts pod
 * k+1 only once pod k passes its generated readiness probe, `Parallel` starts all at once, a
 * container that exits is restarted with back-off. Each tier must reach full membership (every
 * pod Ready by its own probe, and the tier's own notion of membership), then is scaled to 0
 * (SIGTERM, SIGKILL after the grace period; data volumes kept) and back, and must reach full
 * membership again with the data it had.
 */
const NET = "127.0.3";
/**
 * The fuller variant adds what Kubernetes would do with the manifests before the fixes: etcd's
 * three members under OrderedReady (before 7c0d5cf) and a Galera full restart without the view
 * the start script now saves at SIGTERM. Both only show a hang, so they cost minutes.
 */
const FULL = process.env.HA_BACKEND_ORDERED_BOOT_FULL === "1";

/** ecommerce-prod's namespace (a variant of its `kubernetes:` settings keeps it). */
const STACK_NAMESPACE = "ecommerce-prod";

// Where the bounds below come from.
/** etcdctl gives up on a request after this long (`--command-timeout`). */
const COMMAND_TIMEOUT_MS = 3000;
/** etcd's election timeout: the generated environment sets none, so etcd's default applies. */
const ELECTION_TIMEOUT_MS = 1000;
/** A leader: 1–2 election timeouts; a request sent meanwhile may hang a command timeout. ×3 for a loaded machine. */
const ETCD_LEADER_MS = SLOW_MACHINE_FACTOR * (2 * ELECTION_TIMEOUT_MS + COMMAND_TIMEOUT_MS);
const ETCD_LEADER = `a leader within 2 × ${ELECTION_TIMEOUT_MS} ms (etcd's default election timeout) + a command timed out at ${COMMAND_TIMEOUT_MS} ms, ×${SLOW_MACHINE_FACTOR}`;

/** A replica applying what it received, or catching up after a restart: milliseconds here; no timer governs it, a cap. */
const APPLIED: WaitBound = {
  withinMs: 20_000,
  because: "a replica applying what it received: no timer governs it; a cap for a loaded 2-core machine",
};
/** The (idempotent) write just after full membership, retried while a tier still settles. */
const WRITTEN: WaitBound = {
  withinMs: 20_000,
  intervalMs: 500,
  because: "a write to a tier that just reached full membership: no timer governs it; a cap",
};
/** One SQL batch over a pod's socket: milliseconds; the cap tells a hung server. */
const SQL_TIMEOUT_MS = 10_000;
/**
 * A Galera joiner's state transfer (mariabackup SST, whose donor script waits 10 s before
 * streaming): about 13 s here, once 27 s under a CPU hog (the Galera live test's cap).
 */
const GALERA_JOIN_MS = 120_000;
const GALERA_JOIN = `a mariabackup SST (its donor script waits 10 s; no timer bounds the rest; a cap of ${GALERA_JOIN_MS} ms)`;
/** Every node back after a full stop: pc.recovery as soon as all members of the last primary view meet. */
const GALERA_RECOVERED_MS = 120_000;
const GALERA_RECOVERED =
  "pc.recovery restores the last primary component as soon as all its members meet (and a node behind catches up by IST): no timer governs these; a cap";
/** PostgreSQL's wal_retrieve_retry_interval (the generated config keeps the 5 s default). */
const WAL_RETRY_MS = 5_000;
/** A Redis replica's first full sync of a small data set (diskless): milliseconds here; a cap. */
const REPLICA_SYNC_MS = 10_000;
/** Sentinel's hello period (fixed in sentinel.c): how Sentinels learn of each other. */
const SENTINEL_HELLO_MS = 2000;

/**
 * A test's jest timeout, a backstop above the sum of the bounds inside it (the synthesis, two
 * boots of every pod with its start cap and first probes, the tier's mechanisms, a scale-down
 * through every grace period, the marker), so that the bound that trips is the one that reports.
 */
function tierTimeoutMs(o: { pods: number; startCapMs: number; mechanismsMs: number }): number {
  const SYNTH_CAP_MS = 30_000;
  /** Above any generated probe's initial delay + period + timeout (0 + 5 + 3 s), ×3. */
  const PROBE_CAP_MS = 30_000;
  return (
    SYNTH_CAP_MS +
    2 * o.pods * (o.startCapMs + PROBE_CAP_MS) +
    o.mechanismsMs +
    o.pods * (30_000 + KILL_MS) +
    2 * APPLIED.withinMs +
    WRITTEN.withinMs +
    SQL_TIMEOUT_MS
  );
}

interface Timing {
  tier: string;
  policy: string;
  firstBootMs: number;
  stopMs: number;
  restartMs: number;
}

/** A command's result, run asynchronously (a synchronous call would stall the kubelet model's probes). */
function execAsync(cmd: string, args: string[], timeoutMs: number, env: Record<string, string> = {}) {
  return new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      cmd,
      args,
      { encoding: "utf8", timeout: timeoutMs, env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        resolve({
          status: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout,
          stderr,
        }),
    );
  });
}

describe("stateful tiers under StatefulSet rules: first boot and full restart (live)", () => {
  const procs = new ProcessGroup();
  const dir = tempDir("ordered-boot");
  /**
   * The pods' filesystems: under /tmp directly, whatever TMPDIR is. A Unix socket path has at most
   * 107 bytes, and the sockets of MariaDB and PostgreSQL live deep in a pod's filesystem (the
   * repeat runner's TMPDIR made them too long to create).
   */
  const pods = mkdtempSync("/tmp/hab-");
  const models: StatefulSetModel[] = [];
  const timings: Timing[] = [];
  let createdUser = false;
  let failed = false;
  const runs = new Map<string, Promise<ProgramRun>>();
  /** The program's resources for a stack (each stack synthesized once). */
  const program = (stack: string, variant?: Record<string, unknown>) => {
    const key = `${stack} ${JSON.stringify(variant ?? {})}`;
    if (!runs.has(key)) runs.set(key, variant ? runStackVariant(stack, variant) : runStack(stack));
    return runs.get(key) as Promise<ProgramRun>;
  };

  function model(
    m: StatefulSetManifest,
    image: ImageModel,
    base: number,
    hosts: Record<string, string>,
    fileOverrides?: Record<string, (generated: string) => string>,
    dirName = m.name,
  ): StatefulSetModel {
    const s = new StatefulSetModel(m, image, {
      procs,
      dir: join(pods, dirName),
      ip: (i) => `${NET}.${base + i}`,
      hosts,
      fileOverrides,
    });
    models.push(s);
    return s;
  }

  /** Every DNS name of `m`'s pods, to the addresses from `base` on. */
  function hostsOf(m: StatefulSetManifest, base: number): Record<string, string> {
    return Object.fromEntries(
      Array.from({ length: m.replicas }, (_, i) =>
        podNames(m, i).map((n) => [n, `${NET}.${base + i}`]),
      ).flat(),
    );
  }

  /**
   * Full membership within a bound: the last pod's start and first passing readiness probe
   * (earlier pods were waited for by the controller under OrderedReady, or start alongside it
   * under Parallel), then the tier's own mechanism.
   */
  function membershipBound(sets: StatefulSetModel[], mechanism: { ms: number; because: string }): WaitBound {
    const ready = sets.map((s) => ({ name: s.manifest.name, ...s.podReadyBound() }));
    return {
      withinMs: Math.max(...ready.map((r) => r.ms)) + mechanism.ms,
      intervalMs: 250,
      because:
        `every pod Ready by its generated probe, the last one (${sets.map((s) => s.manifest.podManagementPolicy).join(", ")}) ` +
        `within ${ready.map((r) => `${r.name}: ${r.because}`).join("; ")}; then ${mechanism.because} (${mechanism.ms} ms)`,
    };
  }

  /**
   * Boots `sets` (scale-ups at once, as Kubernetes applies a stack), waits for `member`;
   * resolves with the milliseconds from the scale-up to full membership.
   */
  async function boot(
    what: string,
    sets: StatefulSetModel[],
    member: () => Promise<boolean>,
    bound: WaitBound,
  ): Promise<number> {
    const t0 = Date.now();
    try {
      await Promise.all(sets.map((s) => s.scaleUp()));
      await waitFor(
        `${what}: full membership`,
        async () => sets.every((s) => s.allReady()) && (await member()),
        // The scale-up's own waits count against the same bound.
        { ...bound, withinMs: Math.max(bound.withinMs - (Date.now() - t0), 1000) },
      );
    } catch (e) {
      const pods = sets.map((s) => `${s.readiness()}\n${s.timeline()}`).join("\n");
      throw new Error(`${(e as Error).message}\n${pods}`);
    }
    const ms = Date.now() - t0;
    console.log(
      `${what}: full membership ${ms} ms after the scale-up\n${sets.map((s) => s.timeline()).join("\n")}`,
    );
    return ms;
  }

  /** First boot, a marker written, a full restart (scale to 0 and back), full membership and the marker again. */
  async function bootAndRestart(
    tier: string,
    sets: StatefulSetModel[],
    member: () => Promise<boolean>,
    bounds: { first: WaitBound; restart: WaitBound },
    marker: { write: () => Promise<void>; read: () => Promise<boolean> },
  ): Promise<void> {
    try {
      const firstBootMs = await boot(`${tier} first boot`, sets, member, bounds.first);
      await waitFor(
        `${tier}: the write before the restart`,
        async () => {
          await marker.write();
          return true;
        },
        WRITTEN,
      );
      const since = sets.map((s) => s.now());
      const stops = await Promise.all(sets.map((s) => s.scaleDown()));
      const stopMs = Math.max(...stops);
      console.log(
        `${tier}: scaled to 0 in ${stopMs} ms\n${sets.map((s, i) => s.timeline(since[i])).join("\n")}`,
      );
      const restartMs = await boot(`${tier} full restart`, sets, member, bounds.restart);
      expect([tier, await marker.read()]).toEqual([tier, true]);
      const policy = [...new Set(sets.map((s) => s.manifest.podManagementPolicy))].join("+");
      timings.push({ tier, policy, firstBootMs, stopMs, restartMs });
    } finally {
      await Promise.all(sets.map((s) => s.kill()));
    }
  }

  /** A test whose failure keeps the logs (see afterAll). */
  function live(name: string, body: () => Promise<void>, timeoutMs: number): void {
    it(
      name,
      async () => {
        try {
          await body();
        } catch (e) {
          failed = true;
          throw e;
        }
      },
      timeoutMs,
    );
  }
  /** The fuller variant's tests: with HA_BACKEND_ORDERED_BOOT_FULL=1 only (see the README). */
  const full = FULL
    ? live
    : (name: string, _body: () => Promise<void>, _timeoutMs: number) => it.skip(name, () => undefined);

  beforeAll(() => {
    createdUser = spawnSync("id", ["-u", PG_USER]).status !== 0;
    ensureUser();
    ownedDir(dir);
    // Each tier's own user (mysql, the test user) walks into its pods' directories.
    chmodSync(dir, 0o755);
    chmodSync(pods, 0o755);
  });

  afterAll(async () => {
    await Promise.all(models.map((m) => m.kill()));
    await procs.stopAll(join(dir, "logs"));
    console.log(
      [
        "time to full membership (from the scale-up; scale-down = SIGTERM until every pod is gone):",
        "  tier                                   policy         first boot   scale to 0   full restart",
        ...timings.map(
          (t) =>
            `  ${t.tier.padEnd(38)} ${t.policy.padEnd(14)} ${`${(t.firstBootMs / 1000).toFixed(1)} s`.padStart(10)}   ` +
            `${`${(t.stopMs / 1000).toFixed(1)} s`.padStart(10)}   ${`${(t.restartMs / 1000).toFixed(1)} s`.padStart(12)}`,
        ),
      ].join("\n"),
    );
    // Data directories (and certificates) go; the daemons' logs stay only when something failed.
    for (const m of models) {
      // Named by the model's directory: two models of one StatefulSet keep apart.
      const name = basename(m.dir);
      for (const p of m.pods) {
        const log = join(p.dir, "error.log");
        if (existsSync(log)) copyFileSync(log, join(dir, "logs", `${name}-${p.ordinal}-error.log`));
      }
      writeFileSync(join(dir, "logs", `${name}-timeline.txt`), `${m.timeline()}\n`);
    }
    rmSync(pods, { recursive: true, force: true });
    for (const entry of readdirSync(dir)) {
      if (entry !== "logs") rmSync(join(dir, entry), { recursive: true, force: true });
    }
    if (!failed && process.env.HA_BACKEND_KEEP_LOGS !== "1") rmSync(dir, { recursive: true, force: true });
    else
      console.log(
        `ordered-boot: logs kept in ${join(dir, "logs")} (HA_BACKEND_KEEP_LOGS=1 keeps them always)`,
      );
    if (createdUser) spawnSync("userdel", ["--remove", PG_USER]);
  });

  // -------------------------------------------------------------------------------------------
  // etcd: the lock service's, with its TLS files

  /**
   * The lock service's etcd, with real certificates in place of the mock engine's: the CA, and
   * the members' certificate for the names the generated certificate request lists, plus each
   * member's loopback address (its probe's 127.0.0.1 is that address here).
   */
  function lockServiceTls(
    synth: ProgramRun,
    m: StatefulSetManifest,
    base: number,
    dirName = `${m.name}-tls`,
  ) {
    const csr = ofType(synth, "tls:index/certRequest:CertRequest")
      .map((r) => plain(r))
      .find((r) => (r.dnsNames ?? []).some((n: string) => n.includes(m.serviceName)));
    const certs = ownedDir(join(dir, dirName));
    const ca = testCa(certs);
    const ips = Array.from({ length: m.replicas }, (_, i) => `${NET}.${base + i}`);
    const server = testCert(
      certs,
      ca,
      "server",
      ["serverAuth", "clientAuth"],
      [
        ...(csr.dnsNames as string[]).map((n) => `DNS:${n}`),
        ...[...(csr.ipAddresses as string[]), ...ips].map((ip) => `IP:${ip}`),
      ],
    );
    const client = testCert(certs, ca, "client", ["clientAuth"]);
    spawnSync("chown", ["-R", `${PG_USER}:${PG_USER}`, certs]);
    return {
      overrides: {
        [ETCD_TLS_PATHS.ca]: () => ca.cert,
        [ETCD_TLS_PATHS.cert]: () => server.cert,
        [ETCD_TLS_PATHS.key]: () => server.key,
      },
      flags: [`--cacert=${ca.certFile}`, `--cert=${client.certFile}`, `--key=${client.keyFile}`],
      endpoints: ips.map((ip) => `https://${ip}:2379`),
    };
  }

  async function etcdTier(tier: string, synth: ProgramRun, base: number): Promise<void> {
    const m = statefulSetOf(synth, "locks-etcd");
    const tls = lockServiceTls(synth, m, base);
    const etcd = model(m, etcdImage(), base, hostsOf(m, base), tls.overrides);
    const ctl = (...args: string[]) =>
      execAsync(
        "etcdctl",
        [
          `--endpoints=${tls.endpoints.join(",")}`,
          `--command-timeout=${COMMAND_TIMEOUT_MS / 1000}s`,
          ...tls.flags,
          ...args,
        ],
        COMMAND_TIMEOUT_MS + 7_000,
        { ETCDCTL_API: "3" },
      );
    /** Every member listed, started (named), and healthy. */
    const member = async () => {
      const list = await ctl("member", "list", "-w", "json");
      if (list.status !== 0) throw new Error(list.stderr.trim());
      const members = (JSON.parse(list.stdout) as { members: { name?: string }[] }).members;
      if (members.length !== m.replicas || members.some((x) => !x.name)) return false;
      const health = await ctl("endpoint", "health");
      if (health.status !== 0) throw new Error(health.stderr.trim());
      return true;
    };
    const bound = membershipBound([etcd], { ms: ETCD_LEADER_MS, because: ETCD_LEADER });
    await bootAndRestart(
      tier,
      [etcd],
      member,
      { first: bound, restart: bound },
      {
        write: async () => {
          const r = await ctl("put", "/ha-backend/ordered-boot", "kept");
          if (r.status !== 0) throw new Error(r.stderr);
        },
        // A read sent while the members still settle their leader may time out: retried.
        read: () =>
          waitFor(
            `${m.name}: the key written before the restart`,
            async () => {
              const r = await ctl("get", "/ha-backend/ordered-boot", "--print-value-only");
              if (r.status !== 0) throw new Error(r.stderr.trim());
              return r.stdout.trim() === "kept";
            },
            { withinMs: ETCD_LEADER_MS, intervalMs: 200, because: ETCD_LEADER },
          ).then(() => true),
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // MariaDB: replication and Galera

  /** SQL as root over a pod's socket (how the model's probes log in), asynchronously. */
  async function sql(pod: { dir: string; name: string }, text: string, vertical = false): Promise<string> {
    const r = await execAsync(
      "mariadb",
      [`--defaults-file=${join(pod.dir, "my.cnf")}`, "-uroot", vertical ? "-E" : "-N", "-B", "-e", text],
      SQL_TIMEOUT_MS,
    );
    if (r.status !== 0) throw new Error(`${pod.name}: ${r.stderr.trim() || `exit ${r.status}`}`);
    return r.stdout.trim();
  }
  const statusOf = async (pod: { dir: string; name: string }, variable: string) =>
    (await sql(pod, `SHOW GLOBAL STATUS LIKE '${variable}'`)).split("\t")[1] ?? "";

  const MARKER_SQL =
    "CREATE DATABASE IF NOT EXISTS ordered_boot; CREATE TABLE IF NOT EXISTS ordered_boot.t (id INT PRIMARY KEY); REPLACE INTO ordered_boot.t VALUES (1)";
  /** Every pod has the marker row, waited for: a replica may still be applying what it received. */
  const markerOnAll = (s: StatefulSetModel) =>
    waitFor(
      `${s.manifest.name}: the row written before the restart on every member`,
      async () => {
        for (const p of s.pods)
          if ((await sql(p, "SELECT COUNT(*) FROM ordered_boot.t")) !== "1") return false;
        return true;
      },
      APPLIED,
    ).then(() => true);

  live(
    "MariaDB replication, primary and 2 replicas with semi-sync (ecommerce-prod orders-0-db in replication mode)",
    async () => {
      // The shop runs Galera by default; replication mode is the stack's explicit opt-in.
      const synth = await program("ecommerce-prod", {
        database: {
          engine: "mariadb",
          mode: "replication",
          failover: "manual",
          members: 3,
          semiSync: true,
          shards: 2,
        },
      });
      const m = statefulSetOf(synth, "orders-0-db");
      const db = model(m, mariadbImage(), 31, hostsOf(m, 31));
      const [primary, ...replicas] = db.pods;
      const retryMs = connectRetryMs(m.files.get("/etc/ha-backend/db/replica.sql")?.content ?? "");
      /** The primary counts both replicas as semi-sync clients, and each replicates (IO and SQL threads). */
      const member = async () => {
        for (const r of replicas) {
          const st = await sql(r, "SHOW SLAVE STATUS", true);
          const io = /Slave_IO_Running: (\S+)/.exec(st)?.[1];
          const applier = /Slave_SQL_Running: (\S+)/.exec(st)?.[1];
          const error = /Last_IO_Error: (.*)/.exec(st)?.[1] ?? "";
          if (io !== "Yes" || applier !== "Yes")
            throw new Error(`${r.name}: IO ${io}, SQL ${applier} ${error}`);
        }
        const clients = await statusOf(primary, "Rpl_semi_sync_master_clients");
        if (clients !== String(replicas.length))
          throw new Error(`${primary.name}: ${clients} semi-sync clients`);
        return true;
      };
      const bound = membershipBound([db], {
        ms: SLOW_MACHINE_FACTOR * 5 * retryMs,
        because: `the replicas' IO threads connect, retrying every MASTER_CONNECT_RETRY (${retryMs} ms): 5 tries, ×${SLOW_MACHINE_FACTOR}`,
      });
      await bootAndRestart(
        "MariaDB replication (semi-sync)",
        [db],
        member,
        { first: bound, restart: bound },
        { write: () => sql(primary, MARKER_SQL).then(() => undefined), read: () => markerOnAll(db) },
      );
    },
    tierTimeoutMs({ pods: 3, startCapMs: mariadbImage().startCap.ms, mechanismsMs: 2 * 5 * 3 * 2000 }),
  );

  live(
    "Galera, 3 nodes (blog-prod blog-db)",
    async () => {
      const synth = await program("blog-prod");
      const m = statefulSetOf(synth, "blog-db");
      const db = model(m, mariadbImage(), 41, hostsOf(m, 41));
      /** Every node in one primary component of all of them, and Synced. */
      const member = async () => {
        for (const p of db.pods) {
          const st = ["wsrep_cluster_status", "wsrep_cluster_size", "wsrep_local_state_comment"];
          const [status, size, state] = await Promise.all(st.map((v) => statusOf(p, v)));
          if (status !== "Primary" || size !== String(m.replicas) || state !== "Synced")
            throw new Error(`${p.name}: ${status}, size ${size}, ${state}`);
        }
        return true;
      };
      await bootAndRestart(
        "Galera",
        [db],
        member,
        {
          first: membershipBound([db], {
            ms: (m.replicas - 1) * GALERA_JOIN_MS,
            because: `a state transfer per joiner, one at a time (a new joiner waits for the member before it): ${m.replicas - 1} × ${GALERA_JOIN}`,
          }),
          restart: membershipBound([db], { ms: GALERA_RECOVERED_MS, because: GALERA_RECOVERED }),
        },
        { write: () => sql(db.pods[0], MARKER_SQL).then(() => undefined), read: () => markerOnAll(db) },
      );
    },
    tierTimeoutMs({
      pods: 3,
      startCapMs: mariadbImage().startCap.ms,
      mechanismsMs: 2 * GALERA_JOIN_MS + GALERA_RECOVERED_MS,
    }),
  );

  // -------------------------------------------------------------------------------------------
  // Patroni

  live(
    "Patroni, 3 members (ecommerce-prod with PostgreSQL: catalog-pg; an etcd DCS in place of the Kubernetes API)",
    async () => {
      // The pod network is this host's loopback (pg_hba lets the members' networks replicate; a
      // connection between two loopback addresses comes from 127.0.0.1, hence all of 127/8).
      const synth = await program("ecommerce-prod", {
        database: { engine: "postgresql", shards: 1 },
        kubernetes: {
          // A production stack names its cluster; the model stands in for it.
          context: "ordered-boot-model",
          namespace: STACK_NAMESPACE,
          imageRegistry: "registry.example.com/ha-backend",
          podNetworks: ["127.0.0.0/8"],
        },
      });
      const m = statefulSetOf(synth, "catalog-pg");
      const yml = parse(m.files.get("/etc/ha-backend/pg/patroni.yml")?.content ?? "") as {
        bootstrap: { dcs: { loop_wait: number } };
        postgresql: { authentication: { superuser: { username: string; password: string } } };
      };
      const su = yml.postgresql.authentication.superuser;
      const loopMs = yml.bootstrap.dcs.loop_wait * 1000;
      // Patroni on Kubernetes keeps its state in the Kubernetes API, which this host does not
      // have: an etcd here instead (as the Patroni live test), outliving the tier as the API would.
      const dcsHost = `${NET}.50`;
      startEtcd(procs, ownedDir(join(dir, "dcs")), dcsHost);
      await waitFor("the DCS etcd", async () => (await httpGet(dcsHost, 2379, "/health")).status === 200, {
        withinMs: 20_000,
        because: "etcd's start-up (a single member elects itself at once): no timer governs it; a cap",
      });
      const pg = model(m, patroniImage(`${dcsHost}:2379`), 51, hostsOf(m, 51));
      const query = async (ip: string, text: string) => {
        const c = await pgConnect(ip, 5432, su.username, su.password, "postgres");
        try {
          return (await c.query(text)).rows as Record<string, unknown>[];
        } finally {
          await c.end();
        }
      };
      let leader = "";
      /** One leader, the others replicas by Patroni's REST API, both streaming from the leader. */
      const member = async () => {
        const roles = await Promise.all(pg.pods.map((p) => role(p.ip)));
        if (roles.filter((r) => r === "primary").length !== 1 || roles.some((r) => r === "none"))
          return false;
        leader = pg.pods[roles.indexOf("primary")].ip;
        const rows = await query(
          leader,
          "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'",
        );
        return rows[0].n === m.replicas - 1;
      };
      const bound = membershipBound([pg], {
        ms: SLOW_MACHINE_FACTOR * (WAL_RETRY_MS + 2 * loopMs),
        because: `a replica's walreceiver starts or retries every wal_retrieve_retry_interval (${WAL_RETRY_MS} ms) and Patroni acts once a loop (loop_wait ${loopMs} ms): 5 s + 2 loops, ×${SLOW_MACHINE_FACTOR}`,
      });
      await bootAndRestart(
        "Patroni (etcd DCS)",
        [pg],
        member,
        { first: bound, restart: bound },
        {
          write: async () => {
            await query(
              leader,
              "CREATE TABLE IF NOT EXISTS ordered_boot (id int PRIMARY KEY); INSERT INTO ordered_boot VALUES (1) ON CONFLICT DO NOTHING",
            );
          },
          read: () =>
            waitFor(
              "catalog-pg: the row written before the restart on every member",
              async () => {
                for (const p of pg.pods)
                  if ((await query(p.ip, "SELECT id FROM ordered_boot")).length !== 1) return false;
                return true;
              },
              APPLIED,
            ).then(() => true),
        },
      );
    },
    tierTimeoutMs({
      pods: 3,
      startCapMs: patroniImage("").startCap.ms,
      mechanismsMs: 20_000 /* the DCS */ + 2 * SLOW_MACHINE_FACTOR * (WAL_RETRY_MS + 2 * 10_000),
    }),
  );

  // -------------------------------------------------------------------------------------------
  // Redis and its Sentinels

  live(
    "Redis, a primary and 2 replicas, and 3 Sentinels (ecommerce-prod cache)",
    async () => {
      const synth = await program("ecommerce-prod");
      const rm = statefulSetOf(synth, "cache-redis");
      const sm = statefulSetOf(synth, "cache-sentinel");
      const hosts = { ...hostsOf(rm, 61), ...hostsOf(sm, 71) };
      const redis = model(rm, redisImage(), 61, hosts);
      const sentinels = model(sm, redisImage(), 71, hosts);
      // The password the probes log in with: the `requirepass` line of the workload's own config file.
      const secret = (x: StatefulSetManifest) => {
        const conf = [...x.files].find(([path]) => /\/(redis|sentinel)\.conf$/.test(path))?.[1].content ?? "";
        const password = /^requirepass (\S+)$/m.exec(conf)?.[1];
        if (password === undefined) throw new Error(`${x.name} mounts no config with a requirepass line`);
        return password;
      };
      const masterName = /^sentinel monitor (\S+) /m.exec(
        sm.files.get("/etc/ha-backend/redis/sentinel.conf")?.content ?? "",
      )?.[1];
      const client = async <T>(ip: string, port: number, password: string, use: (c: Redis) => Promise<T>) => {
        const c = new Redis({
          host: ip,
          port,
          password,
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          commandTimeout: 2000,
          retryStrategy: () => null,
        });
        c.on("error", () => undefined); // surfaced by the command that fails
        try {
          await c.connect();
          return await use(c);
        } finally {
          c.disconnect();
        }
      };
      const primary = redis.pods[0];
      /** The primary with both replicas online, and every Sentinel following it and knowing the other two. */
      const member = async () => {
        const info = await client(primary.ip, 6379, secret(rm), (c) => c.info("replication"));
        if (!/role:master/.test(info) || (info.match(/state=online/g) ?? []).length !== rm.replicas - 1)
          return false;
        for (const s of sentinels.pods) {
          const ok = await client(s.ip, 26379, secret(sm), async (c) => {
            const addr = (await c.call("SENTINEL", "get-master-addr-by-name", masterName as string)) as
              string[] | null;
            const peers = (await c.call("SENTINEL", "sentinels", masterName as string)) as unknown[];
            return addr?.[0] === primary.fqdn && peers.length === sm.replicas - 1;
          });
          if (!ok) return false;
        }
        return true;
      };
      const bound = membershipBound([redis, sentinels], {
        ms: SLOW_MACHINE_FACTOR * (REPLICA_SYNC_MS + 2 * SENTINEL_HELLO_MS),
        because: `a replica's full sync (no timer; a cap of ${REPLICA_SYNC_MS} ms) and Sentinels hearing each other's hello (every ${SENTINEL_HELLO_MS} ms): two periods, ×${SLOW_MACHINE_FACTOR}`,
      });
      await bootAndRestart(
        "Redis + Sentinels",
        [redis, sentinels],
        member,
        { first: bound, restart: bound },
        {
          write: async () => {
            await client(primary.ip, 6379, secret(rm), (c) => c.set("ordered-boot", "kept"));
          },
          read: () =>
            waitFor(
              "cache-redis: the key written before the restart on every member",
              async () => {
                for (const p of redis.pods) {
                  if ((await client(p.ip, 6379, secret(rm), (c) => c.get("ordered-boot"))) !== "kept")
                    return false;
                }
                return true;
              },
              APPLIED,
            ).then(() => true),
        },
      );
    },
    tierTimeoutMs({
      pods: 6,
      startCapMs: redisImage().startCap.ms,
      mechanismsMs: 2 * SLOW_MACHINE_FACTOR * (REPLICA_SYNC_MS + 2 * SENTINEL_HELLO_MS),
    }),
  );

  live(
    "etcd, 1 member (the lock service as in a 1-member stack)",
    async () => {
      await etcdTier(
        "lock service etcd, 1 member",
        await program("ecommerce-prod", { locks: { members: 1 } }),
        11,
      );
    },
    tierTimeoutMs({ pods: 1, startCapMs: etcdImage().startCap.ms, mechanismsMs: 2 * ETCD_LEADER_MS }),
  );

  live(
    "etcd, 3 members (the lock service of ecommerce-prod)",
    async () => {
      await etcdTier("lock service etcd, 3 members", await program("ecommerce-prod"), 21);
    },
    tierTimeoutMs({ pods: 3, startCapMs: etcdImage().startCap.ms, mechanismsMs: 2 * ETCD_LEADER_MS }),
  );
  // -------------------------------------------------------------------------------------------
  // The fuller variant: the hangs the fixes remove

  full(
    "etcd, 3 members under OrderedReady (the manifest before 7c0d5cf): member 0 is never Ready, 1 and 2 never created",
    async () => {
      const synth = await program("ecommerce-prod");
      const m: StatefulSetManifest = {
        ...statefulSetOf(synth, "locks-etcd"),
        podManagementPolicy: "OrderedReady",
      };
      const tls = lockServiceTls(synth, m, 101, "locks-etcd-ordered-ready-tls");
      const etcd = model(m, etcdImage(), 101, hostsOf(m, 101), tls.overrides, "locks-etcd-ordered-ready");
      try {
        // `endpoint health` needs a quorum: a lone member of three never has one.
        await expect(etcd.scaleUp()).rejects.toThrow(
          /locks-etcd-0 Ready \(OrderedReady: locks-etcd-1, locks-etcd-2 not created until then\): not within/,
        );
        console.log(`etcd under OrderedReady:\n${etcd.timeline()}`);
        expect(etcd.pods.map((p) => p.phase)).toEqual(["Running", "Pending", "Pending"]);
      } finally {
        await etcd.kill();
      }
    },
    30_000 /* certificates and the synthesis */ +
      etcdImage().startCap.ms +
      SLOW_MACHINE_FACTOR * 30_000 +
      KILL_MS,
  );

  /** Galera's pc.wait_prim_timeout (its default: the generated options do not set it). */
  const WAIT_PRIM_MS = 30_000;
  const NO_PRIMARY: WaitBound = {
    withinMs: SLOW_MACHINE_FACTOR * WAIT_PRIM_MS,
    intervalMs: 500,
    because: `a node that finds no primary component gives up after pc.wait_prim_timeout (Galera's default ${WAIT_PRIM_MS} ms), ×${SLOW_MACHINE_FACTOR}`,
  };

  full(
    "Galera full restart without the view saved at SIGTERM (the start script before this change): no primary component, every node gives up",
    async () => {
      const synth = await program("blog-prod");
      const m = statefulSetOf(synth, "blog-db");
      // The server exec'd as before, so SIGTERM reaches it directly and no view is saved.
      const withoutSavedView = (script: string) => {
        const at = script.indexOf('child=""\n');
        if (at < 0) throw new Error("the Galera start script no longer runs the server as a child");
        return `${script.slice(0, at)}exec \${HA_BACKEND_EXEC:-docker-entrypoint.sh} mariadbd "\${args[@]}" "$@"\n`;
      };
      const db = model(
        m,
        mariadbImage(),
        111,
        hostsOf(m, 111),
        { "/etc/ha-backend/db/start.sh": withoutSavedView },
        "blog-db-before",
      );
      try {
        await boot(
          "Galera (start script without the saved view) first boot",
          [db],
          async () => {
            for (const p of db.pods)
              if ((await statusOf(p, "wsrep_local_state_comment")) !== "Synced") return false;
            return true;
          },
          membershipBound([db], {
            ms: (m.replicas - 1) * GALERA_JOIN_MS,
            because: `a state transfer per joiner, one at a time (a new joiner waits for the member before it): ${m.replicas - 1} × ${GALERA_JOIN}`,
          }),
        );
        await db.scaleDown();
        const grastate = db.pods.map(
          (p) =>
            /safe_to_bootstrap: (\d)/.exec(
              readFileSync(join(p.hostPath(m.dataPath ?? ""), "grastate.dat"), "utf8"),
            )?.[1],
        );
        console.log(`Galera stopped at once: safe_to_bootstrap ${grastate.join(" / ")}`);
        await db.scaleUp();
        const exits = () =>
          new Set(db.events.filter((e) => e.what.startsWith("container exited")).map((e) => e.pod));
        await waitFor(
          "every node gave up without a primary component",
          async () => exits().size === m.replicas,
          NO_PRIMARY,
        );
        console.log(`Galera full restart without the saved view:\n${db.timeline()}`);
        expect(db.pods.some((p) => p.ready)).toBe(false);
      } finally {
        await db.kill();
      }
    },
    tierTimeoutMs({
      pods: 3,
      startCapMs: mariadbImage().startCap.ms,
      mechanismsMs: 2 * GALERA_JOIN_MS + NO_PRIMARY.withinMs,
    }),
  );
});
