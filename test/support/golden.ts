/**
 * Golden files: the expected output of a renderer, committed under test/render/golden/.
 * `UPDATE_GOLDEN=1 npm test` rewrites them; every golden test also makes targeted assertions,
 * so a blind regeneration cannot hide a regression.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const GOLDEN_DIR = join(__dirname, "..", "render", "golden");

export function expectGolden(name: string, actual: string): void {
  expectGoldenAt(join(GOLDEN_DIR, name), actual);
}

/** {@link expectGolden} for a golden file kept elsewhere in the repo (e.g. provider/schema.json). */
export function expectGoldenAt(path: string, actual: string): void {
  if (process.env.UPDATE_GOLDEN === "1" || !existsSync(path)) {
    if (process.env.CI === "true" && !existsSync(path)) {
      throw new Error(`golden file ${path} is missing; run UPDATE_GOLDEN=1 npm test locally and commit it`);
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
  }
  expect(actual).toBe(readFileSync(path, "utf8"));
}
