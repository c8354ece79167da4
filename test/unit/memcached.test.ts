import { Memcached, MEMCACHED_IMAGE, type MemcachedArgs } from "../../components/cache/memcached";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import { expectRejectedBeforeAnyResource, ofType, one, plain, runComponents } from "../support/engine";

describe("Memcached", () => {
  it("runs independent nodes with stable names, no UDP, the memory and connection limits given", async () => {
    const run = await runComponents(() => {
      const pool = new Memcached("pages", {
        platform: new DockerPlatform("docker", { prefix: "dev" }),
        members: 2,
        memoryMb: 128,
        maxConnections: 2048,
        resources: { cpu: "250m", memory: "256Mi" },
      });
      return { servers: pool.servers, env: pool.appEnv() };
    });
    const c = plain(one(run, "docker:index/container:Container", "pages-memcached-1"));
    expect(c.image).toBe(`sha256:mock-${MEMCACHED_IMAGE}`);
    expect(c.user).toBe("11211");
    expect(c.entrypoints).toEqual([
      "memcached",
      "-p",
      "11211",
      "-U",
      "0",
      "-m",
      "128",
      "-c",
      "2048",
      "-t",
      "4",
    ]);
    expect(c.volumes).toEqual([]);
    expect(c.networksAdvanced.map((n: { name: string }) => n.name)).toEqual(["dev-pages-memcached-from-app"]);
    expect(run.outputs).toEqual({
      servers: ["pages-memcached-0:11211", "pages-memcached-1:11211"],
      env: { MEMCACHED_SERVERS: "pages-memcached-0:11211,pages-memcached-1:11211" },
    });
  });

  it("is a StatefulSet without claims on Kubernetes, reachable from the app tier only", async () => {
    const run = await runComponents(() => {
      new Memcached("pages", { platform: new KubernetesPlatform("k8s", { namespace: "prod" }) });
    });
    const sts = plain(one(run, "kubernetes:apps/v1:StatefulSet", "pages-memcached-statefulset")).spec;
    expect(sts.replicas).toBe(3);
    expect(sts.volumeClaimTemplates).toBeUndefined();
    const ingress = plain(one(run, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "pages-memcached-netpol"))
      .spec.ingress;
    expect(ingress[1].from[0].podSelector.matchExpressions[0].values).toEqual(["app"]);
    expect(ofType(run, "kubernetes:core/v1:Secret")).toEqual([]);
  });

  it.each<[string, Partial<MemcachedArgs>, string]>([
    [
      "zero nodes",
      { members: 0 },
      'Memcached "m": members must be a whole number from 1 to 32, but 0 was provided.',
    ],
    [
      "a memory limit the cache outgrows",
      { memoryMb: 512, resources: { cpu: "1", memory: "256Mi" } },
      'resources.memory must be at least 596Mi (memoryMb 512 of items plus tables, buffers and per-connection state), but "256Mi" was provided. Raise it to 596Mi or more.',
    ],
  ])("rejects %s before creating anything", async (_, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      void new Memcached("m", { platform: new DockerPlatform("docker", { prefix: "dev" }), ...args });
    }, message);
  });
});
