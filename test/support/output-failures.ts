/**
 * Programs whose args are Outputs that fail a component's check when they resolve, and a runner
 * that judges them as Pulumi's Node language host does. A check inside `apply` rejects the
 * Output; Pulumi then rejects every output of each resource that used it, and the language host
 * fails the program on the first unhandled rejection (`@pulumi/pulumi` cmd/run/run.ts). Jest
 * turns those same rejections into errors of whichever test runs when they land, so these
 * programs run in a child process of their own: its `exit` event comes once the event loop is
 * empty, after the last rejection, with no timer involved.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ServerCluster } from "../../components/cluster/server-cluster";
import { DockerPlatform } from "../../components/platform/docker";
import { KubernetesPlatform } from "../../components/platform/kubernetes";
import type { WorkloadSpec } from "../../components/platform/types";
import { runProgramWithMocks, type RecordedResource } from "../../scripts/mock-engine";
import { OFFLINE_TLS_CERTIFICATE } from "../../scripts/offline-tls";
import { Backend } from "../../infra/backend";

const latestWeb: WorkloadSpec = {
  kind: "stateless",
  replicas: 2,
  image: pulumi.output("app:latest"),
  ports: { http: 8080 },
  tier: "app",
};

/** The programs, by name; each declares its resources and returns no outputs. */
export const FAILING_PROGRAMS = {
  "docker-latest-image": () => {
    new DockerPlatform("docker", { prefix: "p" }).deploy("web", latestWeb);
  },
  "docker-secret-latest-image": () => {
    new DockerPlatform("docker", { prefix: "p" }).deploy("web", {
      ...latestWeb,
      image: pulumi.secret("app:latest"),
    });
  },
  "docker-missing-image": () => {
    // Another stack's output that is not there resolves to nothing.
    const missing = pulumi.output(undefined as unknown as string);
    new DockerPlatform("docker", { prefix: "p" }).deploy("web", { ...latestWeb, image: missing });
  },
  "kubernetes-latest-image": () => {
    new KubernetesPlatform("k8s", { namespace: "shop" }).deploy("web", latestWeb);
  },
  "server-cluster-tiny-memory": () => {
    new ServerCluster("shop", {
      platform: new DockerPlatform("docker", { prefix: "p" }),
      resources: { cpu: "250m", memory: pulumi.output("8Mi") },
    });
  },
  "backend-bad-tls-key": () => {
    new Backend("site", {
      topology: "blog",
      platform: "docker",
      settings: { balancer: { tls: "provided" } },
      tlsCertificate: OFFLINE_TLS_CERTIFICATE,
      // As another stack or a secret store hands it over: an Output.
      tlsKey: pulumi.secret("not a key"),
    });
  },
} as const;

export type FailingProgram = keyof typeof FAILING_PROGRAMS;

/** How a program ended, as the language host sees it. */
export interface ProgramEnd {
  /** What the program itself threw (synchronously, or from its returned promise); undefined if it returned. */
  readonly thrown?: string;
  /** The distinct messages of unhandled rejections: any one fails the update. */
  readonly unhandled: readonly string[];
  /** `type::name` of every resource the engine was asked to register. */
  readonly registered: readonly string[];
}

/** Runs one of {@link FAILING_PROGRAMS} in a child process (about a second and a half). */
export function runFailingProgram(name: FailingProgram): ProgramEnd {
  const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", __filename, name], {
    cwd: join(__dirname, "..", ".."),
    encoding: "utf8",
    timeout: 60_000,
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  if (r.status !== 0 || line === undefined) {
    throw new Error(`${name} exited with ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return JSON.parse(line) as ProgramEnd;
}

/** The child's side: run the named program and print how it ended, once nothing is pending. */
function main(name: string): void {
  const program = FAILING_PROGRAMS[name as FailingProgram];
  if (program === undefined) throw new Error(`no failing program ${name}`);
  const unhandled = new Set<string>();
  // Pulumi rejects the same error object through every dependent output: one message each.
  process.on("unhandledRejection", (e) => unhandled.add(e instanceof Error ? e.message : String(e)));
  const recorded: RecordedResource[] = [];
  let thrown: string | undefined;
  runProgramWithMocks(
    {
      config: {},
      stack: "unit",
      program: () => {
        program();
        return {};
      },
    },
    recorded,
  ).catch((e: unknown) => {
    thrown = e instanceof Error ? e.message : String(e);
  });
  process.on("exit", () => {
    const end: ProgramEnd = {
      thrown,
      unhandled: [...unhandled],
      registered: recorded.filter((r) => r.custom).map((r) => `${r.type}::${r.name}`),
    };
    process.stdout.write(`${JSON.stringify(end)}\n`);
  });
}

if (require.main === module) main(process.argv[2]);
