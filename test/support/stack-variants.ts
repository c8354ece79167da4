/**
 * Runs a stack file (optionally edited) under the mocked engine and reads its Kubernetes
 * manifests: the objects `kubectl apply` would get, with secrets unwrapped for assertions.
 */
import { runProgramWithMocks, unwrapSecrets, type ProgramRun } from "../../scripts/mock-engine";
import { readStackFile } from "../../scripts/stack-file";
import type { Manifest } from "./pod-security";

/** A stack's `ha-backend:*` config as objects, edited by `edit` before the run. */
export type ConfigEdit = (config: Record<string, Record<string, unknown> | string>) => void;

export async function runStackVariant(
  stack: string,
  edit: ConfigEdit = () => undefined,
  rotated: readonly string[] = [],
): Promise<ProgramRun> {
  const file = readStackFile(stack);
  const config: Record<string, Record<string, unknown> | string> = Object.fromEntries(
    Object.entries(file.config).map(([k, v]) => [
      k,
      /^[{[]/.test(v) ? (JSON.parse(v) as Record<string, unknown>) : v,
    ]),
  );
  edit(config);
  const wire = Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
  );
  const { defineStack } = await import("../../infra/program");
  return runProgramWithMocks({
    config: wire,
    secretKeys: file.secretKeys,
    stack,
    program: defineStack,
    rotated,
  });
}

/** Every Kubernetes object of a run, as plain manifests (secrets unwrapped). */
export function kubernetesManifests(run: ProgramRun): Manifest[] {
  return run.resources
    .filter((r) => r.type.startsWith("kubernetes:"))
    .map((r) => unwrapSecrets(r.inputs) as Manifest);
}

/**
 * The scraper the stacks admit by default: the Prometheus Operator's pods (labelled
 * `app.kubernetes.io/name: prometheus`) in namespace `monitoring`, outside the stack's namespace.
 */
export const SCRAPER: Manifest[] = [
  { apiVersion: "v1", kind: "Namespace", metadata: { name: "monitoring" } },
  {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "prometheus", namespace: "monitoring" },
    spec: {
      template: {
        metadata: { labels: { "app.kubernetes.io/name": "prometheus" } },
        spec: { containers: [{ name: "prometheus", ports: [{ name: "web", containerPort: 9090 }] }] },
      },
    },
  },
];
