import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  PATRONI_API_RULES,
  PATRONI_IMAGE,
  PATRONI_IMAGE_CONTEXT,
  PostgresCluster,
  type PostgresClusterArgs,
} from "../../components/database/postgres-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform, PRIVATE_NETWORKS } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import {
  expectRejectedBeforeAnyResource,
  expectSecretsHidden,
  isWrappedSecret,
  ofType,
  one,
  plain,
  runComponents,
} from "../support/engine";

const CONTAINER = "docker:index/container:Container";
const STS = "kubernetes:apps/v1:StatefulSet";
const ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role";

/** The patroni.yml a Docker member gets (secret upload, unwrapped for the test). */
function uploaded(run: Awaited<ReturnType<typeof runComponents>>, member: string, path: string): string {
  const uploads = plain(one(run, CONTAINER, member)).uploads as { file: string; content: string }[];
  const u = uploads.find((x) => x.file === path);
  if (u === undefined) throw new Error(`${member} has no ${path}`);
  return u.content;
}

describe("PostgresCluster on Docker (Patroni on etcd)", () => {
  const build = () => {
    const platform = new DockerPlatform("docker", { prefix: "dev" });
    const db = new PostgresCluster("orders", {
      platform,
      members: 3,
      etcdMembers: 1,
      database: "orders",
      user: "shop",
      protect: true,
    });
    return {
      rw: db.rwEndpoint,
      ro: db.roEndpoint,
      url: db.connectionUrl,
      readUrl: db.readConnectionUrl,
      budget: db.failoverBudgetSeconds,
      dcs: db.dcs,
      router: db.routerConfig,
    };
  };

  it("runs three Patroni members from the image built here, with etcd as the store and two routers", async () => {
    const run = await runComponents(build);
    const image = plain(
      one(run, "docker:index/image:Image", `dev-image-${PATRONI_IMAGE.replace(/[^a-zA-Z0-9.-]/g, "-")}`),
    );
    expect(image).toMatchObject({
      imageName: PATRONI_IMAGE,
      skipPush: true,
      build: { context: PATRONI_IMAGE_CONTEXT },
    });
    const names = ofType(run, CONTAINER)
      .map((c) => c.name)
      .sort();
    expect(names).toEqual([
      "orders-etcd-0",
      // No exporters: nothing on this Docker platform scrapes them (no scraperTier).
      "orders-pg-0",
      "orders-pg-1",
      "orders-pg-2",
      "orders-pg-dcs-954b11d583",
      "orders-router-0",
      "orders-router-1",
    ]);
    const m = plain(one(run, CONTAINER, "orders-pg-1"));
    expect(m.image).toBe(PATRONI_IMAGE);
    expect(m.entrypoints).toEqual(["/usr/bin/patroni", "/etc/ha-backend/pg/patroni.yml"]);
    expect(m.user).toBe("999");
    // Each member's identity comes from its environment; the file is the same for all.
    expect(m.envs).toEqual([
      "PATRONI_NAME=orders-pg-1",
      "PATRONI_POSTGRESQL_CONNECT_ADDRESS=orders-pg-1:5432",
      "PATRONI_RESTAPI_CONNECT_ADDRESS=orders-pg-1:8008",
    ]);
    expect(m.volumes).toEqual([
      { volumeName: "dev-orders-pg-1-data", containerPath: "/var/lib/postgresql/data" },
    ]);
    expect(m.healthcheck.tests[0]).toBe("CMD");
    expect(m.healthcheck.tests.join(" ")).toContain("http://127.0.0.1:8008/readiness");
    // Peers, etcd's, the router's and the settings task's networks; never the app's.
    expect(m.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-orders-etcd-from-orders-pg",
      "dev-orders-pg-from-orders-pg-admin",
      "dev-orders-pg-from-orders-router",
    ]);
    // The settings task: run once to completion, on its own network only, the REST API password
    // a secret file of its own user's, started only once every member is up and healthy.
    const task = one(run, CONTAINER, "orders-pg-dcs-954b11d583");
    const t = plain(task);
    expect([t.mustRun, t.attach, t.restart]).toEqual([false, true, "no"]);
    expect(t.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-orders-pg-from-orders-pg-admin",
    ]);
    expect(t.entrypoints.slice(0, 3)).toEqual([
      "python3",
      "/etc/ha-backend/pg/apply-settings.py",
      "/etc/ha-backend/pg/dynamic-config.json",
    ]);
    expect(t.entrypoints.slice(3)).toEqual(["orders-pg-0:8008", "orders-pg-1:8008", "orders-pg-2:8008"]);
    // No credential in its environment, which is therefore not hidden from review.
    expect(isWrappedSecret(task.inputs.envs)).toBe(false);
    expect(t.envs).toEqual([
      "PATRONI_RESTAPI_PASSWORD_FILE=/etc/ha-backend/pg/restapi-password",
      "PATRONI_RESTAPI_USERNAME=patroni",
    ]);
    const password = (task.inputs.uploads as { file: string; content: unknown }[]).find(
      (u) => u.file === "/etc/ha-backend/pg/restapi-password",
    );
    expect(isWrappedSecret(password?.content)).toBe(true);
    expect(t.uploads.find((u: { file: string }) => u.file === "/etc/ha-backend/pg/restapi-password")).toEqual(
      {
        file: "/etc/ha-backend/pg/restapi-password",
        content: "mock-password-for-orders-restapi-password",
        permissions: "0400",
        owner: "999",
        group: "999",
      },
    );
    expect(task.options.dependencies).toEqual(
      expect.arrayContaining([
        "docker:index/container:Container::orders-pg-0",
        "docker:index/container:Container::orders-pg-2",
      ]),
    );
    const settings = JSON.parse(
      uploaded(run, "orders-pg-dcs-954b11d583", "/etc/ha-backend/pg/dynamic-config.json"),
    );
    expect([settings.ttl, settings.loop_wait, settings.retry_timeout]).toEqual([10, 2, 3]);
    expect(
      plain(one(run, CONTAINER, "orders-etcd-0")).networksAdvanced.map((n: { name: string }) => n.name),
    ).toEqual(["dev-orders-etcd-from-orders-pg"]);
    expect(ofType(run, "docker:index/volume:Volume").every((v) => v.protect)).toBe(true);
    expect(run.outputs).toMatchObject({
      rw: "orders-router:5432",
      ro: "orders-router:5433",
      url: "[secret]",
      readUrl: "[secret]",
      budget: 13,
      dcs: "etcd",
    });
  });

  it("renders one patroni.yml for every member: etcd3 hosts, sync mode, fast timings, samenet peers", async () => {
    const run = await runComponents(build);
    const files = ["orders-pg-0", "orders-pg-2"].map((m) =>
      uploaded(run, m, "/etc/ha-backend/pg/patroni.yml"),
    );
    expect(files[0]).toBe(files[1]);
    const doc = parse(files[0]);
    expect(doc.scope).toBe("orders-pg");
    expect(doc.name).toBeUndefined();
    expect(doc.etcd3).toEqual({ hosts: ["orders-etcd-0:2379"] });
    expect(doc.bootstrap.dcs).toMatchObject({
      ttl: 10,
      loop_wait: 2,
      retry_timeout: 3,
      synchronous_mode: true,
      synchronous_mode_strict: false,
      maximum_lag_on_failover: 1048576,
    });
    expect(doc.postgresql.data_dir).toBe("/var/lib/postgresql/data/pgdata");
    // A slot for every member, named as Patroni names it after the container, so a member that
    // was away (a failover, a restart) finds its slot on whichever member leads.
    expect(Object.keys(doc.bootstrap.dcs.slots)).toEqual(["orders_pg_0", "orders_pg_1", "orders_pg_2"]);
    // ... holding back at most a quarter of the default 10 GiB volume.
    expect(doc.postgresql.parameters.max_slot_wal_keep_size).toBe("2560MB");
    expect(doc.postgresql.pg_hba).toContain("host replication replicator samenet scram-sha-256");
    expect(doc.postgresql.authentication.superuser.password).toBe(
      "mock-password-for-orders-superuser-password",
    );
    expect(run.outputs.router).toContain("server orders-pg-2 orders-pg-2:5432 check port 8008");
    expect(run.outputs.router).toContain("inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions");
  });

  it("keeps every password secret: patroni.yml and the bootstrap script are secret uploads, nothing else shows one", async () => {
    const run = await runComponents(build);
    const uploads = one(run, CONTAINER, "orders-pg-0").inputs.uploads as { file: string; content: unknown }[];
    expect(uploads.map((u) => [u.file, isWrappedSecret(u.content)])).toEqual([
      ["/etc/ha-backend/pg/patroni.yml", true],
      ["/etc/ha-backend/pg/post-bootstrap.sh", true],
    ]);
    const passwords = ofType(run, "random:index/randomPassword:RandomPassword").map(
      (p) => `mock-password-for-${p.name}`,
    );
    // Superuser, replication, rewind, app, the REST API's (for the settings task) and the
    // exporter's pg_monitor role's.
    expect(passwords).toHaveLength(6);
    expectSecretsHidden(run, passwords);
    const bootstrap = uploaded(run, "orders-pg-0", "/etc/ha-backend/pg/post-bootstrap.sh");
    expect(bootstrap).toContain(`CREATE ROLE "shop" LOGIN PASSWORD 'mock-password-for-orders-app-password';`);
    expect(bootstrap).toContain(
      `CREATE ROLE "metrics" LOGIN PASSWORD 'mock-password-for-orders-metrics-password' CONNECTION LIMIT 3 IN ROLE pg_monitor;`,
    );
  });
});

