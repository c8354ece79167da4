/**
 * The one-shot task that brings a running Patroni cluster's dynamic settings (the DCS config) to
 * what the stack says: what it may reach, how it runs and when it runs again. On Kubernetes a Job
 * with its own NetworkPolicy, checked with the repo's NetworkPolicy model; on Docker a container
 * on the cluster's admin network only.
 */
import type { ProgramRun, RecordedResource } from "../../scripts/mock-engine";
import { isWrappedSecret, redactSecrets } from "../../scripts/mock-engine";
import {
  allowedBySource,
  canConnect,
  networkModel,
  reachabilityMatrix,
  type NetworkModel,
} from "../support/network-reachability";
import {
  checkPodSecurity,
  extractPodTemplates,
  type Manifest,
  type PodTemplate,
} from "../support/pod-security";
import { kubernetesManifests, runStackVariant, type ConfigEdit } from "../support/stack-variants";

type Config = Parameters<ConfigEdit>[0];
const section = (c: Config, key: string): Record<string, unknown> =>
  c[`ha-backend:${key}`] as Record<string, unknown>;

/** The stack's database on PostgreSQL (shards kept); on Kubernetes, a registry for the Patroni image. */
const postgres: ConfigEdit = (c) => {
  const db = section(c, "database");
  c["ha-backend:database"] = {
    engine: "postgresql",
    ...(db.shards !== undefined ? { shards: db.shards } : {}),
  };
  if (c["ha-backend:kubernetes"] !== undefined)
    section(c, "kubernetes").imageRegistry = "registry.example.com/shop";
};
const andThen =
  (...edits: ConfigEdit[]): ConfigEdit =>
  (c) =>
    edits.forEach((e) => e(c));

const TASK_NAME = /^(.+-pg)-dcs-[0-9a-f]{10}$/;
/** Where the task reads the REST API password. */
const PASSWORD_FILE = "/etc/ha-backend/pg/restapi-password";
const DNS = ["kube-dns:53", "kube-dns:53/UDP"];

/** The settings tasks of a run (Jobs on Kubernetes, containers on Docker), by Patroni workload. */
function settingsTasks(run: ProgramRun, type: string): Map<string, RecordedResource> {
  const out = new Map<string, RecordedResource>();
  for (const r of run.resources.filter((x) => x.type === type && TASK_NAME.test(x.name))) {
    const workload = (TASK_NAME.exec(r.name) as RegExpExecArray)[1];
    expect([workload, out.has(workload)]).toEqual([workload, false]);
    out.set(workload, r);
  }
  return out;
}

/** A Pulumi custom timeout (`7m`, `360s`, `1h30m`) in seconds. */
function seconds(duration: string): number {
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)];
  expect(parts.map((p) => p[0]).join("")).toBe(duration);
  return parts.reduce(
    (sum, [, n, unit]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[unit as "h" | "m" | "s"],
    0,
  );
}

const reachable = allowedBySource;

/** The same manifests with `tier` taken out of every ingress `In` list: the cluster before the task existed. */
function withoutTier(manifests: readonly Manifest[], tier: string): Manifest[] {
  return manifests.map((m) => {
    if (m.kind !== "NetworkPolicy") return m;
    const copy = JSON.parse(JSON.stringify(m)) as Manifest & {
      spec: { ingress?: { from?: { podSelector?: { matchExpressions?: { values?: string[] }[] } }[] }[] };
    };
    for (const rule of copy.spec.ingress ?? []) {
      for (const peer of rule.from ?? []) {
        for (const e of peer.podSelector?.matchExpressions ?? []) {
          if (e.values) e.values = e.values.filter((v) => v !== tier);
        }
      }
    }
    return copy;
  });
}

