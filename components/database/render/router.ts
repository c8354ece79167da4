import { resolversSection, statsSection } from "../../balancer/render/haproxy";
import { hostPort, listenOn } from "../../balancer/render/spec";
import * as g from "../../render-guard";
import { CHECK_USER, type MysqlMode } from "./mysql";

/** What both database routers (MySQL family and Patroni) take besides their members. */
export interface TcpRouterBase {
  readonly listenAddress?: string;
  readonly rwPort: number;
  readonly roPort: number;
  readonly statsPort: number;
  readonly statsAddress?: string;
  readonly check: {
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly fall: number;
    readonly rise: number;
  };
  /** Re-resolve member names at run time through these servers ([] = resolv.conf). */
  readonly dynamicDns?: { readonly resolvers: readonly string[] };
  /** How long an idle client connection may stay open. */
  readonly clientTimeoutMs: number;
}

/**
 * HAProxy in TCP mode in front of a MySQL-family cluster: a read-write port and a read-only port.
 * Replication: writes go to the primary; reads to the replicas, the primary as their backup.
 * Galera: one writer at a time (the others are backups, so two nodes never take conflicting
 * writes), reads spread over every node, and a node counts only while Galera says it is Synced.
 */
export interface DbRouterSpec extends TcpRouterBase {
  readonly mode: MysqlMode;
  /** Members in ordinal order (member 0: replication primary / Galera's preferred writer). */
  readonly members: readonly { readonly name: string; readonly host: string; readonly port: number }[];
}

/** A MySQL wire packet: 3-byte little-endian length, sequence id, payload. */
function packet(seq: number, payload: Buffer): string {
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header.writeUInt8(seq, 3);
  return Buffer.concat([header, payload]).toString("hex");
}

/** HandshakeResponse41 for a user without a password: PROTOCOL_41 | SECURE_CONNECTION, utf8, no auth data. */
function loginPacket(user: string): string {
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(0x00000200 | 0x00008000);
  const maxPacket = Buffer.alloc(4);
  maxPacket.writeUInt32LE(16 * 1024 * 1024);
  const payload = Buffer.concat([
    caps,
    maxPacket,
    Buffer.from([0x21]),
    Buffer.alloc(23),
    Buffer.from(`${user}\0`),
    Buffer.from([0]),
  ]);
  return packet(1, payload);
}

