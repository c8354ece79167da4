import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { livePathPattern, parseArgs } from "../../scripts/live-repeat";
import { waitFor, type WaitRecord } from "../support/daemons";

/** The live tests' bounded wait and the repeat runner's arguments: what every flake report rests on. */
describe("waitFor", () => {
  const bound = { withinMs: 300, intervalMs: 50, because: "the test's own timer" };

  it("resolves as soon as the probe says yes, with the time it took", async () => {
    let probes = 0;
    const ms = await waitFor("third time", async () => ++probes === 3, bound);
    expect(probes).toBe(3);
    expect(ms).toBeGreaterThanOrEqual(0);
  });

  it("gives up after a bounded number of probes, naming the bound's origin and the last answer", async () => {
    let probes = 0;
    const never = async () => {
      probes++;
      throw new Error("connect ECONNREFUSED 127.0.0.9:5432\nstack");
    };
    await expect(waitFor("a server", never, bound)).rejects.toThrow(
      /^a server: not within 300 ms \(the test's own timer\); \d+ probes, the last threw "connect ECONNREFUSED 127.0.0.9:5432"$/,
    );
    // 300 ms at one probe per 50 ms: at most 300 / 50 + 1 probes, whatever the machine's speed.
    expect(probes).toBeLessThanOrEqual(7);
    expect(probes).toBeGreaterThanOrEqual(1);
  });

  it("says when the last probe answered no rather than failed", async () => {
    await expect(waitFor("a replica", async () => false, bound)).rejects.toThrow(/the last answered false$/);
  });

  it("does not wait on a probe that hangs past the bound", async () => {
    const hang = () => new Promise<boolean>(() => undefined);
    await expect(waitFor("a hung server", hang, bound)).rejects.toThrow(
      /the last threw "probe still running after/,
    );
  });

  it("records every wait for the repeat runner when asked to", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "ha-backend-waitlog-")), "waits.jsonl");
    process.env.HA_BACKEND_WAIT_LOG = log;
    try {
      await waitFor("quick", async () => true, bound);
      await waitFor("never", async () => false, bound).catch(() => undefined);
    } finally {
      delete process.env.HA_BACKEND_WAIT_LOG;
    }
    const records = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as WaitRecord);
    expect(records.map((r) => [r.what, r.ok, r.withinMs, r.because])).toEqual([
      ["quick", true, 300, "the test's own timer"],
      ["never", false, 300, "the test's own timer"],
    ]);
    expect(records[0].test).toBe("waitFor records every wait for the repeat runner when asked to");
    expect(records[0].file).toBe(__filename);
  });
});

describe("live-repeat arguments", () => {
  it.each([
    [["10"], { runs: 10, pattern: undefined, hogCores: 0 }],
    [["5", "patroni", "--hog"], { runs: 5, pattern: "patroni", hogCores: 1 }],
    [["--hog=2", "3"], { runs: 3, pattern: undefined, hogCores: 2 }],
    [
      ["1", "--hog", "--except=monitoring-exporters"],
      { runs: 1, pattern: undefined, hogCores: 1, except: "monitoring-exporters" },
    ],
  ])("reads %j", (argv, options) => {
    expect(parseArgs(argv)).toEqual(options);
  });

  it.each([
    [[], /runs must be a whole number from 1 to 100, but undefined was given/],
    [["0"], /but "0" was given/],
    [["ten"], /but "ten" was given/],
    [["3", "--fast"], /unknown option --fast/],
  ])("rejects %j with the rule and the usage", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
    expect(() => parseArgs(argv)).toThrow(
      /usage: npm run test:live:repeat -- <runs> \[pattern\] \[--hog\[=cores\]\] \[--except=pattern\]/,
    );
  });
});

describe("live-repeat's path pattern", () => {
  it.each([
    [undefined, "/work/main/test/live/patroni.live.test.ts", true],
    ["patroni", "/work/main/test/live/patroni.live.test.ts", true],
    ["patroni", "/work/main/test/live/galera.live.test.ts", false],
    // A file path as the README gives it, and a pattern naming a unit test: only live files run.
    ["test/live/patroni.live.test.ts", "/work/main/test/live/patroni.live.test.ts", true],
    ["./test/live/galera.live.test.ts", "/work/main/test/live/galera.live.test.ts", true],
    ["galera|mysql", "/work/main/test/live/mysql-replication.live.test.ts", true],
    ["postgres", "/work/main/test/unit/postgres-cluster.test.ts", false],
  ])("with %j runs %s: %s", (pattern, file, runs) => {
    expect(new RegExp(livePathPattern(pattern)).test(file)).toBe(runs);
  });
});