describe("on Kubernetes (ecommerce-prod on PostgreSQL)", () => {
  const clusters = ["catalog-pg", "orders-0-pg", "orders-1-pg"];
  let run: ProgramRun;
  let manifests: Manifest[];
  let model: NetworkModel;
  let jobs: Map<string, RecordedResource>;

  beforeAll(async () => {
    run = await runStackVariant("ecommerce-prod", postgres);
    manifests = kubernetesManifests(run);
    model = networkModel(manifests);
    jobs = settingsTasks(run, "kubernetes:batch/v1:Job");
  });

  const job = (workload: string) => jobs.get(workload) as RecordedResource;
  const template = (workload: string): PodTemplate => {
    const refs = extractPodTemplates(manifests).filter(
      (t) => t.kind === "Job" && t.name === job(workload).name,
    );
    expect(refs).toHaveLength(1);
    return refs[0].template;
  };

  it("runs one settings Job per Patroni cluster, in that cluster's admin tier", () => {
    expect([...jobs.keys()].sort()).toEqual(clusters);
    for (const w of clusters) {
      const tier = `${w}-admin`;
      expect([w, template(w).metadata?.labels?.["ha-backend/tier"]]).toEqual([w, tier]);
      // Only the Job's pods carry the tier: nothing else inherits what it is allowed.
      const inTier = extractPodTemplates(manifests).filter(
        (t) => t.template.metadata?.labels?.["ha-backend/tier"] === tier,
      );
      expect(inTier.map((t) => t.name)).toEqual([job(w).name]);
    }
  });

  it.each(clusters)("lets %s's Job reach its members' REST port 8008 and DNS, and nothing else", (w) => {
    // GIVEN the repo's NetworkPolicy model of the whole stack
    const matrix = reachabilityMatrix(model);
    // THEN the Job's pods reach Patroni's REST API (by number and by its port name) and DNS…
    const name = job(w).name;
    expect(canConnect(model, name, w, 8008)).toEqual({ allowed: true, egress: true, ingress: true });
    expect(canConnect(model, name, w, "patroni").allowed).toBe(true);
    for (const [port, protocol] of [
      [53, "UDP"],
      [53, "TCP"],
    ] as const) {
      expect(canConnect(model, name, "kube-dns", port, protocol).allowed).toBe(true);
    }
    // …and exactly what Patroni admits for its client tiers (5432 too: the ingress rule names the
    // router's ports for every allowFrom tier), never another cluster, the internet or the app.
    expect(reachable(matrix)[name]).toEqual([`${w}:5432`, `${w}:8008`, ...DNS].sort());
  });

  it("opens Patroni to no other workload: the members, their router and the Job only", () => {
    const matrix = reachabilityMatrix(model);
    const allowed = reachable(matrix);
    for (const w of clusters) {
      const sources = Object.entries(allowed)
        .filter(([, cols]) => cols.some((c) => c.startsWith(`${w}:`)))
        .map(([src]) => src)
        .sort();
      expect([w, sources]).toEqual([w, [job(w).name, w, w.replace(/-pg$/, "-router")].sort()]);
    }
  });

  it("gives every other workload exactly the access it had before the admin tiers existed", () => {
    // GIVEN the same stack without the Jobs, and with the tier each Job's pods carry struck from
    // every policy's allow list (the label, not the expected name: a Job in a client's tier shows)
    const jobNames = new Set(clusters.map((w) => job(w).name));
    let before = manifests.filter(
      (m) => !jobNames.has(m.metadata?.name ?? "") || !["Job", "NetworkPolicy"].includes(m.kind ?? ""),
    );
    for (const w of clusters) {
      before = withoutTier(before, template(w).metadata?.labels?.["ha-backend/tier"] ?? "");
    }
    const was = reachable(reachabilityMatrix(networkModel(before)));
    // THEN every source but the Jobs reaches the same columns as with them
    const now = Object.fromEntries(
      Object.entries(reachable(reachabilityMatrix(model))).filter(([s]) => !jobNames.has(s)),
    );
    expect(Object.keys(was).sort()).toEqual(Object.keys(now).sort());
    expect(now).toEqual(was);
  });

  it.each(clusters)("isolates %s's Job from incoming connections", (w) => {
    const policy = manifests.find(
      (m) => m.kind === "NetworkPolicy" && m.metadata?.name === job(w).name,
    ) as Manifest & {
      spec: { policyTypes: string[]; ingress: unknown[] };
    };
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec.ingress).toEqual([]);
  });

  it.each(clusters)("runs %s's Job under Pod Security restricted, without a service account token", (w) => {
    const t = template(w);
    expect(checkPodSecurity(t)).toEqual([]);
    // The fields Pod Security does not read: no token mounted, none projected by hand.
    const spec = t.spec as unknown as {
      automountServiceAccountToken?: boolean;
      volumes?: { projected?: { sources?: { serviceAccountToken?: unknown }[] } }[];
    };
    expect(spec.automountServiceAccountToken).toBe(false);
    const projected = (spec.volumes ?? []).flatMap((v) => v.projected?.sources ?? []);
    expect(projected.filter((s) => s.serviceAccountToken !== undefined)).toEqual([]);
  });

  it.each(clusters)("mounts %s's REST API password from a Secret, and its Job holds no secret value", (w) => {
    // GIVEN the Job and the Secret of its secret files
    const r = job(w);
    const secret = run.resources.find(
      (x) => x.type === "kubernetes:core/v1:Secret" && x.name === `${r.name}-secret-files`,
    ) as RecordedResource;
    expect(secret).toBeDefined();
    expect(isWrappedSecret(secret.inputs.stringData)).toBe(true);
    const data = (secret.inputs.stringData as { value: Record<string, string> }).value;
    expect(Object.keys(data)).toEqual(["etc_ha-backend_pg_restapi-password"]);
    expect(data["etc_ha-backend_pg_restapi-password"]).toMatch(/^mock-password-for-.*-restapi-password$/);
    // THEN the Job's spec holds no secret at all (it stays reviewable) and no password…
    expect(JSON.stringify(r.inputs)).not.toContain("1b47061264138c4ac30d75fd1eb44270");
    expect(JSON.stringify(r.inputs)).not.toContain("mock-password");
    // …and no secret environment: the variable names the file, mounted read-only from the Secret.
    const spec = template(w).spec as unknown as {
      containers: {
        env: { name: string; value?: string; valueFrom?: unknown }[];
        volumeMounts: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
      }[];
      volumes: { name: string; secret?: { secretName: string; defaultMode?: number } }[];
    };
    const c = spec.containers[0];
    expect(c.env.filter((e) => e.valueFrom !== undefined)).toEqual([]);
    expect(c.env).toContainEqual({ name: "PATRONI_RESTAPI_PASSWORD_FILE", value: PASSWORD_FILE });
    expect(c.volumeMounts).toContainEqual({
      name: "secret-files",
      mountPath: PASSWORD_FILE,
      subPath: "etc_ha-backend_pg_restapi-password",
      readOnly: true,
    });
    // Readable by the Job's user (999, no fsGroup): the kubelet writes Secret files as root.
    expect(spec.volumes).toContainEqual({
      name: "secret-files",
      secret: { secretName: `${r.name}-secret-files`, defaultMode: 0o444 },
    });
    // The Job starts only once its Secret exists.
    expect(r.options.dependencies).toContain(`kubernetes:core/v1:Secret::${r.name}-secret-files`);
  });

  it.each(clusters)("bounds %s's Job: retries, a deadline, and Pulumi waits at least that long", (w) => {
    const r = job(w);
    const spec = (r.inputs as { spec: { backoffLimit?: number; activeDeadlineSeconds?: number } }).spec;
    expect(spec.backoffLimit).toEqual(expect.any(Number));
    expect(spec.backoffLimit).toBeGreaterThanOrEqual(0);
    expect(spec.activeDeadlineSeconds).toEqual(expect.any(Number));
    const deadline = spec.activeDeadlineSeconds as number;
    expect(deadline).toBeGreaterThan(0);
    // The deadline covers every retry, so an update that waits that long sees the Job's outcome.
    const timeouts = r.options.customTimeouts ?? {};
    expect(Object.keys(timeouts).sort()).toEqual(["create", "update"]);
    for (const [op, d] of Object.entries(timeouts)) {
      expect([op, seconds(d as string) >= deadline]).toEqual([op, true]);
    }
    // It starts once the members exist.
    expect(r.options.dependencies).toContain(`kubernetes:apps/v1:StatefulSet::${w}-statefulset`);
  });
});

