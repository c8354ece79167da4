import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { synthStack } from "../../scripts/synth";
import { haproxyCheck, nginxTest, selfSignedCert, tempDir } from "../support/daemons";
import { stackNames } from "../support/stack-files";

/**
 * Every stack's (each file in stacks/) generated balancer config, exactly as synth renders it for the containers, through
 * the real daemon's checker. Two things are mapped for the check, nothing else: the container's
 * certificate path to a throwaway certificate, and member host names to loopback addresses.
 */
const STACKS = stackNames();
const CONTAINER_CERT = "/etc/ha-backend/lb/tls/server.pem";
const cert = selfSignedCert(tempDir("stack-tls"));

/**
 * Host names the daemon resolves while checking (nginx `server name:port`, HAProxy
 * `server label name:port`), each to its own loopback address.
 */
function upstreamHosts(config: string): Record<string, string> {
  const lines = config.split("\n").filter((l) => /^\s+server(-template)? /.test(l));
  const names = lines.flatMap((l) => [...l.matchAll(/ ([a-z][a-z0-9.-]*):\d+\b/g)].map((m) => m[1]));
  return Object.fromEntries([...new Set(names)].map((n, i) => [n, `127.0.1.${i + 1}`]));
}

describe.each(STACKS)("%s", (stack) => {
  let configs: [string, string][];

  beforeAll(async () => {
    const tree = await synthStack(stack);
    const all = [...tree.entries()].filter(
      ([p]) => /\/(nginx\.conf|haproxy\.cfg)$/.test(p) && p.includes("-lb-"),
    );
    // Every replica gets the same file; check each distinct one.
    configs = [...new Map(all.map(([p, c]) => [c, p])).entries()].map(([c, p]) => [p, c]);
  });

  it("renders one balancer config for all of its replicas", () => {
    expect(configs).toHaveLength(1);
  });

  it("passes the real daemon's config check", () => {
    for (const [path, config] of configs) {
      const forCheck = config.split(CONTAINER_CERT).join(cert);
      const r = path.endsWith("nginx.conf")
        ? nginxTest(forCheck, upstreamHosts(config))
        : haproxyCheck(forCheck, upstreamHosts(config));
      console.log(`${stack}: ${path.split("/").pop()} check exit ${r.code}`);
      expect([path, r.output.replace(/\[NOTICE\].*\n/g, "")]).toEqual([
        path,
        path.endsWith("nginx.conf") ? "" : "Configuration file is valid\n",
      ]);
      expect(r.code).toBe(0);
    }
  });
});

/**
 * The database side of every stack: each cluster's my.cnf through the real mariadbd's option
 * parser (unknown or malformed settings fail it), with the flags the start script adds for a
 * primary and for a replica; each router through haproxy -c.
 */
describe.each(STACKS)("%s databases", (stack) => {
  let tree: Map<string, string>;

  beforeAll(async () => {
    tree = await synthStack(stack);
  });

  const distinct = (suffix: string) => [
    ...new Map([...tree.entries()].filter(([p]) => p.endsWith(suffix)).map(([p, c]) => [c, p])).entries(),
  ];

  it("has my.cnf files that mariadbd accepts, as primary and as replica", () => {
    const cnfs = distinct("/etc/mysql/conf.d/ha-backend.cnf");
    expect(cnfs.length).toBeGreaterThan(0);
    for (const [cnf, path] of cnfs) {
      const dir = tempDir("mycnf");
      writeFileSync(join(dir, "my.cnf"), cnf);
      for (const role of [
        ["--server-id=1", "--rpl-semi-sync-master-enabled=ON"],
        ["--server-id=2", "--read-only=ON", "--rpl-semi-sync-slave-enabled=ON"],
      ]) {
        const r = spawnSync(
          "mariadbd",
          [`--defaults-file=${join(dir, "my.cnf")}`, ...role, "--user=mysql", "--verbose", "--help"],
          {
            encoding: "utf8",
            timeout: 30_000,
          },
        );
        expect([
          path,
          role.join(" "),
          r.status,
          r.stderr.split("\n").filter((l) => l.includes("[ERROR]")),
        ]).toEqual([path, role.join(" "), 0, []]);
      }
    }
  });

  it("has routers that haproxy -c accepts", () => {
    // The cache's router logs in to Redis: its config is a secret file, checked live instead.
    const routers = [...tree.entries()].filter(
      ([p, c]) => /-router-[^/]*\/usr\/local\/etc\/haproxy\/haproxy\.cfg$/.test(p) && c !== "[secret]",
    );
    expect(routers.length).toBeGreaterThan(0);
    for (const [path, config] of routers) {
      const r = haproxyCheck(config, upstreamHosts(config));
      expect([path, r.output.replace(/\[NOTICE\].*\n/g, "")]).toEqual([
        path,
        "Configuration file is valid\n",
      ]);
    }
  });
});
