/**
 * Guards for the values renderers write into config files, scripts and command lines. Each
 * renderer calls them at its entry, for every string and number that comes from outside it, so a
 * value can never end a line, open a block, start a comment, expand a variable or be read as a
 * keyword by the file format it lands in. One helper per kind of value, each with one allow-list
 * (never a deny-list: a format has more syntax than anyone remembers to list). Plain TypeScript,
 * no Pulumi import: components catch {@link RenderInputError} and word it for their users.
 */
import { BlockList, isIP } from "node:net";

/**
 * A value a renderer refuses: which renderer, which field of its spec, the rule, and the value
 * (escaped, so control characters and invisible separators show). Secrets are never shown.
 */
export class RenderInputError extends Error {
  override readonly name = "RenderInputError";

  constructor(
    /** The renderer function, e.g. `renderNginx`. */
    readonly renderer: string,
    /** The field as a path in the renderer's spec, e.g. `backends[1].host`. */
    readonly field: string,
    /** What the value must be, phrased to follow "must". */
    readonly rule: string,
    /** The refused value; `"[secret]"` for credentials. */
    readonly value: unknown,
    shown: string = showValue(value),
  ) {
    super(`${renderer}: ${field} must ${rule}, but ${shown} was provided.`);
  }

  /**
   * Pulumi's brand for `RunError` (errors.ts in @pulumi/pulumi checks this member): `pulumi up`
   * prints the sentence without a stack trace, as for bad config, while the renderers stay free
   * of any Pulumi import.
   */
  readonly __pulumiRunError = true;
}

/** Longest part of a refused string an error message quotes. */
const SHOWN_CHARS = 80;

/**
 * A value as an error message shows it: strings JSON-quoted with every character outside
 * printable ASCII escaped (JSON.stringify leaves U+2028, U+0085 and DEL as they are), long ones
 * cut; NaN and Infinity as themselves (JSON would say null).
 */
export function showValue(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v !== "string") return JSON.stringify(v) ?? String(v);
  const chars = [...v];
  const cut = chars.length > SHOWN_CHARS ? chars.slice(0, SHOWN_CHARS).join("") : v;
  const text = JSON.stringify(cut).replace(/[^\x20-\x7e]/gu, escapeChar);
  return chars.length > SHOWN_CHARS ? `${text}… (${chars.length} characters)` : text;
}

function escapeChar(c: string): string {
  const code = c.codePointAt(0) as number;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** Where a string first breaks its allow-list, for the message: ` (character "\n" at index 2)`. */
function firstBad(v: string, allowed: RegExp): string {
  let i = 0;
  for (const c of v) {
    if (!allowed.test(c)) return ` (character ${showValue(c)} at index ${i})`;
    i += c.length;
  }
  return "";
}

function refuse(renderer: string, field: string, rule: string, value: unknown, extra = ""): never {
  throw new RenderInputError(renderer, field, rule, value, `${showValue(value)}${extra}`);
}

/** A string of at most `max` characters matching `shape`; `char` finds the first offending one. */
function checkString(
  renderer: string,
  field: string,
  v: unknown,
  rule: string,
  char: RegExp,
  shape: RegExp,
  max: number,
): string {
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  // The rule states the limit; a long value is shown cut, with its length.
  if (v.length > max) return refuse(renderer, field, rule, v);
  if (!shape.test(v)) return refuse(renderer, field, rule, v, firstBad(v, char));
  return v;
}

/**
 * URL path of a health check (nginx `location =`, HAProxy `http-check send … uri`): "/" then
 * letters, digits and `/ _ . -` — the components' rule. No percent-encoding: nginx matches a
 * `location` against the decoded URI, so `location = /a%2Db` never matches any request, and the
 * demo app's health check would fail while HAProxy's (which sends the path as written) passed.
 */
export function urlPath(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    'be a URL path: "/" then letters, digits, "/", "_", ".", "-" (at most 255 characters), e.g. /healthz',
    /[A-Za-z0-9/_.-]/,
    /^\/[A-Za-z0-9/_.-]*$/,
    255,
  );
}

