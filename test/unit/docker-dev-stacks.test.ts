/**
 * The Docker stacks as an engine would receive them (every file in stacks/ that runs on Docker,
 * as committed and on PostgreSQL, which adds etcd and a settings task): published ports stay on
 * the host's loopback, secret files are readable by their daemon only, and containers share a
 * network exactly where the workloads' `allowFrom` lets one reach the other — the matrix the
 * Kubernetes NetworkPolicies enforce, with the tier as Docker's unit.
 */
import { DockerPlatform } from "../../components/platform/docker";
import type { TaskSpec, WorkloadSpec } from "../../components/platform/types";
import type { ProgramRun, RecordedResource } from "../../scripts/mock-engine";
import { isWrappedSecret, plain } from "../support/engine";
import { stackFacts, stackNames } from "../support/stack-files";
import { runStackVariant, type ConfigEdit } from "../support/stack-variants";

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";

const postgres: ConfigEdit = (c) => {
  const db = c["ha-backend:database"] as Record<string, unknown>;
  c["ha-backend:database"] = {
    engine: "postgresql",
    ...(db.shards !== undefined ? { shards: db.shards } : {}),
  };
};

/** monitoring.enabled: the stack's own Prometheus, and the exporters beside every tier. */
const monitoring: ConfigEdit = (c) => {
  c["ha-backend:monitoring"] = { enabled: true };
};

const dockerStacks = stackNames().filter((s) => stackFacts(s).platform === "docker");
const variants: [string, string, ConfigEdit | undefined][] = dockerStacks.flatMap(
  (s): [string, string, ConfigEdit | undefined][] => [
    [s, s, undefined],
    [`${s} on PostgreSQL`, s, postgres],
    [`${s} with monitoring`, s, monitoring],
    [`${s} on PostgreSQL with monitoring`, s, (c) => (postgres(c), monitoring(c))],
  ],
);

/** A workload or task as the program handed it to the platform. */
interface Unit {
  readonly name: string;
  readonly kind: "workload" | "task";
  readonly tier: string;
  readonly allowFrom: ReadonlySet<string>;
  readonly published: boolean;
  /** The uid secret files belong to. */
  readonly fileOwner: number;
}

/** Runs the stack, recording every spec given to `DockerPlatform.deploy` and `runTask`. */
async function runRecordingSpecs(stack: string, edit?: ConfigEdit): Promise<[ProgramRun, Unit[]]> {
  const deploy = jest.spyOn(DockerPlatform.prototype, "deploy");
  const runTask = jest.spyOn(DockerPlatform.prototype, "runTask");
  try {
    const run = await runStackVariant(stack, edit);
    const workloads = deploy.mock.calls.map(([name, spec]: [string, WorkloadSpec, ...unknown[]], i) => ({
      name,
      kind: "workload" as const,
      tier: spec.tier,
      // The platform admits its scraper (monitoring.enabled) to every workload with metrics ports.
      allowFrom: new Set([
        ...(spec.allowFrom ?? []),
        ...((spec.metricsPorts ?? []).length > 0 && deploy.mock.contexts[i]?.scraperTier !== undefined
          ? [deploy.mock.contexts[i].scraperTier as string]
          : []),
      ]),
      published: (spec.publicPorts ?? []).length > 0,
      fileOwner: spec.fileOwner ?? spec.runAsUser ?? 0,
    }));
    const tasks = runTask.mock.calls.map(([name, spec]: [string, TaskSpec, ...unknown[]]) => ({
      name,
      kind: "task" as const,
      tier: spec.tier,
      allowFrom: new Set<string>(),
      published: false,
      fileOwner: spec.fileOwner ?? spec.runAsUser ?? 0,
    }));
    return [run, [...workloads, ...tasks]];
  } finally {
    deploy.mockRestore();
    runTask.mockRestore();
  }
}

const label = (r: RecordedResource, key: string) =>
  ((r.inputs.labels ?? []) as { label: string; value: string }[]).find((l) => l.label === key)?.value;

/** The workload or task a container runs for (its labels say which). */
const unitOf = (r: RecordedResource) =>
  label(r, "ha-backend.workload") ??
  // A member's sidecar (an exporter) belongs to its workload: the same networks.
  label(r, "ha-backend.workload-of") ??
  label(r, "ha-backend.task") ??
  `(unlabelled ${r.name})`;

const networksOf = (r: RecordedResource) =>
  ((plain(r).networksAdvanced ?? []) as { name: string }[]).map((n) => n.name).sort();