describe("PostgresCluster on Kubernetes (Patroni on the Kubernetes API)", () => {
  const build =
    (args: Partial<PostgresClusterArgs> = {}, registry: string | undefined = "registry.example.com/shop") =>
    () => {
      const platform = new KubernetesPlatform("k8s", { namespace: "prod", imageRegistry: registry });
      const db = new PostgresCluster("orders", {
        platform,
        database: "orders",
        user: "shop",
        protect: true,
        ...args,
      });
      return { dcs: db.dcs, budget: db.failoverBudgetSeconds, router: db.routerConfig };
    };

  it("needs no etcd: a Role of exactly configmaps and pods, bound to the members' own account", async () => {
    const run = await runComponents(build());
    expect(run.outputs.dcs).toBe("platform");
    expect(ofType(run, STS).map((r) => r.name)).toEqual(["orders-pg-statefulset"]);
    expect(plain(one(run, ROLE, "orders-pg-role")).rules).toEqual(
      PATRONI_API_RULES.map((r) => ({ apiGroups: [""], resources: r.resources, verbs: r.verbs })),
    );
    // No delete, no secrets, nothing cluster-wide.
    const verbs = plain(one(run, ROLE, "orders-pg-role")).rules.flatMap((r: { verbs: string[] }) => r.verbs);
    expect(verbs).not.toContain("delete");
    expect(ofType(run, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")).toEqual([]);
    expect(ofType(run, ROLE).map((r) => r.name)).toEqual(["orders-pg-role"]);
    const pod = plain(one(run, STS, "orders-pg-statefulset")).spec.template.spec;
    expect(pod.serviceAccountName).toBe("orders-pg");
    // The router has no business with the API.
    const router = plain(one(run, "kubernetes:apps/v1:Deployment", "orders-router-deployment")).spec.template
      .spec;
    expect(router.automountServiceAccountToken).toBe(false);
  });

  it("runs a protected StatefulSet of three with a claim per member, pushed image, probes and member env", async () => {
    const run = await runComponents(build({ storageGi: 50 }));
    const sts = one(run, STS, "orders-pg-statefulset");
    expect(sts.protect).toBe(true);
    const s = plain(sts).spec;
    expect(s.replicas).toBe(3);
    expect(s.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("50Gi");
    expect(s.persistentVolumeClaimRetentionPolicy.whenDeleted).toBe("Retain");
    const c = s.template.spec.containers[0];
    expect(c.image).toBe(`registry.example.com/shop/${PATRONI_IMAGE.split(":")[0]}@sha256:mock`);
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readiness", port: "patroni" });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/liveness", port: "patroni" });
    expect(s.template.spec.securityContext).toMatchObject({ runAsUser: 999, fsGroup: 999 });
    const env = Object.fromEntries(c.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
    expect(env.PATRONI_NAME).toBe("$(HA_BACKEND_MEMBER)");
    expect(env.PATRONI_POSTGRESQL_CONNECT_ADDRESS).toBe(
      "$(HA_BACKEND_MEMBER).orders-pg-headless.prod.svc.cluster.local:5432",
    );
  });

  it("puts patroni.yml in a Secret, with the namespace's ConfigMaps as the store and pod networks in pg_hba", async () => {
    const run = await runComponents(build({ members: 5, storageGi: 40 }));
    const secret = one(run, "kubernetes:core/v1:Secret", "orders-pg-secret-files");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    const files = plain(secret).stringData as Record<string, string>;
    const yml = Object.values(files).find((v) => v.includes("scope: orders-pg"));
    expect(yml).toBeDefined();
    const doc = parse(yml!);
    expect(doc.kubernetes).toEqual({
      namespace: "prod",
      labels: { "app.kubernetes.io/part-of": "ha-backend" },
      scope_label: "app.kubernetes.io/name",
      use_endpoints: false,
      bypass_api_service: false,
    });
    expect(doc.postgresql.pg_hba.filter((l: string) => l.includes(" replicator "))).toEqual(
      PRIVATE_NETWORKS.map((n) => `host replication replicator ${n} scram-sha-256`),
    );
    // The pods' names (the StatefulSet's) are the members' names, and so their slots' names.
    expect(Object.keys(doc.bootstrap.dcs.slots)).toEqual([0, 1, 2, 3, 4].map((i) => `orders_pg_${i}`));
    expect(doc.postgresql.parameters.max_slot_wal_keep_size).toBe("10240MB");
    // Nothing with a password goes to a ConfigMap.
    for (const cm of ofType(run, "kubernetes:core/v1:ConfigMap")) {
      expect(JSON.stringify(plain(cm))).not.toContain("mock-password");
    }
  });

  it("uses a prebuilt image without a registry, and builds nothing", async () => {
    const run = await runComponents(build({ image: "registry.example.com/patroni:15.18-1" }, undefined));
    expect(ofType(run, "docker:index/image:Image")).toEqual([]);
    expect(plain(one(run, STS, "orders-pg-statefulset")).spec.template.spec.containers[0].image).toBe(
      "registry.example.com/patroni:15.18-1",
    );
  });
});

describe("PostgresCluster rejects bad args before creating anything", () => {
  const docker = (): Platform => new DockerPlatform("docker", { prefix: "dev" });
  const k8s = (): Platform => new KubernetesPlatform("k8s", { namespace: "prod" });
  const cases: [string, () => Platform, Partial<PostgresClusterArgs>, string][] = [
    [
      "strict sync with one member",
      docker,
      { members: 1, synchronousMode: true, synchronousModeStrict: true },
      'PostgresCluster "pg": synchronousMode must have a standby to wait for (members of at least 2), but 1 was provided.',
    ],
    [
      "strict sync with two members",
      docker,
      { members: 2, synchronousModeStrict: true },
      "synchronousModeStrict must have two standbys (members of at least 3), or losing one replica stops all writes, but 2 was provided.",
    ],
    [
      "strict without sync",
      docker,
      { synchronousMode: false, synchronousModeStrict: true },
      "synchronousModeStrict must only be set with synchronousMode, but true was provided.",
    ],
    [
      "timings that break loop_wait + 2 × retry_timeout ≤ ttl",
      docker,
      { timings: { ttl: 10, loopWait: 5, retryTimeout: 3 } },
      'timings must keep loopWait + 2 × retryTimeout ≤ ttl, in whole seconds of at least 1 (loopWait + 2 × retryTimeout (11) must not exceed ttl (10)), but {"ttl":10,"loopWait":5,"retryTimeout":3} was provided.',
    ],
    ["a user Patroni owns", docker, { user: "replicator" }, "user must not be one of Patroni's own roles"],
    [
      "an unpinned image",
      docker,
      { image: "postgres:latest" },
      'image must be pinned by a tag other than latest, or by a digest, but "postgres:latest" was provided.',
    ],
    [
      "no image where none can be built",
      k8s,
      {},
      "image must be given when the platform cannot build images (a KubernetesPlatform without imageRegistry), but nothing was provided. Give the platform an imageRegistry",
    ],
    [
      "the platform store on Docker",
      docker,
      { dcs: "platform" },
      'dcs must be etcd on a platform without an API to keep state in (docker), but "platform" was provided.',
    ],
    ["an even etcd count", docker, { etcdMembers: 2 }, "etcdMembers must be 1, 3, 5 or 7"],
    [
      "a bad shared_buffers",
      docker,
      { sharedBuffers: "1G" },
      'sharedBuffers must be a PostgreSQL size such as 128MB or 2GB, but "1G" was provided.',
    ],
  ];

  // Each rejection also registers no real resource (the helper checks both).
  it.each(cases)("%s", async (_, platform, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      void new PostgresCluster("pg", { platform: platform(), database: "orders", user: "shop", ...args });
    }, message);
  });
});

describe("the Patroni image", () => {
  it("is named after the Dockerfile's content, so editing it rolls the members", () => {
    const dockerfile = readFileSync(`${PATRONI_IMAGE_CONTEXT}/Dockerfile`, "utf8");
    const { createHash } = jest.requireActual<typeof import("node:crypto")>("node:crypto");
    expect(PATRONI_IMAGE.endsWith(createHash("sha256").update(dockerfile).digest("hex").slice(0, 12))).toBe(
      true,
    );
  });
});
