#!/usr/bin/env node
// Runs an example project's compiled program under Pulumi's mocked engine, with the SDK the
// example installed (not this repo's), and prints what was registered as JSON on stdout:
//   node example-runner.js <project dir> <main .js> [<stack references JSON>]
// The references file maps a StackReference name to { outputs, secretOutputNames }, as the
// engine answers for another stack. Secret values in recorded inputs and outputs are printed as
// { "[secret]": <value> }, so a test can tell secret from plain text.
"use strict";
const path = require("node:path");
const fs = require("node:fs");

const [dir, main, refsFile] = process.argv.slice(2);
const pulumi = require(require.resolve("@pulumi/pulumi", { paths: [dir] }));
// The same fake outputs (generated passwords, keys, image ids) as the repo's own mocked runs.
require("ts-node").register({ transpileOnly: true, compilerOptions: { module: "commonjs" } });
const { mapSecrets, mockState } = require("../../scripts/mock-state");
const references = refsFile ? JSON.parse(fs.readFileSync(refsFile, "utf8")) : {};
// A secret in recorded inputs, as the RPC layer wraps it, becomes { "[secret]": value }.
const marked = (v) => mapSecrets(v, (value) => ({ "[secret]": marked(value) }));

async function resolve(v) {
  if (pulumi.Output.isInstance(v)) {
    const secret = await pulumi.isSecret(v);
    const value = await resolve(await new Promise((done) => v.apply(done)));
    return secret ? { "[secret]": value } : value;
  }
  if (v instanceof Promise) return resolve(await v);
  if (Array.isArray(v)) return Promise.all(v.map(resolve));
  if (v !== null && typeof v === "object" && !pulumi.Resource.isInstance(v)) {
    const entries = await Promise.all(Object.entries(v).map(async ([k, x]) => [k, await resolve(x)]));
    return Object.fromEntries(entries.filter(([, x]) => x !== undefined));
  }
  return v;
}

async function main_() {
  const resources = [];
  pulumi.runtime.setAllConfig({}, []);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        if (args.type === "pulumi:pulumi:StackReference") {
          const ref = references[args.name];
          if (ref === undefined) throw new Error(`no mocked outputs for stack reference ${args.name}`);
          return { id: args.name, state: { name: args.name, ...ref } };
        }
        resources.push({ type: args.type, name: args.name, inputs: marked(args.inputs) });
        const state = mockState(args, { rotated: false, alternate: false, generation: "" }, false);
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        return args.inputs;
      },
    },
    "example",
    "dev",
    false,
  );
  let exported = {};
  await pulumi.runtime.runInPulumiStack(async () => {
    exported = require(path.resolve(dir, main));
    return exported;
  });
  await pulumi.runtime.waitForRPCs();
  const outputs = await resolve({ ...exported });
  process.stdout.write(JSON.stringify({ resources, outputs }));
}

main_().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
