import { RedisCache, REDIS_IMAGE, type RedisCacheArgs } from "../../components/cache/redis-cache";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import {
  expectRejectedBeforeAnyResource,
  expectSecretsHidden,
  isWrappedSecret,
  ofType,
  one,
  plain,
  runComponents,
  type RecordedResource,
} from "../support/engine";

const CONTAINER = "docker:index/container:Container";
const STS = "kubernetes:apps/v1:StatefulSet";

function uploads(r: RecordedResource): { file: string; content: unknown }[] {
  return r.inputs.uploads as { file: string; content: unknown }[];
}

describe("RedisCache on Docker", () => {
  const build =
    (args: Partial<RedisCacheArgs> = {}) =>
    () => {
      const cache = new RedisCache("sessions", {
        platform: new DockerPlatform("docker", { prefix: "dev" }),
        mode: "store",
        ...args,
      });
      const { env, credentials } = cache.appEnv();
      return {
        sentinels: cache.sentinelEndpoints,
        master: cache.masterName,
        endpoint: cache.endpoint,
        url: cache.url,
        budget: cache.failoverBudgetSeconds,
        env,
        credentials,
      };
    };

  it("runs a primary, two replicas, three Sentinels and two routers from the official image", async () => {
    const run = await runComponents(build());
    expect(
      ofType(run, CONTAINER)
        .map((c) => c.name)
        .sort(),
    ).toEqual([
      "sessions-redis-0",
      "sessions-redis-1",
      "sessions-redis-2",
      "sessions-router-0",
      "sessions-router-1",
      "sessions-sentinel-0",
      "sessions-sentinel-1",
      "sessions-sentinel-2",
    ]);
    const m = plain(one(run, CONTAINER, "sessions-redis-1"));
    expect(m.image).toBe(`sha256:mock-${REDIS_IMAGE}`);
    expect(m.user).toBe("999");
    expect(m.entrypoints).toEqual(["sh", "/etc/ha-backend/redis/start-redis.sh"]);
    expect(m.envs).toContain("REDIS_MEMBER=sessions-redis-1");
    expect(m.envs).toContain("REDIS_HOST=sessions-redis-1");
    expect(m.volumes).toEqual([{ volumeName: "dev-sessions-redis-1-data", containerPath: "/data" }]);
    // Sentinels, the router and the app reach the members (Sentinel clients connect to the primary).
    expect(m.networksAdvanced.map((n: { name: string }) => n.name)).toEqual([
      "dev-sessions-redis-from-app",
      "dev-sessions-redis-from-sessions-router",
      "dev-sessions-redis-from-sessions-sentinel",
    ]);
    expect(run.outputs).toMatchObject({
      sentinels: ["sessions-sentinel-0:26379", "sessions-sentinel-1:26379", "sessions-sentinel-2:26379"],
      master: "sessions",
      endpoint: "sessions-router:6379",
      url: "[secret]",
      budget: 6,
      env: {
        REDIS_SENTINELS: "sessions-sentinel-0:26379,sessions-sentinel-1:26379,sessions-sentinel-2:26379",
        REDIS_MASTER_NAME: "sessions",
      },
      credentials: { REDIS_URL: "[secret]", REDIS_PASSWORD: "[secret]", REDIS_SENTINEL_PASSWORD: "[secret]" },
    });
  });

  it("keeps every password and the renamed CONFIG out of plain text: configs are secret files", async () => {
    const run = await runComponents(build());
    expect(
      uploads(one(run, CONTAINER, "sessions-redis-0")).map((u) => [u.file, isWrappedSecret(u.content)]),
    ).toEqual([
      ["/etc/ha-backend/redis/start-redis.sh", false],
      ["/etc/ha-backend/redis/redis.conf", true],
    ]);
    expect(
      uploads(one(run, CONTAINER, "sessions-router-0")).map((u) => [u.file, isWrappedSecret(u.content)]),
    ).toEqual([["/usr/local/etc/haproxy/haproxy.cfg", true]]);
    const secrets = ofType(run, "random:index/randomPassword:RandomPassword").map(
      (p) => `mock-password-for-${p.name}`,
    );
    // The password, Sentinel's, the renamed CONFIG and the exporters' ACL user's.
    expect(secrets).toHaveLength(4);
    expectSecretsHidden(run, secrets);
    const conf = plain(one(run, CONTAINER, "sessions-redis-0")).uploads[1].content as string;
    expect(conf).toContain("requirepass mock-password-for-sessions-password");
    expect(conf).toContain("rename-command CONFIG CONFIG_mock-password-for-sessions-config-command");
    expect(conf).toContain("appendonly yes");
    const sentinel = plain(one(run, CONTAINER, "sessions-sentinel-0")).uploads[1].content as string;
    expect(sentinel).toContain("sentinel monitor sessions sessions-redis-0 6379 2");
  });

  it("health-checks with redis-cli, the password from the secret config file, never from env or a command line", async () => {
    const run = await runComponents(build());
    const m = plain(one(run, CONTAINER, "sessions-redis-0"));
    expect(m.healthcheck.tests).toEqual([
      "CMD",
      "sh",
      "-c",
      "REDISCLI_AUTH=\"$(sed -n 's/^requirepass //p' /etc/ha-backend/redis/redis.conf)\" redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG",
    ]);
    // Member names and addresses only: nothing in the environment is secret any more.
    expect(isWrappedSecret(one(run, CONTAINER, "sessions-redis-0").inputs.envs)).toBe(false);
    expect(m.envs).toEqual(["REDIS_HOST=sessions-redis-0", "REDIS_MEMBER=sessions-redis-0"]);
    const s = plain(one(run, CONTAINER, "sessions-sentinel-0"));
    expect(s.healthcheck.tests[3]).toContain(
      '/etc/ha-backend/redis/sentinel.conf)" redis-cli -h 127.0.0.1 -p 26379',
    );
    expect(s.envs).toEqual(["REDIS_HOST=sessions-sentinel-0", "REDIS_MEMBER=sessions-sentinel-0"]);
  });
});

