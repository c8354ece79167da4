/**
 * checkTlsMaterial against real certificates and keys, made with the openssl CLI in a temporary
 * directory (removed afterwards), and the LoadBalancer's own refusals under the mocked engine.
 * Every case also checks that no message quotes a line of the texts given.
 */
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { LoadBalancer } from "../../components/balancer/load-balancer";
import {
  balancerTlsProblems,
  checkTlsMaterial,
  formatTlsProblem,
  TLS_EXPIRY_WARNING_DAYS,
  type TlsCheck,
  type TlsProblemCode,
} from "../../components/balancer/tls-material";
import { ServerCluster } from "../../components/cluster/server-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform, WorkloadSpec } from "../../components/platform/types";
import { OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY } from "../../scripts/offline-tls";
import { isWrappedSecret, ofType, one, runComponents } from "../support/engine";

/** The exact field and rule of each problem: callers build sentences from them. */
const RULES: Record<TlsProblemCode, [string, string]> = {
  "certificate-private-key": [
    "tlsCertificate",
    "not contain a private key (the certificate is stored and shown in plain text)",
  ],
  "certificate-format": [
    "tlsCertificate",
    "be PEM CERTIFICATE blocks only (the server's certificate first, then its chain)",
  ],
  "certificate-unreadable": ["tlsCertificate", "hold certificates that parse as X.509"],
  "certificate-expired": ["tlsCertificate", "not be expired"],
  "certificate-not-yet-valid": ["tlsCertificate", "be valid already (its start date passed)"],
  "certificate-chain-order": [
    "tlsCertificate",
    "list the server's certificate first, then each certificate's issuer in turn",
  ],
  "key-format": ["tlsKey", "be exactly one PEM private key block and nothing else"],
  "key-encrypted": ["tlsKey", "be unencrypted (nginx and HAProxy cannot ask for a passphrase)"],
  "key-unreadable": ["tlsKey", "be a private key that parses (PKCS#8, PKCS#1 or SEC1 PEM)"],
  "key-mismatch": [
    "tlsKey",
    "be the private key of the server's certificate (the first in the certificate text)",
  ],
};

let dir: string;

