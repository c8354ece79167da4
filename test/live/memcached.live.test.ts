import type { ChildProcess } from "node:child_process";
import { renderMemcachedArgs } from "../../components/cache/render/memcached";
import { shardFor } from "../../components/database/sharding";
import { ProcessGroup, waitFor } from "../support/daemons";
import { mcGet, mcSet } from "../support/memcached";

/**
 * Three memcached nodes (Debian's 1.6) started with the generated arguments on loopback, keys
 * spread by the client with the project's consistent hash; one node is killed with -9.
 */
const NET = 160;
const nodes = [0, 1, 2].map((i) => ({ name: `pages-memcached-${i}`, ip: `127.0.0.${NET + 1 + i}` }));
const PORT = 11211;

describe("a memcached pool from the generated arguments (live)", () => {
  const procs = new ProcessGroup();
  const running = new Map<string, ChildProcess>();
  const keys = Array.from({ length: 300 }, (_, i) => `page:/posts/${i}`);
  const home = (key: string) => nodes[shardFor(key, nodes.length)];

  beforeAll(async () => {
    for (const n of nodes) {
      const args = renderMemcachedArgs({
        port: PORT,
        memoryMb: 16,
        maxConnections: 256,
        threads: 2,
        listen: n.ip,
      });
      // Debian's memcached refuses to run as root without -u.
      running.set(n.name, procs.start("memcached", [...args, "-u", "nobody"]));
    }
    for (const n of nodes) {
      await waitFor(`${n.name} up`, async () => (await mcGet(n.ip, PORT, "probe")) === undefined, {
        withinMs: 15_000,
        because:
          "memcached's start-up: no timer governs it (it listens within milliseconds); a cap for a loaded machine",
      });
    }
  });

  afterAll(() => procs.stopAll());

  it("spreads keys over every node and serves them back", async () => {
    for (const k of keys) await mcSet(home(k).ip, PORT, k, `<html>${k}</html>`);
    const perNode = nodes.map((n) => keys.filter((k) => home(k) === n).length);
    console.log(`memcached: 300 keys per node ${perNode.join(" / ")}`);
    expect(perNode.every((c) => c > 50)).toBe(true);
    for (const k of keys) expect(await mcGet(home(k).ip, PORT, k)).toBe(`<html>${k}</html>`);
  });

  it("keeps serving the other nodes' keys when one node is killed with -9", async () => {
    const dead = nodes[1];
    await procs.kill(running.get(dead.name)!, "SIGKILL");
    let served = 0;
    let unreachable = 0;
    for (const k of keys) {
      const n = home(k);
      try {
        expect(await mcGet(n.ip, PORT, k)).toBe(`<html>${k}</html>`);
        served++;
      } catch (e) {
        // Only the dead node's keys may fail, and only by a refused connection (a fast miss).
        expect([n.name, (e as NodeJS.ErrnoException).code]).toEqual([dead.name, "ECONNREFUSED"]);
        unreachable++;
      }
    }
    console.log(
      `memcached: node ${dead.name} killed; ${served} keys still served, ${unreachable} misses (its share)`,
    );
    expect(unreachable).toBe(keys.filter((k) => home(k) === dead).length);
    expect(served).toBe(keys.length - unreachable);
  });
});
