import { LockService } from "../../components/coordination/lock-service";
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
} from "../support/engine";

const CONTAINER = "docker:index/container:Container";

describe("LockService", () => {
  const build = () => {
    const locks = new LockService("locks", {
      platform: new DockerPlatform("docker", { prefix: "dev" }),
      members: 3,
    });
    const { env, credentials } = locks.appEnv();
    return { endpoints: locks.endpoints, env, credentials };
  };

  it("runs etcd over HTTPS for clients with a certificate its own CA signed", async () => {
    const run = await runComponents(build);
    const m = plain(one(run, CONTAINER, "locks-etcd-1"));
    const env = Object.fromEntries((m.envs as string[]).map((e) => e.split(/=(.*)/s).slice(0, 2)));
    expect(env).toMatchObject({
      ETCD_CLIENT_CERT_AUTH: "true",
      ETCD_LISTEN_CLIENT_URLS: "https://0.0.0.0:2379",
      ETCD_ADVERTISE_CLIENT_URLS: "https://locks-etcd-1:2379",
      ETCD_TRUSTED_CA_FILE: "/etc/ha-backend/etcd/tls/ca.pem",
      ETCD_NAME: "locks-etcd-1",
    });
    expect(m.healthcheck.tests).toContain("--endpoints=https://127.0.0.1:2379");
    expect(run.outputs.endpoints).toEqual([
      "https://locks-etcd-0:2379",
      "https://locks-etcd-1:2379",
      "https://locks-etcd-2:2379",
    ]);
    // The members' certificate names every member and 127.0.0.1 (their own health check).
    const csr = plain(one(run, "tls:index/certRequest:CertRequest", "locks-server-csr"));
    expect(csr.dnsNames).toEqual(["locks-etcd-0", "locks-etcd-1", "locks-etcd-2", "localhost"]);
    expect(csr.ipAddresses).toEqual(["127.0.0.1"]);
    expect(
      plain(one(run, "tls:index/locallySignedCert:LocallySignedCert", "locks-client-cert")).allowedUses,
    ).toEqual(["digital_signature", "key_encipherment", "client_auth"]);
    expect(plain(one(run, "tls:index/selfSignedCert:SelfSignedCert", "locks-ca")).isCaCertificate).toBe(true);
  });

  it("keeps private keys secret: the members' key is a secret file, the app's a credential (a file too)", async () => {
    const run = await runComponents(build);
    const files = one(run, CONTAINER, "locks-etcd-0").inputs.uploads as { file: string; content: unknown }[];
    expect(files.map((f) => [f.file, isWrappedSecret(f.content)])).toEqual([
      ["/etc/ha-backend/etcd/tls/ca.pem", false],
      ["/etc/ha-backend/etcd/tls/server.pem", false],
      ["/etc/ha-backend/etcd/tls/server-key.pem", true],
    ]);
    expect(run.outputs.credentials).toEqual({ LOCK_CLIENT_KEY_PEM: "[secret]" });
    expect(Object.keys(run.outputs.env as object)).toEqual([
      "LOCK_ENDPOINTS",
      "LOCK_CA_PEM",
      "LOCK_CLIENT_CERT_PEM",
      "LOCK_TTL_SECONDS",
    ]);
    const keys = ofType(run, "tls:index/privateKey:PrivateKey").map((k) => `mock ${k.name}`);
    expect(keys).toHaveLength(3);
    expectSecretsHidden(run, keys);
  });

  it("on Kubernetes: the members' key in a Secret, the certificate names the pods' stable DNS names", async () => {
    const run = await runComponents(() => {
      new LockService("locks", { platform: new KubernetesPlatform("k8s", { namespace: "prod" }) });
    });
    expect(
      isWrappedSecret(one(run, "kubernetes:core/v1:Secret", "locks-etcd-secret-files").inputs.stringData),
    ).toBe(true);
    expect(plain(one(run, "tls:index/certRequest:CertRequest", "locks-server-csr")).dnsNames[0]).toBe(
      "locks-etcd-0.locks-etcd-headless.prod.svc.cluster.local",
    );
    expect(plain(one(run, "kubernetes:apps/v1:StatefulSet", "locks-etcd-statefulset")).spec.replicas).toBe(3);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["an even member count", { members: 2 }, 'LockService "l": members must be 1, 3, 5 or 7'],
    [
      "a TTL too short for etcd",
      { ttlSeconds: 1 },
      "ttlSeconds must be whole seconds from 2 to 3600, but 1 was provided.",
    ],
  ])("rejects %s before creating anything", async (_, args, message) => {
    await expectRejectedBeforeAnyResource(() => {
      void new LockService("l", { platform: new DockerPlatform("docker", { prefix: "dev" }), ...args });
    }, message);
  });
});
