import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { TaskSpec, WorkloadSpec } from "../../components/platform/types";
import {
  expectRejectedBeforeAnyResource,
  isWrappedSecret,
  ofType,
  one,
  plain,
  runComponents,
} from "../support/engine";
import { runFailingProgram } from "../support/output-failures";
import { DB, WEB } from "../support/workloads";

const T = {
  deployment: "kubernetes:apps/v1:Deployment",
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  service: "kubernetes:core/v1:Service",
  configMap: "kubernetes:core/v1:ConfigMap",
  secret: "kubernetes:core/v1:Secret",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  netpol: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  namespace: "kubernetes:core/v1:Namespace",
};

const web: WorkloadSpec = {
  ...WEB,
  replicas: 3,
  ports: { http: 8080, metrics: 9113 },
  secretEnv: { API_TOKEN: "tok-123-secret", DB_PASSWORD: "pw-456-secret" },
  healthCheck: { httpGet: { path: "/healthz", port: "http" }, intervalSeconds: 4, failureThreshold: 2 },
  publicPorts: [{ target: "http", port: 80 }],
  resources: { cpu: "500m", memory: "256Mi" },
};
const db: WorkloadSpec = { ...DB, healthCheck: { tcpPort: "pg" } };

function deploy(...specs: [string, WorkloadSpec][]) {
  return () => {
    const platform = new KubernetesPlatform("k8s", { namespace: "shop", storageClass: "fast-ssd" });
    const out: Record<string, unknown> = {};
    for (const [name, spec] of specs) {
      const w = platform.deploy(name, spec);
      out[name] = {
        service: w.serviceHost,
        discovery: w.discoveryHost,
        members: w.members,
        public: w.publicAddresses,
      };
    }
    return out;
  };
}

