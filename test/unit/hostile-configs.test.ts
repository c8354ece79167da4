/**
 * Hostile and odd stack configs, tried as a careful user and an attacker would. Each case has an
 * exact expectation: refused before any resource exists, with a sentence naming the stack key
 * (and never a secret value), or accepted with exactly the intended output.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseStackConfig, StackConfigError } from "../../infra/config";
import {
  redactSecrets,
  runProgramWithMocks,
  unwrapSecrets,
  type ProgramRun,
  type RecordedResource,
} from "../../scripts/mock-engine";
import { OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY } from "../../scripts/offline-tls";
import { readStackFile } from "../../scripts/stack-file";
import { generatedSecretNames } from "../../infra/preflight";
import { runStack } from "../support/engine";
import { stackConfig, stackNames } from "../support/stack-files";
import { testCa, testCert, type Pem } from "../support/tls";

type Raw = Record<string, unknown>;

/** A value no message or visible input may ever show. */
const MARKER = "zq-secret-marker-7f3a";
const SHA = "a".repeat(64);

const DK: Raw = { topology: "ecommerce", platform: "docker" };
const BLOG: Raw = { topology: "blog", platform: "docker" };
/** The shop without the services a case does not look at: accepted cases run the whole program. */
const LEAN: Raw = { ...DK, cache: { engine: "none" }, locks: { enabled: false } };
const K8: Raw = { topology: "ecommerce", platform: "kubernetes", kubernetes: { context: "prod" } };
const k8 = (kubernetes: Raw, rest: Raw = {}): Raw => ({
  ...K8,
  ...rest,
  kubernetes: { context: "prod", ...kubernetes },
});
const PG_K8 = (kubernetes: Raw = {}, postgresql: Raw = {}): Raw =>
  k8(
    { imageRegistry: "registry.example.com/shop", ...kubernetes },
    { database: { engine: "postgresql", postgresql } },
  );
const TLS = (tlsCertificate: string, tlsKey: string, base: Raw = DK): Raw => ({
  ...base,
  balancer: { tls: "provided" },
  tlsCertificate,
  tlsKey,
});

/** Material made once with openssl (beforeAll): a second pair, a bundle, an encrypted key. */
const pems: { other: Pem; ca: Pem; encryptedKey: string } = {} as never;

interface Refused {
  /** The stack key (without `ha-backend:`) the first matching sentence starts with. */
  readonly key: string;
  /** A phrase of the rule the sentence must contain. */
  readonly says?: string;
}
interface Accepted {
  readonly ok: (run: ProgramRun) => void;
}
interface Case {
  readonly raw: Raw | (() => Raw);
  readonly expect: Refused | Accepted;
  /** Top-level keys stored with --secret. @default ["tlsKey"] when there is one */
  readonly secret?: readonly string[];
  readonly stack?: string;
}

type Container = { name: string; inputs: Record<string, unknown> };
function containers(run: ProgramRun): Container[] {
  return run.resources
    .filter((r) => r.type === "docker:index/container:Container")
    .map((r) => ({ name: r.name, inputs: unwrapSecrets(r.inputs) as Record<string, unknown> }));
}
function container(run: ProgramRun, name: string): Record<string, unknown> {
  const c = containers(run).find((x) => x.name === name);
  if (c === undefined)
    throw new Error(
      `no container ${name}: ${containers(run)
        .map((x) => x.name)
        .join(", ")}`,
    );
  return c.inputs;
}
const envOf = (run: ProgramRun, name: string) => container(run, name).envs as string[];
const portsOf = (run: ProgramRun, name: string) =>
  container(run, name).ports as { ip: string; external: number }[];
function manifests(run: ProgramRun, kind: string): Record<string, unknown>[] {
  return run.resources
    .filter((r) => r.type === `kubernetes:${kind}`)
    .map((r) => unwrapSecrets(r.inputs) as Record<string, unknown>);
}
const visible = (r: RecordedResource) => JSON.stringify(redactSecrets(r.inputs));

