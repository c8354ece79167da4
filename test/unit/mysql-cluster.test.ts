import {
  MysqlCluster,
  resolveMysqlClusterArgs,
  type MysqlClusterArgs,
} from "../../components/database/mysql-cluster";
import { ShardedMysql } from "../../components/database/sharding";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import { expectSecretsHidden, isWrappedSecret, ofType, one, plain, runComponents } from "../support/engine";

const CONTAINER = "docker:index/container:Container";

describe("MysqlCluster on Docker (replication, semi-sync)", () => {
  const build = () => {
    const platform = new DockerPlatform("docker", { prefix: "dev" });
    const db = new MysqlCluster("orders", {
      platform,
      mode: "replication",
      members: 3,
      semiSync: true,
      database: "orders",
      user: "shop",
      protect: true,
    });
    return { rw: db.rwEndpoint, ro: db.roEndpoint, url: db.connectionUrl, members: db.members };
  };

  it("runs three MariaDB members with protected volumes and two routers", async () => {
    const run = await runComponents(build);
    const members = ofType(run, CONTAINER).filter((c) => /^orders-db-\d+$/.test(c.name));
    expect(members.map((c) => c.name).sort()).toEqual(["orders-db-0", "orders-db-1", "orders-db-2"]);
    expect(ofType(run, "docker:index/volume:Volume").every((v) => v.protect)).toBe(true);
    const m = plain(one(run, CONTAINER, "orders-db-1"));
    expect(m.image).toBe("sha256:mock-mariadb:10.11.14");
    expect(m.entrypoints).toEqual(["/bin/bash", "/etc/ha-backend/db/start.sh"]);
    expect(m.volumes).toEqual([{ volumeName: "dev-orders-db-1-data", containerPath: "/var/lib/mysql" }]);
    // Peers and the router reach the members; the app tier does not.
    expect(m.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-orders-db-from-orders-router",
    ]);
    const router = plain(one(run, CONTAINER, "orders-router-0"));
    expect(router.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-orders-db-from-orders-router",
      "dev-orders-router-from-app",
    ]);
    expect(run.outputs.rw).toBe("orders-router:3306");
    expect(run.outputs.ro).toBe("orders-router:3307");
    expect(run.outputs.url).toBe("[secret]");
  });

  it("keeps every password out of plain config: SQL and SST files are secret, my.cnf and the start script are not", async () => {
    const run = await runComponents(build);
    const uploads = one(run, CONTAINER, "orders-db-0").inputs.uploads as { file: string; content: unknown }[];
    expect(uploads.map((u) => [u.file, isWrappedSecret(u.content)])).toEqual([
      // The promotion script reads the replication password from replica.sql at run time.
      ["/etc/ha-backend/db/promote.sh", false],
      ["/etc/ha-backend/db/start.sh", false],
      ["/etc/mysql/conf.d/ha-backend.cnf", false],
      ["/etc/ha-backend/db/init.sql", true],
      ["/etc/ha-backend/db/replica.sql", true],
      // Root's password: the image (and the promotion script) read it from this file.
      ["/etc/ha-backend/db/root-password", true],
      ["/etc/mysql/conf.d/zz-ha-backend-secret.cnf", true],
    ]);
    const passwords = ofType(run, "random:index/randomPassword:RandomPassword").map(
      (p) => `mock-password-for-${p.name}`,
    );
    // Root, app, replication, SST, and the exporter's monitor user's.
    expect(passwords).toHaveLength(5);
    expectSecretsHidden(run, passwords);
    // The root password reaches the image as a file the environment names, never as env itself.
    const member = plain(one(run, CONTAINER, "orders-db-0"));
    expect(member.envs).toEqual(["MARIADB_ROOT_PASSWORD_FILE=/etc/ha-backend/db/root-password"]);
    expect(member.uploads.find((u: { file: string }) => u.file.endsWith("root-password")).content).toBe(
      "mock-password-for-orders-root-password",
    );
  });
});

