/**
 * Checks a TLS certificate chain and private key before they reach nginx or HAProxy (pure: no
 * Pulumi import). The certificate is stored and shown in plain text (a ConfigMap, a container
 * upload, the stack's config), so a private key pasted into it would leak: that is the check that
 * matters most. Nothing here ever quotes the text it was given; a certificate that parses is
 * described by its subject and dates only.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";

/** The stack config key a problem is about (`ha-backend:tlsCertificate`, `ha-backend:tlsKey`). */
export type TlsField = "tlsCertificate" | "tlsKey";

/** What is wrong, as a stable identifier (tests and callers match on it, never on the wording). */
export type TlsProblemCode =
  | "certificate-private-key"
  | "certificate-format"
  | "certificate-unreadable"
  | "certificate-expired"
  | "certificate-not-yet-valid"
  | "certificate-chain-order"
  | "key-format"
  | "key-encrypted"
  | "key-unreadable"
  | "key-mismatch";

/**
 * One problem, worded to fit `<field> must <rule>, but <description> was provided. <fix>` (see
 * {@link formatTlsProblem}). `rule` and `fix` are fixed per `code`; `description` says what was
 * found without quoting it (block kinds and counts, a certificate's subject and dates).
 */
export interface TlsProblem {
  readonly key: TlsField;
  readonly code: TlsProblemCode;
  readonly rule: string;
  readonly description: string;
  readonly fix: string;
}

/** The outcome of {@link checkTlsMaterial}. */
export interface TlsCheck {
  /** Everything that stops the balancer or leaks the key; empty when the pair is usable. */
  readonly problems: TlsProblem[];
  /** Worth saying but not refusing: a certificate that expires within {@link TLS_EXPIRY_WARNING_DAYS}. */
  readonly warnings: string[];
  /** The server (first) certificate's subject on one line (`C=US, O=Acme, CN=shop.example`), when it parses. */
  readonly subject?: string;
  /** When the server (first) certificate expires, when it parses. */
  readonly notAfter?: Date;
  /** The server (first) certificate's DNS subject alternative names, when it parses. */
  readonly dnsNames?: string[];
}

/** A certificate closer than this to its end is a warning. */
export const TLS_EXPIRY_WARNING_DAYS = 30;

/** The problems the LoadBalancer component refuses by itself (see {@link balancerTlsProblems}). */
export const BALANCER_REFUSED_TLS_PROBLEMS: readonly TlsProblemCode[] = [
  "certificate-private-key",
  "key-mismatch",
];

const RULES: Record<TlsProblemCode, { key: TlsField; rule: string; fix: string }> = {
  "certificate-private-key": {
    key: "tlsCertificate",
    rule: "not contain a private key (the certificate is stored and shown in plain text)",
    fix:
      "Remove the private key block from the certificate and give the key on its own as the TLS key, " +
      "stored as a secret. If the key was ever stored in plain text, treat it as exposed and issue a new one.",
  },
  "certificate-format": {
    key: "tlsCertificate",
    rule: "be PEM CERTIFICATE blocks only (the server's certificate first, then its chain)",
    fix:
      "Give the certificate PEM file's contents: its CERTIFICATE blocks only, with nothing between or " +
      "around them (openssl's 'subject=' and 'Bag Attributes' lines included).",
  },
  "certificate-unreadable": {
    key: "tlsCertificate",
    rule: "hold certificates that parse as X.509",
    fix: "Give the certificate PEM file unchanged (a block may be truncated or edited).",
  },
  "certificate-expired": {
    key: "tlsCertificate",
    rule: "not be expired",
    fix: "Renew the certificate and give the new one.",
  },
  "certificate-not-yet-valid": {
    key: "tlsCertificate",
    rule: "be valid already (its start date passed)",
    fix: "Check the certificate's start date and the clock of the machine that issued it, or wait until then.",
  },
  "certificate-chain-order": {
    key: "tlsCertificate",
    rule: "list the server's certificate first, then each certificate's issuer in turn",
    fix: "Put the server's certificate first, then the intermediate that issued it, and so on (as in a fullchain.pem).",
  },
  "key-format": {
    key: "tlsKey",
    rule: "be exactly one PEM private key block and nothing else",
    fix: "Give the private key PEM file's contents: one PRIVATE KEY block, without certificates or other text.",
  },
  "key-encrypted": {
    key: "tlsKey",
    rule: "be unencrypted (nginx and HAProxy cannot ask for a passphrase)",
    fix: "Decrypt it (openssl pkey -in key.pem -out plain-key.pem) and keep the result only as a secret.",
  },
  "key-unreadable": {
    key: "tlsKey",
    rule: "be a private key that parses (PKCS#8, PKCS#1 or SEC1 PEM)",
    fix: "Give the private key PEM file unchanged; convert other formats with openssl pkey.",
  },
  "key-mismatch": {
    key: "tlsKey",
    rule: "be the private key of the server's certificate (the first in the certificate text)",
    fix:
      "Give the key the certificate was issued for (openssl x509 -noout -pubkey and openssl pkey -pubout " +
      "print the same public key for a matching pair).",
  },
};