const CASES: Record<string, Record<string, Case>> = {
  quantities: {
    "a memory limit of one byte": {
      raw: { ...DK, app: { resources: { cpu: "100m", memory: "1" } } },
      expect: { key: "app.resources.memory", says: "at least 32Mi" },
    },
    "an absurd memory limit (Gi for Mi)": {
      raw: { ...DK, app: { resources: { cpu: "100m", memory: "900000Gi" } } },
      expect: { key: "app.resources.memory", says: "at most 512Gi" },
    },
    "an absurd CPU count": {
      raw: { ...DK, app: { resources: { cpu: "100000", memory: "256Mi" } } },
      expect: { key: "app.resources.cpu", says: "from 10m to 64 cores" },
    },
    "a CPU share below a millicore": {
      raw: { ...DK, app: { resources: { cpu: "0.0001", memory: "256Mi" } } },
      expect: { key: "app.resources.cpu" },
    },
    "a CPU quantity with a unit Kubernetes does not have": {
      raw: { ...DK, app: { resources: { cpu: "500x", memory: "256Mi" } } },
      expect: { key: "app.resources.cpu", says: "CPU quantity" },
    },
    "MB where Kubernetes writes M or Mi": {
      raw: { ...DK, app: { resources: { cpu: "1", memory: "256MB" } } },
      expect: { key: "app.resources.memory", says: "memory quantity" },
    },
    "a negative memory limit": {
      raw: { ...DK, app: { resources: { cpu: "1", memory: "-1Gi" } } },
      expect: { key: "app.resources.memory" },
    },
    "a Redis maxmemory larger than its container": {
      raw: { ...DK, cache: { redis: { maxmemory: "4gb" }, resources: { cpu: "1", memory: "256Mi" } } },
      expect: { key: "cache.resources.memory", says: "maxmemory 4gb at most two thirds" },
    },
    "memcached memory larger than its container": {
      raw: {
        ...BLOG,
        cache: { memcached: { memoryMb: 4096 }, resources: { cpu: "1", memory: "256Mi" } },
      },
      expect: { key: "cache.resources.memory", says: "at least 4538Mi" },
    },
    "PostgreSQL shared_buffers far beyond the memory": {
      raw: {
        ...DK,
        database: {
          engine: "postgresql",
          postgresql: { sharedBuffers: "8GB" },
          resources: { cpu: "1", memory: "512Mi" },
        },
      },
      expect: { key: "database.resources.memory", says: "shared_buffers 8GB at most 40%" },
    },
    "a MariaDB container smaller than its buffer pool": {
      raw: { ...DK, database: { resources: { cpu: "1", memory: "128Mi" } } },
      expect: { key: "database.resources.memory", says: "innodb_buffer_pool_size 256M" },
    },
    "a balancer with 8Mi": {
      raw: { ...DK, balancer: { resources: { cpu: "100m", memory: "8Mi" } } },
      expect: { key: "balancer.resources.memory", says: "at least 32Mi" },
    },
    "a CPU in exponent notation": {
      raw: { ...DK, balancer: { resources: { cpu: "1e3", memory: "64Mi" } } },
      expect: { key: "balancer.resources.cpu" },
    },
    "a Redis size in upper case (Redis's own units are lower case here)": {
      raw: { ...DK, cache: { redis: { maxmemory: "4GB" } } },
      expect: { key: "cache.redis.maxmemory" },
    },
    "sane resources, accepted and applied": {
      raw: { ...LEAN, app: { resources: { cpu: "250m", memory: "256Mi" } } },
      expect: {
        ok: (run) => {
          expect(container(run, "shop-app-0").memory).toBe(256);
          expect(container(run, "shop-app-0").cpus).toBe("0.25");
        },
      },
    },
    "Redis with maxmemory exactly two thirds of its memory": {
      raw: { ...DK, cache: { redis: { maxmemory: "1gb" }, resources: { cpu: "1", memory: "1536Mi" } } },
      expect: { ok: (run) => expect(container(run, "cache-redis-0").memory).toBe(1536) },
    },
    "fractional quantities": {
      raw: { ...LEAN, app: { resources: { cpu: "0.5", memory: "1.5Gi" } } },
      expect: { ok: (run) => expect(container(run, "shop-app-0").memory).toBe(1536) },
    },
  },

  names: {
    "an image from a registry with a port": {
      raw: { ...LEAN, app: { image: "registry:5000/app:1.2" } },
      expect: { ok: (run) => expect(imageRefs(run)).toContain("registry:5000/app:1.2") },
    },
    "an image pinned by tag and digest": {
      raw: { ...LEAN, app: { image: `shop:1.2@sha256:${SHA}` } },
      expect: { ok: (run) => expect(imageRefs(run)).toContain(`shop:1.2@sha256:${SHA}`) },
    },
    "an image pinned by digest only, in a registry path": {
      raw: { ...LEAN, app: { image: `registry.example.com/team/shop@sha256:${SHA}` } },
      expect: {
        ok: (run) => expect(imageRefs(run)).toContain(`registry.example.com/team/shop@sha256:${SHA}`),
      },
    },
    "an image from an IPv6 registry": {
      raw: { ...LEAN, app: { image: "[fd00::1]:5000/shop:1.2" } },
      expect: { ok: (run) => expect(imageRefs(run)).toContain("[fd00::1]:5000/shop:1.2") },
    },
    "an upper-case repository": {
      raw: { ...DK, app: { image: "Nginx:1.27" } },
      expect: { key: "app.image", says: "lowercase" },
    },
    "the latest tag": { raw: { ...DK, app: { image: "nginx:latest" } }, expect: { key: "app.image" } },
    "no tag at all": {
      raw: { ...DK, app: { image: "nginx" } },
      expect: { key: "app.image", says: "pinned by a tag or a digest" },
    },
    "a trailing space": { raw: { ...DK, app: { image: "nginx:1.27 " } }, expect: { key: "app.image" } },
    "a newline after the tag": {
      raw: { ...DK, app: { image: "nginx:1.27\n" } },
      expect: { key: "app.image" },
    },
    "a short digest": {
      raw: { ...DK, app: { image: "nginx@sha256:abc" } },
      expect: { key: "app.image" },
    },
    "a name starting with a dash (a flag to docker)": {
      raw: { ...DK, app: { image: "-nginx:1" } },
      expect: { key: "app.image" },
    },
    "a registry port that is not a number": {
      raw: { ...DK, app: { image: "registry:port/app:1" } },
      expect: { key: "app.image" },
    },
    "two tags": { raw: { ...DK, app: { image: "nginx:1.27:2" } }, expect: { key: "app.image" } },
    "a Patroni image from a registry with a port, pinned by tag and digest": {
      raw: {
        ...DK,
        cache: { engine: "none" },
        locks: { enabled: false },
        database: {
          engine: "postgresql",
          postgresql: { image: `registry.example.com:5000/patroni:15.18-1@sha256:${SHA}` },
        },
      },
      expect: {
        ok: (run) =>
          expect(imageRefs(run)).toContain(`registry.example.com:5000/patroni:15.18-1@sha256:${SHA}`),
      },
    },
    "an unpinned Patroni image": {
      raw: { ...DK, database: { engine: "postgresql", postgresql: { image: "patroni" } } },
      expect: { key: "database.postgresql.image" },
    },
    "the kube-system namespace": {
      raw: k8({ namespace: "kube-system" }),
      expect: { key: "kubernetes.namespace", says: "namespace Kubernetes owns" },
    },
    "the default namespace": {
      raw: k8({ namespace: "default" }),
      expect: { key: "kubernetes.namespace", says: "namespace Kubernetes owns" },
    },
    "a system namespace, allowed on purpose": {
      raw: k8({ namespace: "kube-public", allowSystemNamespace: true }),
      expect: {
        ok: (run) => {
          // Used, never created (nor deleted, nor relabelled), and its deny covers the stack's pods only.
          expect(manifests(run, "core/v1:Namespace")).toEqual([]);
          const deny = manifests(run, "networking.k8s.io/v1:NetworkPolicy").find(
            (p) => (p.metadata as Raw).name === "default-deny",
          )!;
          expect(deny).toMatchObject({
            metadata: { namespace: "kube-public" },
            spec: { podSelector: { matchLabels: { "app.kubernetes.io/part-of": "ha-backend" } } },
          });
        },
      },
    },
    "allowSystemNamespace with a namespace of the stack's own": {
      raw: k8({ namespace: "shop", allowSystemNamespace: true }),
      expect: { key: "kubernetes.allowSystemNamespace" },
    },
    "an upper-case namespace": { raw: k8({ namespace: "Shop" }), expect: { key: "kubernetes.namespace" } },
    "a namespace of 64 characters": {
      raw: k8({ namespace: "a".repeat(64) }),
      expect: { key: "kubernetes.namespace" },
    },
    "a Docker stack whose name is no container name": {
      raw: DK,
      stack: "Shop_Dev",
      expect: { key: "(stack name)", says: "prefixes every container" },
    },
    "a Kubernetes stack whose name is no namespace, without a namespace": {
      raw: K8,
      stack: "shop.prod",
      expect: { key: "kubernetes.namespace", says: "stack name is not a DNS label" },
    },
    "an env name starting with a digit": {
      raw: { ...DK, app: { env: { "1BAD": "x" } } },
      expect: { key: "app.env", says: "letters, digits and _" },
    },
    "an env name with a dash": {
      raw: { ...DK, app: { env: { "BAD-NAME": "x" } } },
      expect: { key: "app.env" },
    },
    "a StorageClass name with a space": {
      raw: k8({ storageClass: "Fast SSD" }),
      expect: { key: "kubernetes.storageClass" },
    },
    "a cookie name with a space": {
      raw: { ...DK, balancer: { engine: "haproxy", stickyCookie: "a b" } },
      expect: { key: "balancer.stickyCookie" },
    },
    "an SSH address without a host": {
      raw: { ...DK, docker: { host: "ssh://" } },
      expect: { key: "docker.host" },
    },
    "an SSH address with a space": {
      raw: { ...DK, docker: { host: "ssh://deploy@build 1" } },
      expect: { key: "docker.host" },
    },
    "a remote Docker host": {
      raw: { ...LEAN, docker: { host: "ssh://deploy@build-1.example.com", bindAddress: "0.0.0.0" } },
      expect: {
        ok: (run) => {
          const provider = run.resources.find((r) => r.type === "pulumi:providers:docker")!;
          expect(unwrapSecrets(provider.inputs)).toMatchObject({ host: "ssh://deploy@build-1.example.com" });
        },
      },
    },
    "a remote Docker host with ports bound to its loopback": {
      raw: { ...DK, docker: { host: "ssh://deploy@build-1.example.com" } },
      expect: { key: "docker.bindAddress", says: "remote engine" },
    },
    "a context name with a newline": {
      raw: k8({ context: "prod\nevil" }),
      expect: { key: "kubernetes.context", says: "single line" },
    },
    "an upper-case registry": {
      raw: PG_K8({ imageRegistry: "Registry.example.com" }),
      expect: { key: "kubernetes.imageRegistry" },
    },
  },

  "strings that reach config files": {
    "a health path that opens an nginx directive": {
      raw: { ...DK, app: { healthCheckPath: "/h\n    return 200;" } },
      expect: { key: "app.healthCheckPath" },
    },
    "a health path with a semicolon": {
      raw: { ...DK, app: { healthCheckPath: "/h;evil" } },
      expect: { key: "app.healthCheckPath" },
    },
    "a health path without its slash": {
      raw: { ...DK, app: { healthCheckPath: "healthz" } },
      expect: { key: "app.healthCheckPath" },
    },
    "a health path longer than nginx and HAProxy take here": {
      raw: { ...DK, app: { healthCheckPath: `/${"a".repeat(300)}` } },
      expect: { key: "app.healthCheckPath", says: "at most 255" },
    },
    "a health path with braces": {
      raw: { ...BLOG, app: { healthCheckPath: "/h{1}" } },
      expect: { key: "app.healthCheckPath" },
    },
    "shared_buffers that add a line to patroni.yml": {
      raw: { ...DK, database: { engine: "postgresql", postgresql: { sharedBuffers: "128MB\nfsync: off" } } },
      expect: { key: "database.postgresql.sharedBuffers" },
    },
    "shared_buffers of eight digits": {
      raw: { ...DK, database: { engine: "postgresql", postgresql: { sharedBuffers: "12582912kB" } } },
      expect: { key: "database.postgresql.sharedBuffers" },
    },
    "shared_buffers below what PostgreSQL starts with": {
      raw: { ...DK, database: { engine: "postgresql", postgresql: { sharedBuffers: "1kB" } } },
      expect: { key: "database.postgresql.sharedBuffers", says: "at least 128kB" },
    },
    "a maxmemory of eight digits": {
      raw: { ...DK, cache: { redis: { maxmemory: "10000000mb" } } },
      expect: { key: "cache.redis.maxmemory" },
    },
    "a maxmemory that adds a replicaof line": {
      raw: { ...DK, cache: { redis: { maxmemory: "256mb\nreplicaof 10.0.0.1 6379" } } },
      expect: { key: "cache.redis.maxmemory" },
    },
    "a NUL byte in an env value": {
      raw: { ...DK, app: { env: { A: "x\u0000y" } } },
      expect: { key: "app.env.A", says: "control characters" },
    },
    "an escape sequence in an env value": {
      raw: { ...DK, app: { env: { A: "\u001b[31mred" } } },
      expect: { key: "app.env.A" },
    },
    "an env value longer than exec takes": {
      raw: { ...DK, app: { env: { A: "x".repeat(200_000) } } },
      expect: { key: "app.env.A", says: "at most 128 KiB" },
    },
    "a multi-line env value (a PEM), accepted as is": {
      raw: { ...LEAN, app: { env: { CA: "line 1\nline 2" } } },
      expect: { ok: (run) => expect(envOf(run, "shop-app-0")).toContain("CA=line 1\nline 2") },
    },
    "a rotation entry that is no secret name": {
      raw: { ...DK, credentialRotation: { "Catalog Password": "1" } },
      expect: { key: "credentialRotation" },
    },
    "a rotation entry for a secret the stack does not have": {
      raw: { ...DK, credentialRotation: { "catalog-superuser-password": "2027-01" } },
      expect: { key: "credentialRotation.catalog-superuser-password", says: "catalog-app-password" },
    },
    "a rotation entry for a secret the stack has": {
      raw: { ...DK, credentialRotation: { "orders-0-app-password": "2027-01" } },
      expect: {
        ok: (run) => {
          const p = run.resources.find((r) => r.name === "orders-0-app-password")!;
          expect(unwrapSecrets(p.inputs)).toMatchObject({ keepers: { rotation: "2027-01" } });
        },
      },
    },
    "an empty rotation token": {
      raw: { ...DK, credentialRotation: { "catalog-app-password": "" } },
      expect: { key: "credentialRotation.catalog-app-password" },
    },
    "a NUL in a kubeconfig path": {
      raw: k8({ kubeconfig: "a\u0000b" }),
      expect: { key: "kubernetes.kubeconfig" },
    },
  },

  networks: {
    "a prefix longer than 32 bits": {
      raw: PG_K8({ podNetworks: ["10.0.0.0/33"] }),
      expect: { key: "kubernetes.podNetworks.0", says: "prefix length of at most 32" },
    },
    "an address that is no IPv4 address": {
      raw: PG_K8({ podNetworks: ["999.0.0.0/8"] }),
      expect: { key: "kubernetes.podNetworks.0" },
    },
    "host bits set": {
      raw: PG_K8({ podNetworks: ["10.0.0.1/8"] }),
      expect: { key: "kubernetes.podNetworks.0", says: "10.0.0.0/8" },
    },
    "an IPv6 prefix over 128": {
      raw: PG_K8({ podNetworks: ["fd00::/129"] }),
      expect: { key: "kubernetes.podNetworks.0" },
    },
    "a CIDR that adds a pg_hba method": {
      raw: PG_K8({ podNetworks: ["10.0.0.0/8 trust"] }),
      expect: { key: "kubernetes.podNetworks.0" },
    },
    "an empty list of pod networks": {
      raw: PG_K8({ podNetworks: [] }),
      expect: { key: "kubernetes.podNetworks" },
    },
    "IPv4 and IPv6 pod networks, both in pg_hba": {
      raw: PG_K8({ podNetworks: ["10.244.0.0/16", "fd00:10:244::/56"] }),
      expect: {
        ok: (run) => {
          // patroni.yml holds passwords: it is a Secret's file.
          const patroni = JSON.stringify(manifests(run, "core/v1:Secret"));
          expect(patroni).toContain("pg_hba");
          expect(patroni).toContain("10.244.0.0/16");
          expect(patroni).toContain("fd00:10:244::/56");
        },
      },
    },
    "API server addresses where nothing talks to the API": {
      raw: k8({ apiServerCidrs: ["172.18.0.2/32"] }),
      expect: { key: "kubernetes.apiServerCidrs", says: "only Patroni talks to the Kubernetes API" },
    },
    "HTTPS and HTTP on one host port": {
      raw: { ...DK, balancer: { tls: "self-signed" }, docker: { publicPort: 8443, httpsPort: 8443 } },
      expect: { key: "docker.httpsPort", says: "differ from docker.publicPort" },
    },
    "an HTTPS port without TLS": {
      raw: { ...DK, docker: { httpsPort: 9443 } },
      expect: { key: "docker.httpsPort", says: "only be set when balancer.tls is on" },
    },
    "port 0": { raw: { ...DK, docker: { publicPort: 0 } }, expect: { key: "docker.publicPort" } },
    "port 70000": { raw: { ...DK, docker: { publicPort: 70000 } }, expect: { key: "docker.publicPort" } },
    "a bind address that is a name": {
      raw: { ...DK, docker: { bindAddress: "localhost" } },
      expect: { key: "docker.bindAddress" },
    },
    "a bind address with a port": {
      raw: { ...DK, docker: { bindAddress: "127.0.0.1:80" } },
      expect: { key: "docker.bindAddress" },
    },
    "every interface, on purpose": {
      raw: { ...LEAN, docker: { bindAddress: "0.0.0.0" } },
      expect: { ok: (run) => expect(portsOf(run, "shop-lb-nginx-0").map((p) => p.ip)).toEqual(["0.0.0.0"]) },
    },
    "the default: loopback only": {
      raw: LEAN,
      expect: {
        ok: (run) => {
          const published = containers(run).flatMap((c) => (c.inputs.ports ?? []) as { ip: string }[]);
          expect(published.length).toBeGreaterThan(0);
          expect(new Set(published.map((p) => p.ip))).toEqual(new Set(["127.0.0.1"]));
        },
      },
    },
    "a privileged app port for the unprivileged demo app": {
      raw: { ...DK, app: { port: 80 } },
      expect: { key: "app.port", says: "1024 or above" },
    },
  },

  "reserved env": {
    REDIS_SENTINELS: {
      raw: { ...DK, app: { env: { REDIS_SENTINELS: "evil:26379" } } },
      expect: { key: "app.env.REDIS_SENTINELS", says: "reserved" },
    },
    LOCK_ENDPOINTS: {
      raw: { ...DK, app: { env: { LOCK_ENDPOINTS: "https://evil:2379" } } },
      expect: { key: "app.env.LOCK_ENDPOINTS" },
    },
    DATABASE_URL: {
      raw: { ...DK, app: { env: { DATABASE_URL: "mysql://evil" } } },
      expect: { key: "app.env.DATABASE_URL" },
    },
    "the file name of a credential (SESSION_SECRET_FILE)": {
      raw: { ...DK, app: { env: { SESSION_SECRET_FILE: "/etc/passwd" } } },
      expect: { key: "app.env.SESSION_SECRET_FILE", says: "names the file of SESSION_SECRET" },
    },
    "environment larger than a Kubernetes object holds": {
      raw: {
        ...DK,
        app: {
          env: Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`BIG_${i}`, "x".repeat(100_000)])),
        },
      },
      expect: { key: "app.env", says: "at most 512 KiB in all" },
    },
    SESSION_SECRET: {
      raw: { ...DK, app: { env: { SESSION_SECRET: "known" } } },
      expect: { key: "app.env.SESSION_SECRET" },
    },
    ORDERS_SHARD_MAP: {
      raw: { ...DK, app: { env: { ORDERS_SHARD_MAP: "{}" } } },
      expect: { key: "app.env.ORDERS_SHARD_MAP" },
    },
    "MEMCACHED_SERVERS on the blog": {
      raw: { ...BLOG, app: { env: { MEMCACHED_SERVERS: "evil:11211" } } },
      expect: { key: "app.env.MEMCACHED_SERVERS" },
    },
    "a *_FILE name the program sets": {
      raw: { ...DK, app: { env: { REDIS_PASSWORD_FILE: "/etc/passwd" } } },
      expect: { key: "app.env.REDIS_PASSWORD_FILE" },
    },
    "an app variable of its own, passed through": {
      raw: { ...LEAN, app: { env: { LOG_LEVEL: "debug" } } },
      expect: { ok: (run) => expect(envOf(run, "shop-app-0")).toContain("LOG_LEVEL=debug") },
    },
  },

  tls: {
    "a certificate bundled with its key": {
      raw: () => TLS(OFFLINE_TLS_CERTIFICATE + OFFLINE_TLS_KEY, OFFLINE_TLS_KEY),
      expect: { key: "tlsCertificate", says: "private key" },
    },
    "a certificate where the key belongs": {
      raw: () => TLS(OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_CERTIFICATE),
      expect: { key: "tlsKey" },
    },
    "a key where the certificate belongs": {
      raw: () => TLS(OFFLINE_TLS_KEY, OFFLINE_TLS_KEY),
      expect: { key: "tlsCertificate" },
    },
    "a key that is not the certificate's": {
      raw: () => TLS(OFFLINE_TLS_CERTIFICATE, pems.other.key),
      expect: { key: "tlsKey", says: "match" },
    },
    "an encrypted key (nginx cannot prompt for it)": {
      raw: () => TLS(pems.other.cert, pems.encryptedKey),
      expect: { key: "tlsKey" },
    },
    "a key in plain text in the stack file": {
      raw: () => TLS(OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY),
      secret: [],
      expect: { key: "tlsKey", says: "stored as a secret" },
    },
    "provided TLS without a certificate": {
      raw: () => ({ ...DK, balancer: { tls: "provided" }, tlsKey: OFFLINE_TLS_KEY }),
      expect: { key: "tlsCertificate", says: "be set when balancer.tls is provided" },
    },
    "a certificate with self-signed TLS": {
      raw: () => ({ ...DK, balancer: { tls: "self-signed" }, tlsCertificate: OFFLINE_TLS_CERTIFICATE }),
      expect: { key: "tlsCertificate", says: "only be set when balancer.tls is provided" },
    },
    "garbage for a certificate": {
      raw: () => TLS("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", OFFLINE_TLS_KEY),
      expect: { key: "tlsCertificate" },
    },
    "a chain in the wrong order": {
      raw: () => TLS(pems.ca.cert + pems.other.cert, pems.other.key),
      expect: { key: "tlsCertificate" },
    },
    "a key stored with --secret, exactly as the README says": {
      raw: () => TLS(pems.other.cert + pems.ca.cert, pems.other.key, LEAN),
      expect: {
        ok: (run) => {
          const lb = container(run, "shop-lb-nginx-0");
          const files = (lb.uploads as { file: string; content: string }[]).map((u) => u.content).join("\n");
          expect(files).toContain(pems.other.cert.trim().split("\n")[1]);
          // The key reaches the balancer, and only as a secret.
          expect(files).toContain(pems.other.key.trim().split("\n")[1]);
          for (const r of run.resources)
            expect(visible(r)).not.toContain(pems.other.key.trim().split("\n")[1]);
        },
      },
    },
    "a certificate stored with --secret too": {
      raw: () => TLS(pems.other.cert + pems.ca.cert, pems.other.key, LEAN),
      secret: ["tlsCertificate", "tlsKey"],
      expect: {
        ok: (run) => {
          for (const r of run.resources)
            expect(visible(r)).not.toContain(pems.other.cert.trim().split("\n")[1]);
        },
      },
    },
  },

  "settings that would do nothing": {
    "lock members on the blog (no locks)": {
      raw: { ...BLOG, locks: { members: 3 } },
      expect: { key: "locks.members", says: "only be set when locks are on" },
    },
    "a lock TTL with locks off": {
      raw: { ...DK, locks: { enabled: false, ttlSeconds: 5 } },
      expect: { key: "locks.ttlSeconds" },
    },
    "Redis settings with memcached": {
      raw: { ...BLOG, cache: { redis: { replicas: 1 } } },
      expect: { key: "cache.redis" },
    },
    "memcached settings with Redis": {
      raw: { ...DK, cache: { memcached: { members: 2 } } },
      expect: { key: "cache.memcached" },
    },
    "cache resources without a cache": {
      raw: { ...DK, cache: { engine: "none", resources: { cpu: "1", memory: "1Gi" } } },
      expect: { key: "cache.resources" },
    },
    "a Redis volume in cache mode": {
      raw: { ...DK, cache: { redis: { mode: "cache", storageGi: 5 } } },
      expect: { key: "cache.redis.storageGi", says: "only be set in store mode" },
    },
    "PostgreSQL settings with MariaDB": {
      raw: { ...DK, database: { postgresql: { ttl: 20 } } },
      expect: { key: "database.postgresql" },
    },
    "a Galera check period no shorter than the suspect timeout": {
      raw: { ...DK, database: { galera: { inactiveCheckPeriodMs: 5000 } } },
      expect: { key: "database.galera.inactiveCheckPeriodMs", says: "less than suspectTimeoutMs" },
    },
    "Galera timeouts in replication mode": {
      raw: {
        ...DK,
        database: { mode: "replication", failover: "manual", galera: { suspectTimeoutMs: 5000 } },
      },
      expect: { key: "database.galera" },
    },
    "semi-sync with Galera": {
      raw: { ...DK, database: { semiSync: true } },
      expect: { key: "database.semiSync" },
    },
    "etcd members for Patroni on Kubernetes": {
      raw: PG_K8({}, { etcdMembers: 3 }),
      expect: { key: "database.postgresql.etcdMembers" },
    },
    "an image registry where nothing is built": {
      raw: k8({ imageRegistry: "registry.example.com/shop" }),
      expect: { key: "kubernetes.imageRegistry", says: "only be set when pulumi up builds an image" },
    },
    "pod networks where nothing reads them (MariaDB)": {
      raw: k8({ podNetworks: ["10.244.0.0/16"] }),
      expect: { key: "kubernetes.podNetworks", says: "they go into pg_hba" },
    },
    "a wait for an address a NodePort never gets": {
      raw: k8({ serviceType: "NodePort", serviceTimeoutMinutes: 5 }),
      expect: { key: "kubernetes.serviceTimeoutMinutes" },
    },
    "an algorithm beside nginx's sticky cookie": {
      raw: { ...DK, balancer: { stickyCookie: "SRV", algorithm: "least-conn" } },
      expect: { key: "balancer.algorithm" },
    },
    "Docker settings on Kubernetes": {
      raw: { ...K8, docker: { publicPort: 8080 } },
      expect: { key: "docker" },
    },
    "Kubernetes settings on Docker": {
      raw: { ...DK, kubernetes: { namespace: "shop" } },
      expect: { key: "kubernetes" },
    },
    "shards on the blog": {
      raw: { ...BLOG, database: { shards: 2 } },
      expect: { key: "database.shards" },
    },
    "weights on Kubernetes": {
      raw: { ...K8, balancer: { engine: "haproxy", weights: [1, 2] } },
      expect: { key: "balancer.weights" },
    },
  },

  "rules only a component knew": {
    "a health-check timeout longer than its interval": {
      raw: { ...DK, balancer: { health: { intervalMs: 200, timeoutMs: 5000 } } },
      expect: { key: "balancer.health.timeoutMs" },
    },
    "Galera dropping a peer before suspecting it": {
      raw: { ...DK, database: { galera: { suspectTimeoutMs: 60000, inactiveTimeoutMs: 1000 } } },
      expect: { key: "database.galera.inactiveTimeoutMs" },
    },
    "backup servers with nginx hashing client IPs": {
      raw: { ...DK, balancer: { algorithm: "ip-hash", backups: 1 } },
      expect: { key: "balancer.backups" },
    },
    "a weight per member, miscounted": {
      raw: { ...DK, balancer: { weights: [1, 2, 3] } },
      expect: { key: "balancer.weights" },
    },
    "a quorum more Sentinels than there are": {
      raw: { ...DK, cache: { redis: { sentinels: 3, quorum: 5 } } },
      expect: { key: "cache.redis.quorum" },
    },
    "strict synchronous mode with one standby": {
      raw: {
        ...DK,
        database: { engine: "postgresql", members: 2, postgresql: { synchronousModeStrict: true } },
      },
      expect: { key: "database.postgresql.synchronousModeStrict" },
    },
    "Patroni timings with no room for a retry": {
      raw: {
        ...DK,
        database: { engine: "postgresql", postgresql: { ttl: 10, loopWait: 5, retryTimeout: 5 } },
      },
      expect: { key: "database.postgresql.ttl" },
    },
    "a rate limit with no burst (nginx refuses burst=0)": {
      raw: { ...LEAN, balancer: { rateLimit: { perSecond: 10, burst: 0 } } },
      expect: {
        ok: (run) => {
          const conf = (container(run, "shop-lb-nginx-0").uploads as { content: string }[])
            .map((u) => u.content)
            .join("\n");
          expect(conf).toContain("limit_req zone=per_client");
          expect(conf).not.toContain("burst=0");
        },
      },
    },
  },

  "secrets in config": {
    "a secret app.env value stays secret": {
      raw: { ...LEAN, app: { env: { API_TOKEN: MARKER } } },
      secret: ["app"],
      expect: {
        ok: (run) => {
          expect(envOf(run, "shop-app-0")).toContain(`API_TOKEN=${MARKER}`);
          for (const r of run.resources) expect(visible(r)).not.toContain(MARKER);
          expect(JSON.stringify(run.outputs)).not.toContain(MARKER);
        },
      },
    },
    "a secret structured value of the wrong type": {
      raw: { ...DK, database: { members: MARKER } },
      secret: ["database"],
      expect: { key: "database.members" },
    },
    "a secret TLS key that is no key": {
      raw: () => TLS(OFFLINE_TLS_CERTIFICATE, MARKER),
      expect: { key: "tlsKey" },
    },
    "problems of every kind in one round (schema, TLS and component rules need not wait)": {
      raw: () => ({ ...TLS(OFFLINE_TLS_CERTIFICATE, pems.other.key), app: { replicas: 0 } }),
      expect: { key: "tlsKey", says: "match" },
    },
    "a rule about another key quotes nothing of a secret section": {
      raw: { ...DK, app: { replicas: 7 }, balancer: { weights: [1, 2] } },
      secret: ["app"],
      expect: { key: "balancer.weights", says: "(app.replicas is secret)" },
    },
    "a secret app section with a bad image": {
      raw: { ...DK, app: { image: `${MARKER.toUpperCase()}:1` } },
      secret: ["app"],
      expect: { key: "app.image" },
    },
    "a secret Docker host that is no address": {
      raw: { ...DK, docker: { host: MARKER } },
      secret: ["docker"],
      expect: { key: "docker.host" },
    },
    "a secret section with an unknown key": {
      raw: { ...DK, cache: { redis: { maxmemory: MARKER } } },
      secret: ["cache"],
      expect: { key: "cache.redis.maxmemory" },
    },
    "a secret remote Docker host stays out of the outputs and the certificate": {
      raw: {
        ...LEAN,
        balancer: { tls: "self-signed" },
        docker: { host: `ssh://deploy@${MARKER}.example.com`, bindAddress: "0.0.0.0" },
      },
      secret: ["docker"],
      expect: {
        ok: (run) => {
          for (const r of run.resources) expect(visible(r)).not.toContain(MARKER);
          // The URL is a secret output (the mock engine shows secret outputs as [secret]).
          expect(run.outputs.url).toBe("[secret]");
        },
      },
    },
    "a secret rotation token stays out of the keepers": {
      raw: { ...LEAN, credentialRotation: { "catalog-app-password": MARKER, "shop-session-key": MARKER } },
      secret: ["credentialRotation"],
      expect: {
        ok: (run) => {
          const p = run.resources.find((r) => r.name === "catalog-app-password")!;
          expect(unwrapSecrets(p.inputs)).toMatchObject({ keepers: { rotation: MARKER } });
          for (const r of run.resources) expect(visible(r)).not.toContain(MARKER);
        },
      },
    },
    "a secret context name": {
      raw: k8({ context: MARKER }),
      secret: ["kubernetes"],
      expect: {
        ok: (run) => {
          const provider = run.resources.find((r) => r.type === "pulumi:providers:kubernetes")!;
          expect(visible(provider)).not.toContain(MARKER);
        },
      },
    },
  },
};