// The Docker stacks and their Patroni clusters (the stack name prefixes every network).
const dockerStacks: [string, string[]][] = [
  ["ecommerce-dev", ["catalog-pg", "orders-0-pg"]],
  ["blog-dev", ["blog-pg"]],
];

describe.each(dockerStacks)("on Docker (%s on PostgreSQL)", (stack, clusters) => {
  const CONTAINER = "docker:index/container:Container";
  let run: ProgramRun;
  let tasks: Map<string, RecordedResource>;

  beforeAll(async () => {
    run = await runStackVariant(stack, postgres);
    tasks = settingsTasks(run, CONTAINER);
  });

  type Net = { name: string; aliases?: string[] };
  const networks = (r: RecordedResource) =>
    ((r.inputs.networksAdvanced ?? []) as Net[]).map((n) => n.name).sort();
  const label = (r: RecordedResource, key: string) =>
    ((r.inputs.labels ?? []) as { label: string; value: string }[]).find((l) => l.label === key)?.value;
  /** Patroni's member containers of workload `w`, by their workload label (not by name). */
  const members = (w: string) =>
    run.resources.filter((r) => r.type === CONTAINER && label(r, "ha-backend.workload") === w);
  const task = (w: string) => tasks.get(w) as RecordedResource;

  it("runs one settings task per Patroni cluster", () => {
    expect([...tasks.keys()].sort()).toEqual([...clusters].sort());
  });

  it.each(clusters)(
    "puts %s's task on the admin network only, shared with exactly its Patroni members",
    (w) => {
      const admin = `${stack}-${w}-from-${w}-admin`;
      expect(networks(task(w))).toEqual([admin]);
      const net = run.resources.filter(
        (r) => r.type === "docker:index/network:Network" && r.inputs.name === admin,
      );
      expect(net).toHaveLength(1);
      // No route out of the host: the task talks to the members only.
      expect(net[0].inputs.internal).toBe(true);

      const patroni = members(w)
        .map((r) => r.name)
        .sort();
      expect(patroni.length).toBeGreaterThanOrEqual(2);
      // Not etcd, not the app, not a router: only the members and the task itself.
      const onAdmin = run.resources
        .filter((r) => r.type === CONTAINER && networks(r).includes(admin))
        .map((r) => r.name);
      expect(onAdmin.sort()).toEqual([...patroni, task(w).name].sort());
    },
  );

  it.each(clusters)(
    "addresses %s's members at REST port 8008 by aliases they answer to on that network",
    (w) => {
      const admin = `${stack}-${w}-from-${w}-admin`;
      const targets = ((task(w).inputs.entrypoints ?? []) as string[]).filter((a) => /:\d+$/.test(a));
      // One address per member, each at Patroni's REST port…
      expect(targets.map((t) => t.split(":")[1])).toEqual(members(w).map(() => "8008"));
      // …that the member, and only it, answers to on the network the task shares with it.
      for (const m of members(w)) {
        const aliases =
          ((m.inputs.networksAdvanced ?? []) as Net[]).find((n) => n.name === admin)?.aliases ?? [];
        const hits = targets.filter((t) => aliases.includes(t.split(":")[0]));
        expect([m.name, hits]).toEqual([m.name, [`${m.name}:8008`]]);
      }
    },
  );

  it.each(clusters)(
    "runs %s's task once to completion, its password a 0400 file, after every member",
    (w) => {
      const r = task(w);
      expect({ attach: r.inputs.attach, mustRun: r.inputs.mustRun, restart: r.inputs.restart }).toEqual({
        attach: true,
        mustRun: false,
        restart: "no",
      });
      // The environment names the file; the file is the task user's alone, its content secret.
      expect(r.inputs.envs).toContain(`PATRONI_RESTAPI_PASSWORD_FILE=${PASSWORD_FILE}`);
      const upload = (r.inputs.uploads as { file: string; content: unknown }[]).find(
        (u) => u.file === PASSWORD_FILE,
      );
      expect(upload).toMatchObject({ permissions: "0400", owner: r.inputs.user, group: r.inputs.user });
      expect(r.inputs.user).toBe("999");
      expect(isWrappedSecret(upload?.content)).toBe(true);
      expect(JSON.stringify(redactSecrets(r.inputs))).not.toContain("mock-password");
      const deps = r.options.dependencies;
      for (const m of members(w)) expect(deps).toContain(`${CONTAINER}::${m.name}`);
    },
  );
});