/** Block kinds that are named in messages; any other is "an unrecognised PEM block" (never quoted). */
const KNOWN_LABELS = new Set([
  "CERTIFICATE",
  "TRUSTED CERTIFICATE",
  "X509 CERTIFICATE",
  "CERTIFICATE REQUEST",
  "NEW CERTIFICATE REQUEST",
  "X509 CRL",
  "PUBLIC KEY",
  "RSA PUBLIC KEY",
  "PRIVATE KEY",
  "RSA PRIVATE KEY",
  "EC PRIVATE KEY",
  "DSA PRIVATE KEY",
  "ENCRYPTED PRIVATE KEY",
  "OPENSSH PRIVATE KEY",
  "ANY PRIVATE KEY",
  "EC PARAMETERS",
  "DH PARAMETERS",
  "PKCS7",
]);

interface PemBlock {
  readonly label: string;
  /** The whole block with its BEGIN and END lines (LF line endings). */
  readonly text: string;
}

interface PemText {
  readonly blocks: PemBlock[];
  /** Non-whitespace text outside the blocks. */
  readonly stray: "none" | "text" | "unterminated";
}

/** BEGIN … END pairs with the same label; CRLF is read as LF (both are valid PEM). */
function splitPem(text: string): PemText {
  const lf = text.replace(/\r\n?/g, "\n");
  const blocks: PemBlock[] = [];
  const outside = lf.replace(
    /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g,
    (block, label: string) => {
      blocks.push({ label, text: `${block}\n` });
      return "\n";
    },
  );
  const rest = outside.trim();
  return { blocks, stray: rest === "" ? "none" : rest.includes("-----BEGIN ") ? "unterminated" : "text" };
}

const isPrivateKey = (label: string) => label.endsWith("PRIVATE KEY");

/** `an EC PRIVATE KEY block`, `2 CERTIFICATE blocks`: kinds and counts, in order of first appearance. */
function listBlocks(labels: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const l of labels) {
    const name = KNOWN_LABELS.has(l) ? `${l} block` : "unrecognised PEM block";
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts = [...counts].map(([name, n]) =>
    n === 1 ? `${/^([AEIOU]|RSA|X509)/.test(name) ? "an" : "a"} ${name}` : `${n} ${name}s`,
  );
  return parts.length <= 1
    ? parts.join("")
    : `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}

const STRAY: Record<PemText["stray"], string | undefined> = {
  none: undefined,
  text: "other text outside the PEM blocks (not shown)",
  unterminated: "a PEM block without its END line",
};

function problem(code: TlsProblemCode, description: string): TlsProblem {
  const { key, rule, fix } = RULES[code];
  return { key, code, rule, description, fix };
}

/** One line, as OpenSSL's multi-line subject is hard to read inside a sentence. */
const oneLine = (dn: string) => dn.split("\n").join(", ");

/** `the server's certificate (CN=shop.example)` or `chain certificate 2 (CN=R11)`. */
function certName(i: number, c: X509Certificate): string {
  return `${i === 0 ? "the server's certificate" : `chain certificate ${i + 1}`} (${oneLine(c.subject)})`;
}

const isoSecond = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

/** DNS names only; Node lists them as `DNS:a, DNS:b, IP Address:…` (values with commas are quoted). */
function dnsNamesOf(c: X509Certificate): string[] {
  return (c.subjectAltName ?? "")
    .split(/, (?=[A-Za-z ]+:)/)
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice("DNS:".length));
}