function imageRefs(run: ProgramRun): string[] {
  return run.resources
    .filter((r) => r.type === "docker:index/remoteImage:RemoteImage")
    .map((r) => String(r.inputs.name));
}

/** Runs the whole program with `raw` as the stack's config (objects JSON-encoded, as the CLI does). */
async function runCase(
  c: Case,
): Promise<{ run?: ProgramRun; error?: unknown; recorded: RecordedResource[] }> {
  const raw = typeof c.raw === "function" ? c.raw() : c.raw;
  const secret = c.secret ?? (raw.tlsKey !== undefined ? ["tlsKey"] : []);
  const config = Object.fromEntries(
    Object.entries(raw).map(([k, v]) => [`ha-backend:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
  );
  const recorded: RecordedResource[] = [];
  const { defineStack } = await import("../../infra/program");
  try {
    const run = await runProgramWithMocks(
      {
        config,
        secretKeys: secret.map((k) => `ha-backend:${k}`),
        stack: c.stack ?? "hostile",
        program: defineStack,
      },
      recorded,
    );
    return { run, recorded };
  } catch (error) {
    return { error, recorded };
  }
}

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "ha-hostile-"));
  try {
    pems.ca = testCa(dir);
    pems.other = testCert(dir, pems.ca, "shop.example.com", ["serverAuth"], ["DNS:shop.example.com"]);
    const r = spawnSync(
      "openssl",
      [
        "pkey",
        "-in",
        pems.other.keyFile,
        "-aes256",
        "-passout",
        "pass:hunter2",
        "-out",
        join(dir, "enc.pem"),
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`openssl pkey: ${r.stderr}`);
    pems.encryptedKey = readFileSync(join(dir, "enc.pem"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const table = Object.entries(CASES).flatMap(([category, cases]) =>
  Object.entries(cases).map(([label, c]) => [category, label, c] as const),
);

describe.each(Object.keys(CASES))("%s", (category) => {
  it.each(table.filter(([cat]) => cat === category).map(([, label, c]) => [label, c] as const))(
    "%s",
    async (_label, c) => {
      const { run, error, recorded } = await runCase(c);
      if ("ok" in c.expect) {
        if (error !== undefined) throw error;
        c.expect.ok(run!);
        return;
      }
      // Refused: a StackConfigError (a RunError: no stack trace), before any resource exists.
      expect(error).toBeInstanceOf(StackConfigError);
      expect(recorded.filter((r) => r.type !== "pulumi:pulumi:Stack")).toEqual([]);
      const problems = (error as StackConfigError).problems;
      const key = c.expect.key;
      const prefix = key === "(stack name)" ? "The stack name" : `ha-backend:${key} `;
      const hit = problems.find((p) => p.startsWith(prefix) || p.startsWith(`ha-backend:${key}.`));
      expect([hit !== undefined, problems]).toEqual([true, problems]);
      if (c.expect.says !== undefined) expect(hit).toContain(c.expect.says);
      // Every sentence says what was given and how to fix it; none shows a secret.
      for (const p of problems) expect(p).toMatch(/ must .* was provided\. \S/s);
      expect((error as Error).message).not.toContain(MARKER);
      expect((error as Error).message).not.toContain("hunter2");
      expect((error as Error).message).not.toContain(OFFLINE_TLS_KEY.trim().split("\n")[1]);
    },
  );
});

it("covers at least 100 cases in every category the issue names", () => {
  expect(table.length).toBeGreaterThanOrEqual(100);
  for (const cases of Object.values(CASES)) expect(Object.keys(cases).length).toBeGreaterThanOrEqual(5);
});

describe("no message ever shows a secret value", () => {
  // Every top-level key can be stored with --secret: give each a wrong value holding the marker.
  const wrong: Raw = {
    topology: MARKER,
    platform: MARKER,
    environment: MARKER,
    protectData: MARKER,
    app: { image: MARKER, env: { [MARKER]: MARKER } },
    balancer: { engine: MARKER, stickyCookie: MARKER },
    database: { engine: MARKER, members: MARKER },
    cache: { engine: MARKER, redis: { maxmemory: MARKER } },
    locks: { enabled: MARKER },
    tlsCertificate: MARKER,
    tlsKey: MARKER,
    docker: { host: MARKER, bindAddress: MARKER },
    kubernetes: { namespace: MARKER, context: `${MARKER}\n` },
    credentialRotation: { [MARKER]: 7 },
  };
  it.each(Object.keys(wrong))("%s stored with --secret", (key) => {
    const raw: Raw = { ...DK, [key]: wrong[key] };
    let message = "";
    try {
      parseStackConfig(raw, { secretKeys: [key], stack: "hostile" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(new RegExp(`ha-backend:${key}`));
    // The key names inside a map are not secret (Pulumi keeps them in plain text too).
    expect(message.replaceAll(`.${MARKER}`, ".<name>")).not.toContain(MARKER);
  });
});

describe("stack files as the Pulumi CLI reads them", () => {
  let dir = "";
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ha-stackfile-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (text: string) => writeFileSync(join(dir, "Pulumi.odd-dev.yaml"), text);

  it("resolves anchors and merge keys", () => {
    write(
      [
        "config:",
        "  ha-backend:topology: ecommerce",
        "  ha-backend:platform: docker",
        "  ha-backend:database:",
        "    resources: &small { cpu: 500m, memory: 1Gi }",
        "  ha-backend:balancer:",
        "    <<: { engine: haproxy, replicas: 3 }",
        "    replicas: 2",
        "  ha-backend:app:",
        "    resources: *small",
        "",
      ].join("\n"),
    );
    const file = readStackFile("odd-dev", dir);
    expect(JSON.parse(file.config["ha-backend:balancer"])).toEqual({ engine: "haproxy", replicas: 2 });
    expect(JSON.parse(file.config["ha-backend:app"])).toEqual({ resources: { cpu: "500m", memory: "1Gi" } });
  });

  it("refuses a key given twice, as the CLI does, naming the file", () => {
    write(["config:", "  ha-backend:topology: ecommerce", "  ha-backend:topology: blog", ""].join("\n"));
    expect(() => readStackFile("odd-dev", dir)).toThrow(
      /Pulumi\.odd-dev\.yaml is not a valid stack file: .*unique/,
    );
  });

  it("marks a key secret when a value inside it is secure (--secret --path)", () => {
    write(
      [
        "config:",
        "  ha-backend:topology: ecommerce",
        "  ha-backend:platform: docker",
        "  ha-backend:app:",
        "    env:",
        "      API_TOKEN:",
        "        secure: v1:AAAABBBB",
        "",
      ].join("\n"),
    );
    const file = readStackFile("odd-dev", dir);
    expect(file.secretKeys).toEqual(["ha-backend:app"]);
    expect(JSON.parse(file.config["ha-backend:app"]).env.API_TOKEN).toMatch(
      /^offline-placeholder-secret-[0-9a-f]{12}$/,
    );
  });

  it("stands in a matching pair when the key is secure (it cannot be read offline)", () => {
    write(
      [
        "config:",
        "  ha-backend:topology: ecommerce",
        "  ha-backend:platform: docker",
        "  ha-backend:balancer:",
        "    tls: provided",
        "  ha-backend:tlsCertificate: |",
        ...OFFLINE_TLS_CERTIFICATE.trim()
          .split("\n")
          .map((l) => `    ${l}`),
        "  ha-backend:tlsKey:",
        "    secure: v1:AAAABBBB",
        "",
      ].join("\n"),
    );
    const file = readStackFile("odd-dev", dir);
    expect(file.placeholders.sort()).toEqual(["ha-backend:tlsCertificate", "ha-backend:tlsKey"]);
    expect(file.config["ha-backend:tlsKey"]).toBe(OFFLINE_TLS_KEY);
  });
});

describe("the preflight knows the program", () => {
  // The preflight builds each component's args under the names the topologies use; if the two
  // drift apart, a rotation entry or a component rule would be checked against the wrong thing.
  it.each(stackNames())(
    "%s: credentialRotation names exactly the secrets the program generates",
    async (stack) => {
      const run = await runStack(stack);
      const generated = run.resources
        .filter((r) => r.type === "random:index/randomPassword:RandomPassword")
        .map((r) => r.name)
        // Keys nobody rotates by hand: the cookie key and the config digest key.
        .filter((n) => !n.endsWith("-cookie-key") && !n.endsWith("-config-digest-key"))
        .sort();
      expect(generatedSecretNames(stackConfig(stack))).toEqual(generated);
    },
  );
});

it("a renderer's refusal reads as bad input under pulumi up (a RunError: no stack trace)", () => {
  // Renderers import nothing from Pulumi; their error carries Pulumi's RunError brand instead.
  const { RenderInputError } = jest.requireActual<typeof import("../../components/render-guard")>(
    "../../components/render-guard",
  );
  const { RunError } = jest.requireActual<typeof import("@pulumi/pulumi")>("@pulumi/pulumi");
  expect(RunError.isInstance(new RenderInputError("renderNginx", "health.path", "be a path", "x"))).toBe(
    true,
  );
});