function queryPacket(sql: string): string {
  return packet(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
}

/**
 * A health check that speaks the MySQL protocol: log in as the password-less check user, ask for
 * `wsrep_local_state`, and pass only on the row `wsrep_local_state | 4` (Synced). A node that is
 * a donor, a joiner or outside the primary component fails it, though it still accepts logins.
 */
export function galeraSyncedCheck(): string[] {
  return mysqlRowCheck("SHOW GLOBAL STATUS LIKE 'wsrep_local_state'", ["wsrep_local_state", "4"]);
}

/**
 * Replication: the writer is whichever member has `read_only` OFF, so writes follow a promotion
 * (the promotion script opens the new primary last) and never reach a fenced member. The check
 * user needs no privilege to read a global variable.
 */
export function replicationWritableCheck(): string[] {
  return mysqlRowCheck("SHOW GLOBAL VARIABLES LIKE 'read_only'", ["read_only", "OFF"]);
}

/**
 * Replication reads: a member with `read_only` ON (a replica, or a fenced member; MySQL's
 * super_read_only implies it). The check user cannot see whether replication runs (SHOW SLAVE
 * STATUS needs a privilege), so a fenced member left out of replication still serves reads.
 */
export function replicationReadOnlyCheck(): string[] {
  return mysqlRowCheck("SHOW GLOBAL VARIABLES LIKE 'read_only'", ["read_only", "ON"]);
}

/**
 * Logs in as the password-less check user, sends one query and passes only if the reply holds
 * `row`. In a text result row each value is a length-prefixed string (values under 251 bytes):
 * `wsrep_local_state | 4` is 0x11 "wsrep_local_state" 0x01 "4".
 */
function mysqlRowCheck(sql: string, row: readonly string[]): string[] {
  const expected = Buffer.concat(row.map((v) => Buffer.concat([Buffer.from([v.length]), Buffer.from(v)])));
  return [
    "    option tcp-check",
    "    tcp-check connect",
    // Server greeting: protocol version 10 right after the 4-byte packet header.
    "    tcp-check expect rbinary ^[0-9A-Fa-f]{8}0[aA]",
    `    tcp-check send-binary ${loginPacket(CHECK_USER)}`,
    // OK packet (first payload byte 0x00) with sequence id 2.
    "    tcp-check expect rbinary ^[0-9A-Fa-f]{6}0200",
    `    tcp-check send-binary ${queryPacket(sql)}`,
    `    tcp-check expect binary ${expected.toString("hex")}`,
    // COM_QUIT, so the server does not log an aborted connection for every check.
    `    tcp-check send-binary ${packet(0, Buffer.from([0x01]))}`,
  ];
}

/**
 * What every TCP router's file embeds besides its members and ports (each router guards those),
 * checked at the renderer's entry ({@link RenderInputError} names the field).
 */
export function guardTcpRouterBase(renderer: string, s: Omit<TcpRouterBase, "rwPort" | "roPort">): void {
  const r = renderer;
  const ms = (field: string, v: number) => g.wholeNumber(r, field, v, 1, 86_400_000);
  if (s.listenAddress !== undefined) g.ipAddress(r, "listenAddress", s.listenAddress);
  g.port(r, "statsPort", s.statsPort);
  if (s.statsAddress !== undefined) g.ipAddress(r, "statsAddress", s.statsAddress);
  ms("check.intervalMs", s.check.intervalMs);
  ms("check.timeoutMs", s.check.timeoutMs);
  g.wholeNumber(r, "check.fall", s.check.fall, 1, 1000);
  g.wholeNumber(r, "check.rise", s.check.rise, 1, 1000);
  if (s.dynamicDns !== undefined) {
    g.listOf(r, "dynamicDns.resolvers", s.dynamicDns.resolvers, 0, 16, (f, a) => g.hostName(r, f, a));
  }
  ms("clientTimeoutMs", s.clientTimeoutMs);
}

/** global, resolvers and defaults of a TCP-mode database router. */
export function tcpPreamble(s: TcpRouterBase): string[] {
  return [
    "# Generated by ha-backend (components/database/render/router.ts). Do not edit.",
    "global",
    "    log stderr format raw local0 info",
    ...(s.dynamicDns ? ["", ...resolversSection(s.dynamicDns.resolvers)] : []),
    "",
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    option dontlognull",
    "    retries 2",
    "    timeout connect 2s",
    `    timeout client ${s.clientTimeoutMs}ms`,
    `    timeout server ${s.clientTimeoutMs}ms`,
    `    timeout check ${s.check.timeoutMs}ms`,
    // A dead database server's connections are cut at once, so clients reconnect to the new one
    // instead of waiting on a half-open socket.
    `    default-server inter ${s.check.intervalMs}ms fall ${s.check.fall} rise ${s.check.rise} on-marked-down shutdown-sessions` +
      (s.dynamicDns ? " resolvers dns init-addr last,libc,none" : ""),
  ];
}

export function renderDbRouter(s: DbRouterSpec): string {
  const r = "renderDbRouter";
  guardTcpRouterBase(r, s);
  g.port(r, "rwPort", s.rwPort);
  g.port(r, "roPort", s.roPort);
  g.oneOf(r, "mode", s.mode, ["replication", "galera"]);
  g.listOf(r, "members", s.members, 0, 100, (f, m) => {
    g.objectName(r, `${f}.name`, m.name);
    g.hostName(r, `${f}.host`, m.host);
    g.port(r, `${f}.port`, m.port);
  });
  if (s.members.length === 0) throw new Error("router: at least one member is required");
  const check = s.mode === "galera" ? galeraSyncedCheck() : replicationWritableCheck();
  const roCheck = s.mode === "galera" ? check : replicationReadOnlyCheck();
  const server = (m: DbRouterSpec["members"][number], backup: boolean, extra = "") =>
    `    server ${m.name} ${hostPort(m.host, m.port)} check${backup ? " backup" : ""}${extra}`;
  const [first, ...rest] = s.members;
  const rw =
    s.mode === "galera"
      ? [
          // The preferred writer takes writes back once it is Synced again (every router picks
          // the same node: the first Synced one in ordinal order), and the sessions still open
          // on the stand-in are cut then, so two nodes never take writes for long.
          server(first, false, " on-marked-up shutdown-backup-sessions"),
          ...rest.map((m) => server(m, true)),
        ]
      : // Every member: the check passes on the writable one alone, and `first` sends every
        // connection to the lowest-ordinal one that passes should two ever be writable.
        ["    balance first", ...s.members.map((m) => server(m, false))];
  const ro =
    s.mode === "galera"
      ? s.members.map((m) => server(m, false))
      : [
          ...s.members.map((m) => server(m, false)),
          // The writable member, whichever it is (its rw check's state), while no replica is up.
          ...s.members.map(
            (m) => `    server ${m.name}-primary ${hostPort(m.host, m.port)} backup track rw/${m.name}`,
          ),
        ];
  return [
    ...tcpPreamble(s),
    "",
    "# Read-write: " +
      (s.mode === "galera"
        ? "one Synced writer at a time, the others standing by."
        : "the writable member (the primary; moved by the promotion script)."),
    "listen rw",
    `    bind ${listenOn(s.listenAddress, s.rwPort, "haproxy")}`,
    ...check,
    ...rw,
    "",
    "# Read-only: " +
      (s.mode === "galera" ? "every Synced node." : "the read-only members, the primary if none is up."),
    "listen ro",
    `    bind ${listenOn(s.listenAddress, s.roPort, "haproxy")}`,
    "    balance leastconn",
    ...roCheck,
    ...ro,
    "",
    ...statsSection(s.statsAddress, s.statsPort, "tcp"),
    "",
  ].join("\n");
}

/** HAProxy in front of Patroni: members are checked on Patroni's REST API, not on PostgreSQL. */
export interface PgRouterSpec extends TcpRouterBase {
  readonly members: readonly {
    readonly name: string;
    readonly host: string;
    readonly pgPort: number;
    readonly restApiPort: number;
  }[];
}

/**
 * Writes follow the leader: only it answers 200 on `/primary`. Reads go to members answering
 * `/replica`, or to the leader while no replica is up. A server that fails its check has its
 * sessions cut at once, so clients reconnect to the new leader instead of hanging.
 */
export function renderPgRouter(s: PgRouterSpec): string {
  const r = "renderPgRouter";
  guardTcpRouterBase(r, s);
  g.port(r, "rwPort", s.rwPort);
  g.port(r, "roPort", s.roPort);
  g.listOf(r, "members", s.members, 0, 100, (f, m) => {
    g.objectName(r, `${f}.name`, m.name);
    g.hostName(r, `${f}.host`, m.host);
    g.port(r, `${f}.pgPort`, m.pgPort);
    g.port(r, `${f}.restApiPort`, m.restApiPort);
  });
  if (s.members.length === 0) throw new Error("router: at least one member is required");
  const backend = (name: string, path: string) => [
    `backend ${name}`,
    "    option httpchk",
    `    http-check send meth GET uri ${path} ver HTTP/1.1 hdr Host ha-backend-check`,
    "    http-check expect status 200",
    ...s.members.map((m) => `    server ${m.name} ${hostPort(m.host, m.pgPort)} check port ${m.restApiPort}`),
  ];
  return [
    ...tcpPreamble(s),
    "",
    "# Read-write: the Patroni leader.",
    "frontend rw",
    `    bind ${listenOn(s.listenAddress, s.rwPort, "haproxy")}`,
    "    default_backend primary",
    "",
    "# Read-only: the replicas, or the leader while none is up.",
    "frontend ro",
    `    bind ${listenOn(s.listenAddress, s.roPort, "haproxy")}`,
    "    use_backend primary if { nbsrv(replicas) eq 0 }",
    "    default_backend replicas",
    "",
    ...backend("primary", "/primary"),
    "",
    ...[...backend("replicas", "/replica"), "    balance leastconn"],
    "",
    ...statsSection(s.statsAddress, s.statsPort, "tcp"),
    "",
  ].join("\n");
}
