import {
  DEMO_APP_IMAGE,
  resolveServerClusterArgs,
  ServerCluster,
  type ServerClusterArgs,
} from "../../components/cluster/server-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { Platform } from "../../components/platform/types";
import { isWrappedSecret, ofType, one, plain, runComponents } from "../support/engine";

const fakePlatform = {
  kind: "docker",
  deploy: () => {
    throw new Error("not used");
  },
} as unknown as Platform;

describe("resolveServerClusterArgs", () => {
  it("defaults to two demo-app members on 8080 with /healthz", () => {
    expect(resolveServerClusterArgs("shop", { platform: fakePlatform })).toEqual({
      replicas: 2,
      image: DEMO_APP_IMAGE,
      port: 8080,
      healthCheckPath: "/healthz",
      usesDemoApp: true,
    });
  });

  it.each<[string, Partial<ServerClusterArgs>, string]>([
    [
      "zero replicas",
      { replicas: 0 },
      'ServerCluster "shop": replicas must be a whole number of at least 1, but 0 was provided. Set replicas: 2 or more for high availability.',
    ],
    [
      "a fractional replica count",
      { replicas: 1.5 },
      'ServerCluster "shop": replicas must be a whole number of at least 1, but 1.5 was provided.',
    ],
    [
      "port 0",
      { port: 0 },
      'ServerCluster "shop": port must be a whole number from 1 to 65535, but 0 was provided.',
    ],
    [
      "a privileged port for the demo app",
      { port: 80 },
      'ServerCluster "shop": port must be 1024 or above for the demo app (it runs unprivileged), but 80 was provided.',
    ],
    [
      "a relative health path",
      { healthCheckPath: "health" },
      'ServerCluster "shop": healthCheckPath must be a URL path starting with / (letters, digits, / _ . -), but "health" was provided.',
    ],
    [
      "a bad memory quantity",
      { resources: { cpu: "1", memory: "lots" } },
      'ServerCluster "shop": resources.memory must be a memory quantity such as 256Mi or 1Gi, but "lots" was provided.',
    ],
  ])("rejects %s", (_label, patch, message) => {
    expect(() => resolveServerClusterArgs("shop", { platform: fakePlatform, ...patch })).toThrow(message);
  });

  it("lets a custom image listen on a privileged port", () => {
    expect(
      resolveServerClusterArgs("shop", { platform: fakePlatform, image: "acme/shop:2.1.0", port: 80 }).port,
    ).toBe(80);
  });
});

describe("ServerCluster on Docker", () => {
  it("runs N demo-app members with the generated config, health check, env and secret env", async () => {
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "dev" });
      const c = new ServerCluster("shop", {
        platform,
        replicas: 3,
        env: { LOG_LEVEL: "debug" },
        secretEnv: { SESSION_SECRET: "s3cr3t-value" },
      });
      return { members: c.members, host: c.serviceHost, port: c.port, path: c.healthCheckPath };
    });
    expect(
      ofType(run, "docker:index/container:Container")
        .map((c) => c.name)
        .sort(),
    ).toEqual(["shop-app-0", "shop-app-1", "shop-app-2"]);
    const c = one(run, "docker:index/container:Container", "shop-app-2");
    expect(c.parent).toBe("ha-backend:cluster:ServerCluster::shop");
    const inputs = plain(c);
    expect(inputs.entrypoints).toEqual([
      "nginx",
      "-g",
      "daemon off;",
      "-c",
      "/etc/ha-backend/app/nginx.conf",
    ]);
    expect(inputs.uploads[0].file).toBe("/etc/ha-backend/app/nginx.conf");
    expect(inputs.uploads[0].content).toContain("location = /healthz {");
    expect(inputs.user).toBe("101");
    expect(isWrappedSecret(c.inputs.envs)).toBe(true);
    expect(inputs.envs).toEqual(["LOG_LEVEL=debug", "SESSION_SECRET=s3cr3t-value"]);
    expect(run.outputs).toEqual({
      members: [0, 1, 2].map((i) => ({ name: `shop-app-${i}`, host: `shop-app-${i}` })),
      host: "shop-app",
      port: 8080,
      path: "/healthz",
    });
  });
});

describe("ServerCluster on Kubernetes", () => {
  it("runs a custom image as a Deployment probed on its health path, with no demo config", async () => {
    const run = await runComponents(() => {
      const platform = new KubernetesPlatform("k8s", { namespace: "prod" });
      const c = new ServerCluster("shop", {
        platform,
        image: "ghcr.io/acme/shop:3.2.1",
        command: ["/app/server"],
        port: 3000,
        healthCheckPath: "/ready",
        replicas: 4,
        resources: { cpu: "500m", memory: "512Mi" },
      });
      return { members: c.members, host: c.serviceHost, discovery: c.discoveryHost };
    });
    const d = plain(one(run, "kubernetes:apps/v1:Deployment", "shop-app-deployment"));
    const container = d.spec.template.spec.containers[0];
    expect(container.image).toBe("ghcr.io/acme/shop:3.2.1");
    expect(container.command).toEqual(["/app/server"]);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/ready", port: "http" });
    expect(container.ports).toEqual([{ name: "http", containerPort: 3000, protocol: "TCP" }]);
    expect(ofType(run, "kubernetes:core/v1:ConfigMap")).toEqual([]);
    // A custom image decides its own user (it must be a numeric non-root one); no forced UID,
    // and its root file system stays writable since what it writes is not known.
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
      readOnlyRootFilesystem: false,
    });
    expect(run.outputs).toEqual({
      members: [],
      host: "shop-app.prod.svc.cluster.local",
      discovery: "shop-app-headless.prod.svc.cluster.local",
    });
  });
});
