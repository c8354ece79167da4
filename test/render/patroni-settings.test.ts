import { execFile } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parse } from "yaml";
import {
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  type PatroniRenderSpec,
} from "../../components/database/render/patroni";
import {
  APPLY_SETTINGS_ENV,
  APPLY_SETTINGS_EXIT,
  patroniDynamicConfig,
  renderApplySettingsScript,
  renderDynamicConfigJson,
  settingsDigest,
  type PatroniDynamicConfig,
} from "../../components/database/render/patroni-settings";
import { check, tempDir } from "../support/daemons";
import { RENDER_CREDS, RENDER_SPEC } from "../support/patroni";

// One file for every member (the member's identity left to its environment), one etcd.
const spec: PatroniRenderSpec = {
  ...RENDER_SPEC,
  member: undefined,
  dcs: { kind: "etcd3", hosts: ["etcd-0:2379"] },
};
const creds = RENDER_CREDS;
const PASSWORD = "s3cret-rest-pass";

/** The image's interpreter is Debian's python3 (3.11): the same build where it is installed. */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

describe("patroniDynamicConfig", () => {
  it("is exactly what patroni.yml seeds under bootstrap.dcs", () => {
    const doc = parse(renderPatroniYml(spec, creds));
    expect(doc.bootstrap.dcs).toEqual(patroniDynamicConfig(spec));
    expect(patroniDynamicConfig(spec)).toMatchObject({
      ttl: 10,
      loop_wait: 2,
      retry_timeout: 3,
      maximum_lag_on_failover: 1_048_576,
      synchronous_mode: true,
      synchronous_mode_strict: false,
      slots: { orders_pg_0: { type: "physical" } },
      postgresql: { parameters: { max_connections: 200, shared_buffers: "256MB" } },
    });
  });

  it("writes canonical JSON: keys sorted at every level, a trailing newline, the same values", () => {
    const config = patroniDynamicConfig(spec);
    const text = renderDynamicConfigJson(config);
    expect(JSON.parse(text)).toEqual(config);
    expect(text.endsWith("}\n")).toBe(true);
    expect(Object.keys(JSON.parse(text))).toEqual(Object.keys(config).sort());
    expect(Object.keys(JSON.parse(text).postgresql.parameters)).toEqual(
      Object.keys(config.postgresql.parameters).sort(),
    );
  });
});

describe("settingsDigest", () => {
  const base = patroniDynamicConfig(spec);

  it("is 10 hex digits, the same for the same settings in any key order", () => {
    expect(settingsDigest(base)).toMatch(/^[0-9a-f]{10}$/);
    expect(settingsDigest(patroniDynamicConfig({ ...spec }))).toBe(settingsDigest(base));
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as PatroniDynamicConfig;
    expect(settingsDigest(reordered)).toBe(settingsDigest(base));
    // Settings that are not dynamic (ports, paths, the DCS) leave it alone.
    expect(
      settingsDigest(patroniDynamicConfig({ ...spec, pgPort: 6432, dataDir: "/data" } as PatroniRenderSpec)),
    ).toBe(settingsDigest(base));
  });

  it.each<[string, Partial<PatroniRenderSpec>]>([
    ["ttl", { timings: { ...PATRONI_FAST_TIMINGS, ttl: 12 } }],
    ["loop_wait", { timings: { ...PATRONI_FAST_TIMINGS, loopWait: 3 } }],
    ["retry_timeout", { timings: { ...PATRONI_FAST_TIMINGS, retryTimeout: 2 } }],
    ["all timings", { timings: PATRONI_DEFAULT_TIMINGS }],
    ["maximum_lag_on_failover", { maximumLagOnFailover: 2_097_152 }],
    ["synchronous_mode", { synchronousMode: false }],
    ["synchronous_mode_strict", { synchronousModeStrict: true }],
    ["max_connections", { maxConnections: 201 }],
    ["shared_buffers", { sharedBuffers: "512MB" }],
    ["the members (slots)", { memberNames: ["orders-pg-0", "orders-pg-1"] }],
  ])("changes when %s changes", (_what, change) => {
    expect(settingsDigest(patroniDynamicConfig({ ...spec, ...change }))).not.toBe(settingsDigest(base));
  });
});

