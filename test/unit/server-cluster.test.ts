import * as pulumi from "@pulumi/pulumi";
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
import { runFailingProgram } from "../support/output-failures";

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
      // The demo app's nginx user reads the credential files.
      credentialsOwner: 101,
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

  it.each<[string, Partial<ServerClusterArgs>, string]>([
    [
      "a credential name that is no variable name",
      { credentials: { "db-url": "x" } },
      'ServerCluster "shop": credentials must use names of letters, digits and \'_\' (not starting with a digit): each is a file name and a variable name, but "db-url" was provided. Rename the credential, e.g. DATABASE_URL.',
    ],
    [
      "a credential whose _FILE variable env also sets",
      { env: { DATABASE_URL_FILE: "/tmp/x" }, credentials: { DATABASE_URL: "x" } },
      'ServerCluster "shop": credentials must not name a variable that env or secretEnv also sets (DATABASE_URL_FILE), but "DATABASE_URL" was provided. Pass DATABASE_URL in credentials only.',
    ],
    [
      "a credential also in secretEnv",
      { secretEnv: { SESSION_SECRET: "x" }, credentials: { SESSION_SECRET: "y" } },
      'ServerCluster "shop": credentials must not name a variable that env or secretEnv also sets (SESSION_SECRET)',
    ],
    [
      "a negative credentials owner",
      { credentialsOwner: -1 },
      'ServerCluster "shop": credentialsOwner must be a numeric user id (0 or more), but -1 was provided.',
    ],
  ])("rejects %s", (_label, patch, message) => {
    expect(() => resolveServerClusterArgs("shop", { platform: fakePlatform, ...patch })).toThrow(message);
  });

  it("gives a custom image's credential files to root unless credentialsOwner names its user", () => {
    const custom = { platform: fakePlatform, image: "acme/shop:2.1.0" };
    expect(resolveServerClusterArgs("shop", custom).credentialsOwner).toBeUndefined();
    expect(resolveServerClusterArgs("shop", { ...custom, credentialsOwner: 1000 }).credentialsOwner).toBe(
      1000,
    );
  });

  it("lets a custom image listen on a privileged port", () => {
    expect(
      resolveServerClusterArgs("shop", { platform: fakePlatform, image: "acme/shop:2.1.0", port: 80 }).port,
    ).toBe(80);
  });
});

describe("ServerCluster on Docker", () => {
  it("runs N demo-app members with the generated config, health check, env and credential files", async () => {
    const run = await runComponents(() => {
      const platform = new DockerPlatform("docker", { prefix: "dev" });
      const c = new ServerCluster("shop", {
        platform,
        replicas: 3,
        env: { LOG_LEVEL: "debug" },
        credentials: { SESSION_SECRET: "s3cr3t-value", DATABASE_URL: "mysql://shop:pw@db:3306/shop" },
      });
      return { members: c.members, host: c.serviceHost, port: c.port, path: c.healthCheckPath };
    });
    expect(
      ofType(run, "docker:index/container:Container")
        .map((c) => c.name)
        .sort(),
    ).toEqual(["shop-app-0", "shop-app-1", "shop-app-2"]);
    const c = one(run, "docker:index/container:Container", "shop-app-2");
    expect(c.parent).toBe("ha-backend:index:ServerCluster::shop");
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
    // The environment names the files; the values are only in the files, readable by nginx (101).
    expect(isWrappedSecret(c.inputs.envs)).toBe(false);
    expect(inputs.envs).toEqual([
      "DATABASE_URL_FILE=/run/secrets/DATABASE_URL",
      "LOG_LEVEL=debug",
      "SESSION_SECRET_FILE=/run/secrets/SESSION_SECRET",
    ]);
    const files = (c.inputs.uploads as { file: string; content: unknown }[]).filter((u) =>
      u.file.startsWith("/run/secrets/"),
    );
    expect(files.map((u) => [u.file, isWrappedSecret(u.content)])).toEqual([
      ["/run/secrets/DATABASE_URL", true],
      ["/run/secrets/SESSION_SECRET", true],
    ]);
    expect(
      inputs.uploads.find((u: { file: string }) => u.file === "/run/secrets/SESSION_SECRET"),
    ).toMatchObject({
      content: "s3cr3t-value",
      permissions: "0400",
      owner: "101",
    });
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

  it("mounts credentials as files of a Secret, with <NAME>_FILE in the environment and no secretKeyRef", async () => {
    const run = await runComponents(() => {
      new ServerCluster("shop", {
        platform: new KubernetesPlatform("k8s", { namespace: "prod" }),
        image: "ghcr.io/acme/shop:3.2.1",
        credentials: { SESSION_SECRET: "s3cr3t-value" },
      });
    });
    const container = plain(one(run, "kubernetes:apps/v1:Deployment", "shop-app-deployment")).spec.template
      .spec.containers[0];
    expect(container.env).toEqual([{ name: "SESSION_SECRET_FILE", value: "/run/secrets/SESSION_SECRET" }]);
    const secret = plain(one(run, "kubernetes:core/v1:Secret", "shop-app-secret-files"));
    const [key] =
      Object.entries(secret.stringData as Record<string, string>).find(([, v]) => v === "s3cr3t-value") ?? [];
    expect(container.volumeMounts).toContainEqual({
      name: "secret-files",
      mountPath: "/run/secrets/SESSION_SECRET",
      subPath: key,
      readOnly: true,
    });
    expect(ofType(run, "kubernetes:core/v1:Secret").map((r) => r.name)).not.toContain("shop-app-env");
  });
});

describe("ServerCluster with an image or resources from another stack (Outputs)", () => {
  it("treats an Output image as a custom image: no demo config, root-owned credentials", () => {
    const r = resolveServerClusterArgs("shop", {
      platform: fakePlatform,
      image: pulumi.output("registry.example/shop:1.2.3"),
    });
    expect(r.usesDemoApp).toBe(false);
    expect(r.credentialsOwner).toBeUndefined();
  });

  it("runs an Output image with Output resources on Docker", async () => {
    const run = await runComponents(() => {
      new ServerCluster("shop", {
        platform: new DockerPlatform("docker", { prefix: "dev" }),
        image: pulumi.output("registry.example/shop:1.2.3"),
        resources: { cpu: pulumi.output("500m"), memory: pulumi.output("512Mi") },
      });
    });
    const c = plain(one(run, "docker:index/container:Container", "shop-app-0"));
    expect(c).toMatchObject({ image: "sha256:mock-registry.example/shop:1.2.3", memory: 512, cpus: "0.5" });
    // A custom image: no demo-app entrypoint or config file.
    expect(c.entrypoints).toBeUndefined();
    expect(c.uploads).toEqual([]);
  });

  it("fails the program with the plain value's message when an Output memory resolves below the floor", () => {
    const end = runFailingProgram("server-cluster-tiny-memory");
    expect(end.thrown).toBeUndefined();
    expect(end.unhandled).toEqual([
      expect.stringContaining(
        'ServerCluster "shop": resources.memory must be at least 32Mi (an app server needs to start), but "8Mi" was provided. Raise it to 32Mi or more.',
      ),
    ]);
    expect(end.registered.filter((r) => r.startsWith("docker:index/container:Container::"))).toEqual([]);
  });
});