describe("MysqlCluster on Kubernetes (Galera)", () => {
  it("runs a StatefulSet with per-member claims, the router finding members by stable DNS names", async () => {
    const run = await runComponents(() => {
      const db = new MysqlCluster("blog", {
        platform: new KubernetesPlatform("k8s", { namespace: "prod" }),
        mode: "galera",
        database: "blog",
        user: "blog",
        protect: true,
      });
      return { config: db.routerConfig, cnf: db.myCnf };
    });
    const sts = one(run, "kubernetes:apps/v1:StatefulSet", "blog-db-statefulset");
    expect(sts.protect).toBe(true);
    expect(plain(sts).spec.replicas).toBe(3);
    expect(plain(sts).spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name)).toEqual([
      "gcomm",
      "ist",
      "mysql",
      "sst",
    ]);
    const secret = one(run, "kubernetes:core/v1:Secret", "blog-db-secret-files");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    expect(run.outputs.cnf).toContain(
      "wsrep_cluster_address = gcomm://blog-db-0.blog-db-headless.prod.svc.cluster.local,blog-db-1.blog-db-headless.prod.svc.cluster.local,blog-db-2.blog-db-headless.prod.svc.cluster.local",
    );
    expect(run.outputs.config).toContain(
      "server blog-db-1 blog-db-1.blog-db-headless.prod.svc.cluster.local:3306 check backup",
    );
    // Only the router's tier reaches the database pods.
    const policy = plain(one(run, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "blog-db-netpol")).spec
      .ingress[1];
    expect(policy.from[0].podSelector.matchExpressions[0].values).toEqual(["blog-router"]);
  });
});

describe("ShardedMysql", () => {
  it("creates one independent cluster per shard and a map without credentials", async () => {
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "dev" });
      return {
        map: new ShardedMysql("orders", { platform, shards: 3, database: "orders", user: "shop" }).shardMap,
      };
    });
    expect(
      ofType(run, "ha-backend:index:MysqlCluster")
        .map((c) => c.name)
        .sort(),
    ).toEqual(["orders-0", "orders-1", "orders-2"]);
    expect(run.outputs.map).toEqual({
      version: 3,
      scheme: "jump-consistent-hash(fnv1a-64(utf8(key)))",
      shards: [0, 1, 2].map((id) => ({ id, rw: `orders-${id}-router:3306`, ro: `orders-${id}-router:3307` })),
    });
  });
});

describe("resolveMysqlClusterArgs", () => {
  const base: MysqlClusterArgs = { platform: { kind: "docker" } as Platform, database: "shop", user: "shop" };

  it("defaults to a 3-node MariaDB Galera cluster (automatic failover); replication is an explicit choice", () => {
    expect(resolveMysqlClusterArgs("db", base)).toMatchObject({
      engine: "mariadb",
      mode: "galera",
      members: 3,
      semiSync: false,
    });
    expect(resolveMysqlClusterArgs("db", { ...base, mode: "replication" }).members).toBe(2);
  });

  it.each<[string, Partial<MysqlClusterArgs>, string]>([
    [
      "Galera on MySQL",
      { engine: "mysql", mode: "galera" },
      'MysqlCluster "db": mode must be replication when engine is mysql (Galera here is MariaDB\'s), but "galera" was provided.',
    ],
    [
      "MySQL without a mode (it has no automatic failover here)",
      { engine: "mysql" },
      'MysqlCluster "db": mode must be given with engine mysql: MySQL has no automatic failover here (no Galera; Group Replication is not supported), only replication with manual failover, but nothing was provided. Set mode: "replication" to accept manual failover, or engine: "mariadb" for Galera.',
    ],
    [
      "a two-node Galera",
      { mode: "galera", members: 2 },
      "members must be at least 3 for galera (a majority must survive one loss), but 2 was provided.",
    ],
    [
      "semi-sync without a replica",
      { mode: "replication", members: 1, semiSync: true },
      "semiSync must have a replica to acknowledge writes (members of at least 2), but 1 was provided.",
    ],
    [
      "semi-sync on Galera",
      { mode: "galera", semiSync: true },
      "semiSync must only be set in replication mode (Galera is synchronous already), but true was provided.",
    ],
    [
      "a database name with a dash",
      { database: "my-shop" },
      'database must be a lowercase SQL name (a-z, 0-9, _; at most 32), but "my-shop" was provided.',
    ],
    [
      "an inactive timeout below the suspect timeout",
      { mode: "galera", galera: { suspectTimeoutMs: 5000, inactiveTimeoutMs: 3000 } },
      "galera.inactiveTimeoutMs must be greater than suspectTimeoutMs (5000), but 3000 was provided.",
    ],
    [
      "ten members",
      { mode: "replication", members: 10 },
      "members must be a whole number from 1 to 9, but 10 was provided.",
    ],
  ])("rejects %s", (_label, patch, message) => {
    expect(() => resolveMysqlClusterArgs("db", { ...base, ...patch })).toThrow(message);
  });
});