function openssl(...args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

const read = (file: string) => readFileSync(join(dir, file), "utf8");

interface Pair {
  readonly cert: string;
  readonly key: string;
}

const NEW_KEY: Record<"rsa" | "ec", string[]> = {
  rsa: ["-newkey", "rsa:2048"],
  ec: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
};

/** A self-signed server certificate for `name`, valid from now for `days`. */
function selfSigned(name: string, alg: "rsa" | "ec", days = 365): Pair {
  openssl(
    "req", "-x509", ...NEW_KEY[alg], "-nodes", "-days", String(days), "-subj", `/CN=${name}`,
    "-addext", `subjectAltName=DNS:${name},DNS:www.${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`,
  ); // prettier-ignore
  return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
}

/** A certificate for `name` signed by `issuer` (a CA when `ca`). */
function signed(name: string, issuer: string, ca: boolean): Pair {
  writeFileSync(
    join(dir, `${name}.ext`),
    ca
      ? "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
      : `subjectAltName=DNS:${name}\n`,
  );
  openssl("req", "-new", ...NEW_KEY.ec, "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`); // prettier-ignore
  openssl(
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${issuer}.crt`, "-CAkey", `${issuer}.key`, "-CAcreateserial",
    "-days", "365", "-extfile", `${name}.ext`, "-out", `${name}.crt`,
  ); // prettier-ignore
  return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
}

let rsa: Pair;
let ec: Pair;
let other: Pair;
/** root CA → intermediate → leaf. */
let root: Pair;
let intermediate: Pair;
let leaf: Pair;
/** Keys of `rsa` and `ec` in the other formats nginx reads. */
let rsaTraditional: string;
let ecTraditional: string;
/** `openssl ecparam -genkey` output (EC PARAMETERS, then EC PRIVATE KEY) and its certificate. */
let ecparam: Pair;
let encryptedPkcs8: string;
let encryptedLegacy: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tls-material-"));
  rsa = selfSigned("rsa.test", "rsa");
  ec = selfSigned("ec.test", "ec");
  other = selfSigned("other.test", "ec");
  openssl(
    "req", "-x509", ...NEW_KEY.ec, "-nodes", "-days", "3650", "-subj", "/CN=Test Root CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", "root.key", "-out", "root.crt",
  ); // prettier-ignore
  root = { cert: read("root.crt"), key: read("root.key") };
  intermediate = signed("intermediate", "root", true);
  leaf = signed("shop.test", "intermediate", false);
  openssl("pkey", "-in", "rsa.test.key", "-traditional", "-out", "rsa-trad.key");
  rsaTraditional = read("rsa-trad.key");
  openssl("pkey", "-in", "ec.test.key", "-traditional", "-out", "ec-trad.key");
  ecTraditional = read("ec-trad.key");
  openssl("ecparam", "-genkey", "-name", "prime256v1", "-out", "ecparam.key");
  openssl(
    "req",
    "-x509",
    "-key",
    "ecparam.key",
    "-days",
    "365",
    "-subj",
    "/CN=ecparam.test",
    "-out",
    "ecparam.crt",
  );
  ecparam = { cert: read("ecparam.crt"), key: read("ecparam.key") };
  openssl("pkey", "-in", "ec.test.key", "-aes256", "-passout", "pass:hunter2", "-out", "enc8.key");
  encryptedPkcs8 = read("enc8.key");
  openssl(
    "rsa",
    "-in",
    "rsa.test.key",
    "-aes256",
    "-traditional",
    "-passout",
    "pass:hunter2",
    "-out",
    "enc1.key",
  );
  encryptedLegacy = read("enc1.key");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every word the check wrote: rules, descriptions, fixes, warnings. */
function messages(check: TlsCheck): string[] {
  return [...check.problems.flatMap((p) => [p.rule, p.description, p.fix]), ...check.warnings];
}

/** No message holds any (non-blank) line of `texts`: the key is never echoed, nor the certificate's text. */
function expectNothingQuoted(check: TlsCheck, ...texts: string[]): void {
  const lines = texts
    .flatMap((t) => t.split(/\r?\n/))
    .map((l) => l.trim())
    .filter((l) => l.length >= 8);
  const all = messages(check).join("\n");
  expect(lines.filter((l) => all.includes(l))).toEqual([]);
}

/** The problems as [field, code, rule], and each rule the exact one for its code. */
function keysAndRules(check: TlsCheck): [string, TlsProblemCode, string][] {
  return check.problems.map((p) => [p.key, p.code, p.rule]);
}
const expected = (...codes: TlsProblemCode[]) => codes.map((c) => [RULES[c][0], c, RULES[c][1]]);

const NOW = () => new Date();
const DAY = 86_400_000;
/** Where the balancer reads its certificate (its key: the same path plus `.key`). */
const CERT_FILE = "/etc/ha-backend/lb/tls/server.pem";

describe("checkTlsMaterial", () => {
  type Case = [string, () => { cert: string; key: string | undefined; now?: Date }, TlsProblemCode[]];
  const cases: Case[] = [
    ["an RSA pair (PKCS#8 key)", () => rsa, []],
    ["an EC pair (PKCS#8 key)", () => ec, []],
    ["an RSA pair with a PKCS#1 (RSA PRIVATE KEY) key", () => ({ cert: rsa.cert, key: rsaTraditional }), []],
    ["an EC pair with a SEC1 (EC PRIVATE KEY) key", () => ({ cert: ec.cert, key: ecTraditional }), []],
    ["a key from openssl ecparam -genkey (EC PARAMETERS first)", () => ecparam, []],
    ["a chain: leaf, intermediate, root", () => ({ cert: leaf.cert + intermediate.cert + root.cert, key: leaf.key }), []],
    ["a chain: leaf, intermediate", () => ({ cert: leaf.cert + intermediate.cert, key: leaf.key }), []],
    ["CRLF line endings", () => ({ cert: crlf(ec.cert), key: crlf(ec.key) }), []],
    ["trailing and leading whitespace", () => ({ cert: `\n${ec.cert}\n \t\n`, key: `  \n${ec.key}\n\n  ` }), []],
    ["blank lines between the chain's blocks", () => ({ cert: `${leaf.cert}\n\n${intermediate.cert}`, key: leaf.key }), []],
    ["the certificate alone (no key to check)", () => ({ cert: ec.cert, key: undefined }), []],
    ["a mismatched pair (both EC)", () => ({ cert: ec.cert, key: other.key }), ["key-mismatch"]],
    ["a mismatched pair (RSA key, EC certificate)", () => ({ cert: ec.cert, key: rsa.key }), ["key-mismatch"]],
    ["a certificate-plus-key bundle as the certificate", () => ({ cert: ec.cert + ec.key, key: ec.key }), ["certificate-private-key"]],
    ["a bundle with a SEC1 key as the certificate", () => ({ cert: ecTraditional + ec.cert, key: ec.key }), ["certificate-private-key"]],
    ["an encrypted key inside the certificate", () => ({ cert: ec.cert + encryptedPkcs8, key: ec.key }), ["certificate-private-key"]],
    ["the key where the certificate belongs", () => ({ cert: ec.key, key: ec.key }), ["certificate-private-key", "certificate-format"]],
    ["the certificate where the key belongs", () => ({ cert: ec.cert, key: ec.cert }), ["key-format"]],
    ["certificate and key swapped", () => ({ cert: ec.key, key: ec.cert }), ["certificate-private-key", "certificate-format", "key-format"]],
    ["an encrypted PKCS#8 key", () => ({ cert: ec.cert, key: encryptedPkcs8 }), ["key-encrypted"]],
    ["an encrypted legacy (Proc-Type) key", () => ({ cert: rsa.cert, key: encryptedLegacy }), ["key-encrypted"]],
    ["garbage as the certificate", () => ({ cert: "not a certificate at all", key: ec.key }), ["certificate-format"]],
    ["garbage as the key", () => ({ cert: ec.cert, key: "hunter2-not-a-key" }), ["key-format"]],
    ["an empty certificate and key", () => ({ cert: "", key: "" }), ["certificate-format", "key-format"]],
    ["text around the certificate (openssl's subject= line)", () => ({ cert: `subject=CN = ec.test\n${ec.cert}`, key: ec.key }), ["certificate-format"]],
    ["text after the key", () => ({ cert: ec.cert, key: `${ec.key}trailing words` }), ["key-format"]],
    ["two keys", () => ({ cert: ec.cert, key: ec.key + other.key }), ["key-format"]],
    ["a key plus its certificate as the key", () => ({ cert: ec.cert, key: ec.key + ec.cert }), ["key-format"]],
    ["a truncated certificate (no END line)", () => ({ cert: ec.cert.slice(0, 200), key: ec.key }), ["certificate-format"]],
    ["a corrupted certificate block", () => ({ cert: corrupt(ec.cert), key: ec.key }), ["certificate-unreadable"]],
    ["a corrupted key block", () => ({ cert: ec.cert, key: corrupt(ec.key) }), ["key-unreadable"]],
    ["a chain in the wrong order (intermediate first)", () => ({ cert: intermediate.cert + leaf.cert, key: leaf.key }), ["certificate-chain-order", "key-mismatch"]],
    ["a chain in the wrong order (certificate alone)", () => ({ cert: intermediate.cert + leaf.cert, key: undefined }), ["certificate-chain-order"]],
    ["a chain with a gap (leaf, root)", () => ({ cert: leaf.cert + root.cert, key: leaf.key }), ["certificate-chain-order"]],
    ["a chain whose intermediate and root are swapped", () => ({ cert: leaf.cert + root.cert + intermediate.cert, key: leaf.key }), ["certificate-chain-order"]],
    ["an expired certificate", () => ({ ...ec, now: new Date(notAfter(ec.cert).getTime() + DAY) }), ["certificate-expired"]],
    ["a certificate not yet valid", () => ({ ...ec, now: new Date(notBefore(ec.cert).getTime() - DAY) }), ["certificate-not-yet-valid"]],
  ]; // prettier-ignore

  it.each(cases)("%s", (_label, given, codes) => {
    const { cert, key, now } = given();
    // WHEN the pair is checked
    const check = checkTlsMaterial(cert, key, now ?? NOW());
    // THEN exactly these problems, worded by their fixed rules, and nothing given is quoted.
    expect(keysAndRules(check)).toEqual(expected(...codes));
    expectNothingQuoted(check, cert, key ?? "");
    // Every sentence reads as the project's error sentence.
    for (const p of check.problems) {
      expect(formatTlsProblem(p, `ha-backend:${p.key}`)).toBe(
        `ha-backend:${p.key} must ${p.rule}, but ${p.description} was provided. ${p.fix}`,
      );
    }
  });

  it("describes the server's certificate by subject, expiry and DNS names", () => {
    const check = checkTlsMaterial(leaf.cert + intermediate.cert, leaf.key, NOW());
    expect(check.subject).toBe("CN=shop.test");
    expect(check.notAfter).toEqual(notAfter(leaf.cert));
    expect(check.dnsNames).toEqual(["shop.test"]);
    expect(checkTlsMaterial(rsa.cert, rsa.key, NOW()).dnsNames).toEqual(["rsa.test", "www.rsa.test"]);
    // Nothing to describe when no certificate parses.
    expect(checkTlsMaterial("garbage", undefined, NOW())).toEqual({
      problems: [expect.objectContaining({ code: "certificate-format" })],
      warnings: [],
    });
  });

  it("names what it found without quoting it", () => {
    const bundle = checkTlsMaterial(ec.cert + ecTraditional, ec.key, NOW());
    expect(bundle.problems.map((p) => p.description)).toEqual(["text with an EC PRIVATE KEY block"]);
    const swapped = checkTlsMaterial(ec.key, ec.cert, NOW());
    expect(swapped.problems.map((p) => p.description)).toEqual([
      "text with a PRIVATE KEY block",
      "text with no CERTIFICATE block",
      "text with no private key block and a CERTIFICATE block",
    ]);
    expect(checkTlsMaterial(ec.cert, ec.key + other.key, NOW()).problems[0].description).toBe(
      "text with 2 private key blocks",
    );
    expect(checkTlsMaterial(ec.cert, rsa.key, NOW()).problems[0].description).toBe(
      "a key of type rsa for the server's certificate (CN=ec.test), whose key is of type ec",
    );
    expect(checkTlsMaterial(intermediate.cert + leaf.cert, leaf.key, NOW()).problems.map((p) => p.description)).toEqual([
      "a chain where the server's certificate (CN=intermediate) was not issued by the next one, chain certificate 2 (CN=shop.test)",
      "the private key of chain certificate 2 (CN=shop.test), not of the server's certificate (CN=intermediate)",
    ]); // prettier-ignore
    const expired = checkTlsMaterial(ec.cert, ec.key, new Date(notAfter(ec.cert).getTime() + DAY));
    expect(expired.problems[0].description).toBe(
      `the server's certificate (CN=ec.test), which expired on ${notAfter(ec.cert).toISOString().slice(0, 19)}Z`,
    );
  });

  it(`warns about a certificate expiring within ${TLS_EXPIRY_WARNING_DAYS} days, without refusing it`, () => {
    // GIVEN a certificate 10 days from its end
    const end = notAfter(ec.cert);
    const check = checkTlsMaterial(ec.cert, ec.key, new Date(end.getTime() - 10 * DAY));
    // THEN a warning with its subject and date, and no problem
    expect(check.problems).toEqual([]);
    expect(check.warnings).toEqual([
      `the server's certificate (CN=ec.test) expires on ${end.toISOString().slice(0, 19)}Z, in 10 days: renew it before then.`,
    ]);
    expectNothingQuoted(check, ec.cert, ec.key);
    // 31 days before: quiet. Chain certificates are checked too.
    expect(checkTlsMaterial(ec.cert, ec.key, new Date(end.getTime() - 31 * DAY)).warnings).toEqual([]);
    const soon = new Date(notAfter(leaf.cert).getTime() - 5 * DAY);
    expect(checkTlsMaterial(leaf.cert + intermediate.cert, leaf.key, soon).warnings).toHaveLength(2);
  });

  it("accepts the committed offline stand-in pair until 2126", () => {
    const check = checkTlsMaterial(OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY, NOW());
    expect(check.problems).toEqual([]);
    expect(check.warnings).toEqual([]);
    expect(check.subject).toBe("CN=offline-placeholder.invalid");
    expect(check.dnsNames).toEqual(["offline-placeholder.invalid"]);
    expect(check.notAfter!.getUTCFullYear()).toBeGreaterThanOrEqual(2126);
    expect(new X509Certificate(OFFLINE_TLS_CERTIFICATE).publicKey.asymmetricKeyDetails?.namedCurve).toBe(
      "prime256v1",
    );
  });
});