/** A cookie name (nginx reads it as part of `$cookie_<name>`): a letter, then letters, digits, `_`. */
export function cookieName(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a cookie name: a letter, then letters, digits and _ (at most 32 characters), e.g. SERVERID",
    /[A-Za-z0-9_]/,
    /^[A-Za-z][A-Za-z0-9_]*$/,
    32,
  );
}

/**
 * The name of something in a file (a server, a member, a cluster, a Sentinel master): a letter or
 * digit, then letters, digits and `_ . -`. HAProxy's own set for names, minus `:`; no `,` (lists
 * of names are comma-separated), no leading `-` (read as an option).
 */
export function objectName(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a name: a letter or digit, then letters, digits, _, . and - (at most 63 characters), e.g. shop-app-0",
    /[A-Za-z0-9_.-]/,
    /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    63,
  );
}

/** Words shown in a response (a service's name): letters, digits, `_ . -` and inner spaces. */
export function displayName(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be letters, digits, ' ', '_', '.', '-' (no space first or last; at most 128 characters), e.g. shop",
    /[A-Za-z0-9 _.-]/,
    /^[A-Za-z0-9_.-](?:[A-Za-z0-9 _.-]*[A-Za-z0-9_.-])?$/,
    128,
  );
}

const DNS_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** An IP address as node:net parses it, without an IPv6 zone (`%eth0` means nothing elsewhere). */
function ipVersion(v: string): 0 | 4 | 6 {
  if (v.includes("%")) return 0;
  return isIP(v) as 0 | 4 | 6;
}

/** An IP literal (v4 or v6) to bind or listen on. */
export function ipAddress(renderer: string, field: string, v: unknown): string {
  const rule = "be an IPv4 or IPv6 address (no zone), e.g. 127.0.0.1 or ::1";
  if (typeof v !== "string" || ipVersion(v) === 0) return refuse(renderer, field, rule, v);
  return v;
}

/**
 * A host to connect to: an IP literal (parsed by node:net), or a DNS name whose labels are letters,
 * digits, `_` and inner `-` (Docker aliases may hold `_`), at most 253 characters. A name whose last
 * label is all digits is no name: it is a mistyped IPv4 address (`10.0.0.256`). `ipv6: false` where
 * the format has no brackets for an IPv6 literal (Galera's gcomm:// list).
 */
export function hostName(
  renderer: string,
  field: string,
  v: unknown,
  opts: { readonly ipv6?: boolean } = {},
): string {
  const ipv6 = opts.ipv6 ?? true;
  const rule = ipv6
    ? "be a host name (DNS labels of letters, digits, _ and inner -; at most 253 characters) or an IP address, e.g. shop-app-0 or 10.0.0.5"
    : "be a host name (DNS labels of letters, digits, _ and inner -; at most 253 characters) or an IPv4 address, e.g. orders-db-0";
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  const version = ipVersion(v);
  if (version === 4 || (version === 6 && ipv6)) return v;
  if (v.length > 253) return refuse(renderer, field, rule, v);
  const labels = v.split(".");
  if (version === 0 && labels.every((l) => DNS_LABEL.test(l)) && !/^[0-9]+$/.test(labels.at(-1) as string)) {
    return v;
  }
  return refuse(renderer, field, rule, v, firstBad(v, /[A-Za-z0-9_.-]/));
}

/** `host:port` (`[v6]:port`), e.g. an etcd member's client address. */
export function hostAndPort(renderer: string, field: string, v: unknown): string {
  const rule = "be host:port (an IPv6 address in brackets), e.g. etcd-0:2379";
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(v);
  if (m === null) return refuse(renderer, field, rule, v, firstBad(v, /[A-Za-z0-9_.:[\]-]/));
  if (m[1] !== undefined && ipVersion(m[1]) !== 6) return refuse(renderer, field, rule, v);
  if (m[2] !== undefined) hostName(renderer, field, m[2], { ipv6: false });
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return refuse(renderer, field, rule, v, " (port out of 1–65535)");
  return v;
}