/** "a ↔ b" with the names sorted, so a pair reads the same from either side. */
const pair = (a: string, b: string) => (a < b ? `${a} ↔ ${b}` : `${b} ↔ ${a}`);

/**
 * The pairs of workloads and tasks that share a network by design: one admits the other's tier
 * (`allowFrom`), both are published (the edge network), or — Docker's deviation from the
 * Kubernetes matrix, where peers are one workload's members — both belong to one tier and meet
 * on a network of that tier: a service that admits the tier, a client tier both admit, or the
 * tier's own network when nothing else connects them.
 */
function intendedPairs(units: readonly Unit[]): Map<string, string> {
  const admitted = (t: string) => units.some((s) => s.allowFrom.has(t));
  const ownNetwork = (u: Unit) =>
    !admitted(u.tier) && (u.kind === "task" || (u.allowFrom.size === 0 && !u.published));
  const out = new Map<string, string>();
  for (const [i, a] of units.entries()) {
    for (const b of units.slice(i + 1)) {
      const why = b.allowFrom.has(a.tier)
        ? `${b.name} admits ${a.tier}`
        : a.allowFrom.has(b.tier)
          ? `${a.name} admits ${b.tier}`
          : a.published && b.published
            ? "both published"
            : a.tier === b.tier &&
                (admitted(a.tier) ||
                  [...a.allowFrom].some((c) => b.allowFrom.has(c)) ||
                  (ownNetwork(a) && ownNetwork(b)))
              ? `same tier ${a.tier}`
              : undefined;
      if (why !== undefined) out.set(pair(a.name, b.name), why);
    }
  }
  return out;
}

