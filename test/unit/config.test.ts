import {
  DEFAULT_CACHE_ENGINE,
  DEFAULT_REDIS_MODE,
  databaseMembers,
  decodeConfigValue,
  parseStackConfig,
  postgresqlSettings,
  StackConfigError,
} from "../../infra/config";
import { runWithConfig, type RecordedResource } from "../support/engine";
import { OFFLINE_TLS_CERTIFICATE, OFFLINE_TLS_KEY } from "../../scripts/offline-tls";

const base = { topology: "ecommerce", platform: "docker" };
// A real, matching, public pair: the checks parse certificates and keys.
const PEM_CERT = OFFLINE_TLS_CERTIFICATE;
const PEM_KEY = OFFLINE_TLS_KEY;

/** The problems of a config that must be rejected (fails the test if it is accepted). */
function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    parseStackConfig(raw);
  } catch (e) {
    if (e instanceof StackConfigError) return e.problems;
    throw e;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)}`);
}

describe("parseStackConfig", () => {
  it("fills every default from the two required keys", () => {
    expect(parseStackConfig(base)).toEqual({
      topology: "ecommerce",
      platform: "docker",
      app: { replicas: 2, port: 8080, healthCheckPath: "/healthz", env: {} },
      balancer: {
        engine: "nginx",
        replicas: 2,
        algorithm: "round-robin",
        backups: 0,
        tls: "off",
        health: { intervalMs: 2000, timeoutMs: 1000, fall: 3, rise: 2 },
        retries: 2,
      },
      database: {
        engine: "mariadb",
        semiSync: false,
        shards: 1,
        storageGi: 10,
        routerReplicas: 2,
      },
      // Engines per topology are filled in where they are used (DEFAULT_CACHE_ENGINE, locks per topology).
      cache: {},
      locks: {},
      // Exporters on; the stack's own Prometheus (Docker) and the operator's objects off.
      monitoring: {
        exporters: true,
        enabled: false,
        prometheusOperator: false,
        scrapeIntervalSeconds: 15,
        ports: { prometheus: 9090, alertmanager: 9093, grafana: 3000 },
        scraper: { namespace: "monitoring", podLabels: { "app.kubernetes.io/name": "prometheus" } },
        labels: {},
        thresholds: {},
      },
      secretKeys: [],
      warnings: [],
    });
  });

  it("picks the topology's balancer engine unless one is given: nginx for the shop, HAProxy for the blog", () => {
    expect(parseStackConfig({ topology: "blog", platform: "docker" }).balancer.engine).toBe("haproxy");
    expect(parseStackConfig({ ...base, balancer: { engine: "haproxy" } }).balancer.engine).toBe("haproxy");
  });

  it("accepts a provided certificate when the key is a secret", () => {
    const c = parseStackConfig(
      { ...base, balancer: { tls: "provided" }, tlsCertificate: PEM_CERT, tlsKey: PEM_KEY },
      "stack config",
      ["tlsKey"],
    );
    expect(c.balancer.tls).toBe("provided");
  });

  it("keeps explicit values, including a custom image and resources", () => {
    const c = parseStackConfig({
      topology: "blog",
      platform: "kubernetes",
      environment: "development",
      app: {
        image: "ghcr.io/acme/blog:1.4.2",
        replicas: 5,
        port: 3000,
        resources: { cpu: "1", memory: "1Gi" },
      },
      kubernetes: { namespace: "blog-prod", storageClass: "fast" },
    });
    expect(c.app).toMatchObject({ image: "ghcr.io/acme/blog:1.4.2", replicas: 5, port: 3000 });
    expect(c.kubernetes).toEqual({ namespace: "blog-prod", storageClass: "fast" });
  });

  // Each row: a bad config and the exact sentence a user sees (key, rule, value given, fix).
  it.each<[string, Record<string, unknown>, string]>([
    [
      "missing topology",
      { platform: "docker" },
      "ha-backend:topology must be set to one of ecommerce, blog, but nothing was provided. Add ha-backend:topology to the stack file.",
    ],
    [
      "unknown topology",
      { topology: "shop", platform: "docker" },
      'ha-backend:topology must be one of ecommerce, blog, but "shop" was provided. Use one of: ecommerce, blog.',
    ],
    [
      "unknown platform",
      { ...base, platform: "swarm" },
      'ha-backend:platform must be one of docker, kubernetes, but "swarm" was provided. Use one of: docker, kubernetes.',
    ],
    [
      "an edge Service type Kubernetes does not have",
      { ...base, platform: "kubernetes", environment: "development", kubernetes: { serviceType: "Ingress" } },
      'ha-backend:kubernetes.serviceType must be one of LoadBalancer, NodePort, ClusterIP, but "Ingress" was provided. Use one of: LoadBalancer, NodePort, ClusterIP.',
    ],
    [
      "an API server address that is not a CIDR",
      {
        ...base,
        platform: "kubernetes",
        environment: "development",
        database: { engine: "postgresql", postgresql: { image: "registry.example.com/patroni:15-1" } },
        kubernetes: { apiServerCidrs: ["kubernetes.default"] },
      },
      'ha-backend:kubernetes.apiServerCidrs.0 must be an IPv4 or IPv6 network in CIDR notation (address/prefix), but "kubernetes.default" was provided. Write e.g. apiServerCidrs: [172.18.0.2/32] (kubectl get endpoints kubernetes -n default).',
    ],
    [
      "no wait at all for the edge's address",
      {
        ...base,
        platform: "kubernetes",
        environment: "development",
        kubernetes: { serviceTimeoutMinutes: 0 },
      },
      "ha-backend:kubernetes.serviceTimeoutMinutes must be at least 1, but 0 was provided. Set it to 1 or more.",
    ],
    [
      "zero replicas",
      { ...base, app: { replicas: 0 } },
      "ha-backend:app.replicas must be at least 1, but 0 was provided. Set it to 1 or more.",
    ],
    [
      "negative replicas",
      { ...base, app: { replicas: -2 } },
      "ha-backend:app.replicas must be at least 1, but -2 was provided. Set it to 1 or more.",
    ],
    [
      "fractional replicas",
      { ...base, app: { replicas: 2.5 } },
      "ha-backend:app.replicas must be a whole number, but 2.5 was provided. Write it as a whole number.",
    ],
    [
      "replicas as a quoted string",
      { ...base, app: { replicas: "3" } },
      'ha-backend:app.replicas must be a number, but "3" was provided. Write the number without quotes.',
    ],
    [
      "port above 65535",
      { ...base, app: { port: 70000 } },
      "ha-backend:app.port must be at most 65535, but 70000 was provided. Set it to 65535 or less.",
    ],
    [
      "port 0",
      { ...base, app: { port: 0 } },
      "ha-backend:app.port must be at least 1, but 0 was provided. Set it to 1 or more.",
    ],
    [
      "misspelt app key",
      { ...base, app: { replica: 2 } },
      'ha-backend:app.replica is not a known setting: ha-backend:app must only contain known keys, but "replica" was provided. Remove it or fix its spelling (infra/config.ts lists every key).',
    ],
    [
      "unknown top-level key",
      { ...base, colour: "blue" },
      'ha-backend:colour is not a known setting: ha-backend config must only contain known keys, but "colour" was provided. Remove it or fix its spelling (infra/config.ts lists every key).',
    ],
    [
      "unpinned image",
      { ...base, app: { image: "nginx:latest" } },
      'ha-backend:app.image must be pinned by a tag other than latest, or by a digest, but "nginx:latest" was provided. Give an explicit version, e.g. image: registry.example.com:5000/shop:1.4.2 or nginx:1.28.0-alpine@sha256:…, or remove it to use the demo app.',
    ],
    [
      "health path without slash",
      { ...base, app: { healthCheckPath: "healthz" } },
      'ha-backend:app.healthCheckPath must be a URL path starting with / (letters, digits, / _ . -; at most 255), but "healthz" was provided. Write e.g. /healthz.',
    ],
    [
      "bad CPU quantity",
      { ...base, app: { resources: { cpu: "lots", memory: "256Mi" } } },
      'ha-backend:app.resources.cpu must be a CPU quantity such as 250m, 0.5 or 2, but "lots" was provided. Write e.g. cpu: 250m.',
    ],
    [
      "resources without memory",
      { ...base, app: { resources: { cpu: "250m" } } },
      "ha-backend:app.resources.memory must be set to a string, but nothing was provided. Add ha-backend:app.resources.memory to the stack file.",
    ],
    [
      "env name starting with a digit",
      { ...base, app: { env: { "1BAD": "x" } } },
      'ha-backend:app.env.1BAD must use names of letters, digits and _ that do not start with a digit, but "1BAD" was provided. Rename the variable, e.g. LOG_LEVEL.',
    ],
    [
      "env value that YAML read as a number",
      { ...base, app: { env: { WORKERS: 3 } } },
      'ha-backend:app.env.WORKERS must be a string, but 3 was provided. Put it in quotes: "3".',
    ],
    [
      "app given as a scalar",
      { ...base, app: "big" },
      'ha-backend:app must be a map of settings (key: value lines), but "big" was provided. Write it as a map of settings (key: value lines).',
    ],
    [
      "kubernetes settings on the docker platform",
      { ...base, kubernetes: { namespace: "prod" } },
      'ha-backend:kubernetes must only be set when platform is kubernetes (platform is docker), but {"namespace":"prod"} was provided. Remove ha-backend:kubernetes, or set ha-backend:platform: kubernetes.',
    ],
    [
      "namespace that is not a DNS label",
      {
        topology: "blog",
        platform: "kubernetes",
        environment: "development",
        kubernetes: { namespace: "Prod_NS" },
      },
      "ha-backend:kubernetes.namespace must be a DNS label (a-z, 0-9, '-', at most 63, starting and ending with a letter or digit), but \"Prod_NS\" was provided. Write e.g. ecommerce-prod.",
    ],
    [
      "unknown balancer engine",
      { ...base, balancer: { engine: "traefik" } },
      'ha-backend:balancer.engine must be one of nginx, haproxy, but "traefik" was provided. Use one of: nginx, haproxy.',
    ],
    [
      "weights on kubernetes",
      { topology: "blog", platform: "kubernetes", environment: "development", balancer: { weights: [2, 1] } },
      "ha-backend:balancer.weights must only be set on the docker platform (Kubernetes pods have no stable address), but [2,1] was provided. Remove ha-backend:balancer.weights.",
    ],
    [
      "a weight per member missing",
      { ...base, app: { replicas: 3 }, balancer: { weights: [2, 1] } },
      "ha-backend:balancer.weights must list one weight per app member (app.replicas is 3), but [2,1] was provided. Give 3 weights, or remove them for equal shares.",
    ],
    [
      "a weight out of range",
      { ...base, balancer: { weights: [300, 1] } },
      "ha-backend:balancer.weights.0 must be at most 256, but 300 was provided. Set it to 256 or less.",
    ],
    [
      "nginx backups with client-IP hashing (nginx rejects it)",
      { ...base, balancer: { algorithm: "ip-hash", backups: 1 } },
      "ha-backend:balancer.backups must be 0 when nginx balances by client IP (ip-hash) (nginx rejects backup servers with hash balancing), but 1 was provided. Set ha-backend:balancer.backups: 0, use algorithm round-robin or least-conn, or engine: haproxy.",
    ],
    [
      "nginx backups with a sticky cookie",
      { ...base, balancer: { stickyCookie: "SRV", backups: 2 } },
      "ha-backend:balancer.backups must be 0 when nginx balances by sticky cookie (nginx rejects backup servers with hash balancing), but 2 was provided. Set ha-backend:balancer.backups: 0, use algorithm round-robin or least-conn, or engine: haproxy.",
    ],
    [
      "nginx with a sticky cookie on kubernetes (through the Service's virtual IP)",
      { ...base, platform: "kubernetes", environment: "development", balancer: { stickyCookie: "SRV" } },
      'ha-backend:balancer.stickyCookie must not be set when nginx runs on Kubernetes (nginx reaches the pods through the Service\'s virtual IP, where kube-proxy picks the pod), but "SRV" was provided. Set ha-backend:balancer.engine: haproxy (a cookie per pod), or remove ha-backend:balancer.stickyCookie.',
    ],
    [
      "nginx with ip-hash on kubernetes (through the Service's virtual IP)",
      {
        topology: "blog",
        platform: "kubernetes",
        environment: "development",
        balancer: { engine: "nginx", algorithm: "ip-hash" },
      },
      'ha-backend:balancer.algorithm must not be ip-hash when nginx runs on Kubernetes (nginx reaches the pods through the Service\'s virtual IP, where kube-proxy picks the pod), but "ip-hash" was provided. Set ha-backend:balancer.engine: haproxy (client IPs hashed over the pods), or algorithm: round-robin or least-conn.',
    ],
    [
      "a provided certificate without its key",
      { ...base, balancer: { tls: "provided" }, tlsCertificate: PEM_CERT },
      "ha-backend:tlsKey must be set when balancer.tls is provided, but nothing was provided. Run: pulumi config set --secret ha-backend:tlsKey < key.pem",
    ],
    [
      "a key while TLS is off",
      { ...base, tlsKey: PEM_KEY },
      'ha-backend:tlsKey must only be set when balancer.tls is provided (it is off), but "(not shown)" was provided. Set ha-backend:balancer.tls: provided, or remove ha-backend:tlsKey.',
    ],
    [
      "a negative rate limit",
      { ...base, balancer: { rateLimit: { perSecond: -5, burst: 10 } } },
      "ha-backend:balancer.rateLimit.perSecond must be at least 1, but -5 was provided. Set it to 1 or more.",
    ],
    [
      "a sticky cookie name with a space",
      { ...base, balancer: { stickyCookie: "my cookie" } },
      'ha-backend:balancer.stickyCookie must be a cookie name of letters, digits and _ (at most 32), but "my cookie" was provided. Write e.g. SERVERID.',
    ],
    [
      "Galera on the mysql engine",
      { ...base, database: { engine: "mysql", mode: "galera" } },
      'ha-backend:database.mode must be replication when database.engine is mysql (Galera here is MariaDB\'s; MySQL Group Replication is not supported), but "galera" was provided. Set ha-backend:database.engine: mariadb for Galera (automatic failover), or mode: replication with failover: manual.',
    ],
    [
      "Galera with two nodes",
      { ...base, database: { mode: "galera", members: 2 } },
      "ha-backend:database.members must be at least 3 for galera (a majority must survive one loss), but 2 was provided. Set ha-backend:database.members: 3.",
    ],
    [
      "semi-sync without replicas",
      { ...base, database: { mode: "replication", failover: "manual", members: 1, semiSync: true } },
      "ha-backend:database.semiSync must have a replica to acknowledge writes (database.members is 1), but true was provided. Set ha-backend:database.members: 2 or more, or semiSync: false.",
    ],
    [
      "replication mode without accepting manual failover",
      { ...base, database: { mode: "replication", members: 2 } },
      'ha-backend:database.failover must be manual when database.mode is replication: nothing promotes a replica when the primary dies; writes stop until someone runs the promotion script (README: Replication mode), but "automatic (the default)" was provided. Set ha-backend:database.failover: manual to accept manual failover, or remove database.mode (Galera: automatic failover).',
    ],
    [
      "MySQL without accepting manual failover (no automatic failover for MySQL here)",
      { ...base, database: { engine: "mysql" } },
      'ha-backend:database.failover must be manual with database.engine mysql: MySQL runs GTID replication here, and nothing promotes a replica when the primary dies (Galera is MariaDB\'s; MySQL Group Replication is not supported), but "automatic (the default)" was provided. Set ha-backend:database.failover: manual to accept manual failover, or database.engine: mariadb (Galera) or postgresql (Patroni) for automatic failover.',
    ],
    [
      "MySQL asking for automatic failover",
      { ...base, database: { engine: "mysql", mode: "replication", failover: "automatic" } },
      'ha-backend:database.failover must be manual with database.engine mysql: MySQL runs GTID replication here, and nothing promotes a replica when the primary dies (Galera is MariaDB\'s; MySQL Group Replication is not supported), but "automatic" was provided. Set ha-backend:database.failover: manual to accept manual failover, or database.engine: mariadb (Galera) or postgresql (Patroni) for automatic failover.',
    ],
    [
      "manual failover on Galera",
      { ...base, database: { failover: "manual" } },
      'ha-backend:database.failover must only be manual in replication mode (Galera fails over by itself), but "manual" was provided. Remove ha-backend:database.failover.',
    ],
    [
      "semi-sync with Galera",
      { ...base, database: { mode: "galera", semiSync: true } },
      "ha-backend:database.semiSync must only be set in replication mode (Galera is synchronous already), but true was provided. Remove ha-backend:database.semiSync.",
    ],
    [
      "too many shards",
      { ...base, database: { shards: 65 } },
      "ha-backend:database.shards must be at most 64, but 65 was provided. Set it to 64 or less.",
    ],
    [
      "zero shards",
      { ...base, database: { shards: 0 } },
      "ha-backend:database.shards must be at least 1, but 0 was provided. Set it to 1 or more.",
    ],
    [
      "shards on the blog",
      { topology: "blog", platform: "docker", database: { shards: 2 } },
      "ha-backend:database.shards must be 1 for the blog topology (one database; only e-commerce orders are sharded), but 2 was provided. Remove ha-backend:database.shards.",
    ],
    [
      "Galera timings in replication mode",
      { ...base, database: { mode: "replication", failover: "manual", galera: { suspectTimeoutMs: 2000 } } },
      'ha-backend:database.galera must only be set when database.mode is galera, but {"suspectTimeoutMs":2000} was provided. Remove ha-backend:database.galera.',
    ],
  ])("rejects %s", (_label, raw, message) => {
    expect(problemsOf(raw)).toEqual([message]);
  });

  it("lets affinity through where it works: HAProxy on Kubernetes, nginx on Docker", () => {
    const sticky = { stickyCookie: "SRV", algorithm: "least-conn" };
    expect(
      parseStackConfig({
        topology: "blog",
        platform: "kubernetes",
        environment: "development",
        balancer: sticky,
      }).balancer,
    ).toMatchObject({ engine: "haproxy", ...sticky });
    // nginx hashes the cookie: an algorithm beside it would do nothing.
    expect(parseStackConfig({ ...base, balancer: { stickyCookie: "SRV" } }).balancer).toMatchObject({
      engine: "nginx",
      stickyCookie: "SRV",
    });
    expect(parseStackConfig({ ...base, balancer: { algorithm: "ip-hash" } }).balancer).toMatchObject({
      engine: "nginx",
      algorithm: "ip-hash",
    });
  });

  it("reports every problem at once, not just the first", () => {
    const problems = problemsOf({ topology: "shop", platform: "docker", app: { replicas: 0, port: 0 } });
    expect(problems).toHaveLength(3);
    expect(problems.map((p) => p.split(" ")[0])).toEqual([
      "ha-backend:topology",
      "ha-backend:app.replicas",
      "ha-backend:app.port",
    ]);
  });
});

describe("database.engine: postgresql", () => {
  const pg = (database: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    ...base,
    database: { engine: "postgresql", ...database },
    ...extra,
  });
  const k8s = {
    platform: "kubernetes",
    environment: "development",
    kubernetes: { imageRegistry: "registry.example.com/shop" },
  };

  it("defaults to Patroni's fast timings, synchronous mode, 2 members on Docker and 3 on Kubernetes", () => {
    const c = parseStackConfig(pg({}));
    expect(c.database.postgresql).toBeUndefined();
    expect(databaseMembers(c)).toBe(2);
    expect(databaseMembers(parseStackConfig(pg({}, k8s)))).toBe(3);
    expect(postgresqlSettings(parseStackConfig(pg({ postgresql: { ttl: 20 } })).database)).toEqual({
      ttl: 20,
      loopWait: 2,
      retryTimeout: 3,
      maximumLagOnFailover: 1048576,
      synchronousModeStrict: false,
      sharedBuffers: "128MB",
      maxConnections: 200,
    });
  });

  it("accepts a prebuilt image on Kubernetes without a registry", () => {
    const c = parseStackConfig(
      pg(
        { postgresql: { image: "registry.example.com/patroni:15.18-1" } },
        { platform: "kubernetes", environment: "development" },
      ),
    );
    expect(c.database.postgresql?.image).toBe("registry.example.com/patroni:15.18-1");
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      "strict synchronous mode with one member",
      pg({ members: 1, postgresql: { synchronousMode: true, synchronousModeStrict: true } }),
      "ha-backend:database.postgresql.synchronousMode must have a standby to wait for (database.members is 1), but true was provided. Set ha-backend:database.members: 2 or more, or database.postgresql.synchronousMode: false.",
    ],
    [
      "strict synchronous mode with two members",
      pg({ members: 2, postgresql: { synchronousModeStrict: true } }),
      "ha-backend:database.postgresql.synchronousModeStrict must have two standbys (database.members is 2): with one, losing it stops every write, but true was provided. Set ha-backend:database.members: 3, or synchronousModeStrict: false.",
    ],
    [
      "timings that break the lease",
      pg({ postgresql: { ttl: 10, loopWait: 5, retryTimeout: 3 } }),
      "ha-backend:database.postgresql.ttl must leave room for a loop and two retries: loopWait + 2 × retryTimeout ≤ ttl (loopWait + 2 × retryTimeout (11) must not exceed ttl (10)), but 10 was provided. Raise ha-backend:database.postgresql.ttl, or lower loopWait or retryTimeout (e.g. ttl 10, loopWait 2, retryTimeout 3).",
    ],
    [
      "Kubernetes with nowhere to push the built image",
      pg({}, { platform: "kubernetes", environment: "development" }),
      "ha-backend:kubernetes.imageRegistry must be set when database.engine is postgresql on Kubernetes and no database.postgresql.image is given (pulumi up builds the Patroni image and pushes it there), but nothing was provided.",
    ],
    [
      "galera mode",
      pg({ mode: "galera", members: 3 }),
      'ha-backend:database.mode must be replication when database.engine is postgresql (Patroni streams to replicas; Galera is MariaDB\'s), but "galera" was provided. Remove ha-backend:database.mode.',
    ],
    [
      "semi-sync",
      pg({ semiSync: true }),
      "ha-backend:database.semiSync must only be set for MySQL-family engines (PostgreSQL uses database.postgresql.synchronousMode), but true was provided.",
    ],
    [
      "manual failover on Patroni",
      pg({ failover: "manual" }),
      'ha-backend:database.failover must only be manual in replication mode (Patroni fails over by itself), but "manual" was provided. Remove ha-backend:database.failover.',
    ],
    [
      "postgresql settings for MariaDB",
      { ...base, database: { postgresql: { ttl: 20 } } },
      'ha-backend:database.postgresql must only be set when database.engine is postgresql (it is mariadb), but {"ttl":20} was provided.',
    ],
    [
      "etcd members on Kubernetes",
      pg({ postgresql: { etcdMembers: 3 } }, k8s),
      "ha-backend:database.postgresql.etcdMembers must only be set on the docker platform (on Kubernetes Patroni keeps its state in the Kubernetes API), but 3 was provided.",
    ],
    [
      "an even etcd count",
      pg({ postgresql: { etcdMembers: 2 } }),
      "ha-backend:database.postgresql.etcdMembers must be 1, 3 or 5 (a majority must survive; an even count adds nothing), but 2 was provided.",
    ],
    [
      "an unpinned image",
      pg({ postgresql: { image: "patroni:latest" } }),
      'ha-backend:database.postgresql.image must be pinned by a tag other than latest, or by a digest, but "patroni:latest" was provided.',
    ],
    [
      "a registry with a tag",
      pg(
        {},
        {
          platform: "kubernetes",
          environment: "development",
          kubernetes: { imageRegistry: "registry.example.com/shop:1" },
        },
      ),
      'ha-backend:kubernetes.imageRegistry must be a registry host with an optional path, lowercase, without a tag, but "registry.example.com/shop:1" was provided.',
    ],
  ])("%s", (_label, raw, message) => {
    const problems = problemsOf(raw);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });
});

describe("cache and locks", () => {
  it("defaults: the shop gets Redis in store mode and locks, the blog memcached and no locks", () => {
    expect(DEFAULT_CACHE_ENGINE).toEqual({ ecommerce: "redis", blog: "memcached" });
    expect(DEFAULT_REDIS_MODE).toEqual({ ecommerce: "store", blog: "cache" });
    expect(parseStackConfig({ ...base, cache: { redis: {} } }).cache.redis).toEqual({
      replicas: 2,
      sentinels: 3,
      downAfterMs: 2000,
      failoverTimeoutMs: 10000,
      parallelSyncs: 1,
      maxmemory: "256mb",
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      "an even number of Sentinels",
      { ...base, cache: { redis: { sentinels: 4 } } },
      "ha-backend:cache.redis.sentinels must be 1, 3, 5 or 7 (an even count adds no vote a majority needs), but 4 was provided. Use 3 (survives the loss of one).",
    ],
    [
      "one Sentinel on Kubernetes",
      { ...base, platform: "kubernetes", environment: "development", cache: { redis: { sentinels: 1 } } },
      "ha-backend:cache.redis.sentinels must be at least 3 on Kubernetes (one Sentinel is never highly available: its loss stops every failover), but 1 was provided. Set ha-backend:cache.redis.sentinels: 3.",
    ],
    [
      "a quorum larger than the Sentinels",
      { ...base, cache: { redis: { quorum: 5 } } },
      "ha-backend:cache.redis.quorum must not exceed cache.redis.sentinels (3): that many could never agree, but 5 was provided. Set ha-backend:cache.redis.quorum to a majority, e.g. 2.",
    ],
    [
      "store mode without replicas",
      { ...base, cache: { redis: { mode: "store", replicas: 0 } } },
      "ha-backend:cache.redis.replicas must be at least 1 in store mode (a write must reach a replica before the primary can be lost), but 0 was provided.",
    ],
    [
      "a write quorum in cache mode",
      { topology: "blog", platform: "docker", cache: { engine: "redis", redis: { minReplicasToWrite: 1 } } },
      "ha-backend:cache.redis.minReplicasToWrite must only be set in store mode (a cache takes writes without waiting for replicas), but 1 was provided.",
    ],
    [
      "a failover timeout within detection",
      { ...base, cache: { redis: { downAfterMs: 5000, failoverTimeoutMs: 5000 } } },
      "ha-backend:cache.redis.failoverTimeoutMs must exceed cache.redis.downAfterMs (5000), but 5000 was provided.",
    ],
    [
      "Redis settings for a memcached cache",
      { topology: "blog", platform: "docker", cache: { redis: { replicas: 1 } } },
      "ha-backend:cache.redis must only be set when cache.engine is redis (it is memcached)",
    ],
    [
      "a down-after at Sentinel's ping period",
      { ...base, cache: { redis: { downAfterMs: 1000 } } },
      "ha-backend:cache.redis.downAfterMs must be at least 2000, but 1000 was provided.",
    ],
    [
      "an even lock cluster",
      { ...base, locks: { members: 2 } },
      "ha-backend:locks.members must be 1, 3 or 5 (a majority must survive; an even count adds nothing), but 2 was provided.",
    ],
  ])("%s", (_label, raw, message) => {
    const problems = problemsOf(raw);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });
});

describe("the TLS key", () => {
  it("must be a secret: a plain value in the stack file is refused", () => {
    expect(() =>
      parseStackConfig({ ...base, balancer: { tls: "provided" }, tlsCertificate: PEM_CERT, tlsKey: PEM_KEY }),
    ).toThrow(
      "ha-backend:tlsKey must be stored as a secret, but a plain value was provided. Run: pulumi config set --secret ha-backend:tlsKey < key.pem",
    );
  });

  it("is never quoted in an error message", () => {
    const problems = problemsOf({
      ...base,
      balancer: { tls: "provided" },
      tlsCertificate: PEM_CERT,
      tlsKey: "hunter2",
    });
    expect(problems.join("\n")).not.toContain("hunter2");
    expect(problems).toEqual([
      "ha-backend:tlsKey must be exactly one PEM private key block and nothing else, but text with no private key block and other text outside the PEM blocks (not shown) was provided. Give the private key PEM file's contents: one PRIVATE KEY block, without certificates or other text.",
      "ha-backend:tlsKey must be stored as a secret, but a plain value was provided. Run: pulumi config set --secret ha-backend:tlsKey < key.pem",
    ]);
  });
});

describe("decodeConfigValue", () => {
  it.each([
    ['{"replicas":3}', { replicas: 3 }],
    ["[1,2]", [1, 2]],
    ["ecommerce", "ecommerce"],
    ["3", "3"], // top-level scalars stay the strings the user wrote
    ["{not json", "{not json"],
  ])("decodes %s", (text, value) => {
    expect(decodeConfigValue(text)).toEqual(value);
  });
});

describe("the program with bad config", () => {
  // GIVEN bad config WHEN the whole program runs THEN it fails with the sentence and registers nothing.
  it.each<[string, Record<string, unknown>, string]>([
    [
      "unknown topology",
      { topology: "forum", platform: "docker" },
      'ha-backend:topology must be one of ecommerce, blog, but "forum"',
    ],
    [
      "zero replicas",
      { ...base, app: { replicas: 0 } },
      "ha-backend:app.replicas must be at least 1, but 0 was provided",
    ],
    ["unknown key", { ...base, replicas: 3 }, "ha-backend:replicas is not a known setting"],
    [
      "bad port",
      { ...base, app: { port: 99999 } },
      "ha-backend:app.port must be at most 65535, but 99999 was provided",
    ],
    [
      "wrong platform section",
      { ...base, kubernetes: {} },
      "ha-backend:kubernetes must only be set when platform is kubernetes",
    ],
    [
      "nginx affinity on kubernetes",
      { ...base, platform: "kubernetes", environment: "development", balancer: { stickyCookie: "SRV" } },
      "ha-backend:balancer.stickyCookie must not be set when nginx runs on Kubernetes",
    ],
    [
      "strict PostgreSQL sync without two standbys",
      {
        ...base,
        database: { engine: "postgresql", members: 2, postgresql: { synchronousModeStrict: true } },
      },
      "ha-backend:database.postgresql.synchronousModeStrict must have two standbys",
    ],
  ])("%s: fails before any resource is registered", async (_label, raw, message) => {
    const recorded: RecordedResource[] = [];
    await expect(runWithConfig(raw, recorded, "bad-stack")).rejects.toThrow(message);
    await expect(runWithConfig(raw, [], "bad-stack")).rejects.toThrow(
      'Invalid stack config of stack "bad-stack" (stacks/Pulumi.bad-stack.yaml) (1 problem)',
    );
    expect(recorded.filter((r) => r.type !== "pulumi:pulumi:Stack")).toEqual([]);
  });

  it("registers resources for the same config once it is fixed (the check above can fail)", async () => {
    const recorded: RecordedResource[] = [];
    await runWithConfig({ ...base, app: { replicas: 1 } }, recorded);
    expect(recorded.filter((r) => r.type !== "pulumi:pulumi:Stack").length).toBeGreaterThan(3);
  });
});