/**
 * A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`): the address parsed by node:net, the
 * prefix within the family's length and accepted by BlockList.addSubnet.
 */
export function cidr(renderer: string, field: string, v: unknown): string {
  const rule = "be a network in CIDR notation, e.g. 10.0.0.0/8 or fd00::/8";
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  const m = /^([0-9A-Fa-f:.]+)\/([0-9]{1,3})$/.exec(v);
  if (m === null) return refuse(renderer, field, rule, v, firstBad(v, /[0-9A-Fa-f:./]/));
  const version = ipVersion(m[1]);
  const prefix = Number(m[2]);
  if (version === 0 || prefix > (version === 4 ? 32 : 128)) return refuse(renderer, field, rule, v);
  try {
    new BlockList().addSubnet(m[1], prefix, version === 4 ? "ipv4" : "ipv6");
  } catch {
    return refuse(renderer, field, rule, v);
  }
  return v;
}

/**
 * A pg_hba.conf address: `samenet`, `samehost` or a CIDR. Not `all`: these lines admit the
 * replication and superuser roles, which must never be open to every address.
 */
export function pgHbaAddress(renderer: string, field: string, v: unknown): string {
  if (v === "samenet" || v === "samehost") return v;
  const rule = "be samenet, samehost or a network in CIDR notation, e.g. 10.0.0.0/8 or fd00::/8";
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  try {
    return cidr(renderer, field, v);
  } catch {
    return refuse(renderer, field, rule, v, firstBad(v, /[0-9A-Fa-f:./]/));
  }
}

/** Redis memory size (`maxmemory`): a whole number with kb, mb or gb (any case, as Redis reads it). */
export function redisSize(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a Redis size: a whole number from 1 to 9999999 with kb, mb or gb, e.g. 256mb",
    /[0-9KMGBkmgb]/,
    /^[1-9][0-9]{0,6}[kmgKMG][bB]$/,
    9,
  );
}

/** PostgreSQL memory size (`shared_buffers`): a whole number with kB, MB or GB (PostgreSQL's units are case-sensitive). */
export function pgSize(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a PostgreSQL size: a whole number from 1 to 9999999 with kB, MB or GB, e.g. 128MB",
    /[0-9kMGB]/,
    /^[1-9][0-9]{0,6}(?:kB|MB|GB)$/,
    9,
  );
}

/** MySQL/MariaDB size option (`innodb_buffer_pool_size`): a whole number with K, M or G. */
export function mysqlSize(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a MySQL size: a whole number from 1 to 9999999 with K, M or G, e.g. 256M",
    /[0-9KMGkmg]/,
    /^[1-9][0-9]{0,6}[KMGkmg]$/,
    8,
  );
}

/**
 * A PostgreSQL parameter value as Patroni writes it into postgresql.conf (`name = 'value'`):
 * letters, digits and `_ . : / + -`; no quote, backslash, `#`, `,` (list separator), space or
 * line break.
 */
export function pgParameterValue(renderer: string, field: string, v: unknown): string | number {
  if (typeof v === "number") return wholeNumber(renderer, field, v, -1, Number.MAX_SAFE_INTEGER);
  return checkString(
    renderer,
    field,
    v,
    "be a PostgreSQL parameter value: letters, digits, _, ., :, /, + and - (at most 255 characters)",
    /[A-Za-z0-9_.:/+-]/,
    /^[A-Za-z0-9_.:/+-]+$/,
    255,
  );
}

/**
 * pg_hba.conf keywords: a database or user of that name would match other databases or roles
 * (`all`, `sameuser`, …) or admit replication connections (`replication`).
 */
