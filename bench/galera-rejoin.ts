/**
 * `npm run bench:galera-rejoin -- [sizeMB] [--rows=N]`: how a Galera node killed with -9 comes
 * back, side by side in one run on one cluster, with a dataset of `sizeMB` (default 300) in InnoDB:
 *
 *   generated    the start script ha-backend renders: --wsrep-recover first, then the real start
 *                with --wsrep-start-position, so a donor sends only the missed writes (IST)
 *   no recovery  the same script without that step (the script before it): Galera knows no
 *                position after a crash and asks for a full snapshot (SST, mariabackup)
 *
 * Three MariaDB 10.11 + galera-4 nodes on 127.0.0.201-203 (port 23306; Galera's own ports on each
 * node's address) from the generated files (test/support/mariadb.ts). Each round: kill -9 the same
 * node, write `--rows` rows (default 300, one commit each) on a survivor, restart the node, time
 * it from the restart to Synced and read which transfer its error log shows. Prints the figures
 * and their ratio; asserts nothing (a measurement, not a test). Every wait is bounded and every
 * process it started is stopped, on failure too. Run it under the live tests' lock (`flock
 * /tmp/ha-live.lock npm run bench:galera-rejoin`): mariabackup's joiner listens on port 4444 of
 * every address, whatever wsrep_sst_receive_address says, so two SSTs at once on one machine clash.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GALERA_TUNED_TIMINGS } from "../components/database/mysql-cluster";
import { ProcessGroup, tempDir, waitFor, type WaitBound } from "../test/support/daemons";
import { MariaNode, renderTestFiles, testCredentials, testSpec } from "../test/support/mariadb";

const USAGE = "usage: npm run bench:galera-rejoin -- [sizeMB] [--rows=N]";
const PORT = 23306;
const creds = testCredentials("bench");

/** One row of the dataset: 1 KiB of random bytes (incompressible, so the size on disk is real). */
const ROW_BYTES = 1024;
/** Rows per loading statement: a write set of about 64 MiB, well under gcache.size (128M). */
const CHUNK_ROWS = 65_536;
/** One loading statement or batch of writes; a 64 MiB transaction takes seconds here. */
const STATEMENT_TIMEOUT_MS = 300_000;
/** The whole load: 300 MB took about 6 s here; a cap for a loaded 2-core machine. */
const LOAD_DEADLINE_MS = 30 * 60_000;

const UP: WaitBound = {
  withinMs: 60_000,
  because: "mariadbd start-up: no timer governs it; a cap for a loaded 2-core machine",
};
const SYNCED: WaitBound = {
  withinMs: 30 * 60_000,
  intervalMs: 200,
  because:
    "a state transfer of the whole dataset (mariabackup SST: the donor's script sleeps 10 s, then copies " +
    "and prepares every page) or IST of the missed writes: no timer bounds it; a cap for a loaded 2-core machine",
};
const EVICTED: WaitBound = {
  withinMs: 60_000,
  intervalMs: 200,
  because: "the survivors drop a dead peer after evs.inactive_timeout (4 s, tuned): a cap",
};

export function parseArgs(argv: readonly string[]): { sizeMb: number; rows: number } {
  let sizeMb = 300;
  let rows = 300;
  for (const a of argv) {
    const flag = /^--rows=(\d+)$/.exec(a);
    if (flag !== null) rows = Number(flag[1]);
    else if (/^\d+$/.test(a)) sizeMb = Number(a);
    else throw new Error(`unknown argument ${JSON.stringify(a)}. ${USAGE}`);
  }
  if (sizeMb < 1 || sizeMb > 10_000)
    throw new Error(`sizeMB must be from 1 to 10000, but ${sizeMb} was given. ${USAGE}`);
  if (rows < 1 || rows > 100_000)
    throw new Error(`--rows must be from 1 to 100000, but ${rows} was given. ${USAGE}`);
  return { sizeMb, rows };
}

/**
 * The start script as it was before position recovery: the generated one with its crash branch
 * cut out (kept here only, for the comparison). Throws if the branch is not where it should be,
 * so the comparison can never silently run the same script twice.
 */
function withoutRecovery(script: string): string {
  const lines = script.split("\n");
  const start = lines.findIndex((l) => l.trim() === `if grep -q '^seqno: *-1' "$datadir/grastate.dat"; then`);
  const indent = start < 0 ? "" : lines[start].slice(0, lines[start].indexOf("if"));
  const end = lines.findIndex((l, i) => i > start && l === `${indent}fi`);
  if (start < 0 || end < 0) throw new Error("the generated start script has no crash-recovery branch to cut");
  return [...lines.slice(0, start), ...lines.slice(end + 1)].join("\n");
}

/** The state transfers a joiner's error log shows: the SST scripts end with "<method> IST|SST completed on joiner". */
function transfers(log: string): string {
  const kinds = [...log.matchAll(/WSREP_SST: \[INFO\] \S+ (IST|SST) completed on joiner/g)].map((m) => m[1]);
  return kinds.length === 0 ? "none" : kinds.join("+");
}

function synced(node: MariaNode): Promise<number> {
  return waitFor(`${node.name} Synced`, async () => node.status("wsrep_local_state") === "4", SYNCED);
}