describe("RedisCache on Kubernetes", () => {
  it("runs StatefulSets with claims, Sentinel's config on a volume, nothing with API access", async () => {
    const run = await runComponents(() => {
      new RedisCache("pages", {
        platform: new KubernetesPlatform("k8s", { namespace: "prod" }),
        sentinels: 5,
        protect: true,
      });
    });
    const redis = plain(one(run, STS, "pages-redis-statefulset")).spec;
    expect(redis.replicas).toBe(3);
    expect(redis.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("1Gi");
    const sentinel = plain(one(run, STS, "pages-sentinel-statefulset")).spec;
    expect(sentinel.replicas).toBe(5);
    expect(sentinel.template.spec.automountServiceAccountToken).toBe(false);
    // The probe reads Sentinel's password from its secret config file: no credential in env.
    const container = sentinel.template.spec.containers[0];
    expect(
      container.env.filter((e: { valueFrom?: object }) => "secretKeyRef" in (e.valueFrom ?? {})),
    ).toEqual([]);
    expect(container.readinessProbe.exec.command.join(" ")).toContain(
      "REDISCLI_AUTH=\"$(sed -n 's/^requirepass //p' /etc/ha-backend/redis/sentinel.conf)\" redis-cli -h 127.0.0.1 -p 26379 ping",
    );
    const secretFiles = one(run, "kubernetes:core/v1:Secret", "pages-sentinel-secret-files");
    expect(isWrappedSecret(secretFiles.inputs.stringData)).toBe(true);
    const files = plain(secretFiles).stringData as Record<string, string>;
    const conf = Object.values(files).find((c) => c.includes("sentinel monitor")) as string;
    expect(conf).toContain(
      "sentinel monitor pages pages-redis-0.pages-redis-headless.prod.svc.cluster.local 6379 3",
    );
    // The exporter's password file, for the Sentinel beside it in the pod.
    expect(Object.values(files)).toContain(
      `${JSON.stringify({ "redis://127.0.0.1:26379": "mock-password-for-pages-metrics-password" })}\n`,
    );
  });
});

describe("RedisCache rejects bad args before creating anything", () => {
  const cases: [string, Partial<RedisCacheArgs>, string][] = [
    [
      "an even number of Sentinels",
      { sentinels: 2 },
      'RedisCache "c": sentinels must be 1, 3, 5 or 7 (an even count adds no vote a majority needs), but 2 was provided.',
    ],
    [
      "a quorum larger than the Sentinels",
      { quorum: 4 },
      "quorum must be from 1 to the number of sentinels (3), but 4 was provided.",
    ],
    [
      "store mode without replicas",
      { mode: "store", replicas: 0 },
      "replicas must be at least 1 in store mode (a write must reach a replica before the primary can be lost), but 0 was provided.",
    ],
    [
      "more acks than replicas",
      { mode: "store", replicas: 1, minReplicasToWrite: 2 },
      "minReplicasToWrite must be from 0 to the number of replicas (1), but 2 was provided.",
    ],
    [
      "a failover timeout shorter than detection",
      { timings: { downAfterMs: 5000, failoverTimeoutMs: 3000 } },
      "timings.failoverTimeoutMs must exceed downAfterMs (5000), but 3000 was provided.",
    ],
    [
      "a down-after at Sentinel's ping period",
      { timings: { downAfterMs: 1000 } },
      "timings.downAfterMs must be whole milliseconds from 2000 to 600000 (Sentinel pings once a second; less can fail over a primary it has just promoted), but 1000 was provided.",
    ],
    [
      "a bad memory size",
      { maxmemory: "1G" },
      'maxmemory must be a Redis size such as 256mb or 2gb, but "1G" was provided.',
    ],
  ];
  it.each(cases)("%s", async (_, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      void new RedisCache("c", { platform: new DockerPlatform("docker", { prefix: "dev" }), ...args });
    }, message);
  });
});