export const PG_HBA_KEYWORDS = ["all", "sameuser", "samerole", "samegroup", "replication"] as const;

/**
 * A user or database name: a lowercase letter or `_`, then lowercase letters, digits and `_` —
 * valid unquoted in PostgreSQL and MySQL, in pg_hba.conf and in `user:password` pairs. `reserved`
 * lists words the file would read as keywords ({@link PG_HBA_KEYWORDS}).
 */
export function identifier(
  renderer: string,
  field: string,
  v: unknown,
  opts: { readonly maxLength?: number; readonly reserved?: readonly string[] } = {},
): string {
  const max = opts.maxLength ?? 63;
  const id = checkString(
    renderer,
    field,
    v,
    `be an identifier: a lowercase letter or _, then lowercase letters, digits and _ (at most ${max} characters), e.g. shop`,
    /[a-z0-9_]/,
    /^[a-z_][a-z0-9_]*$/,
    max,
  );
  if (opts.reserved?.includes(id)) {
    return refuse(renderer, field, `not be one of the keywords ${opts.reserved.join(", ")}`, id);
  }
  return id;
}

/** An environment variable's name (HAProxy expands `"${NAME}"`). */
export function envName(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be an environment variable name: a letter or _, then letters, digits and _ (at most 64 characters)",
    /[A-Za-z0-9_]/,
    /^[A-Za-z_][A-Za-z0-9_]*$/,
    64,
  );
}

/** A command name a config renames another command to (Redis `rename-command`). */
export function commandName(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a command name: a letter, then letters, digits, _ and - (at most 64 characters)",
    /[A-Za-z0-9_-]/,
    /^[A-Za-z][A-Za-z0-9_-]*$/,
    64,
  );
}

/**
 * An absolute file or directory path: "/" then letters, digits and `_ . + - /`, no `.` or `..`
 * segment, at most 1024 characters. Nothing a shell, nginx, HAProxy, Redis or a cnf file reads as
 * syntax (no space, quote, `$`, `#`, `;`, `{`, `,`).
 */
export function filePath(renderer: string, field: string, v: unknown): string {
  const rule =
    'be an absolute path: "/" then letters, digits, _, ., +, - and / (no . or .. segment; at most 1024 characters)';
  const p = checkString(renderer, field, v, rule, /[A-Za-z0-9_.+/-]/, /^\/[A-Za-z0-9_.+/-]*$/, 1024);
  if (p.split("/").some((s) => s === "." || s === "..")) return refuse(renderer, field, rule, v);
  return p;
}

/** A program to run: an absolute path, or a command name looked up on PATH (`redis-server`). */
export function executable(renderer: string, field: string, v: unknown): string {
  if (typeof v === "string" && v.startsWith("/")) return filePath(renderer, field, v);
  return checkString(
    renderer,
    field,
    v,
    "be a command on PATH (a letter or digit, then letters, digits, _, ., + and -) or an absolute path",
    /[A-Za-z0-9_.+-]/,
    /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/,
    255,
  );
}

/** Where a log goes: `stderr` (nginx writes to its own fd 2) or an absolute path. */
export function logTarget(renderer: string, field: string, v: unknown): string {
  if (v === "stderr") return v;
  try {
    return filePath(renderer, field, v);
  } catch {
    return refuse(renderer, field, "be stderr or an absolute path", v);
  }
}

/** A Kubernetes label key (`[prefix/]name`), as Patroni puts it in a label selector. */
export function labelKey(renderer: string, field: string, v: unknown): string {
  const rule =
    "be a Kubernetes label key ([DNS subdomain/]name of letters, digits, _, . and -), e.g. app.kubernetes.io/name";
  if (typeof v !== "string") return refuse(renderer, field, rule, v);
  const slash = v.indexOf("/");
  const [prefix, name] = slash < 0 ? [undefined, v] : [v.slice(0, slash), v.slice(slash + 1)];
  const prefixOk =
    prefix === undefined ||
    (prefix.length <= 253 &&
      prefix.split(".").every((l) => /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/.test(l)));
  if (!prefixOk || !/^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(name)) {
    return refuse(renderer, field, rule, v, firstBad(v, /[A-Za-z0-9_./-]/));
  }
  return v;
}

