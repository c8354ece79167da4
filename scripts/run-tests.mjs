#!/usr/bin/env node
// `npm test`: the unit tier on two workers (mocked engine, CPU-bound, no daemons or ports), then
// the package tier (npm pack, the examples installed from it) and the render and live tiers in
// band (daemons on loopback must not overlap).
// With arguments (`npm test -- test/unit/config.test.ts`), one in-band jest run over them.
import { spawnSync } from "node:child_process";

const jest = (args) => spawnSync("npx", ["jest", ...args], { stdio: "inherit" }).status ?? 1;
const args = process.argv.slice(2);
if (args.length > 0) process.exit(jest(["--runInBand", ...args]));
const unit = jest(["--maxWorkers=2", "test/unit"]);
// The other tiers run whatever the unit tier said, so one run reports every failure.
const rest = jest(["--runInBand", "test/package", "test/render", "test/live"]);
process.exit(unit !== 0 ? unit : rest);