describe("renderPatroniYml REST API authentication", () => {
  it("requires basic auth on unsafe methods when a password is given (user patroni by default)", () => {
    const doc = parse(renderPatroniYml(spec, { ...creds, restApiPassword: PASSWORD }));
    expect(doc.restapi.authentication).toEqual({ username: "patroni", password: PASSWORD });
    expect(doc.restapi.listen).toBe("0.0.0.0:8008");
    const named = parse(renderPatroniYml(spec, { ...creds, restApiPassword: "p", restApiUsername: "ops" }));
    expect(named.restapi.authentication).toEqual({ username: "ops", password: "p" });
  });

  it("leaves the REST API as it was without one (the golden file is unchanged)", () => {
    expect(parse(renderPatroniYml(spec, creds)).restapi).toEqual({ listen: "0.0.0.0:8008" });
  });
});

describe("renderApplySettingsScript", () => {
  const dir = tempDir("apply-settings");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each<[string, Parameters<typeof renderApplySettingsScript>[0]]>([
    ["defaults", undefined],
    ["custom bounds", { attempts: 3, intervalSeconds: 1, deadlineSeconds: 20, requestTimeoutSeconds: 2 }],
  ])("compiles with python3 (%s)", (name, options) => {
    const file = join(dir, `${name.replace(/\W/g, "-")}.py`);
    writeFileSync(file, renderApplySettingsScript(options));
    const r = check(PYTHON, ["-m", "py_compile", file]);
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
  });

  it("puts its bounds in the defaults and reads the password only from the file its variable names", () => {
    const script = renderApplySettingsScript({ attempts: 7, intervalSeconds: 2, deadlineSeconds: 99 });
    expect(script).toContain('"--attempts", type=int, default=7');
    expect(script).toContain('"--interval", type=int, default=2');
    expect(script).toContain('"--deadline", type=int, default=99');
    expect(script).toContain(`os.environ.get("${APPLY_SETTINGS_ENV.passwordFile}", "")`);
    expect(script).not.toContain('PATRONI_RESTAPI_PASSWORD"');
    expect(script).not.toMatch(/print\([^)]*password/);
  });

  it.each([
    [{ attempts: 0 }, "attempts must be a whole number of at least 1, but 0 was provided."],
    [{ intervalSeconds: 1.5 }, "intervalSeconds must be a whole number of at least 1, but 1.5 was provided."],
  ])("refuses %j", (options, message) => {
    expect(() => renderApplySettingsScript(options)).toThrow(message);
  });
});

/**
 * Patroni's REST API for /config, shared by the given number of members (one DCS): GET is open,
 * PATCH needs basic auth and merges like Patroni's `patch_config` (null deletes; a write only when
 * something changed).
 */
class FakePatroni {
  config: Record<string, unknown>;
  writes = 0;
  readonly servers: Server[] = [];

  constructor(initial: object) {
    this.config = structuredClone(initial) as Record<string, unknown>;
  }

  static patch(config: Record<string, unknown>, data: Record<string, unknown>): boolean {
    let changed = false;
    for (const [k, v] of Object.entries(data)) {
      if (v === null) {
        if (k in config) changed = delete config[k];
      } else if (typeof v === "object" && typeof config[k] === "object" && config[k] !== null) {
        changed =
          FakePatroni.patch(config[k] as Record<string, unknown>, v as Record<string, unknown>) || changed;
      } else if (!(k in config) || String(config[k]) !== String(v)) {
        config[k] = v;
        changed = true;
      }
    }
    return changed;
  }