describe("KubernetesPlatform", () => {
  it("runs a stateless workload as a Deployment that rolls without losing capacity", async () => {
    const run = await runComponents(deploy(["web", web]));
    const d = plain(one(run, T.deployment, "web-deployment"));
    expect(d.metadata).toMatchObject({ name: "web", namespace: "shop" });
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(c.readinessProbe).toEqual({
      httpGet: { path: "/healthz", port: "http" },
      periodSeconds: 4,
      timeoutSeconds: 3,
      failureThreshold: 2,
      initialDelaySeconds: 0,
    });
    expect(c.livenessProbe).toMatchObject({ failureThreshold: 4, initialDelaySeconds: 10 });
    expect(c.resources).toEqual({ requests: { cpu: "500m", memory: "256Mi" }, limits: { memory: "256Mi" } });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      runAsNonRoot: true,
      runAsUser: 101,
      runAsGroup: 101,
      capabilities: { drop: ["ALL"] },
      // The spec does not say what the image writes: its root stays writable.
      readOnlyRootFilesystem: false,
    });
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(
      pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
        .topologyKey,
    ).toBe("kubernetes.io/hostname");
    expect(pod.topologySpreadConstraints[0].topologyKey).toBe("topology.kubernetes.io/zone");
    expect(c.volumeMounts).toEqual([
      { name: "files", mountPath: "/etc/app/app.conf", subPath: "etc_app_app.conf", readOnly: true },
    ]);
  });

  it("keeps secret values in a Secret and only references in the pod spec", async () => {
    const run = await runComponents(deploy(["web", web]));
    const secret = one(run, T.secret, "web-env");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    expect(plain(secret).stringData).toEqual({ API_TOKEN: "tok-123-secret", DB_PASSWORD: "pw-456-secret" });
    const d = one(run, T.deployment, "web-deployment");
    // Nothing in the Deployment is secret, so a preview diff of it stays readable.
    expect(JSON.stringify(d.inputs)).not.toContain("1b47061264138c4ac30d75fd1eb44270");
    expect(JSON.stringify(d.inputs)).not.toMatch(/tok-123|pw-456/);
    expect(plain(d).spec.template.spec.containers[0].env).toEqual([
      { name: "MODE", value: "demo" },
      { name: "API_TOKEN", valueFrom: { secretKeyRef: { name: "web-env", key: "API_TOKEN" } } },
      { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "web-env", key: "DB_PASSWORD" } } },
    ]);
    for (const r of run.resources.filter((x) => x !== secret)) {
      expect(JSON.stringify(r.inputs)).not.toMatch(/tok-123|pw-456/);
    }
  });

  it("mounts a task's secret files from a Secret, so its Job spec holds no secret value", async () => {
    // GIVEN a task that reads a password from a file, run as an unprivileged user
    const task: TaskSpec = {
      image: "python:3.13.1-alpine",
      command: ["python3", "/apply.py"],
      env: { PASSWORD_FILE: "/run/secrets/password" },
      files: { "/apply.py": "print('ok')\n" },
      secretFiles: { "/run/secrets/password": "pw-789-secret" },
      tier: "admin",
      runAsUser: 999,
      timeoutSeconds: 60,
    };
    const run = await runComponents(() => {
      new KubernetesPlatform("k8s", { namespace: "shop" }).runTask("settings", task);
    });
    // THEN the value is in a Secret of the task's own, each value secret
    const secret = one(run, T.secret, "settings-secret-files");
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    expect(plain(secret).stringData).toEqual({ run_secrets_password: "pw-789-secret" });
    expect(plain(secret).metadata).toMatchObject({ name: "settings-secret-files", namespace: "shop" });
    // and the Job only mounts it, read-only at its path, readable by the task's user
    const job = one(run, "kubernetes:batch/v1:Job", "settings");
    expect(JSON.stringify(job.inputs)).not.toContain("1b47061264138c4ac30d75fd1eb44270");
    expect(JSON.stringify(job.inputs)).not.toContain("pw-789");
    const pod = plain(job).spec.template.spec;
    expect(pod.containers[0].env).toEqual([{ name: "PASSWORD_FILE", value: "/run/secrets/password" }]);
    expect(pod.containers[0].volumeMounts).toEqual([
      { name: "files", mountPath: "/apply.py", subPath: "apply.py", readOnly: true },
      {
        name: "secret-files",
        mountPath: "/run/secrets/password",
        subPath: "run_secrets_password",
        readOnly: true,
      },
    ]);
    expect(pod.volumes).toEqual([
      { name: "files", configMap: { name: "settings-files" } },
      // Root-owned files in a pod without fsGroup: 0444 is what lets uid 999 read them.
      { name: "secret-files", secret: { secretName: "settings-secret-files", defaultMode: 0o444 } },
    ]);
    expect(pod.containers[0].securityContext.readOnlyRootFilesystem).toBe(true);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 999 });
    expect(job.options.dependencies).toEqual(
      expect.arrayContaining([
        "kubernetes:core/v1:ConfigMap::settings-files",
        "kubernetes:core/v1:Secret::settings-secret-files",
      ]),
    );
    // Nothing else holds the value, and no secret environment exists to hold it.
    for (const r of run.resources.filter((x) => x !== secret)) {
      expect([r.name, JSON.stringify(r.inputs).includes("pw-789")]).toEqual([r.name, false]);
    }
    expect(ofType(run, T.secret).map((r) => r.name)).toEqual(["settings-secret-files"]);
  });

  it("rolls the pods when a config file changes (digest annotation)", async () => {
    const digest = async (content: string) => {
      const run = await runComponents(deploy(["web", { ...web, files: { "/etc/app/app.conf": content } }]));
      return plain(one(run, T.deployment, "web-deployment")).spec.template.metadata.annotations[
        "ha-backend/config-digest"
      ];
    };
    const a = await digest("a\n");
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(await digest("a\n")).toBe(a);
    expect(await digest("b\n")).not.toBe(a);
  });

  it("puts config files in a ConfigMap that records where each file lands", async () => {
    const run = await runComponents(deploy(["web", web]));
    const cm = plain(one(run, T.configMap, "web-files"));
    expect(cm.data).toEqual({ "etc_app_app.conf": "listen 8080;\n" });
    expect(JSON.parse(cm.metadata.annotations["ha-backend/file-paths"])).toEqual({
      "etc_app_app.conf": "/etc/app/app.conf",
    });
  });

  it("runs a stateful workload as a StatefulSet with a claim per member and stable member addresses", async () => {
    const run = await runComponents(deploy(["db", db]));
    const s = one(run, T.statefulSet, "db-statefulset");
    const sts = plain(s);
    expect(sts.spec.serviceName).toBe("db-headless");
    expect(sts.spec.volumeClaimTemplates).toEqual([
      {
        metadata: {
          name: "data",
          labels: { "app.kubernetes.io/name": "db", "app.kubernetes.io/part-of": "ha-backend" },
        },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: "fast-ssd",
          resources: { requests: { storage: "20Gi" } },
        },
      },
    ]);
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: "Retain",
      whenScaled: "Retain",
    });
    expect(s.protect).toBe(true);
    expect(sts.spec.template.spec.containers[0].volumeMounts).toEqual([
      { name: "data", mountPath: "/var/lib/postgresql/data" },
    ]);
    // No uid given: the image must declare a non-root one (the kubelet refuses to start it otherwise).
    expect(sts.spec.template.spec.containers[0].securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
      readOnlyRootFilesystem: false,
    });
    expect(ofType(run, T.deployment)).toEqual([]);
    const headless = plain(one(run, T.service, "db-headless"));
    expect(headless.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
    expect(run.outputs.db).toEqual({
      service: "db.shop.svc.cluster.local",
      discovery: "db-headless.shop.svc.cluster.local",
      members: [0, 1, 2].map((i) => ({
        name: `db-${i}`,
        host: `db-${i}.db-headless.shop.svc.cluster.local`,
      })),
      public: {},
    });
  });

  it("adds a PodDisruptionBudget only where there are two or more members", async () => {
    const run = await runComponents(
      deploy(["web", web], ["solo", { ...web, replicas: 1, publicPorts: undefined }]),
    );
    expect(ofType(run, T.pdb).map((p) => p.name)).toEqual(["web-pdb"]);
    expect(plain(one(run, T.pdb, "web-pdb")).spec).toEqual({
      maxUnavailable: 1,
      selector: {
        matchLabels: { "app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "ha-backend" },
      },
    });
  });

  it("admits only peers, the allowed tiers and (for the edge) the public port", async () => {
    const run = await runComponents(deploy(["web", web], ["db", db]));
    const dbPolicy = plain(one(run, T.netpol, "db-netpol")).spec;
    expect(dbPolicy.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(dbPolicy.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: { "app.kubernetes.io/name": "db", "app.kubernetes.io/part-of": "ha-backend" },
            },
          },
        ],
      },
      {
        from: [
          {
            podSelector: { matchExpressions: [{ key: "ha-backend/tier", operator: "In", values: ["app"] }] },
          },
        ],
        ports: [{ port: 5432, protocol: "TCP" }],
      },
    ]);
    const webPolicy = plain(one(run, T.netpol, "web-netpol")).spec;
    // Anyone outside, and the stack's prober inside (an ipBlock may not match a pod's address).
    expect(webPolicy.ingress[2]).toEqual({
      from: [
        { ipBlock: { cidr: "0.0.0.0/0" } },
        { podSelector: { matchLabels: { "ha-backend/prober": "true" } } },
      ],
      ports: [{ port: 8080, protocol: "TCP" }],
    });
  });

  it("exposes only the public edge through a LoadBalancer Service", async () => {
    const run = await runComponents(deploy(["web", web], ["db", db]));
    const types = ofType(run, T.service).map((s) => [s.name, plain(s).spec.type ?? "headless"]);
    expect(types.sort()).toEqual([
      ["db-headless", "headless"],
      ["db-service", "ClusterIP"],
      ["web-headless", "headless"],
      ["web-public", "LoadBalancer"],
      ["web-service", "ClusterIP"],
    ]);
    expect(plain(one(run, T.service, "web-public")).spec.ports).toEqual([
      { name: "http", port: 80, targetPort: "http" },
    ]);
  });

  it("creates the namespace once and places every object in it", async () => {
    const run = await runComponents(deploy(["web", web], ["db", db]));
    expect(ofType(run, T.namespace).map((n) => plain(n).metadata.name)).toEqual(["shop"]);
    for (const r of run.resources.filter((x) => x.type.startsWith("kubernetes:") && x.type !== T.namespace)) {
      expect([r.name, plain(r).metadata.namespace]).toEqual([r.name, "shop"]);
    }
  });

  it("rejects a namespace that is not a DNS label", async () => {
    await expect(
      runComponents(() => void new KubernetesPlatform("k8s", { namespace: "Shop_Prod" })),
    ).rejects.toThrow(
      'KubernetesPlatform "k8s": namespace must be a DNS label (a-z, 0-9, \'-\', at most 63), but "Shop_Prod" was provided.',
    );
  });

  it("rejects a workload name Kubernetes cannot use, before creating its objects", async () => {
    let created = -1;
    await expect(
      runComponents(deploy(["Web_Tier", web])).then((r) => (created = r.resources.length)),
    ).rejects.toThrow('Workload "Web_Tier": the workload name must be a DNS label of at most 52 characters');
    expect(created).toBe(-1);
  });

  describe("API access, built images and liveness", () => {
    const coordinated: WorkloadSpec = {
      ...db,
      apiAccess: [
        { resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "patch", "update"] },
        { resources: ["pods"], verbs: ["get", "list", "watch", "patch", "update"] },
      ],
      healthCheck: { httpGet: { path: "/readiness", port: "pg" }, livenessPath: "/liveness" },
      build: { context: "/src/image" },
    };
    const withRegistry =
      (...specs: [string, WorkloadSpec][]) =>
      () => {
        const platform = new KubernetesPlatform("k8s", {
          namespace: "shop",
          imageRegistry: "registry.example.com/team",
        });
        for (const [name, spec] of specs) platform.deploy(name, spec);
      };

    it("lets a workload that uses the API reach the API server, anywhere or where it is told", async () => {
      const egressOf = async (apiServerCidrs?: string[]) => {
        const run = await runComponents(() => {
          const platform = new KubernetesPlatform("k8s", {
            namespace: "shop",
            imageRegistry: "registry.example.com/team",
            apiServerCidrs,
          });
          platform.deploy("pg", coordinated);
          platform.deploy("web", web);
        });
        return [
          plain(one(run, T.netpol, "pg-netpol")).spec.egress,
          plain(one(run, T.netpol, "web-netpol")).spec.egress,
        ];
      };
      const ports = [
        { port: 443, protocol: "TCP" },
        { port: 6443, protocol: "TCP" },
      ];
      const [pg, web_] = await egressOf();
      expect(pg[3]).toEqual({ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports });
      expect(web_).toHaveLength(3);
      expect((await egressOf(["172.18.0.2/32"]))[0][3]).toEqual({
        to: [{ ipBlock: { cidr: "172.18.0.2/32" } }],
        ports,
      });
    });

    it("gives a workload that asks for API access its own account, with exactly its rules, in its namespace", async () => {
      const run = await runComponents(withRegistry(["pg", coordinated], ["web", web]));
      const role = plain(one(run, "kubernetes:rbac.authorization.k8s.io/v1:Role", "pg-role"));
      expect(role.metadata.namespace).toBe("shop");
      expect(role.rules).toEqual([
        {
          apiGroups: [""],
          resources: ["configmaps"],
          verbs: ["get", "list", "watch", "create", "patch", "update"],
        },
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "patch", "update"] },
      ]);
      const binding = plain(
        one(run, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "pg-rolebinding"),
      );
      expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pg" });
      expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "pg", namespace: "shop" }]);
      expect(ofType(run, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")).toEqual([]);
      const pod = plain(one(run, T.statefulSet, "pg-statefulset")).spec.template.spec;
      expect(pod.serviceAccountName).toBe("pg");
      expect(pod.automountServiceAccountToken).toBe(true);
      // Everything else runs without an API token.
      const webPod = plain(one(run, T.deployment, "web-deployment")).spec.template.spec;
      expect(webPod.serviceAccountName).toBeUndefined();
      expect(webPod.automountServiceAccountToken).toBe(false);
      expect(ofType(run, "kubernetes:core/v1:ServiceAccount").map((r) => r.name)).toEqual(["pg-account"]);
    });

    it("builds and pushes an image to the registry and runs it by digest", async () => {
      const run = await runComponents(withRegistry(["pg", coordinated]));
      const image = plain(one(run, "docker:index/image:Image", "pg-image"));
      expect(image.imageName).toBe("registry.example.com/team/postgres:15.8");
      expect(image.skipPush).toBe(false);
      expect(image.build).toMatchObject({ context: "/src/image", dockerfile: "/src/image/Dockerfile" });
      const c = plain(one(run, T.statefulSet, "pg-statefulset")).spec.template.spec.containers[0];
      expect(c.image).toBe("registry.example.com/team/postgres@sha256:mock");
    });

    it("probes liveness on its own path when one is given", async () => {
      const run = await runComponents(withRegistry(["pg", coordinated]));
      const c = plain(one(run, T.statefulSet, "pg-statefulset")).spec.template.spec.containers[0];
      expect(c.readinessProbe.httpGet).toEqual({ path: "/readiness", port: "pg" });
      expect(c.livenessProbe.httpGet).toEqual({ path: "/liveness", port: "pg" });
    });

    it("says it cannot build without a registry, and names the fix", async () => {
      const platform = () => new KubernetesPlatform("k8s", { namespace: "shop" });
      await expect(runComponents(() => void platform().deploy("pg", coordinated))).rejects.toThrow(
        'KubernetesPlatform: workload "pg" needs its image built, but no imageRegistry was given. Set the platform\'s imageRegistry',
      );
      const run = await runComponents(() => ({ canBuild: platform().canBuildImages }));
      expect(run.outputs.canBuild).toBe(false);
    });

    it("offers its namespace as a state store, found by the pods' labels", async () => {
      const run = await runComponents(() => ({
        store: new KubernetesPlatform("k8s", { namespace: "shop" }).stateStore(),
      }));
      expect(run.outputs.store).toEqual({
        kind: "kubernetes",
        namespace: "shop",
        labels: { "app.kubernetes.io/part-of": "ha-backend" },
        nameLabel: "app.kubernetes.io/name",
      });
    });

    it("rejects a registry with a tag or capitals", async () => {
      await expect(
        runComponents(
          () => void new KubernetesPlatform("k8s", { namespace: "shop", imageRegistry: "Registry.io/x:1" }),
        ),
      ).rejects.toThrow(
        'imageRegistry must be a registry host with an optional path (lowercase, no tag), but "Registry.io/x:1" was provided.',
      );
    });
  });

  describe("isolation, boot order and the edge", () => {
    const platformWith = (args: Partial<ConstructorParameters<typeof KubernetesPlatform>[1]> = {}) =>
      new KubernetesPlatform("k8s", { namespace: "shop", ...args });

    it("labels the namespace for Pod Security restricted and denies all traffic by default", async () => {
      const run = await runComponents(deploy(["web", web]));
      const labels = plain(one(run, T.namespace, "k8s-namespace")).metadata.labels;
      for (const mode of ["enforce", "warn", "audit"]) {
        expect(labels[`pod-security.kubernetes.io/${mode}`]).toBe("restricted");
      }
      expect(plain(one(run, T.netpol, "k8s-default-deny")).spec).toEqual({
        podSelector: {},
        policyTypes: ["Ingress", "Egress"],
      });
    });

    it("keeps peer ports to members, and lets a tier out only to the cluster DNS and the pods that admit it", async () => {
      const etcd: WorkloadSpec = {
        ...DB,
        ports: { client: 2379, peer: 2380 },
        tier: "locks",
        peerPorts: ["peer"],
      };
      const run = await runComponents(deploy(["web", web], ["etcd", etcd]));
      const policy = plain(one(run, T.netpol, "etcd-netpol")).spec;
      // The app tier gets the client port only.
      expect(policy.ingress[1].ports).toEqual([{ port: 2379, protocol: "TCP" }]);
      const sts = plain(one(run, T.statefulSet, "etcd-statefulset"));
      expect(sts.spec.template.metadata.labels["allow-from.ha-backend/app"]).toBe("true");
      const out = plain(one(run, T.netpol, "web-netpol")).spec.egress;
      expect(out).toEqual([
        {
          to: [
            {
              namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
              podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
            },
          ],
          ports: [
            { port: 53, protocol: "UDP" },
            { port: 53, protocol: "TCP" },
          ],
        },
        {
          to: [
            {
              podSelector: {
                matchLabels: { "app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "ha-backend" },
              },
            },
          ],
        },
        { to: [{ podSelector: { matchLabels: { "allow-from.ha-backend/app": "true" } } }] },
      ]);
    });

    it("starts quorum members together, others in order", async () => {
      const run = await runComponents(deploy(["db", db], ["quorum", { ...db, startTogether: true }]));
      expect(plain(one(run, T.statefulSet, "db-statefulset")).spec.podManagementPolicy).toBe("OrderedReady");
      expect(plain(one(run, T.statefulSet, "quorum-statefulset")).spec.podManagementPolicy).toBe("Parallel");
    });

    it("makes the root read-only with scratch directories where the image's writes are known", async () => {
      const run = await runComponents(
        deploy(["db", { ...db, runAsUser: 999, writablePaths: ["/run/mysqld"] }]),
      );
      const pod = plain(one(run, T.statefulSet, "db-statefulset")).spec.template.spec;
      expect(pod.containers[0].securityContext.readOnlyRootFilesystem).toBe(true);
      expect(pod.containers[0].volumeMounts.slice(1)).toEqual([
        { name: "scratch-0", mountPath: "/tmp" },
        { name: "scratch-1", mountPath: "/run/mysqld" },
      ]);
      expect(pod.volumes).toEqual([
        { name: "scratch-0", emptyDir: {} },
        { name: "scratch-1", emptyDir: {} },
      ]);
      expect(pod.securityContext).toMatchObject({ runAsUser: 999, fsGroup: 999, runAsNonRoot: true });
    });

    it("sizes a member by its tier's default where the stack sets no resources", async () => {
      const run = await runComponents(
        deploy(["db", { ...db, defaultResources: { cpu: "100m", memory: "64Mi" } }], ["web", web]),
      );
      const c = plain(one(run, T.statefulSet, "db-statefulset")).spec.template.spec.containers[0];
      expect(c.resources).toEqual({ requests: { cpu: "100m", memory: "64Mi" }, limits: { memory: "64Mi" } });
    });

    it.each([
      [undefined, "LoadBalancer", "Local"],
      ["NodePort", "NodePort", "Local"],
      ["ClusterIP", "ClusterIP", undefined],
    ] as const)("publishes the edge as %s with the client's address kept", async (type, expected, policy) => {
      const run = await runComponents(() => void platformWith({ serviceType: type }).deploy("web", web));
      const spec = plain(one(run, T.service, "web-public")).spec;
      expect([spec.type, spec.externalTrafficPolicy]).toEqual([expected, policy]);
      // The stack's prober (pods labelled ha-backend/prober) is admitted to the public port
      // whatever the Service type: an ipBlock may not match a pod's address.
      const ingress = plain(one(run, T.netpol, "web-netpol")).spec.ingress;
      // The public rule: anyone outside (an ipBlock), or anyone in the cluster (ClusterIP).
      const publicRule = ingress.find((r: { from: { ipBlock?: unknown; namespaceSelector?: object }[] }) =>
        r.from.some(
          (f) =>
            f.ipBlock !== undefined || (f.namespaceSelector && Object.keys(f.namespaceSelector).length === 0),
        ),
      );
      expect(publicRule.from).toContainEqual({
        podSelector: { matchLabels: { "ha-backend/prober": "true" } },
      });
      const pod = plain(one(run, T.deployment, "web-deployment")).spec.template.spec;
      expect(pod.topologySpreadConstraints[1]).toMatchObject({
        topologyKey: "kubernetes.io/hostname",
        whenUnsatisfiable: "DoNotSchedule",
      });
    });

    it.each([
      [
        { serviceType: "Ingress" },
        'serviceType must be one of LoadBalancer, NodePort, ClusterIP, but "Ingress" was provided.',
      ],
      [
        { serviceTimeoutMinutes: 0 },
        "serviceTimeoutMinutes must be a whole number from 1 to 60, but 0 was provided.",
      ],
    ])("rejects %j", async (args, message) => {
      await expect(
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a bad value on purpose
        runComponents(() => void platformWith(args as any)),
      ).rejects.toThrow(message);
    });

    it("rolls the pods when a secret file or secret env changes, without a plain hash of either", async () => {
      const digest = async (extra: Partial<WorkloadSpec>) => {
        const run = await runComponents(() => void platformWith().deploy("web", { ...web, ...extra }));
        const d = one(run, T.deployment, "web-deployment");
        return { value: plain(d).spec.template.metadata.annotations["ha-backend/config-digest"], run, d };
      };
      const base = await digest({ secretFiles: { "/etc/app/key.pem": "key-one" } });
      expect((await digest({ secretFiles: { "/etc/app/key.pem": "key-one" } })).value).toBe(base.value);
      expect((await digest({ secretFiles: { "/etc/app/key.pem": "key-two" } })).value).not.toBe(base.value);
      expect(
        (await digest({ secretFiles: { "/etc/app/key.pem": "key-one" }, secretEnv: { API_TOKEN: "other" } }))
          .value,
      ).not.toBe(base.value);
      // In the clear (the template stays reviewable), and not the sha256 of the secret content.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw recorded inputs
      const raw = base.d.inputs as any;
      expect(JSON.stringify(raw.spec.template.metadata).includes("4dabf18193072939515e22adb298388d")).toBe(
        false,
      );
      expect(base.value).not.toBe(createHash("sha256").update("key-one").digest("hex"));
      expect(base.value).toMatch(/^[0-9a-f]{64}$/);
    });
  });
});

