import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderDemoApp } from "../../components/cluster/render/demo-app";
import { binary, check, tempDir } from "../support/daemons";
import { expectGolden } from "../support/golden";

/** `nginx -t` on a rendered file: the real parser, with every path kept under `dir`. */
function nginxCheck(config: string) {
  const dir = tempDir("demo-app-check");
  mkdirSync(join(dir, "logs"));
  const file = join(dir, "nginx.conf");
  writeFileSync(file, config);
  return check(binary("nginx"), ["-t", "-q", "-c", file, "-p", dir, "-e", join(dir, "logs", "error.log")]);
}

describe("renderDemoApp", () => {
  const spec = { port: 8080, healthPath: "/healthz", service: "shop" };

  it("matches the golden file and answers on the health path and as JSON elsewhere", () => {
    const conf = renderDemoApp(spec);
    expectGolden("demo-app.nginx.conf", conf);
    expect(conf).toContain("        listen 8080;\n");
    expect(conf).toContain("        location = /healthz {\n");
    expect(conf).toContain("pid /tmp/nginx.pid;\n");
    expect(conf).toContain('\'{"service":"shop","served_by":"$hostname"');
    expect(conf.endsWith("}\n")).toBe(true);
  });

  it.each([
    ["the default", spec],
    ["a nested health path", { ...spec, healthPath: "/internal/health.check" }],
    ["a pinned loopback address", { ...spec, listenAddress: "127.0.0.9", port: 18080 }],
    ["a service name with spaces and dots", { ...spec, service: "blog v1.2" }],
  ])("passes nginx -t for %s", (_label, s) => {
    const dir = tempDir("demo-app-tmp");
    const r = nginxCheck(renderDemoApp({ ...s, tmpDir: dir }));
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
  });

  it("is caught by nginx -t when broken (the check above can fail)", () => {
    const broken = renderDemoApp(spec).replace("listen 8080;", "listen 8080");
    const r = nginxCheck(broken);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/emerg/);
  });

  it.each([
    [
      "a health path with a space",
      { ...spec, healthPath: "/health z" },
      'renderDemoApp: healthPath must be a URL path: "/" then letters, digits, "/", "_", ".", "-" (at most 255 characters), e.g. /healthz, but "/health z" (character " " at index 7) was provided.',
    ],
    [
      "a service name with $",
      { ...spec, service: "$shop" },
      "renderDemoApp: service must be letters, digits, ' ', '_', '.', '-' (no space first or last; at most 128 characters), e.g. shop, but \"$shop\" (character \"$\" at index 0) was provided.",
    ],
  ])("refuses %s (nginx would misread it)", (_label, s, message) => {
    expect(() => renderDemoApp(s)).toThrow(message);
  });
});