  async start(members: number): Promise<string[]> {
    const auth = `Basic ${Buffer.from(`patroni:${PASSWORD}`).toString("base64")}`;
    for (let i = 0; i < members; i++) {
      const server = createServer((req, res) => {
        let body = "";
        req.on("data", (d: Buffer) => (body += d.toString()));
        req.on("end", () => {
          if (req.url !== "/config" || (req.method !== "GET" && req.method !== "PATCH")) {
            res.writeHead(404).end();
          } else if (req.method === "PATCH" && req.headers.authorization !== auth) {
            res.writeHead(401).end("not authenticated");
          } else {
            if (req.method === "PATCH" && FakePatroni.patch(this.config, JSON.parse(body))) this.writes++;
            res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(this.config));
          }
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      this.servers.push(server);
    }
    return this.servers.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Runs the rendered script asynchronously (the fake members answer on this event loop). */
function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [script, ...args],
      { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          output: stdout + stderr,
        }),
    );
  });
}

describe("the apply script against Patroni's /config semantics", () => {
  const dir = tempDir("apply-settings-run");
  const script = join(dir, "apply-settings.py");
  const settings = join(dir, "settings.json");
  const before = patroniDynamicConfig({ ...spec, timings: PATRONI_DEFAULT_TIMINGS });
  const after = patroniDynamicConfig(spec);
  /** A password file as the platforms write it: the value alone, no trailing newline. */
  const passwordFile = join(dir, "restapi-password");
  const env = { [APPLY_SETTINGS_ENV.username]: "patroni", [APPLY_SETTINGS_ENV.passwordFile]: passwordFile };
  const fast = ["--attempts", "3", "--interval", "1", "--deadline", "10", "--request-timeout", "2"];
  let fake: FakePatroni;
  let members: string[];

  beforeAll(() => {
    writeFileSync(script, renderApplySettingsScript());
    writeFileSync(settings, renderDynamicConfigJson(after));
    writeFileSync(passwordFile, PASSWORD, { mode: 0o400 });
  });
  beforeEach(async () => {
    fake = new FakePatroni(before);
    members = await fake.start(3);
  });
  afterEach(() => fake.stop());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("applies the settings, confirms them on every member, and a re-run changes nothing", async () => {
    const first = await runScript(script, [settings, ...members, ...fast], env);
    expect(first.output).toContain("3 setting(s) to change: loop_wait, retry_timeout, ttl");
    expect(first.output).toContain("settings reported by 3 of 3 member(s)");
    expect(first.code).toBe(APPLY_SETTINGS_EXIT.ok);
    expect(fake.config).toEqual(after);
    expect(fake.writes).toBe(1);

    const again = await runScript(script, [settings, ...members, ...fast], env);
    expect(again.output).toContain("every setting in place already");
    expect(again.output).toContain("done: already in place");
    expect(again.code).toBe(APPLY_SETTINGS_EXIT.ok);
    expect(fake.writes).toBe(1);
    for (const r of [first, again]) expect(r.output).not.toContain(PASSWORD);
  });

  it("fails with the refused code on a wrong password, changing nothing and never printing it", async () => {
    const wrong = "wrong-pass-42";
    const wrongFile = join(dir, "wrong-password");
    writeFileSync(wrongFile, wrong);
    const r = await runScript(script, [settings, ...members, ...fast], {
      ...env,
      [APPLY_SETTINGS_ENV.passwordFile]: wrongFile,
    });
    expect(r.code).toBe(APPLY_SETTINGS_EXIT.refused);
    expect(r.output).toContain(
      `refused the credentials (HTTP 401): ${APPLY_SETTINGS_ENV.username} and the password in ${APPLY_SETTINGS_ENV.passwordFile} must match`,
    );
    expect(r.output).not.toContain(wrong);
    expect(fake.config).toEqual(before);
  });

  it("drops exactly one trailing newline from the password file", async () => {
    // GIVEN the password with a newline (echo, an editor): it still authenticates
    const withNewline = join(dir, "password-newline");
    writeFileSync(withNewline, `${PASSWORD}\n`);
    const ok = await runScript(script, [settings, ...members, ...fast], {
      ...env,
      [APPLY_SETTINGS_ENV.passwordFile]: withNewline,
    });
    expect(ok.code).toBe(APPLY_SETTINGS_EXIT.ok);
    // WHEN it has two, THEN the second is part of the password, and Patroni refuses it
    const withTwo = join(dir, "password-two-newlines");
    writeFileSync(withTwo, `${PASSWORD}\n\n`);
    const refused = await runScript(script, [settings, ...members, ...fast], {
      ...env,
      [APPLY_SETTINGS_ENV.passwordFile]: withTwo,
    });
    expect(refused.code).toBe(APPLY_SETTINGS_EXIT.refused);
    for (const r of [ok, refused]) expect(r.output).not.toContain(PASSWORD);
  });

  it.each<[string, () => Record<string, string>, string]>([
    [
      "without the variables",
      () => ({}),
      `${APPLY_SETTINGS_ENV.username} and ${APPLY_SETTINGS_ENV.passwordFile} must be set`,
    ],
    [
      "without the password file's variable",
      () => ({ [APPLY_SETTINGS_ENV.username]: "patroni" }),
      `${APPLY_SETTINGS_ENV.username} and ${APPLY_SETTINGS_ENV.passwordFile} must be set`,
    ],
    [
      "when the password file is missing",
      () => ({ ...env, [APPLY_SETTINGS_ENV.passwordFile]: join(dir, "no-such-file") }),
      `cannot read the password file ${join(dir, "no-such-file")} (${APPLY_SETTINGS_ENV.passwordFile}): No such file or directory`,
    ],
    [
      "when the password file is empty",
      () => {
        const empty = join(dir, "empty-password");
        writeFileSync(empty, "\n");
        return { ...env, [APPLY_SETTINGS_ENV.passwordFile]: empty };
      },
      `the password file ${join(dir, "empty-password")} (${APPLY_SETTINGS_ENV.passwordFile}) is empty`,
    ],
  ])("refuses to run %s, with the usage code and no request sent", async (_label, envOf, message) => {
    const r = await runScript(script, [settings, ...members, ...fast], envOf());
    expect(r.code).toBe(APPLY_SETTINGS_EXIT.usage);
    expect(r.output).toContain(message);
    expect(fake.config).toEqual(before);
  });

  it("gives up after its rounds when no member answers, naming each one's error", async () => {
    await fake.stop();
    const started = Date.now();
    const r = await runScript(script, [settings, ...members, ...fast], env);
    expect(r.code).toBe(APPLY_SETTINGS_EXIT.unreachable);
    expect(r.output).toContain("no member answered GET /config in 3 round(s) or 10 s");
    expect(r.output).toContain("Connection refused");
    // Three rounds one second apart, well inside the 10 s deadline.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("succeeds through the members that answer, and names the one that does not", async () => {
    const dead = members[0];
    await new Promise((r) => fake.servers[0].close(r));
    const r = await runScript(script, [settings, ...members, ...fast], env);
    expect(r.code).toBe(APPLY_SETTINGS_EXIT.ok);
    expect(r.output).toContain("settings reported by 2 of 3 member(s)");
    expect(r.output).toContain(`WARNING: no answer from ${dead}`);
    expect(fake.config).toEqual(after);
  });

  it("deletes a key given as null, as Patroni's PATCH does", async () => {
    const pruning = join(dir, "prune.json");
    writeFileSync(pruning, JSON.stringify({ slots: { orders_pg_2: null } }));
    const r = await runScript(script, [pruning, ...members, ...fast], env);
    expect(r.code).toBe(APPLY_SETTINGS_EXIT.ok);
    expect(Object.keys(fake.config.slots as object)).toEqual(["orders_pg_0", "orders_pg_1"]);
  });
});