/** INSERT…SELECT doubling up to `sizeMb` of 1 KiB rows, on one node (the others copy it by SST). */
function load(node: MariaNode, sizeMb: number): { rows: number; ms: number } {
  const target = Math.ceil((sizeMb * 1024 * 1024) / ROW_BYTES);
  const started = Date.now();
  node.sql(
    [
      "CREATE TABLE bench.data (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARBINARY(1024) NOT NULL)",
      `INSERT INTO bench.data (pad) SELECT RANDOM_BYTES(${ROW_BYTES}) FROM bench.seq_1_to_1024`,
    ].join(";\n"),
  );
  let rows = 1024;
  // Each statement at least doubles the rows or adds a full chunk: a bounded number of them.
  const maxStatements = Math.ceil(Math.log2(target)) + Math.ceil(target / CHUNK_ROWS);
  for (let i = 0; rows < target && i < maxStatements; i++) {
    if (Date.now() - started > LOAD_DEADLINE_MS)
      throw new Error(`load: not done within ${LOAD_DEADLINE_MS} ms`);
    const n = Math.min(rows, target - rows, CHUNK_ROWS);
    node.sql(
      `INSERT INTO bench.data (pad) SELECT RANDOM_BYTES(${ROW_BYTES}) FROM bench.data LIMIT ${n}`,
      STATEMENT_TIMEOUT_MS,
    );
    rows += n;
  }
  return { rows: Number(node.sql("SELECT COUNT(*) FROM bench.data")), ms: Date.now() - started };
}

interface Round {
  readonly label: string;
  readonly transfer: string;
  readonly syncedMs: number;
  readonly bytesPerRow: number;
}

/** kill -9 `victim`, `rows` commits on `writer` meanwhile, then a restart with `script`, timed to Synced. */
async function round(
  procs: ProcessGroup,
  label: string,
  script: string,
  victim: MariaNode,
  writer: MariaNode,
  rows: number,
): Promise<Round> {
  await procs.kill(victim.process!, "SIGKILL");
  await waitFor(
    "the survivors dropped the killed node",
    async () => writer.status("wsrep_cluster_size") === "2",
    EVICTED,
  );
  const sentBefore = Number(writer.status("wsrep_replicated_bytes"));
  const inserts = Array.from(
    { length: rows },
    () => `INSERT INTO bench.missed (note) VALUES ('written while ${victim.name} was down');`,
  );
  writer.sql(inserts.join("\n"), STATEMENT_TIMEOUT_MS);
  const bytesPerRow = (Number(writer.status("wsrep_replicated_bytes")) - sentBefore) / rows;
  writeFileSync(join(victim.dir, "start.sh"), script);
  const errorLog = join(victim.dir, "error.log");
  const logged = statSync(errorLog).size;
  victim.start(procs);
  const syncedMs = await synced(victim);
  const transfer = transfers(readFileSync(errorLog).subarray(logged).toString("utf8"));
  const counts = [victim, writer].map((n) => n.sql("SELECT COUNT(*) FROM bench.missed"));
  if (counts[0] !== counts[1])
    throw new Error(`${label}: rows differ after the rejoin: ${counts.join(" / ")}`);
  return { label, transfer, syncedMs, bytesPerRow };
}

async function main(): Promise<void> {
  const { sizeMb, rows } = parseArgs(process.argv.slice(2));
  const procs = new ProcessGroup();
  const dir = tempDir("bench-galera-rejoin");
  const nodes = [0, 1, 2].map((i) => new MariaNode(`bench-db-${i}`, `127.0.0.${201 + i}`, PORT, dir));
  let ok = false;
  try {
    const spec = testSpec("bench", nodes, {
      mode: "galera",
      port: PORT,
      galera: { ...GALERA_TUNED_TIMINGS, sstMethod: "mariabackup" },
      bufferPool: "256M",
    });
    const files = renderTestFiles(spec, creds, dir);
    for (const n of nodes) n.prepare(files, true);
    console.log(
      `galera rejoin after kill -9, ${sizeMb} MB dataset, ${rows} rows written while down; ${new Date().toISOString()}`,
    );

    // The first node bootstraps and takes the whole dataset alone; the others copy it by SST.
    nodes[0].install();
    nodes[0].start(procs);
    await nodes[0].waitUp(UP);
    nodes[0].applyInitdb();
    await synced(nodes[0]);
    const loaded = load(nodes[0], sizeMb);
    nodes[0].sql("CREATE TABLE bench.missed (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))");
    const onDisk = statSync(join(nodes[0].dataDir, "bench", "data.ibd")).size / 2 ** 20;
    console.log(`loaded ${loaded.rows} rows (${onDisk.toFixed(0)} MiB data.ibd) in ${loaded.ms} ms`);
    for (const n of nodes.slice(1)) {
      n.install();
      n.start(procs);
      console.log(`${n.name} joined by SST in ${await synced(n)} ms`);
    }

    const victim = nodes[2];
    const results = [
      await round(procs, "generated (recovery)", files.startScript, victim, nodes[0], rows),
      await round(procs, "no recovery (before)", withoutRecovery(files.startScript), victim, nodes[0], rows),
    ];
    console.log(
      `${"start script".padEnd(22)} ${"transfer".padStart(8)} ${"restart->Synced ms".padStart(19)}`,
    );
    for (const r of results)
      console.log(`${r.label.padEnd(22)} ${r.transfer.padStart(8)} ${String(r.syncedMs).padStart(19)}`);
    const [fast, slow] = results;
    console.log(
      `no recovery / generated: ${(slow.syncedMs / fast.syncedMs).toFixed(1)}x; write sets while down: ` +
        `${fast.bytesPerRow.toFixed(0)} bytes per row, so gcache.size 128M holds about ` +
        `${Math.floor((128 * 2 ** 20) / fast.bytesPerRow)} such commits`,
    );
    ok = true;
  } finally {
    await procs.stopAll(join(dir, "logs"));
    // A passing run's data (the dataset three times over, with binary logs) goes; a failed one's stays.
    if (ok) for (const n of nodes) rmSync(n.dataDir, { recursive: true, force: true });
    console.log(`${ok ? "logs" : "data and logs"}: ${dir}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
