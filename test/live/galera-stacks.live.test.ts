import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import {
  BOOTSTRAPPED,
  bootstrapGalera,
  CONNECT_TIMEOUT_MS,
  connect,
  JOINED,
  HAPROXY_START_UP,
  INSTALL_DB_TIMEOUT_MS,
  MARIADBD_START_UP,
  MariaNode,
  routerNotices,
  SQL_TIMEOUT_MS,
  synced,
} from "../support/mariadb";
import {
  haproxyServerStates,
  httpGet,
  KILL_MS,
  ProcessGroup,
  startHaproxy,
  tempDir,
  waitFor,
  type WaitBound,
} from "../support/daemons";
import { runStackVariant } from "../support/stack-variants";
import { synthesizedGalera, type SynthesizedGalera } from "../support/stack-galera";
import type { ProgramRun } from "../../scripts/mock-engine";

/**
 * The e-commerce stacks' MySQL-family tiers as shipped: the catalog and an order shard of
 * `ecommerce-dev`, each a 3-node MariaDB Galera cluster with the members, settings and router
 * the stack synthesizes (test/support/stack-galera.ts says what is substituted for Docker's
 * network), run on loopback with Debian's MariaDB 10.11 + galera-4 and HAProxy.
 *
 * - Many clients update the same stock rows at once through the router's read-write port: 0
 *   errors of any kind in steady state (one writer; Galera certification conflicts need two),
 *   while the same load through the read-only port (every node writable) does conflict.
 * - The writer is killed with -9 under that load, then restarted: every error is one an app
 *   retries (RETRYABLE below, listed in the README), no acknowledged write is lost or applied
 *   twice, and the longest pause in acknowledged writes is reported.
 */
const STACK = "ecommerce-dev";

/**
 * The errors an application retries (a new connection, then the transaction again), as mysql2
 * names them; the README's list. Connection errors: the router cut the session of a dead or
 * replaced writer, or no writer was up for a moment. ER_LOCK_DEADLOCK (1213): InnoDB deadlock, and
 * how Galera reports a certification conflict or a brute-force abort. ER_UNKNOWN_COM_ERROR (1047):
 * "WSREP has not yet prepared node for application use" (a node outside the primary component).
 * ER_LOCK_WAIT_TIMEOUT (1205). ER_ERROR_DURING_COMMIT (1180, "Got error 6 during COMMIT"): the
 * node left the primary component while the commit replicated (seen when the killed node came
 * back during its own eviction and the survivors briefly lost the primary component); its outcome
 * is in doubt like a connection lost at COMMIT, which the ledger's unique id settles.
 * PROTOCOL_SEQUENCE_TIMEOUT: this client's own query timeout.
 */
const RETRYABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_LOCK_DEADLOCK",
  "ER_UNKNOWN_COM_ERROR",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_ERROR_DURING_COMMIT",
]);

/** Clients updating the hot rows at once, the rows, and the operations per phase. */
const CLIENTS = 16;
const HOT_ROWS = 4;
/** Each counter's stock at the start: a counter plus its ledger rows always add up to it. */
const INITIAL_QTY = 1_000_000;
const STEADY_OPS = 2000;
/** The most operations one load phase issues (a phase under a kill runs until its restart is over). */
const MAX_OPS = 60_000;
/** A committed update through a healthy writer takes a few ms here: the cap per operation. */
const OP_CAP_MS = 50;