/** A Kubernetes label value: empty, or up to 63 letters, digits, `_ . -`, alphanumeric at both ends. */
export function labelValue(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a Kubernetes label value (letters, digits, _, . and -, alphanumeric at both ends; at most 63 characters)",
    /[A-Za-z0-9_.-]/,
    /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/,
    63,
  );
}

/** A Kubernetes namespace: a DNS label. */
export function dnsLabel(renderer: string, field: string, v: unknown): string {
  return checkString(
    renderer,
    field,
    v,
    "be a DNS label (lowercase letters, digits and inner -; at most 63 characters), e.g. prod",
    /[a-z0-9-]/,
    /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/,
    63,
  );
}

/**
 * A credential written as it is into a config line (Redis `requirepass`, an HAProxy check, a cnf
 * `user:password`, patroni.yml, which Patroni copies into a pgpass file): letters, digits and
 * `. _ ~ + = -` (generated passwords are alphanumeric). Never shown in the error.
 */
export function secretToken(renderer: string, field: string, v: unknown): string {
  return checkSecret(
    renderer,
    field,
    v,
    "be letters, digits, ., _, ~, +, = and - (1 to 256 characters)",
    /^[A-Za-z0-9._~+=-]{1,256}$/,
  );
}

/**
 * A credential inside a SQL string literal the renderer quotes: any printable ASCII character
 * (quotes are escaped), but no line break or other control character, which would end the
 * heredoc or statement it sits in. Never shown in the error.
 */
export function sqlSecret(renderer: string, field: string, v: unknown): string {
  return checkSecret(
    renderer,
    field,
    v,
    "be printable ASCII characters, no line break or other control character (1 to 256 characters)",
    /^[\x20-\x7e]{1,256}$/,
  );
}

function checkSecret(renderer: string, field: string, v: unknown, rule: string, shape: RegExp): string {
  if (typeof v === "string" && shape.test(v)) return v;
  // Not even the offending character is shown: it would narrow the secret down.
  const shown = typeof v === "string" ? `a secret of ${v.length} characters (not shown)` : `a ${typeof v}`;
  throw new RenderInputError(renderer, field, rule, "[secret]", shown);
}

/** A whole number within `min`..`max`: NaN, Infinity, fractions and out-of-range values break files. */
export function wholeNumber(renderer: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    return refuse(renderer, field, `be a whole number from ${min} to ${max}`, v);
  }
  return v;
}

/** A TCP port, 1–65535. */
export function port(renderer: string, field: string, v: unknown): number {
  return wholeNumber(renderer, field, v, 1, 65535);
}

/** One of a fixed set of words (a TypeScript union that a JavaScript caller may not respect). */
export function oneOf<T extends string>(
  renderer: string,
  field: string,
  v: unknown,
  allowed: readonly T[],
): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    return refuse(renderer, field, `be one of ${allowed.join(", ")}`, v);
  }
  return v as T;
}

/** A list of 1..max entries (so a renderer never loops over a huge or empty list by mistake). */
export function listOf<T>(
  renderer: string,
  field: string,
  v: readonly T[],
  min: number,
  max: number,
  each: (field: string, item: T) => unknown,
): void {
  if (!Array.isArray(v) || v.length < min || v.length > max) {
    const shown = Array.isArray(v) ? `a list of ${v.length}` : showValue(v);
    throw new RenderInputError(renderer, field, `be a list of ${min} to ${max} entries`, v, shown);
  }
  v.forEach((item, i) => each(`${field}[${i}]`, item));
}