/** Node 20 has no validFromDate/validToDate: its strings (`Nov 27 00:46:30 2026 GMT`) parse as dates. */
const validity = (c: X509Certificate) => ({
  notBefore: new Date(c.validFrom),
  notAfter: new Date(c.validTo),
});

interface Inspection {
  readonly problems: TlsProblem[];
  /** Every certificate in order, when every block parsed. */
  readonly certs: X509Certificate[];
}

/** The certificate text: private keys, other blocks, stray text, parsing, chain order. */
function inspectCertificate(certificatePem: string): Inspection {
  const problems: TlsProblem[] = [];
  const pem = splitPem(certificatePem);
  const keys = pem.blocks.filter((b) => isPrivateKey(b.label)).map((b) => b.label);
  if (keys.length > 0) problems.push(problem("certificate-private-key", `text with ${listBlocks(keys)}`));
  const certBlocks = pem.blocks.filter((b) => b.label === "CERTIFICATE");
  const others = pem.blocks
    .filter((b) => b.label !== "CERTIFICATE" && !isPrivateKey(b.label))
    .map((b) => b.label);
  const wrong = [
    ...(certBlocks.length === 0 ? ["no CERTIFICATE block"] : []),
    ...(others.length > 0 ? [listBlocks(others)] : []),
    ...(STRAY[pem.stray] !== undefined ? [STRAY[pem.stray]] : []),
  ];
  if (wrong.length > 0) problems.push(problem("certificate-format", `text with ${wrong.join(" and ")}`));

  const certs: X509Certificate[] = [];
  for (const [i, b] of certBlocks.entries()) {
    try {
      certs.push(new X509Certificate(b.text));
    } catch {
      problems.push(
        problem(
          "certificate-unreadable",
          `CERTIFICATE block ${i + 1} of ${certBlocks.length}, which does not parse`,
        ),
      );
    }
  }
  if (certs.length !== certBlocks.length) return { problems, certs: [] };
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!certs[i].checkIssued(certs[i + 1])) {
      problems.push(
        problem(
          "certificate-chain-order",
          `a chain where ${certName(i, certs[i])} was not issued by the next one, ${certName(i + 1, certs[i + 1])}`,
        ),
      );
      break;
    }
  }
  return { problems, certs };
}

/** The key text: exactly one unencrypted private key that parses and belongs to the first certificate. */
function inspectKey(keyPem: string, certs: readonly X509Certificate[]): TlsProblem[] {
  const pem = splitPem(keyPem);
  const keys = pem.blocks.filter((b) => isPrivateKey(b.label));
  // `openssl ecparam -genkey` writes the curve's parameters before the key; nginx and HAProxy skip them.
  const others = pem.blocks.filter((b) => !isPrivateKey(b.label) && b.label !== "EC PARAMETERS");
  if (keys.length !== 1 || others.length > 0 || pem.stray !== "none") {
    const found = [
      keys.length === 0
        ? "no private key block"
        : keys.length === 1
          ? "a private key block"
          : `${keys.length} private key blocks`,
      ...(others.length > 0 ? [listBlocks(others.map((b) => b.label))] : []),
      ...(STRAY[pem.stray] !== undefined ? [STRAY[pem.stray]] : []),
    ];
    return [problem("key-format", `text with ${found.join(" and ")}`)];
  }
  const [block] = keys;
  // PKCS#8 (`ENCRYPTED PRIVATE KEY`) or OpenSSL's legacy PEM encryption (a `Proc-Type` header).
  if (block.label === "ENCRYPTED PRIVATE KEY" || /^Proc-Type:\s*4,\s*ENCRYPTED/m.test(block.text)) {
    return [problem("key-encrypted", "an encrypted private key")];
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(block.text);
  } catch {
    return [problem("key-unreadable", `${listBlocks([block.label])} that does not parse`)];
  }
  if (certs.length === 0 || matches(certs[0], key)) return [];
  const owner = certs.findIndex((c) => matches(c, key));
  const leafType = certs[0].publicKey.asymmetricKeyType;
  const description =
    owner > 0
      ? `the private key of ${certName(owner, certs[owner])}, not of ${certName(0, certs[0])}`
      : key.asymmetricKeyType !== leafType
        ? `a key of type ${key.asymmetricKeyType ?? "unknown"} for ${certName(0, certs[0])}, whose key is of type ${leafType ?? "unknown"}`
        : `a private key of another certificate than ${certName(0, certs[0])}`;
  return [problem("key-mismatch", description)];
}