interface Load {
  acked: Set<number>;
  errors: Map<string, number>;
  /** Operations whose commit answer was lost and whose retry found them committed. */
  inDoubtCommitted: number;
  longestPauseMs: number;
  /** Operations started (each retried until acknowledged or out of time). */
  issued: number;
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function codeOf(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err.code ?? `no code: ${err.message ?? String(e)}`;
}

describe.each([
  ["catalog", 180],
  ["orders-0", 184],
])(`${STACK} %s: Galera with single-writer routing, as synthesized (live)`, (cluster, net) => {
  const procs = new ProcessGroup();
  const dir = tempDir(`galera-${cluster}`);
  const routerIp = `127.0.0.${net}`;
  const ips = [1, 2, 3].map((i) => `127.0.0.${net + i}`);
  let run: ProgramRun;
  let shipped: SynthesizedGalera;
  let nodes: MariaNode[];
  /** The router's checks as synthesized: a dead writer is out after `fall` failed checks. */
  let failoverMs = 0;
  const ports = { rw: 3306, ro: 3307, stats: 8404 };

  const app = (port: number) =>
    connect(routerIp, port, shipped.app.user, shipped.app.password, shipped.app.database);

  async function routerUp(bound: WaitBound): Promise<number> {
    return waitFor(
      "every node up in both listeners",
      async () => {
        const st = await haproxyServerStates(routerIp, ports.stats);
        return nodes.every((n) => st.get(`rw/${n.name}`) === "UP" && st.get(`ro/${n.name}`) === "UP");
      },
      bound,
    );
  }

  /**
   * At least `ops` stock moves from CLIENTS clients through `port`, and more until `during` (a
   * kill, a restart) has finished, at most MAX_OPS: each its own transaction, a ledger row with a
   * unique id and the decrement of one of HOT_ROWS counters. A failed operation is retried on a
   * new connection (the same id: a retry of a commit that did land hits the ledger's key and
   * counts as acknowledged). Bounded in operations, attempts and time.
   */
  async function stockMoves(
    port: number,
    firstId: number,
    ops: number,
    capMs: number,
    during: () => Promise<void> = async () => undefined,
  ): Promise<Load> {
    const load: Load = {
      acked: new Set(),
      errors: new Map(),
      inDoubtCommitted: 0,
      longestPauseMs: 0,
      issued: 0,
    };
    const deadline = Date.now() + capMs;
    let next = firstId;
    let duringDone = false;
    let lastAck = Date.now();
    const ack = (id: number) => {
      const now = Date.now();
      load.longestPauseMs = Math.max(load.longestPauseMs, now - lastAck);
      lastAck = now;
      load.acked.add(id);
    };
    const client = async () => {
      let conn: Connection | undefined;
      while ((next < firstId + ops || !duringDone) && next < firstId + MAX_OPS && Date.now() < deadline) {
        const id = next++;
        const sku = `sku-${id % HOT_ROWS}`;
        for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
          try {
            conn ??= await app(port);
            await conn.query({ sql: "START TRANSACTION", timeout: failoverMs });
            await conn.query({ sql: "INSERT INTO moves (id, sku) VALUES (?, ?)", timeout: failoverMs }, [
              id,
              sku,
            ]);
            await conn.query({ sql: "UPDATE stock SET qty = qty - 1 WHERE sku = ?", timeout: failoverMs }, [
              sku,
            ]);
            await conn.query({ sql: "COMMIT", timeout: failoverMs });
            ack(id);
            break;
          } catch (e) {
            const code = codeOf(e);
            conn?.destroy();
            conn = undefined;
            if (code === "ER_DUP_ENTRY") {
              // The first attempt's COMMIT landed, its answer did not.
              load.inDoubtCommitted++;
              ack(id);
              break;
            }
            bump(load.errors, code);
            await new Promise((r) => setTimeout(r, 20)); // back off (bounded by the loop)
          }
        }
      }
      await conn?.end().catch(() => undefined);
    };
    const clients = Array.from({ length: CLIENTS }, () => client());
    try {
      await during();
    } finally {
      duringDone = true;
    }
    await Promise.all(clients);
    load.issued = next - firstId;
    return load;
  }

  /** Every acknowledged move is in the ledger once, and every counter matches its ledger. */
  function checkLedger(node: MariaNode, acked: Set<number>): { lost: number[]; mismatched: string[] } {
    const db = shipped.app.database;
    const ids = new Set(node.sql(`SELECT id FROM ${db}.moves`).split("\n").filter(Boolean).map(Number));
    const lost = [...acked].filter((id) => !ids.has(id));
    const mismatched = node
      .sql(`SELECT s.sku, s.qty, (SELECT COUNT(*) FROM ${db}.moves m WHERE m.sku = s.sku) FROM ${db}.stock s`)
      .split("\n")
      .map((l) => l.split("\t"))
      .filter(([, qty, moved]) => Number(qty) + Number(moved) !== INITIAL_QTY)
      .map(([sku, qty, moved]) => `${sku}: qty ${qty} + moved ${moved}`);
    return { lost, mismatched };
  }

  const SETUP_TIMEOUT_MS =
    3 * INSTALL_DB_TIMEOUT_MS +
    MARIADBD_START_UP.withinMs +
    2 * SQL_TIMEOUT_MS +
    BOOTSTRAPPED.withinMs +
    2 * JOINED.withinMs +
    HAPROXY_START_UP.withinMs +
    // The router's first checks: routerNotices of the synthesized timings (under 30 s here).
    30_000;

  beforeAll(async () => {
    run = await runStackVariant(STACK);
    shipped = synthesizedGalera(run, cluster, ips, routerIp, dir);
    failoverMs = routerNotices("down", shipped.routerCheck).withinMs;
    nodes = shipped.members.map((m, i) => new MariaNode(m, ips[i], 3306, dir));
    // As the containers start: together (the start script makes each joiner wait its turn).
    const times = await bootstrapGalera(procs, nodes, shipped.files, "together");
    console.log(`${cluster}: joiners Synced ${times.join(" / ")} ms after they started`);
    startHaproxy(procs, join(dir, "router"), shipped.routerConfig);
    await waitFor(
      "router",
      async () => (await httpGet(routerIp, ports.stats, "/lb-health")).status === 200,
      HAPROXY_START_UP,
    );
    await routerUp(routerNotices("up", shipped.routerCheck));
    const db = shipped.app.database;
    nodes[0].sql(
      [
        `CREATE TABLE ${db}.stock (sku VARCHAR(16) PRIMARY KEY, qty BIGINT NOT NULL);`,
        `CREATE TABLE ${db}.moves (id BIGINT PRIMARY KEY, sku VARCHAR(16) NOT NULL);`,
        ...Array.from(
          { length: HOT_ROWS },
          (_, i) => `INSERT INTO ${db}.stock VALUES ('sku-${i}', ${INITIAL_QTY});`,
        ),
      ].join("\n"),
    );
  }, SETUP_TIMEOUT_MS);

  afterAll(() => procs.stopAll(join(dir, "logs")));

  it(
    "takes concurrent updates of the same rows through the read-write port with 0 errors (one writer)",
    async () => {
      const steady = await stockMoves(ports.rw, 1, STEADY_OPS, STEADY_OPS * OP_CAP_MS);
      console.log(
        `${cluster}: ${CLIENTS} clients, ${HOT_ROWS} hot rows, through rw: ${steady.acked.size} moves, errors ${JSON.stringify(Object.fromEntries(steady.errors))}`,
      );
      expect(Object.fromEntries(steady.errors)).toEqual({});
      expect(steady.acked.size).toBe(steady.issued);
      expect(steady.issued).toBe(STEADY_OPS);
      expect(checkLedger(nodes[1], steady.acked)).toEqual({ lost: [], mismatched: [] });
    },
    STEADY_OPS * OP_CAP_MS + 2 * SQL_TIMEOUT_MS + CONNECT_TIMEOUT_MS,
  );

  it(
    "would conflict if every node took writes: the same load through the read-only port",
    async () => {
      // The control: without single-writer routing the same clients hit certification conflicts.
      const spread = await stockMoves(ports.ro, 100_001, STEADY_OPS, STEADY_OPS * OP_CAP_MS * 4);
      console.log(
        `${cluster}: the same load spread over every node (ro port): ${spread.acked.size} moves, errors ${JSON.stringify(Object.fromEntries(spread.errors))}`,
      );
      expect(spread.errors.get("ER_LOCK_DEADLOCK") ?? 0).toBeGreaterThan(0);
      expect(checkLedger(nodes[1], spread.acked)).toEqual({ lost: [], mismatched: [] });
    },
    4 * STEADY_OPS * OP_CAP_MS + 2 * SQL_TIMEOUT_MS + CONNECT_TIMEOUT_MS,
  );

  it(
    "survives kill -9 of the writer and its return under that load: only retryable errors, nothing lost",
    async () => {
      const notices = routerNotices("up", shipped.routerCheck);
      const ops = 2000;
      const capMs = ops * OP_CAP_MS + 2 * failoverMs + JOINED.withinMs + notices.withinMs + 4000;
      let killedAt = 0;
      let rejoinMs = 0;
      const load = await stockMoves(ports.rw, 200_001, ops, capMs, async () => {
        await new Promise((r) => setTimeout(r, 1000));
        killedAt = Date.now();
        await procs.kill(nodes[0].process!, "SIGKILL");
        // Back after a short outage: the start script recovers its position, a donor sends the rest.
        await new Promise((r) => setTimeout(r, 3000));
        nodes[0].start(procs);
        rejoinMs = await synced(nodes[0], JOINED);
        // The preferred writer takes writes back once the router sees it Synced.
        await routerUp(notices);
      });
      const counts = Object.fromEntries(load.errors);
      console.log(
        `${cluster}: kill -9 of the writer ${killedAt > 0 ? "done" : "not done"} under ${CLIENTS} clients: ${load.acked.size} of ${load.issued} moves acknowledged ` +
          `(${load.inDoubtCommitted} found committed on retry), longest pause between acknowledged moves ${load.longestPauseMs} ms; ` +
          `the killed node Synced again ${rejoinMs} ms after its restart; errors (each retried) ${JSON.stringify(counts)}`,
      );
      expect(killedAt).toBeGreaterThan(0);
      expect(Object.keys(counts).filter((c) => !RETRYABLE.has(c))).toEqual([]);
      expect(load.acked.size).toBe(load.issued);
      for (const n of nodes)
        expect([n.name, checkLedger(n, load.acked)]).toEqual([n.name, { lost: [], mismatched: [] }]);
    },
    2000 * OP_CAP_MS + 4 * 30_000 + 2 * JOINED.withinMs + KILL_MS + 4 * SQL_TIMEOUT_MS,
  );

  it("reports each member's memory", () => {
    const rss = nodes.map((n) => {
      const pid = readFileSync(join(n.dir, "mysqld.pid"), "utf8").trim();
      const r = spawnSync("ps", ["-o", "rss=", "-p", pid], { encoding: "utf8" });
      return Math.round(Number(r.stdout.trim()) / 1024);
    });
    console.log(`${cluster}: mariadbd resident memory ${rss.join(" / ")} MiB (buffer pool as synthesized)`);
    expect(rss.every((mb) => mb > 0)).toBe(true);
  });
});
