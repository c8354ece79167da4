import type { WorkloadSpec } from "../../components/platform/types";

/** A published, stateless web tier with config, plain and secret env: every feature a platform maps. */
export const WEB: WorkloadSpec = {
  kind: "stateless",
  replicas: 2,
  image: "nginx:1.28.0-alpine",
  ports: { http: 8080 },
  tier: "app",
  allowFrom: ["edge"],
  env: { MODE: "demo" },
  secretEnv: { API_TOKEN: "tok-123-secret" },
  files: { "/etc/app/app.conf": "listen 8080;\n" },
  healthCheck: { httpGet: { path: "/healthz", port: "http" } },
  runAsUser: 101,
};

/** A stateful data tier with protected volumes, reachable from the app tier only. */
export const DB: WorkloadSpec = {
  kind: "stateful",
  replicas: 3,
  image: "postgres:15.8",
  ports: { pg: 5432 },
  tier: "db",
  allowFrom: ["app"],
  volume: { mountPath: "/var/lib/postgresql/data", sizeGi: 20, protect: true },
};