describe.each(variants)("Docker stack %s", (_label, stack, edit) => {
  let run: ProgramRun;
  let units: Unit[];
  let containers: RecordedResource[];

  beforeAll(async () => {
    [run, units] = await runRecordingSpecs(stack, edit);
    containers = run.resources.filter((r) => r.type === CONTAINER);
  });

  it("records every container's workload or task", () => {
    const names = new Set(units.map((u) => u.name));
    expect(containers.length).toBeGreaterThan(0);
    expect(containers.map(unitOf).filter((u) => !names.has(u))).toEqual([]);
  });

  it("publishes ports on the host's loopback only", () => {
    const ports = containers.flatMap((c) =>
      ((plain(c).ports ?? []) as { ip?: string; external: number }[]).map((p) => [c.name, p.external, p.ip]),
    );
    // The balancer publishes HTTP (and HTTPS with TLS) on its first member.
    expect(ports.length).toBeGreaterThan(0);
    expect(ports.filter(([, , ip]) => ip !== "127.0.0.1")).toEqual([]);
  });

  it("uploads every secret file 0400, owned by the uid that reads it, and config files 0444", () => {
    const owners = new Map(units.map((u) => [u.name, String(u.fileOwner)]));
    const uploads = containers.flatMap((c) =>
      ((c.inputs.uploads ?? []) as Record<string, unknown>[]).map((u) => ({ container: c, upload: u })),
    );
    const secret = uploads.filter(({ upload }) => isWrappedSecret(upload.content));
    // Every stack has a secret file (keys, credentials): the check below is never vacuous.
    expect(secret.length).toBeGreaterThan(0);
    const wrong = (rows: typeof uploads, want: (c: RecordedResource) => Record<string, unknown>) =>
      rows
        .map(({ container, upload }) => ({
          at: `${container.name}:${String(upload.file)}`,
          got: { permissions: upload.permissions, owner: upload.owner, group: upload.group },
          want: want(container),
        }))
        .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.want));
    // A sidecar reads its own files as its own user, not the member's.
    const owner = (c: RecordedResource) =>
      label(c, "ha-backend.sidecar") !== undefined ? String(plain(c).user) : owners.get(unitOf(c));
    expect(
      wrong(secret, (c) => ({
        permissions: "0400",
        owner: owner(c),
        group: owner(c),
      })),
    ).toEqual([]);
    const config = uploads.filter(({ upload }) => !isWrappedSecret(upload.content));
    expect(wrong(config, () => ({ permissions: "0444" }))).toEqual([]);
  });

  it("keeps every network internal except the published edge network", () => {
    const nets = run.resources.filter((r) => r.type === NETWORK);
    expect(
      nets
        .filter((n) => plain(n).internal !== (plain(n).name !== `${stack}-public`))
        .map((n) => plain(n).name),
    ).toEqual([]);
    expect(nets.filter((n) => plain(n).internal === false)).toHaveLength(1);
  });

  it("puts every member of a workload on the same networks, never on none (Docker's default bridge)", () => {
    const byUnit = new Map<string, Set<string>>();
    for (const c of containers.filter((x) => label(x, "ha-backend.sidecar") === undefined)) {
      byUnit.set(unitOf(c), (byUnit.get(unitOf(c)) ?? new Set()).add(networksOf(c).join(",")));
    }
    const odd = [...byUnit].filter(([, lists]) => lists.size !== 1 || lists.has(""));
    expect(odd.map(([u, lists]) => [u, [...lists]])).toEqual([]);
  });

  it("runs exporters only with the stack's own scraper, each on the scraper's network with its member alone", () => {
    const sidecars = containers.filter((x) => label(x, "ha-backend.sidecar") !== undefined);
    const scraper = units.some((u) => u.tier === "monitoring");
    // With monitoring.enabled every tier has exporters; without, nothing could reach them.
    expect(sidecars.length > 0).toBe(scraper);
    const odd = sidecars.flatMap((sc) => {
      const nets = networksOf(sc);
      const member = containers.find((c) => c.name === label(sc, "ha-backend.sidecar-of"));
      const others = containers.filter(
        (c) =>
          c !== sc &&
          c !== member &&
          label(c, "ha-backend.sidecar-of") !== member?.name &&
          unitOf(c) !== unitOf(sc) &&
          !/^monitoring-/.test(c.name) &&
          networksOf(c).some((n) => nets.includes(n)),
      );
      const ok =
        nets.length === 1 &&
        nets[0].endsWith("-from-monitoring") &&
        member !== undefined &&
        networksOf(member).includes(nets[0]) &&
        others.length === 0;
      return ok ? [] : [`${sc.name} on ${nets.join(",")} with ${others.map((c) => c.name).join(",")}`];
    });
    expect(odd).toEqual([]);
  });

  it("lets two workloads share a network exactly where allowFrom lets one reach the other", () => {
    const netsByUnit = new Map<string, Set<string>>();
    for (const c of containers) {
      const nets = netsByUnit.get(unitOf(c)) ?? new Set<string>();
      networksOf(c).forEach((n) => nets.add(n));
      netsByUnit.set(unitOf(c), nets);
    }
    const names = [...netsByUnit.keys()].sort();
    const actual = new Map<string, string[]>();
    for (const [i, a] of names.entries()) {
      for (const b of names.slice(i + 1)) {
        const shared = [...(netsByUnit.get(a) as Set<string>)].filter((n) =>
          (netsByUnit.get(b) as Set<string>).has(n),
        );
        if (shared.length > 0) actual.set(pair(a, b), shared.sort());
      }
    }
    const intended = intendedPairs(units);
    const unexpected = [...actual]
      .filter(([p]) => !intended.has(p))
      .map(([p, nets]) => `${p} (on ${nets.join(", ")}; neither admits the other's tier)`);
    const missing = [...intended]
      .filter(([p]) => !actual.has(p))
      .map(([p, why]) => `${p} (${why}, but no network in common)`);
    expect({ unexpected, missing }).toEqual({ unexpected: [], missing: [] });
    // Not vacuous: the balancer reaches the app, the app its data tiers.
    expect(actual.size).toBeGreaterThan(3);
  });

  it("never lets two services that admit the same client tier share a network", () => {
    const services = units.filter((u) => u.kind === "workload" && u.allowFrom.size > 0);
    const netsOf = (u: Unit) =>
      new Set(containers.filter((c) => unitOf(c) === u.name).flatMap((c) => networksOf(c)));
    const clashes: string[] = [];
    for (const [i, a] of services.entries()) {
      for (const b of services.slice(i + 1)) {
        const common = [...a.allowFrom].filter((t) => b.allowFrom.has(t));
        const related = a.tier === b.tier || a.allowFrom.has(b.tier) || b.allowFrom.has(a.tier);
        if (common.length === 0 || related) continue;
        // Published workloads meet on the edge network by design (the host reaches both anyway).
        const shared = [...netsOf(a)].filter((n) => netsOf(b).has(n) && n !== `${stack}-public`);
        if (shared.length > 0) clashes.push(`${pair(a.name, b.name)} (both admit ${common}) on ${shared}`);
      }
    }
    expect(clashes).toEqual([]);
  });
});
