/**
 * Jest's node environment, plus a record of every test and every beforeAll/afterAll hook: how
 * long it ran and the timeout that would have failed it. Written only when
 * `HA_BACKEND_TEST_LOG` names a file (the live repeat runner sets it), one JSON per line. It also
 * tells the test code which test or suite hook is running ({@link CURRENT_TEST}), for the waits
 * it records.
 */
import { appendFileSync } from "node:fs";
import NodeEnvironment from "jest-environment-node";
import { CURRENT_TEST } from "./current-test";

/** One finished test or hook, as the repeat runner reads it. */
export interface TimedRecord {
  readonly file: string;
  /** The test's full name (describe titles and its own, joined by spaces), or the hook's block and kind. */
  readonly name: string;
  readonly kind: "test" | "hook";
  readonly durationMs: number;
  /** The timeout in force: the test's or hook's own, else the configured default. */
  readonly timeoutMs: number;
  readonly ok: boolean;
}

// The few fields of jest-circus events read here (its types live in a package we do not pin).
interface Block {
  readonly name: string;
  readonly parent?: Block;
}
interface CircusTest {
  readonly name: string;
  readonly parent: Block;
  readonly timeout?: number;
  readonly duration?: number | null;
  readonly errors: readonly unknown[];
}
interface CircusHook {
  readonly type: string;
  readonly parent: Block;
  readonly timeout?: number;
}
interface CircusEvent {
  readonly name: string;
  readonly test?: CircusTest;
  readonly hook?: CircusHook;
}
interface CircusState {
  readonly testTimeout?: number;
}

const ROOT = "ROOT_DESCRIBE_BLOCK";

function fullName(block: Block | undefined, own?: string): string {
  const names: string[] = own === undefined ? [] : [own];
  for (let b = block; b !== undefined && b.name !== ROOT; b = b.parent) names.unshift(b.name);
  return names.join(" ");
}

/** A suite hook's name: its describe block's, then its kind (just `(beforeAll)` at the top level). */
function hookName(h: CircusHook): string {
  return [fullName(h.parent), `(${h.type})`].filter((x) => x !== "").join(" ");
}

export default class TimedEnvironment extends NodeEnvironment {
  private readonly log = process.env.HA_BACKEND_TEST_LOG ?? "";
  private readonly file: string;
  private readonly defaultTimeoutMs: number;
  private hookStarted = 0;

  constructor(...args: ConstructorParameters<typeof NodeEnvironment>) {
    super(...args);
    this.file = args[1].testPath;
    this.defaultTimeoutMs = args[0].globalConfig.testTimeout ?? 5_000;
  }

  private write(r: Omit<TimedRecord, "file">): void {
    if (this.log === "") return;
    appendFileSync(this.log, `${JSON.stringify({ file: this.file, ...r })}\n`);
  }

  async handleTestEvent(event: CircusEvent, state: CircusState): Promise<void> {
    // jest-circus runs a test or hook under its own timeout, else the state's (jest.setTimeout).
    const timeoutMs = (own: number | undefined) => own || state.testTimeout || this.defaultTimeoutMs;
    // Only suite hooks: a beforeEach/afterEach runs inside its test's time already.
    const hook = event.hook?.type === "beforeAll" || event.hook?.type === "afterAll" ? event.hook : undefined;
    if (event.name === "hook_start" && hook !== undefined) {
      this.hookStarted = Date.now();
      this.global[CURRENT_TEST] = hookName(hook);
    }
    if ((event.name === "hook_success" || event.name === "hook_failure") && hook !== undefined) {
      this.global[CURRENT_TEST] = undefined;
      this.write({
        name: hookName(hook),
        kind: "hook",
        durationMs: Date.now() - this.hookStarted,
        timeoutMs: timeoutMs(hook.timeout),
        ok: event.name === "hook_success",
      });
    }
    if (event.name === "test_start" && event.test !== undefined) {
      this.global[CURRENT_TEST] = fullName(event.test.parent, event.test.name);
    }
    if (event.name === "test_done" && event.test !== undefined) {
      const t = event.test;
      this.global[CURRENT_TEST] = undefined;
      this.write({
        name: fullName(t.parent, t.name),
        kind: "test",
        durationMs: t.duration ?? 0,
        timeoutMs: timeoutMs(t.timeout),
        ok: t.errors.length === 0,
      });
    }
  }
}