describe("the task's name follows the dynamic settings", () => {
  const names = (run: ProgramRun) =>
    run.resources
      .filter((r) => ["kubernetes:batch/v1:Job", "docker:index/container:Container"].includes(r.type))
      .map((r) => r.name)
      .filter((n) => TASK_NAME.test(n))
      .sort();
  /** App servers: the Deployment's replicas on Kubernetes, the member containers on Docker. */
  const appServers = (run: ProgramRun) => {
    const deployment = run.resources.find((r) => r.name === "shop-app-deployment");
    if (deployment) return (deployment.inputs.spec as { replicas: number }).replicas;
    return run.resources.filter((r) => /^shop-app-\d+$/.test(r.name)).length;
  };

  // One stack per platform (blog-dev's balancer weights are per app server, so it cannot scale alone).
  it.each(["ecommerce-prod", "ecommerce-dev"])("%s", async (stack) => {
    // GIVEN the stack on PostgreSQL
    const base = await runStackVariant(stack, postgres);
    const before = names(base);
    expect(before.length).toBeGreaterThan(0);

    // WHEN a dynamic setting changes, THEN every cluster gets a task of a new name
    const ttl = await runStackVariant(
      stack,
      andThen(postgres, (c) => void (section(c, "database").postgresql = { ttl: 12 })),
    );
    const after = names(ttl);
    expect(after.map((n) => n.replace(/-[0-9a-f]{10}$/, ""))).toEqual(
      before.map((n) => n.replace(/-[0-9a-f]{10}$/, "")),
    );
    expect(after.filter((n) => before.includes(n))).toEqual([]);

    // WHEN an unrelated setting changes (the app's replicas), THEN the names stay
    const scaled = await runStackVariant(
      stack,
      andThen(
        postgres,
        (c) => void (section(c, "app").replicas = (section(c, "app").replicas as number) + 1),
      ),
    );
    expect(appServers(scaled)).toBe(appServers(base) + 1);
    expect(names(scaled)).toEqual(before);
  });
});