describe("KubernetesPlatform with an image or resources from another stack (Outputs)", () => {
  const UNPINNED =
    'Workload "web": image must be pinned by a tag other than latest (name:tag), but "app:latest" was ' +
    "provided. Give the image with an explicit version tag, e.g. nginx:1.28.0-alpine.";

  it("runs an Output image as given, and sizes the pods by Output requests and limits", async () => {
    const run = await runComponents(
      deploy([
        "web",
        {
          ...web,
          image: pulumi.output("registry.example/app:1.2.3"),
          resources: { cpu: pulumi.output("1500m"), memory: pulumi.output("1Gi") },
        },
      ]),
    );
    const c = plain(one(run, T.deployment, "web-deployment")).spec.template.spec.containers[0];
    expect(c.image).toBe("registry.example/app:1.2.3");
    expect(c.resources).toEqual({ requests: { cpu: "1500m", memory: "1Gi" }, limits: { memory: "1Gi" } });
  });

  it("rejects a plain latest image synchronously, before creating the workload's objects", async () => {
    const run = await runComponents(() => {
      const platform = new KubernetesPlatform("k8s", { namespace: "shop" });
      expect(() => platform.deploy("web", { ...web, image: "app:latest" })).toThrow(UNPINNED);
    });
    expect(run.resources.filter((r) => r.name.startsWith("web-"))).toEqual([]);
  });

  it("fails the program with the same message when an Output image resolves to latest, creating no pod", () => {
    const end = runFailingProgram("kubernetes-latest-image");
    expect(end.thrown).toBeUndefined();
    expect(end.unhandled).toEqual([expect.stringContaining(UNPINNED)]);
    expect(end.registered).not.toContain(`${T.deployment}::web-deployment`);
  });

  it("builds only a plain image tag, and says so before creating anything", async () => {
    const message =
      'Workload "pg": image must be a plain string when build is set (it names the image that is built), but ' +
      '"an Output" was provided. Give the tag to build as a string, or drop build and pass a prebuilt image.';
    await expectRejectedBeforeAnyResource(() => {
      const platform = new KubernetesPlatform("k8s", {
        namespace: "shop",
        imageRegistry: "registry.example.com/team",
      });
      platform.deploy("pg", {
        ...db,
        image: pulumi.output("postgres:15.8"),
        build: { context: "/src/image" },
      });
    }, message);
  });
});