function matches(c: X509Certificate, key: KeyObject): boolean {
  try {
    return c.checkPrivateKey(key);
  } catch {
    return false;
  }
}

/**
 * Checks a certificate chain and its private key as nginx and HAProxy will load them:
 * - `certificatePem`: one or more PEM CERTIFICATE blocks, the server's first, then each one's
 *   issuer (checked with `X509Certificate.checkIssued`); nothing else but whitespace (CRLF is
 *   fine). A private key block in it is a problem of its own (`certificate-private-key`).
 * - `keyPem`: exactly one unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1; an `EC PARAMETERS`
 *   block before it, as `openssl ecparam -genkey` writes, is accepted) that belongs to the first
 *   certificate. `undefined` checks the certificate only (the caller reports a missing key).
 * - Each certificate must be valid at `now`; one expiring within {@link TLS_EXPIRY_WARNING_DAYS}
 *   days is a warning.
 * No message quotes either text: blocks are named by kind and count, certificates by subject and
 * dates.
 */
export function checkTlsMaterial(certificatePem: string, keyPem: string | undefined, now: Date): TlsCheck {
  const { problems, certs } = inspectCertificate(certificatePem);
  const warnings: string[] = [];
  for (const [i, c] of certs.entries()) {
    const { notBefore, notAfter } = validity(c);
    if (notAfter.getTime() < now.getTime()) {
      problems.push(
        problem("certificate-expired", `${certName(i, c)}, which expired on ${isoSecond(notAfter)}`),
      );
    } else if (notBefore.getTime() > now.getTime()) {
      problems.push(
        problem(
          "certificate-not-yet-valid",
          `${certName(i, c)}, which is valid from ${isoSecond(notBefore)}`,
        ),
      );
    } else {
      const days = (notAfter.getTime() - now.getTime()) / 86_400_000;
      if (days < TLS_EXPIRY_WARNING_DAYS) {
        warnings.push(
          `${certName(i, c)} expires on ${isoSecond(notAfter)}, in ${Math.floor(days)} days: renew it before then.`,
        );
      }
    }
  }
  if (keyPem !== undefined) problems.push(...inspectKey(keyPem, certs));
  if (certs.length === 0) return { problems, warnings };
  const leaf = certs[0];
  return {
    problems,
    warnings,
    subject: oneLine(leaf.subject),
    notAfter: validity(leaf).notAfter,
    dnsNames: dnsNamesOf(leaf),
  };
}

/**
 * The problems the LoadBalancer refuses once the values are known ({@link BALANCER_REFUSED_TLS_PROBLEMS}):
 * a private key inside the certificate (it would land in plain text in a ConfigMap or upload) and,
 * when `keyPem` is given, a key that is not the first certificate's (nginx and HAProxy would not
 * start). Everything else (expiry, chain order, format) is the stack config's to report: a
 * certificate or key that does not parse cannot be matched and is left to that check too.
 */
export function balancerTlsProblems(certificatePem: string, keyPem?: string): TlsProblem[] {
  const { problems, certs } = inspectCertificate(certificatePem);
  const all = keyPem === undefined ? problems : [...problems, ...inspectKey(keyPem, certs)];
  return all.filter((p) => BALANCER_REFUSED_TLS_PROBLEMS.includes(p.code));
}

/** The project's error sentence for one problem: `<field> must <rule>, but <description> was provided. <fix>`. */
export function formatTlsProblem(p: TlsProblem, field: string): string {
  return `${field} must ${p.rule}, but ${p.description} was provided. ${p.fix}`;
}
