/**
 * A Galera cluster of a shipped stack as the mocked engine synthesizes it: every member's
 * uploaded files (my.cnf, secret cnf, start script, bootstrap SQL) and the router's haproxy.cfg,
 * read from the Docker containers `pulumi up` would create, for the live tests to run on loopback.
 *
 * What a container's network namespace and Docker's DNS give it is substituted, nothing else:
 * the member names the files use as addresses (the gcomm:// list, the start script's `members`,
 * the router's server addresses) become loopback addresses, the router binds its own address
 * instead of every address, and the container paths of the bootstrap SQL become files in the
 * test's directory. Member names stay names (Galera's node names and donor list use them).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unwrapSecrets, type ProgramRun } from "../../scripts/mock-engine";
import type { RenderedFiles, RouterCheck } from "./mariadb";

interface Upload {
  readonly file: string;
  readonly content: string;
}

export interface SynthesizedGalera {
  /** Member names in ordinal order (`catalog-db-0` …). */
  readonly members: string[];
  readonly files: RenderedFiles;
  readonly routerConfig: string;
  /** The router config's health-check settings. */
  readonly routerCheck: RouterCheck;
  readonly app: { readonly user: string; readonly password: string; readonly database: string };
}

function uploads(run: ProgramRun, name: string): Upload[] {
  const r = run.resources.find((x) => x.type === "docker:index/container:Container" && x.name === name);
  if (r === undefined) throw new Error(`the stack has no container ${name}`);
  return (unwrapSecrets(r.inputs) as { uploads: Upload[] }).uploads;
}

function upload(list: Upload[], path: string): string {
  const u = list.find((x) => x.file === path);
  if (u === undefined) throw new Error(`no upload ${path}`);
  return u.content;
}

/**
 * Replaces each `name` token with its address in the lines `where` selects; with `portOnly`,
 * only `name:port` tokens (a router's server line names the server too).
 */
function resolveNames(text: string, addresses: Map<string, string>, where: RegExp, portOnly = false): string {
  return text
    .split("\n")
    .map((line) => {
      if (!where.test(line)) return line;
      let out = line;
      for (const [name, ip] of addresses) {
        const after = portOnly ? "(?=:)" : "(?=[\\s),:]|$)";
        out = out.replace(new RegExp(`(^|[\\s(,/])${name}${after}`, "g"), `$1${ip}`);
      }
      return out;
    })
    .join("\n");
}

/**
 * The Galera cluster `<cluster>-db` of a Docker stack run, its members at `memberIps` and its
 * router listening on `routerIp`; the bootstrap SQL is written under `dir`.
 */
export function synthesizedGalera(
  run: ProgramRun,
  cluster: string,
  memberIps: readonly string[],
  routerIp: string,
  dir: string,
): SynthesizedGalera {
  const members = memberIps.map((_, i) => `${cluster}-db-${i}`);
  const first = uploads(run, members[0]);
  // Every member gets the same files (the ordinal comes from the host name at start).
  for (const m of members.slice(1)) {
    if (JSON.stringify(uploads(run, m)) !== JSON.stringify(first)) {
      throw new Error(`${m} got other files than ${members[0]}`);
    }
  }
  const addresses = new Map(members.map((m, i) => [m, memberIps[i]]));
  mkdirSync(join(dir, "files"), { recursive: true });
  const sqlPath = (p: string) => join(dir, "files", p.split("/").pop() as string);
  let startScript = upload(first, "/etc/ha-backend/db/start.sh");
  for (const u of first.filter((x) => x.file.endsWith(".sql"))) {
    writeFileSync(sqlPath(u.file), u.content);
    startScript = startScript.split(u.file).join(sqlPath(u.file));
  }
  const initSql = upload(first, "/etc/ha-backend/db/init.sql");
  const appUser = /^CREATE USER IF NOT EXISTS '([a-z0-9_]+)'@'%' IDENTIFIED BY '([^']+)';$/m.exec(
    initSql
      .split("\n")
      .filter((l) => !/'(replicator|haproxy_check|sst)'/.test(l))
      .join("\n"),
  );
  const database = /^CREATE DATABASE IF NOT EXISTS `([a-z0-9_]+)`;$/m.exec(initSql);
  if (appUser === null || database === null) throw new Error("no app user or database in init.sql");
  const routerConfig = resolveNames(
    upload(uploads(run, `${cluster}-router-0`), "/usr/local/etc/haproxy/haproxy.cfg"),
    addresses,
    /^\s+server /,
    true,
  ).replace(/^(\s+bind )[^\s]*:(\d+)$/gm, `$1${routerIp}:$2`);
  const check = /default-server inter (\d+)ms fall (\d+) rise (\d+)/.exec(routerConfig);
  const timeout = /timeout check (\d+)ms/.exec(routerConfig);
  if (check === null || timeout === null) throw new Error("the router config has no check settings");
  return {
    members,
    files: {
      myCnf: resolveNames(
        upload(first, "/etc/mysql/conf.d/ha-backend.cnf"),
        addresses,
        /^wsrep_cluster_address/,
      ),
      secretCnf: upload(first, "/etc/mysql/conf.d/zz-ha-backend-secret.cnf"),
      startScript: resolveNames(startScript, addresses, /^members=\(/),
    },
    routerConfig,
    routerCheck: {
      intervalMs: Number(check[1]),
      fall: Number(check[2]),
      rise: Number(check[3]),
      timeoutMs: Number(timeout[1]),
    },
    app: { user: appUser[1], password: appUser[2], database: database[1] },
  };
}
