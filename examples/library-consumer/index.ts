// A small highly available backend from three of ha-backend's components: two app servers
// behind HAProxy, and Redis with Sentinel for sessions, on the local Docker engine.
import * as pulumi from "@pulumi/pulumi";
import { DockerPlatform, LoadBalancer, RedisCache, ServerCluster } from "ha-backend";

const config = new pulumi.Config();

// Where workloads run. `prefix` starts every container, network and volume name on the engine,
// so two stacks can share one; the stack name is the usual choice.
const platform = new DockerPlatform("docker", { prefix: `api-${pulumi.getStack()}` });

// Sessions: a primary, one replica and three Sentinels; apps find the primary through Sentinel.
const sessions = new RedisCache("sessions", { platform, mode: "cache", replicas: 1, sentinels: 3 });
const redis = sessions.appEnv();

// The app servers. `image` takes an Input: a tag from CI or from another stack's output works.
// Unset, ha-backend's demo app serves /healthz.
const image: pulumi.Input<string> | undefined = config.get("image");
const api = new ServerCluster("api", {
  platform,
  replicas: 2,
  image,
  port: 8080,
  healthCheckPath: "/healthz",
  env: { LOG_LEVEL: config.get("logLevel") ?? "info", ...redis.env },
  // Credentials arrive as files under /run/secrets, never as environment.
  credentials: redis.credentials,
});

// HAProxy in front: active health checks, retries on another server.
const lb = new LoadBalancer("api-lb", {
  platform,
  engine: "haproxy",
  backends: [{ group: api }],
  healthCheckPath: "/healthz",
  httpPort: config.getNumber("port") ?? 8090,
});

export const url = lb.url;
export const sessionSentinels = sessions.sentinelEndpoints;
export const sessionFailoverBudgetSeconds = sessions.failoverBudgetSeconds;
