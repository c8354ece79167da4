// A worker tier deployed by its own stack, next to a running ha-backend stack (ecommerce-dev):
// it reads that stack's outputs through a StackReference and joins the app tier's networks, so
// the workers reach the databases, the cache and the locks exactly as the app servers do.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config();
// `<organization>/<project>/<stack>`; with the local backend the organization is `organization`.
const backend = new pulumi.StackReference(
  config.get("backendStack") ?? "organization/ha-backend/ecommerce-dev",
);

// The catalog's URL carries its password: the producing stack exports it as a secret, and a
// StackReference keeps that. It is only ever handed on as secret content (a file), never as
// environment or a label.
const databaseUrl = backend.requireOutput("databaseUrl") as pulumi.Output<string>;
const sentinels = backend.requireOutput("cacheSentinels") as pulumi.Output<string[]>;
const masterName = backend.requireOutput("cacheMasterName") as pulumi.Output<string>;
// The Docker networks of the backend's app tier: internal networks, one per service that admits
// the app tier, so a worker reaches those services and nothing else.
const networks = backend.requireOutput("appNetworks") as pulumi.Output<string[]>;

const replicas = config.getNumber("replicas") ?? 2;
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 20) {
  throw new Error(
    `app-on-backend:replicas must be an integer from 1 to 20, but ${replicas} was provided. ` +
      "Set it with: pulumi config set app-on-backend:replicas 2",
  );
}
// Built by CI and tagged; a tag from another stack's output works as well (an Input).
const image = new docker.RemoteImage("worker-image", {
  name: config.get("image") ?? "busybox:1.37.0",
  keepLocally: true,
});

const workers = Array.from({ length: replicas }, (_, i) => {
  const name = `${pulumi.getStack()}-worker-${i}`;
  return new docker.Container(`worker-${i}`, {
    name,
    image: image.imageId,
    // A stand-in for the real worker: it checks its inputs are there, then idles.
    command: ["sh", "-c", 'test -s "$DATABASE_URL_FILE" && exec sleep 2147483647'],
    restart: "unless-stopped",
    networksAdvanced: networks.apply((names) => names.map((n) => ({ name: n }))),
    envs: [
      "DATABASE_URL_FILE=/run/secrets/DATABASE_URL",
      pulumi.interpolate`REDIS_SENTINELS=${sentinels.apply((s) => s.join(","))}`,
      pulumi.interpolate`REDIS_MASTER_NAME=${masterName}`,
    ],
    uploads: [{ file: "/run/secrets/DATABASE_URL", content: databaseUrl }],
    labels: [{ label: "ha-backend.tier", value: "worker" }],
  });
});

export const workerNames = workers.map((w) => w.name);
export const workerNetworks = networks;
