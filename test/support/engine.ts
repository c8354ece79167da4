/**
 * Test helpers over the mocked engine: run the program or a single component and query what
 * was registered. Everything waits on the engine, never on a timer.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  isWrappedSecret,
  redactSecrets,
  runProgramWithMocks,
  unwrapSecrets,
  type ProgramRun,
  type RecordedResource,
} from "../../scripts/mock-engine";
import { readStackFile } from "../../scripts/stack-file";

export { isWrappedSecret, unwrapSecrets, type RecordedResource };

/** Runs the real program for a stack file in `stacks/` (as `pulumi preview` of a new stack with `preview`). */
export async function runStack(stack: string, preview = false): Promise<ProgramRun> {
  const file = readStackFile(stack);
  const { defineStack } = await import("../../infra/program");
  return runProgramWithMocks({ ...file, stack, program: defineStack, preview });
}

/** Runs `build` as a whole program and returns what it registered (component-level tests). */
export async function runBuild(
  build: () => Record<string, unknown> | void,
  stack = "unit",
): Promise<ProgramRun> {
  return runProgramWithMocks({ config: {}, stack, program: () => build() ?? {} });
}

/** Runs the real program with raw `ha-backend:*` values (objects are JSON-encoded as the CLI does). */
export async function runWithConfig(
  raw: Record<string, unknown>,
  recorded: RecordedResource[] = [],
  stack = "test",
): Promise<ProgramRun> {
  const config = Object.fromEntries(
    Object.entries(raw).map(([k, v]) => [`ha-backend:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
  );
  const { defineStack } = await import("../../infra/program");
  return runProgramWithMocks({ config, stack, program: defineStack }, recorded);
}

/** Runs `build` (which declares components) as a whole program, for component-level tests. */
export async function runComponents(build: () => Record<string, unknown> | void): Promise<ProgramRun> {
  return runProgramWithMocks({ config: {}, stack: "unit", program: () => build() ?? {} });
}

export function ofType(run: ProgramRun, type: string): RecordedResource[] {
  return run.resources.filter((r) => r.type === type);
}

/** The single resource of a type and name; fails the test with the names it did find. */
export function one(run: ProgramRun, type: string, name: string): RecordedResource {
  const found = run.resources.filter((r) => r.type === type && r.name === name);
  if (found.length !== 1) {
    const names = ofType(run, type).map((r) => r.name);
    throw new Error(`expected one ${type} named ${name}, found ${found.length} (names: ${names.join(", ")})`);
  }
  return found[0];
}

/** Inputs with secrets unwrapped, typed loosely for assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertion helper over arbitrary JSON
export function plain(r: RecordedResource): any {
  return unwrapSecrets(r.inputs);
}

/** Resolves an output to its value (tests only). */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/**
 * Runs `build` as a program, expecting it to throw `message`; returns what it had registered
 * before it did.
 */
export async function registeredBeforeRejection(
  build: () => void,
  message: string,
): Promise<RecordedResource[]> {
  const recorded: RecordedResource[] = [];
  await expect(
    runProgramWithMocks(
      {
        config: {},
        stack: "unit",
        program: () => {
          build();
          return {};
        },
      },
      recorded,
    ),
  ).rejects.toThrow(message);
  return recorded;
}

/**
 * Runs `build` as a program and expects it to throw `message` without registering a single
 * real (custom) resource: bad args fail before anything would be created.
 */
export async function expectRejectedBeforeAnyResource(build: () => void, message: string): Promise<void> {
  const recorded = await registeredBeforeRejection(build, message);
  // A KubernetesPlatform made in `build` registers its namespace, default-deny policy and
  // digest key when it is constructed: those are the platform's, not the rejected component's.
  const platformOwn = (r: RecordedResource) =>
    /^ha-backend:index:(Docker|Kubernetes)Platform::/.test(r.parent ?? "");
  expect(recorded.filter((r) => r.custom && !platformOwn(r))).toEqual([]);
}

/** No resource's visible (non-secret) inputs contain any of `secrets`. */
export function expectSecretsHidden(run: ProgramRun, secrets: readonly string[]): void {
  for (const r of run.resources) {
    const visible = JSON.stringify(redactSecrets(r.inputs));
    for (const s of secrets) expect([r.name, s, visible.includes(s)]).toEqual([r.name, s, false]);
  }
}
