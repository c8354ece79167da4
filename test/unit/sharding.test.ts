import fc from "fast-check";
import { fnv1a64, jumpHash, shardFor, validateShards } from "../../components/database/sharding";

/** Counts per shard for `keys`. */
function spread(keys: string[], shards: number): number[] {
  const counts = new Array<number>(shards).fill(0);
  for (const k of keys) counts[shardFor(k, shards)]++;
  return counts;
}

const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe("the shard helper (jump consistent hash over FNV-1a 64)", () => {
  it("matches the published FNV-1a 64 vectors and the test vectors other jump hash ports share", () => {
    expect(fnv1a64("")).toBe(0xcbf29ce484222325n);
    expect(fnv1a64("a")).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64("foobar")).toBe(0x85944171f73967e8n);
    // The vectors used by the Go, Rust and TypeScript ports of the paper's C++ code.
    expect(jumpHash(10863919174838991n, 11)).toBe(6);
    expect(jumpHash(2016238256797177309n, 11)).toBe(3);
    expect([0n, 1n, 0xdeadbeefn].map((k) => jumpHash(k, 1))).toEqual([0, 0, 0]);
  });

  it("always returns a shard in range, and the same one for the same key", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 64 }), (key, shards) => {
        const s = shardFor(key, shards);
        return Number.isInteger(s) && s >= 0 && s < shards && shardFor(key, shards) === s;
      }),
      { numRuns: 2000 },
    );
  });

  // Bound: 20,000 keys over N ≤ 8 shards put at least 2,500 on each in expectation; every shard
  // within ±10% of that is more than 5 standard deviations of slack, so a failure means skew.
  it.each([2, 3, 4, 5, 8])(
    "spreads 20,000 keys evenly over %i shards (each within ±10%% of its share)",
    (n) => {
      const counts = spread(keysOf("order", 20_000), n);
      const expected = 20_000 / n;
      for (const c of counts) expect(Math.abs(c - expected) / expected).toBeLessThan(0.1);
    },
  );

  it("spreads random keys evenly too (property, 4 shards, ±15% over 4,000 keys)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 4000, maxLength: 4000 }),
        (keys) => {
          const counts = spread(keys, 4);
          return counts.every((c) => Math.abs(c - 1000) / 1000 < 0.15);
        },
      ),
      { numRuns: 20 },
    );
  });

  // Growing from N to N+1 must move about 1/(N+1) of the keys, and only onto the new shard.
  it.each([1, 2, 3, 4, 7])(
    "moves about 1/(N+1) of the keys, all to the new shard, when %i shards become N+1",
    (n) => {
      const keys = keysOf("customer", 20_000);
      let moved = 0;
      for (const k of keys) {
        const before = shardFor(k, n);
        const after = shardFor(k, n + 1);
        if (before !== after) {
          moved++;
          expect(after).toBe(n);
        }
      }
      const fraction = moved / keys.length;
      // ±2 percentage points around 1/(N+1): about 10 standard deviations at 20,000 keys.
      expect(Math.abs(fraction - 1 / (n + 1))).toBeLessThan(0.02);
    },
  );

  it.each([0, -1, 65, 2.5])("rejects %p shards", (n) => {
    expect(() => validateShards("orders", n)).toThrow(
      `ShardedMysql "orders": shards must be a whole number from 1 to 64, but ${JSON.stringify(n)} was provided.`,
    );
  });
});
