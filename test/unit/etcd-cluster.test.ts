import { EtcdCluster, ETCD_IMAGE } from "../../components/coordination/etcd-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import { ofType, one, plain, runComponents } from "../support/engine";

describe("EtcdCluster", () => {
  it("on Docker: three members, each told its own name and addresses, others only its peers", async () => {
    const run = await runComponents(() => ({
      endpoints: new EtcdCluster("dcs", {
        platform: new DockerPlatform("d", { prefix: "dev" }),
        allowFrom: ["orders-pg"],
      }).clientEndpoints,
    }));
    const containers = ofType(run, "docker:index/container:Container");
    expect(containers.map((c) => c.name).sort()).toEqual(["dcs-etcd-0", "dcs-etcd-1", "dcs-etcd-2"]);
    const env = plain(one(run, "docker:index/container:Container", "dcs-etcd-1")).envs as string[];
    expect(env).toEqual(
      expect.arrayContaining([
        "ETCD_NAME=dcs-etcd-1",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://dcs-etcd-1:2380",
        "ETCD_ADVERTISE_CLIENT_URLS=http://dcs-etcd-1:2379",
        "ETCD_INITIAL_CLUSTER=dcs-etcd-0=http://dcs-etcd-0:2380,dcs-etcd-1=http://dcs-etcd-1:2380,dcs-etcd-2=http://dcs-etcd-2:2380",
      ]),
    );
    expect(plain(one(run, "docker:index/container:Container", "dcs-etcd-0")).image).toBe(
      `sha256:mock-${ETCD_IMAGE}`,
    );
    expect(run.outputs.endpoints).toEqual(["dcs-etcd-0:2379", "dcs-etcd-1:2379", "dcs-etcd-2:2379"]);
  });

  it("on Kubernetes: the pod name from the downward API, expanded into its own URLs", async () => {
    const run = await runComponents(() => {
      new EtcdCluster("dcs", {
        platform: new KubernetesPlatform("k", { namespace: "prod" }),
        allowFrom: ["orders-pg"],
      });
    });
    const env = plain(one(run, "kubernetes:apps/v1:StatefulSet", "dcs-etcd-statefulset")).spec.template.spec
      .containers[0].env;
    expect(env[0]).toEqual({
      name: "HA_BACKEND_MEMBER",
      valueFrom: { fieldRef: { fieldPath: "metadata.name" } },
    });
    expect(env).toEqual(
      expect.arrayContaining([
        { name: "ETCD_NAME", value: "$(HA_BACKEND_MEMBER)" },
        {
          name: "ETCD_ADVERTISE_CLIENT_URLS",
          value: "http://$(HA_BACKEND_MEMBER).dcs-etcd-headless.prod.svc.cluster.local:2379",
        },
      ]),
    );
  });

  it.each([2, 4, 0])("rejects %i members before creating anything", async (n) => {
    await expect(
      runComponents(() => {
        new EtcdCluster("dcs", {
          platform: new DockerPlatform("d", { prefix: "dev" }),
          allowFrom: [],
          members: n,
        });
      }),
    ).rejects.toThrow(
      `EtcdCluster "dcs": members must be 1, 3, 5 or 7 (a majority must survive; an even count adds nothing), but ${n} was provided.`,
    );
  });
});
