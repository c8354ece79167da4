/**
 * A throwaway copy of what the dev scripts read and write (scripts/*-dev.sh, scripts/lib-dev.sh,
 * stacks/), so a test's `.pulumi-state/` — and the passphrase deploy-dev.sh generates in it —
 * lands there, never in the checkout a developer deploys from.
 */
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./daemons";

const REPO = join(__dirname, "..", "..");
const SCRIPTS = ["deploy-dev.sh", "destroy-dev.sh", "lib-dev.sh"];

/** The copy's root; the scripts run from `<root>/scripts/` and `cd` there. */
export function devCheckout(): string {
  const root = tempDir("dev-checkout");
  mkdirSync(join(root, "scripts"));
  mkdirSync(join(root, "stacks"));
  // An installed node_modules: the scripts run `npm ci` only without one.
  mkdirSync(join(root, "node_modules"));
  for (const f of SCRIPTS) copyFileSync(join(REPO, "scripts", f), join(root, "scripts", f));
  for (const f of readdirSync(join(REPO, "stacks"))) {
    copyFileSync(join(REPO, "stacks", f), join(root, "stacks", f));
  }
  return root;
}