describe("balancerTlsProblems", () => {
  it("refuses only a private key in the certificate and a key of another certificate", () => {
    expect(balancerTlsProblems(ec.cert + ec.key, ec.key).map((p) => p.code)).toEqual([
      "certificate-private-key",
    ]);
    expect(balancerTlsProblems(ec.cert + ec.key).map((p) => p.code)).toEqual(["certificate-private-key"]);
    expect(balancerTlsProblems(ec.cert, other.key).map((p) => p.code)).toEqual(["key-mismatch"]);
    expect(balancerTlsProblems(intermediate.cert + leaf.cert, leaf.key).map((p) => p.code)).toEqual([
      "key-mismatch",
    ]);
    // Expiry, order and format are the stack config's to report; stand-ins that do not parse pass.
    const later = checkTlsMaterial(ec.cert, ec.key, new Date("2200-01-01")).problems;
    expect(later.map((p) => p.code)).toEqual(["certificate-expired"]);
    expect(balancerTlsProblems(ec.cert, ec.key)).toEqual([]);
    const fake = "-----BEGIN CERTIFICATE-----\npublic-cert\n-----END CERTIFICATE-----\n";
    expect(balancerTlsProblems(fake, "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")).toEqual(
      [],
    );
  });
});

describe("LoadBalancer with TLS", () => {
  function shopOn(platform: Platform, certificate: pulumi.Input<string>, privateKey: pulumi.Input<string>) {
    const app = new ServerCluster("shop", { platform, replicas: 2 });
    const lb = new LoadBalancer("shop-lb", {
      platform,
      engine: "nginx",
      backends: [{ group: app }],
      healthCheckPath: "/healthz",
      tls: { certificate, privateKey },
    });
    return { url: lb.url };
  }
  const docker = () => new DockerPlatform("docker", { prefix: "dev" });
  const k8s = () => new KubernetesPlatform("k8s", { namespace: "shop" });

  /**
   * The balancer's workload spec, with everything else deployed on `real`. A ResourceError thrown
   * in an apply fails the registration of every resource that uses the value; the real engine
   * reports that (against the resource) and fails the update, but under mocks it surfaces as
   * unhandled rejections, which jest pins on the test. So the balancer's own workload is kept
   * here unregistered, and its files are awaited directly.
   */
  function capturing(real: Platform): { platform: Platform; spec: () => WorkloadSpec } {
    let captured: WorkloadSpec | undefined;
    const platform: Platform = Object.create(real);
    platform.deploy = (name, spec, opts) => {
      if (!name.startsWith("shop-lb")) return real.deploy(name, spec, opts);
      captured = spec;
      return {
        name,
        serviceHost: name,
        discoveryHost: name,
        members: [],
        ports: spec.ports,
        publicAddresses: { http: pulumi.output(`${name}:80`), https: pulumi.output(`${name}:443`) },
        resources: [],
        membersRevision: pulumi.output(""),
        metrics: {},
      };
    };
    return {
      platform,
      spec: () => {
        if (captured === undefined) throw new Error("the balancer was not deployed");
        return captured;
      },
    };
  }

  /** A file's content, or the message it was refused with (every promise of the output awaited). */
  async function contentOrError(file: pulumi.Input<string> | undefined): Promise<string> {
    const out = pulumi.output(file) as unknown as {
      promise(): Promise<string>;
      isKnown: Promise<boolean>;
      isSecret: Promise<boolean>;
    };
    const all = await Promise.allSettled([out.promise(), out.isKnown, out.isSecret]);
    const failed = all.find((r) => r.status === "rejected");
    if (failed !== undefined) return `refused: ${(failed as PromiseRejectedResult).reason.message}`;
    return (all[0] as PromiseFulfilledResult<string>).value;
  }

  /** The certificate and key files the balancer would get, or their refusals. */
  async function tlsFiles(
    certificate: pulumi.Input<string>,
    privateKey: pulumi.Input<string>,
  ): Promise<{ certificate: string; privateKey: string }> {
    let spec: () => WorkloadSpec = () => {
      throw new Error("the program did not run");
    };
    await runComponents(() => {
      // Made inside the program: a platform is a component, registered with the run's mocks.
      const lb = capturing(docker());
      spec = lb.spec;
      return shopOn(lb.platform, certificate, privateKey);
    });
    return {
      certificate: await contentOrError(spec().files?.[CERT_FILE]),
      privateKey: await contentOrError(spec().secretFiles?.[`${CERT_FILE}.key`]),
    };
  }

  /** No message quotes a (non-blank) line of `texts`. */
  function expectUnquoted(message: string, ...texts: string[]): void {
    const lines = texts.flatMap((t) => t.split("\n")).filter((l) => l.trim().length >= 8);
    expect(lines.filter((l) => message.includes(l))).toEqual([]);
  }

  it("refuses a certificate holding a private key, even as a secret output", async () => {
    // GIVEN a certificate-plus-key bundle, known only as a secret output
    const bundle = pulumi.secret(pulumi.output(ec.cert + ec.key));
    const files = await tlsFiles(bundle, pulumi.secret(ec.key));
    // THEN the certificate file (a ConfigMap on Kubernetes, an upload on Docker) is refused with
    // the field, rule and fix, quoting neither value
    expect(files.certificate).toBe(
      'refused: LoadBalancer "shop-lb": tls.certificate must not contain a private key (the certificate is ' +
        "stored and shown in plain text), but text with a PRIVATE KEY block was provided. Remove the private " +
        "key block from the certificate and give the key on its own as the TLS key, stored as a secret. If the " +
        "key was ever stored in plain text, treat it as exposed and issue a new one.",
    );
    expectUnquoted(files.certificate, ec.cert, ec.key);
    // The key file is the key's; the refused certificate stops the workload anyway.
    expect(files.privateKey).toBe(ec.key);
  });

  it("refuses a key that is not the certificate's", async () => {
    const files = await tlsFiles(ec.cert, pulumi.secret(other.key));
    expect(files.certificate).toBe(ec.cert);
    expect(files.privateKey).toBe(
      'refused: LoadBalancer "shop-lb": tls.privateKey must be the private key of the server\'s certificate (the ' +
        "first in the certificate text), but a private key of another certificate than the server's certificate " +
        "(CN=ec.test) was provided. Give the key the certificate was issued for (openssl x509 -noout -pubkey and " +
        "openssl pkey -pubout print the same public key for a matching pair).",
    );
    expectUnquoted(files.privateKey, ec.cert, other.key);
    // A chain given in the wrong order: nginx and HAProxy take the first certificate as theirs.
    const reversed = await tlsFiles(intermediate.cert + leaf.cert, pulumi.secret(leaf.key));
    expect(reversed.privateKey).toMatch(/^refused: .*tls\.privateKey must be the private key/);
  });

  it("lets through what it cannot judge (stand-ins that do not parse, expiry: the stack config checks those)", async () => {
    const fake = "-----BEGIN CERTIFICATE-----\npublic-cert\n-----END CERTIFICATE-----\n";
    const fakeKey = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
    expect(await tlsFiles(fake, pulumi.secret(fakeKey))).toEqual({ certificate: fake, privateKey: fakeKey });
    expect(await tlsFiles(ec.cert, ec.key)).toEqual({ certificate: ec.cert, privateKey: ec.key });
  });

  it("passes a matching pair through: the certificate in the clear, the key as a secret", async () => {
    const run = await runComponents(() =>
      shopOn(docker(), leaf.cert + intermediate.cert, pulumi.secret(leaf.key)),
    );
    const c = one(run, "docker:index/container:Container", "shop-lb-nginx-0");
    const uploads = c.inputs.uploads as { file: string; content: unknown }[];
    expect(uploads.map((u) => [u.file, isWrappedSecret(u.content)])).toEqual([
      ["/etc/ha-backend/lb/nginx.conf", false],
      ["/etc/ha-backend/lb/tls/server.pem", false],
      ["/etc/ha-backend/lb/tls/server.pem.key", true],
    ]);
    expect(uploads[1].content).toBe(leaf.cert + intermediate.cert);
    // A key given in plain text still reaches the platform as a secret.
    const plainKey = await runComponents(() => shopOn(k8s(), ec.cert, ec.key));
    const secret = one(plainKey, "kubernetes:core/v1:Secret", "shop-lb-nginx-secret-files");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    expect(ofType(plainKey, "kubernetes:core/v1:ConfigMap").length).toBeGreaterThan(0);
  });
});

function crlf(pem: string): string {
  return pem.replace(/\n/g, "\r\n");
}

/** The same block with bytes in its middle replaced (still base64, no longer DER). */
function corrupt(pem: string): string {
  const lines = pem.split("\n");
  lines[2] = "A".repeat(lines[2].length);
  lines[3] = "A".repeat(lines[3].length);
  return lines.join("\n");
}

function notAfter(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}

function notBefore(pem: string): Date {
  return new Date(new X509Certificate(pem).validFrom);
}
