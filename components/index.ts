/**
 * ha-backend's public API: what other Pulumi stacks import.
 *
 *   import { DockerPlatform, ServerCluster } from "ha-backend";
 */
export { DockerPlatform, type DockerPlatformArgs } from "./platform/docker";
export { KubernetesPlatform, type KubernetesPlatformArgs } from "./platform/kubernetes";
export type {
  HealthCheck,
  MemberAddress,
  Platform,
  PlatformKind,
  PublicPort,
  ResourceSpec,
  VolumeSpec,
  Workload,
  WorkloadSpec,
} from "./platform/types";
export { validateWorkloadSpec } from "./platform/spec";
export {
  DEMO_APP_IMAGE,
  ServerCluster,
  resolveServerClusterArgs,
  type ResolvedServerClusterArgs,
  type ServerClusterArgs,
} from "./cluster/server-cluster";
export { renderDemoApp, type DemoAppSpec } from "./cluster/render/demo-app";
export {
  HAPROXY_IMAGE,
  LoadBalancer,
  NGINX_IMAGE,
  resolveLoadBalancerArgs,
  type BackendGroup,
  type BalancerEngine,
  type LoadBalancerArgs,
  type LoadBalancerBackend,
  type ResolvedLoadBalancerArgs,
} from "./balancer/load-balancer";
export { renderNginx } from "./balancer/render/nginx";
export { renderHaproxy } from "./balancer/render/haproxy";
export type {
  Algorithm,
  BalancerBackend,
  BalancerDiscovery,
  BalancerRenderSpec,
} from "./balancer/render/spec";
