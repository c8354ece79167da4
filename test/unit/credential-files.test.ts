import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { credentialPath, readCredential } from "../../components/cluster/credentials";
import { EtcdLockClient } from "../../components/coordination/lock-client";
import { ENV_CREDENTIALS } from "../../components/env-credentials";
import { OFFLINE_SECRET_PLACEHOLDER } from "../../scripts/stack-file";
import type { ProgramRun } from "../../scripts/mock-engine";
import { tempDir } from "../support/daemons";
import { ofType, plain, unwrapSecrets } from "../support/engine";
import { stackFacts, stackNames } from "../support/stack-files";
import { runStackVariant, type ConfigEdit } from "../support/stack-variants";

/**
 * Credentials reach containers as files (the official images' `*_PASSWORD_FILE`, config files,
 * `/run/secrets/<NAME>` for the app), not as environment, where `docker inspect` shows them to
 * anyone who reaches the engine. For every stack file, as committed and with the two features
 * whose credentials no committed stack exercises everywhere (PostgreSQL: Patroni and its
 * settings task; HAProxy's sticky cookie: its dynamic-cookie key), no container's environment
 * holds a credential except the names in ENV_CREDENTIALS (none now), which the README lists.
 */

/** What a credential looks like under the mocked engine: generated passwords, keys, secure config. */
function isCredential(value: string): boolean {
  return (
    value.includes("mock-password-for-") ||
    value.includes("PRIVATE KEY-----") ||
    value.includes(OFFLINE_SECRET_PLACEHOLDER)
  );
}

/**
 * Each variant: its label, its edit, and the `<NAME>_FILE` variables every stack must then have
 * (so the check of what they name is never vacuous for the feature the variant adds).
 */
const variants: [string, (stack: string) => ConfigEdit, string[]][] = [
  ["as committed", () => () => undefined, []],
  [
    "on PostgreSQL",
    (stack) => (config) => {
      const db = config["ha-backend:database"] as Record<string, unknown>;
      config["ha-backend:database"] = {
        engine: "postgresql",
        ...(db.shards !== undefined ? { shards: db.shards } : {}),
      };
      if (stackFacts(stack).platform === "kubernetes") {
        config["ha-backend:kubernetes"] = {
          ...(config["ha-backend:kubernetes"] as Record<string, unknown>),
          imageRegistry: "registry.example.com/ha-backend",
        };
      }
    },
    // The settings task's REST API password (a container or a Job per cluster).
    ["PATRONI_RESTAPI_PASSWORD_FILE"],
  ],
  [
    "with HAProxy's sticky cookie",
    () => (config) => {
      const balancer = config["ha-backend:balancer"] as Record<string, unknown>;
      config["ha-backend:balancer"] = {
        ...balancer,
        engine: "haproxy",
        stickyCookie: "SRV",
        // Weights and client-IP hashing are nginx or Docker matters: not what this checks.
        algorithm: "round-robin",
      };
    },
    [],
  ],
];

interface EnvEntry {
  /** `<resource type> <name>`: where it was found. */
  readonly where: string;
  readonly name: string;
  /** Undefined for a reference (Kubernetes `secretKeyRef`): a reference is a credential by definition. */
  readonly value?: string;
}

