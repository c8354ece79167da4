/**
 * Parsers for the names and addresses users hand to components and stack config: each returns
 * `undefined` when the value is fine, or the rule it breaks (a phrase that follows "must"). Pure,
 * no Pulumi import: the stack-config schema, the components and the renderers share them.
 */
import { isIP, isIPv4 } from "node:net";

/** C0 and C1 control characters, DEL, and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what this finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** True when `s` holds a character no single-line setting may hold (newline, NUL, escape…). */
export function hasControlCharacter(s: string): boolean {
  return CONTROL.test(s);
}

/**
 * The Docker reference grammar (distribution/reference): `[host[:port]/]path[:tag][@digest]`.
 * Path components are lowercase; a tag is `[\w][\w.-]{0,127}`; a digest `algorithm:hex`.
 * https://github.com/distribution/reference/blob/main/reference.go
 */
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);

/** An image reference split into its parts; undefined when it breaks the grammar. */
export function parseImageReference(
  ref: string,
): { name: string; tag?: string; digest?: string } | undefined {
  const m = REFERENCE.exec(ref);
  if (m === null) return undefined;
  // A first component with a dot or port, or `localhost`, is a registry; the rest must be short.
  if (m[1].length > 255) return undefined;
  return { name: m[1], tag: m[2], digest: m[3] };
}

/**
 * Why `ref` is not an image this project runs: it must parse, and be pinned, by a tag other than
 * `latest` or by a digest (`sha256:` digests have 64 hex digits).
 */
export function imageReferenceProblem(ref: string): string | undefined {
  const parsed = parseImageReference(ref);
  if (parsed === undefined) {
    return /[A-Z]/.test(ref.split(/[:@]/)[0].split("/").slice(-1)[0] ?? "")
      ? "be an image reference with a lowercase repository name ([registry[:port]/]name:tag)"
      : "be an image reference: [registry[:port]/]name:tag or name@sha256:<64 hex digits>";
  }
  if (
    parsed.digest !== undefined &&
    /^sha256:/.test(parsed.digest) &&
    !/^sha256:[0-9a-f]{64}$/.test(parsed.digest)
  ) {
    return "have a sha256 digest of 64 lowercase hex digits";
  }
  if (parsed.tag === undefined && parsed.digest === undefined) {
    return "be pinned by a tag or a digest (name:tag or name@sha256:…)";
  }
  if (parsed.tag === "latest" && parsed.digest === undefined) {
    return "be pinned by a tag other than latest, or by a digest";
  }
  return undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** RFC 1123 label, as Kubernetes wants namespace names: a-z, 0-9, '-', at most 63. */
export function isDnsLabel(s: string): boolean {
  return DNS_LABEL.test(s);
}

/** RFC 1123 subdomain (StorageClass and other object names): labels joined by dots, at most 253. */
export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && s.split(".").every((l) => DNS_LABEL.test(l));
}

/** A host name (letters of either case) or an IP literal, as in an SSH or TCP address. */
export function isHostName(s: string): boolean {
  if (isIP(s.replace(/^\[(.*)\]$/, "$1")) !== 0) return true;
  return (
    s.length <= 253 && s.split(".").every((l) => /^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$/.test(l))
  );
}

/** Namespaces Kubernetes and its add-ons own: a stack there mixes its objects with the cluster's. */
export const SYSTEM_NAMESPACES: readonly string[] = [
  "default",
  "kube-node-lease",
  "kube-public",
  "kube-system",
];

/** A health-check URL path as the balancers and the demo app take it: `/`, then letters, digits, `/ _ . -`; at most 255. */
export function isUrlPath(s: string): boolean {
  return /^\/[A-Za-z0-9/_.-]{0,254}$/.test(s);
}

/** POSIX portable environment variable names (letters, digits and _, not starting with a digit). */
export function isEnvName(s: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(s);
}

/**
 * Why `s` is not a network in CIDR notation (IPv4 `10.0.0.0/8` or IPv6 `fd00::/8`): the address
 * must parse, the prefix fit the family, and no host bit may be set (pg_hba and NetworkPolicy
 * read `10.0.0.1/8` differently, so only the canonical form is accepted).
 */
export function cidrProblem(s: string): string | undefined {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  if (m === null || isIP(m[1]) === 0) return "be an IPv4 or IPv6 network in CIDR notation (address/prefix)";
  const v4 = isIPv4(m[1]);
  const prefix = Number(m[2]);
  const bits = v4 ? 32 : 128;
  if (prefix > bits) return `have a prefix length of at most ${bits} for IPv${v4 ? 4 : 6}`;
  const value = v4 ? ipv4Bits(m[1]) : ipv6Bits(m[1]);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    return `be the network's first address (no host bits set: ${canonicalCidr(value & ~hostMask, prefix, v4)})`;
  }
  return undefined;
}

function ipv4Bits(a: string): bigint {
  return a.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6Bits(a: string): bigint {
  let text = a;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const n = ipv4Bits(v4[1]);
    text = text.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function canonicalCidr(value: bigint, prefix: number, v4: boolean): string {
  if (v4) {
    const parts = [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n));
    return `${parts.join(".")}/${prefix}`;
  }
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return `${groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::")}/${prefix}`;
}

/** Code-unit order (never the locale's): generated files and manifests sort the same everywhere. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A string matched literally by a regular expression (JavaScript's, and RE2's in Prometheus). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
