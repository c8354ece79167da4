import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import {
  renderAlertmanagerConfig,
  renderBlackboxConfig,
  renderPrometheusConfig,
} from "../../components/monitoring/render/prometheus";
import {
  ALERTS,
  renderAlertRules,
  renderRuleFile,
  runbookAnchor,
} from "../../components/monitoring/render/rules";
import { binary, check, tempDir } from "../support/daemons";
import { SAMPLE_PLANS } from "../support/monitoring-plans";
import { ruleTests } from "../support/rule-cases";

const plans = Object.entries(SAMPLE_PLANS);

/** Writes a plan's rule file and its promtool tests to a new directory. */
function writeRules(name: string): { dir: string; rules: string; tests: string } {
  const plan = SAMPLE_PLANS[name];
  const dir = tempDir("promtool");
  const rules = join(dir, "rules.yml");
  const tests = join(dir, "rules.test.yml");
  const groups = renderAlertRules(plan);
  writeFileSync(rules, renderRuleFile(groups));
  writeFileSync(tests, ruleTests(plan, groups, "rules.yml"));
  return { dir, rules, tests };
}

describe("alert rules (promtool)", () => {
  it.each(plans)("%s: promtool check rules accepts the rule file", (name) => {
    const { rules } = writeRules(name);
    const r = check(binary("promtool"), ["check", "rules", rules]);
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it.each(plans)(
    "%s: every rule fires in its firing case and stays quiet in the other (promtool test rules)",
    (name) => {
      const { tests } = writeRules(name);
      const r = check(binary("promtool"), ["test", "rules", tests]);
      expect(r.output).toContain("SUCCESS");
      expect(r.code).toBe(0);
      // Two cases per rule: none is left out.
      const plan = SAMPLE_PLANS[name];
      const count = renderAlertRules(plan).reduce((n, g) => n + g.rules.length, 0);
      expect(readFileSync(tests, "utf8").match(/^ {2}- name: /gm)).toHaveLength(2 * count);
    },
  );

  it("the sample plans take every alert ha-backend can generate", () => {
    const seen = new Set(
      plans.flatMap(([, p]) => renderAlertRules(p).flatMap((g) => g.rules.map((r) => r.alert))),
    );
    expect([...ALERTS].filter((a) => !seen.has(a))).toEqual([]);
  });

  it("a rule with a wrong threshold fails its case: the tests can fail", () => {
    // GIVEN the tests of a plan, WHEN the replication-lag threshold in the rule file is off by 100×
    const { rules, tests } = writeRules("docker-haproxy");
    const text = readFileSync(rules, "utf8");
    expect(text).toContain("> 1048576");
    writeFileSync(rules, text.replace("> 1048576", "> 104857600"));
    // THEN promtool reports the firing case that no longer fires
    const r = check(binary("promtool"), ["test", "rules", tests]);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("catalog.postgres PostgresReplicationLagHigh fires");
  });

  it("RouterNoWriter without the failover budget in its for: fires in a normal failover (its quiet case fails)", () => {
    // GIVEN the blog stack (budget 41 s, scrapes every 5 s), WHEN the rule waits 3 scrapes only
    const { rules, tests } = writeRules("docker-nginx");
    const text = readFileSync(rules, "utf8");
    const rule = /(- alert: RouterNoWriter\n\s+expr: [^\n]+\n\s+for: )56s/;
    expect(text).toMatch(rule);
    writeFileSync(
      rules,
      text.replace(rule, (_, head: string) => `${head}15s`),
    );
    // THEN the router emptied by a failover shorter than the budget fires, and the case says so
    const r = check(binary("promtool"), ["test", "rules", tests]);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("blog.postgres RouterNoWriter stays quiet");
  });

  it("thresholds follow the stack's settings", () => {
    const groups = renderAlertRules(SAMPLE_PLANS["docker-haproxy"]);
    const rule = (alert: string) => groups.flatMap((g) => g.rules).find((r) => r.alert === alert)!;
    // Failover budget 13 s plus three 15 s scrapes before "no leader" is wrong.
    expect(rule("PostgresNoLeader").for).toBe("58s");
    // Two loops of 2 s plus three scrapes.
    expect(rule("PostgresSyncStandbyMissing").for).toBe("49s");
    expect(rule("PostgresReplicationLagHigh").expr).toMatch(/> 1048576$/);
    expect(rule("RedisPrimaryWithoutReplicas").for).toBe("54s");
    // A router without a writer: the tier's failover budget plus three scrapes, on its write proxy.
    const routers = groups
      .flatMap((g) => g.rules)
      .filter((r) => r.alert === "RouterNoWriter")
      .map((r) => [r.labels.ha_component, r.for, r.expr]);
    expect(routers).toEqual([
      [
        "catalog",
        "58s",
        'haproxy_backend_active_servers{job="catalog-router",proxy="primary"} + haproxy_backend_backup_servers{job="catalog-router",proxy="primary"} == 0',
      ],
      // MySQL replication fails over by hand: 0 s of budget, three scrapes of 15 s.
      ["orders-0", "45s", expect.stringContaining('{job="orders-0-router",proxy="rw"}')],
      ["cache", "54s", expect.stringContaining('{job="cache-router",proxy="redis"}')],
    ]);
    const blog = renderAlertRules(SAMPLE_PLANS["docker-nginx"]).flatMap((g) => g.rules);
    expect(blog.find((r) => r.alert === "PostgresSyncStandbyMissing")).toBeUndefined();
    expect(blog.find((r) => r.alert === "EdgeCertificateExpiring")).toBeUndefined();
    expect(blog.find((r) => r.alert === "EtcdMemberDown")!.expr).toMatch(/< 3$/);
  });
});

describe("routers", () => {
  it("a router that does not answer is ScrapeTargetDown's (and on Kubernetes, ScrapeTargetsMissing's)", () => {
    // GIVEN the routers' jobs in the plan, THEN the target rules watch them like every other job
    const docker = renderAlertRules(SAMPLE_PLANS["docker-haproxy"]).flatMap((g) => g.rules);
    const down = docker.find((r) => r.alert === "ScrapeTargetDown")!;
    for (const job of ["catalog-router", "orders-0-router", "cache-router"]) {
      expect(down.expr).toMatch(new RegExp(`["|]${job}[|"]`));
    }
    const k8s = renderAlertRules(SAMPLE_PLANS["kubernetes-nginx"]).flatMap((g) => g.rules);
    expect(k8s.map((r) => r.expr)).toContain(
      'count by (job) (up{job="orders-0-router"}) < 2 or absent(up{job="orders-0-router"})',
    );
  });

  it("no rule for a router the plan does not scrape", () => {
    // kubernetes-nginx: Redis's router is in the plan, its job is not.
    const groups = renderAlertRules(SAMPLE_PLANS["kubernetes-nginx"]);
    const routers = groups.flatMap((g) => g.rules).filter((r) => r.alert === "RouterNoWriter");
    expect(routers.map((r) => r.labels.ha_component)).toEqual(["orders-0", "orders-1"]);
    expect(routers.map((r) => r.for)).toEqual(["98s", "98s"]);
  });

  it("renderRuleFile writes the groups it is given (rendered once by the caller)", () => {
    const plan = SAMPLE_PLANS["docker-haproxy"];
    const groups = renderAlertRules(plan);
    const text = renderRuleFile(groups);
    expect(text).toContain("alert: RouterNoWriter");
    expect(parse(text).groups.map((g: { name: string }) => g.name)).toEqual(groups.map((g) => g.name));
    expect(renderRuleFile([])).toBe("groups: []\n");
  });
});

describe("runbooks", () => {
  const doc = readFileSync(join(__dirname, "../../docs/runbooks.md"), "utf8");
  it.each([...ALERTS])("%s has a section in docs/runbooks.md that its runbook_url points to", (alert) => {
    const headings = [...doc.matchAll(/^## (.+)$/gm)].map((m) => m[1].toLowerCase());
    expect(headings).toContain(runbookAnchor(alert));
    const section = doc.split(`## ${alert}\n`)[1]?.split("\n## ")[0] ?? "";
    expect(section).toMatch(/\*\*Means:\*\*/);
    expect(section).toMatch(/\*\*Fix:\*\*/);
  });
});

describe("Prometheus, Alertmanager and blackbox configs", () => {
  it.each(plans)("%s: promtool check config accepts prometheus.yml with its rule file", (name) => {
    const plan = SAMPLE_PLANS[name];
    const { dir, rules } = writeRules(name);
    const file = join(dir, "prometheus.yml");
    writeFileSync(
      file,
      renderPrometheusConfig({
        scrapeIntervalSeconds: plan.scrapeIntervalSeconds,
        jobs: plan.jobs,
        ruleFiles: [rules],
        alertmanagers: ["alertmanager:9093"],
      }),
    );
    const r = check(binary("promtool"), ["check", "config", file]);
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("a probe job sends its target to the blackbox exporter as a parameter", () => {
    const text = renderPrometheusConfig({
      scrapeIntervalSeconds: 15,
      jobs: SAMPLE_PLANS["docker-nginx"].jobs,
      ruleFiles: [],
      alertmanagers: [],
    });
    expect(text).toContain("job_name: blog-lb-edge-probe\n    metrics_path: /probe");
    expect(text).toContain("replacement: probe:9115");
  });

  it("the blackbox exporter accepts its modules (--config.check)", () => {
    const dir = tempDir("blackbox");
    const file = join(dir, "blackbox.yml");
    writeFileSync(file, renderBlackboxConfig());
    const r = check(binary("prometheus-blackbox-exporter"), ["--config.check", `--config.file=${file}`]);
    expect(r.code).toBe(0);
  });

  it.each([[{}], [{ webhookUrl: "http://127.0.0.1:9/hook" }]])(
    "amtool check-config accepts alertmanager.yml (%j)",
    (s) => {
      const dir = tempDir("alertmanager");
      const file = join(dir, "alertmanager.yml");
      writeFileSync(file, renderAlertmanagerConfig(s));
      const r = check(binary("amtool"), ["check-config", file]);
      expect(r.output).toContain("SUCCESS");
      expect(r.code).toBe(0);
    },
  );
});