interface K8sEnv {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: unknown };
}
interface K8sContainer {
  env?: K8sEnv[];
  envFrom?: { secretRef?: unknown }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface K8sPodSpec {
  containers: K8sContainer[];
  volumes?: { name: string; secret?: unknown }[];
}

/** Every pod spec of a run's Deployments, StatefulSets and Jobs, by `<type> <name>`. */
function podSpecs(run: ProgramRun): [string, K8sPodSpec][] {
  return ["apps/v1:Deployment", "apps/v1:StatefulSet", "batch/v1:Job"].flatMap((kind) =>
    ofType(run, `kubernetes:${kind}`).map((r): [string, K8sPodSpec] => [
      `${kind} ${r.name}`,
      plain(r).spec.template.spec as K8sPodSpec,
    ]),
  );
}

interface DockerUpload {
  file: string;
  content: string;
  permissions?: string;
  owner?: string;
}
interface DockerContainer {
  image: string;
  user?: string;
  envs?: string[];
  uploads?: DockerUpload[];
}

function dockerContainers(run: ProgramRun): [string, DockerContainer][] {
  return ofType(run, "docker:index/container:Container").map((r) => [
    r.name,
    unwrapSecrets(r.inputs) as DockerContainer,
  ]);
}

/** Every environment variable of every container (Docker `envs`, Kubernetes `env` and `envFrom`). */
function environment(run: ProgramRun): EnvEntry[] {
  const docker = dockerContainers(run).flatMap(([name, c]) =>
    (c.envs ?? []).map((e) => {
      const at = e.indexOf("=");
      return { where: `Container ${name}`, name: e.slice(0, at), value: e.slice(at + 1) };
    }),
  );
  const kubernetes = podSpecs(run).flatMap(([where, pod]) =>
    pod.containers.flatMap((c) => [
      ...(c.env ?? []).map((e) =>
        e.valueFrom?.secretKeyRef !== undefined
          ? { where, name: e.name }
          : { where, name: e.name, value: e.value ?? "" },
      ),
      // A whole Secret as environment: every key would be a credential nobody listed.
      ...(c.envFrom ?? [])
        .filter((f) => f.secretRef !== undefined)
        .map(() => ({ where, name: "envFrom.secretRef" })),
    ]),
  );
  return [...docker, ...kubernetes];
}

/** The uid of each image's daemon, which must own its secret files (the images start as it). */
const DAEMON_UID: readonly [RegExp, number][] = [
  [/(^|[/:-])(mariadb|mysql):/, 999],
  [/(^|[/:-])redis:/, 999],
  [/ha-backend-patroni:/, 999],
  [/(^|[/:-])nginx:/, 101],
  [/(^|[/:-])haproxy:/, 99],
  // The etcd image has no user of its own: on Docker it runs as root (see EtcdCluster).
  [/\/etcd:/, 0],
  // The exporters' own images run as nobody, redis_exporter's as its own user.
  [/(postgres|mysqld|memcached|nginx-prometheus|blackbox)-exporter:/, 65534],
  [/redis_exporter:/, 59000],
  [/prom\/(prometheus|alertmanager):/, 65534],
  [/grafana\/grafana:/, 472],
];

describe.each(stackNames())("%s", (stack) => {
  describe.each(variants)("%s", (_label, edit, requiredFiles) => {
    let run: ProgramRun;
    beforeAll(async () => {
      run = await runStackVariant(stack, edit(stack));
    });

    it("puts no credential in any container's environment except ENV_CREDENTIALS", () => {
      const credentials = environment(run).filter((e) => e.value === undefined || isCredential(e.value));
      // Some credential must be found at all, or the detection is broken (an app has a session key).
      const found = run.resources.some((r) => isCredential(JSON.stringify(unwrapSecrets(r.inputs))));
      expect(found).toBe(true);
      const unlisted = credentials
        .filter((e) => !(e.name in ENV_CREDENTIALS))
        .map((e) => `${e.where}: ${e.name}`);
      expect(unlisted).toEqual([]);
    });

    it("gives every <NAME>_FILE variable its file, a secret one where it holds a credential", () => {
      const checked = new Set<string>();
      for (const [name, c] of dockerContainers(run)) {
        for (const e of c.envs ?? []) {
          const m = /^([A-Z0-9_]+_FILE)=(\/.*)$/.exec(e);
          if (m === null || m[1].startsWith("ETCD_")) continue;
          checked.add(m[1]);
          const upload = (c.uploads ?? []).find((u) => u.file === m[2]);
          expect([name, m[1], upload?.permissions]).toEqual([name, m[1], "0400"]);
          expect(isCredential(upload?.content ?? "")).toBe(true);
        }
      }
      for (const [where, pod] of podSpecs(run)) {
        const secretVolumes = new Set(
          (pod.volumes ?? []).filter((v) => v.secret !== undefined).map((v) => v.name),
        );
        for (const c of pod.containers) {
          for (const e of c.env ?? []) {
            if (!/^[A-Z0-9_]+_FILE$/.test(e.name) || e.name.startsWith("ETCD_")) continue;
            checked.add(e.name);
            const mount = (c.volumeMounts ?? []).find((v) => v.mountPath === e.value);
            expect([where, e.name, mount !== undefined && secretVolumes.has(mount.name)]).toEqual([
              where,
              e.name,
              true,
            ]);
          }
        }
      }
      expect([...checked]).toEqual(expect.arrayContaining(requiredFiles));
    });

    it("uploads Docker secret files with mode 0400, owned by the uid of the daemon that reads them", () => {
      for (const [name, c] of dockerContainers(run)) {
        const secret = (c.uploads ?? []).filter((u) => isCredential(u.content));
        if (secret.length === 0) continue;
        const uid = DAEMON_UID.find(([image]) => image.test(c.image))?.[1];
        expect([name, c.image, uid !== undefined]).toEqual([name, c.image, true]);
        for (const u of secret) {
          expect([name, u.file, u.permissions, u.owner]).toEqual([name, u.file, "0400", String(uid)]);
        }
      }
    });
  });
});

describe("the README", () => {
  it("lists exactly the credentials that are still environment (ENV_CREDENTIALS)", () => {
    const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
    const block = /<!-- env-credentials -->\n([\s\S]*?)<!-- \/env-credentials -->/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const listed = [...(block ?? "").matchAll(/^- `([A-Za-z0-9_]+)`/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(Object.keys(ENV_CREDENTIALS).sort());
  });
});

describe("the app side: readCredential and EtcdLockClient.fromEnv", () => {
  const dir = tempDir("credentials");
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o400 });
    return path;
  };

  it("reads <NAME>_FILE (trailing newlines dropped, as the images' entrypoints do), else <NAME>", () => {
    const env = { DATABASE_URL_FILE: file("url", "mysql://shop:pw@db/shop\n"), SESSION_SECRET: "plain" };
    expect(readCredential("DATABASE_URL", env)).toBe("mysql://shop:pw@db/shop");
    expect(readCredential("SESSION_SECRET", env)).toBe("plain");
    expect(readCredential("REDIS_URL", env)).toBeUndefined();
    expect(credentialPath("DATABASE_URL")).toBe("/run/secrets/DATABASE_URL");
  });

  it("configures the lock client from the lock service's environment, the key from its file", () => {
    const env = {
      LOCK_ENDPOINTS: "https://locks-etcd-0:2379, https://locks-etcd-1:2379",
      LOCK_CA_PEM: "ca",
      LOCK_CLIENT_CERT_PEM: "cert",
      LOCK_CLIENT_KEY_PEM_FILE: file(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
      ),
      LOCK_TTL_SECONDS: "7",
    };
    const client = EtcdLockClient.fromEnv(env) as unknown as {
      options: { endpoints: string[]; tls: { key: string } };
      ttlSeconds: number;
    };
    expect(client.options.endpoints).toEqual(["https://locks-etcd-0:2379", "https://locks-etcd-1:2379"]);
    expect(client.options.tls.key).toBe("-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----");
    expect(client.ttlSeconds).toBe(7);
    expect(() => EtcdLockClient.fromEnv({ ...env, LOCK_CLIENT_KEY_PEM_FILE: undefined })).toThrow(
      "EtcdLockClient.fromEnv: LOCK_CLIENT_KEY_PEM (or LOCK_CLIENT_KEY_PEM_FILE) is not set.",
    );
    expect(() => EtcdLockClient.fromEnv({ ...env, LOCK_TTL_SECONDS: "ten" })).toThrow(
      'LOCK_TTL_SECONDS must be whole seconds, but "ten" was provided.',
    );
  });
});
