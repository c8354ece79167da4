import type { Manifest } from "../support/pod-security";
import {
  canConnect,
  isReachable,
  networkModel,
  reachabilityMatrix,
  renderReachabilityTable,
  type NetworkModelOptions,
  type NetworkPolicySpec,
  type Protocol,
} from "../support/network-reachability";

// ---- Fixture builders: just the fields the evaluator reads. ----

type PortSpec = [name: string | undefined, port: number, protocol?: Protocol];

function deployment(
  name: string,
  labels: Record<string, string>,
  ports: PortSpec[],
  namespace?: string,
): Manifest {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            {
              name,
              image: "x",
              ports: ports.map(([n, containerPort, protocol]) => ({
                ...(n ? { name: n } : {}),
                containerPort,
                ...(protocol ? { protocol } : {}),
              })),
            },
          ],
        },
      },
    },
  };
}

function statefulSet(name: string, labels: Record<string, string>, ports: PortSpec[]): Manifest {
  return { ...deployment(name, labels, ports), kind: "StatefulSet" };
}

function policy(name: string, spec: NetworkPolicySpec, namespace?: string): Manifest {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec,
  };
}

function namespace(name: string, labels: Record<string, string>): Manifest {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/** A three-tier app: a public balancer, an app, a database. */
const LB = deployment("lb", { app: "lb", tier: "edge" }, [["https", 443]]);
const APP = deployment("app", { app: "app", tier: "app" }, [["http", 8080]]);
const DB = statefulSet("db", { app: "db", tier: "db" }, [
  ["pg", 5432],
  ["metrics", 9187],
]);
const WORKLOADS = [LB, APP, DB];

const DENY_ALL = policy("default-deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] });

function verdict(
  manifests: Manifest[],
  from: string,
  to: string,
  port: number | string,
  protocol?: Protocol,
  options?: NetworkModelOptions,
) {
  return canConnect(networkModel(manifests, options), from, to, port, protocol);
}

function allowed(
  manifests: Manifest[],
  from: string,
  to: string,
  port: number | string,
  protocol?: Protocol,
  options?: NetworkModelOptions,
) {
  return verdict(manifests, from, to, port, protocol, options).allowed;
}

describe("networkModel", () => {
  it("turns workloads into endpoints with template labels and named container ports, plus DNS and the internet", () => {
    const model = networkModel([...WORKLOADS, namespace("shop", { team: "web" })], { namespace: "shop" });
    expect(model.endpoints.map((e) => [e.id, e.kind, e.namespace])).toEqual([
      ["app", "workload", "shop"],
      ["db", "workload", "shop"],
      ["lb", "workload", "shop"],
      ["kube-dns", "dns", "kube-system"],
      ["internet", "external", undefined],
    ]);
    expect(model.endpoints[1].ports).toEqual([
      { name: "pg", port: 5432, protocol: "TCP" },
      { name: "metrics", port: 9187, protocol: "TCP" },
    ]);
    expect(model.endpoints[1].labels).toEqual({ app: "db", tier: "db" });
    // Namespaces carry the label the API server adds, so a selector can name them.
    expect(model.namespaceLabels.get("shop")).toEqual({ team: "web", "kubernetes.io/metadata.name": "shop" });
    expect(model.namespaceLabels.get("kube-system")).toEqual({
      "kubernetes.io/metadata.name": "kube-system",
    });
  });

  it("qualifies workloads outside the model's namespace and rejects duplicate ids", () => {
    const model = networkModel([APP, deployment("prom", { app: "prom" }, [], "monitoring")], {
      namespace: "shop",
    });
    expect(model.endpoints.map((e) => e.id)).toContain("monitoring/prom");
    expect(() => networkModel([APP, APP])).toThrow(
      'networkModel: workload ids must be unique, but "app" appears twice. Rename one.',
    );
  });

  it("rejects a peer that is both an ipBlock and a selector, and an unknown operator", () => {
    const both = policy("bad", {
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }],
    });
    expect(() => networkModel([APP, both])).toThrow(
      'NetworkPolicy "bad": spec.ingress[0].from[0] must set ipBlock or podSelector/namespaceSelector (not both, not neither), but {"ipBlock":{"cidr":"10.0.0.0/8"},"podSelector":{}} was provided.',
    );
    const op = policy("bad-op", {
      podSelector: { matchExpressions: [{ key: "app", operator: "Equals" as "In", values: ["x"] }] },
    });
    expect(() => networkModel([APP, op])).toThrow(
      'NetworkPolicy "bad-op": spec.podSelector.matchExpressions[0].operator must be In, NotIn, Exists or DoesNotExist, but "Equals" was provided.',
    );
    const cidr = policy("bad-cidr", {
      podSelector: {},
      egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }],
    });
    expect(() => networkModel([APP, cidr])).toThrow('"10.0.0.0/33" must be a CIDR such as 10.0.0.0/8.');
  });
});

describe("canConnect", () => {
  it("allows everything when no policy selects either end", () => {
    expect(verdict(WORKLOADS, "app", "db", 5432)).toEqual({ allowed: true, egress: true, ingress: true });
    expect(allowed(WORKLOADS, "internet", "db", 9187)).toBe(true);
    expect(allowed(WORKLOADS, "db", "internet", 443)).toBe(true);
    expect(allowed(WORKLOADS, "app", "kube-dns", 53, "UDP")).toBe(true);
  });

  it("blocks everything under a default deny in both directions", () => {
    const matrix = reachabilityMatrix(networkModel([...WORKLOADS, DENY_ALL]));
    // Every cell with a pod at either end is blocked; internet → DNS / internet is out of scope.
    for (const [i, row] of matrix.allowed.entries()) {
      for (const [j, cell] of row.entries()) {
        const external =
          matrix.sources[i] === "internet" &&
          ["internet", "kube-dns"].includes(matrix.columns[j].destination);
        expect([matrix.sources[i], matrix.columns[j].label, cell]).toEqual([
          matrix.sources[i],
          matrix.columns[j].label,
          external ? null : false,
        ]);
      }
    }
    expect(verdict([...WORKLOADS, DENY_ALL], "app", "db", 5432)).toEqual({
      allowed: false,
      egress: false,
      ingress: false,
    });
  });

  it("still blocks a connection the destination's ingress allows when the source's egress is isolated", () => {
    // GIVEN default deny both ways, and db admitting app on 5432 (ingress only)
    const dbFromApp = policy("db-from-app", {
      podSelector: { matchLabels: { app: "db" } },
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: "app" } } }], ports: [{ port: 5432 }] }],
    });
    // THEN ingress says yes, egress says no: blocked
    expect(verdict([...WORKLOADS, DENY_ALL, dbFromApp], "app", "db", 5432)).toEqual({
      allowed: false,
      egress: false,
      ingress: true,
    });
    // WHEN app may also egress to db on 5432, THEN it connects (and only there)
    const appToDb = policy("app-to-db", {
      podSelector: { matchLabels: { app: "app" } },
      policyTypes: ["Egress"],
      egress: [
        { to: [{ podSelector: { matchLabels: { app: "db" } } }], ports: [{ protocol: "TCP", port: 5432 }] },
      ],
    });
    const all = [...WORKLOADS, DENY_ALL, dbFromApp, appToDb];
    expect(allowed(all, "app", "db", 5432)).toBe(true);
    expect(allowed(all, "app", "db", 9187)).toBe(false);
    expect(allowed(all, "lb", "db", 5432)).toBe(false);
  });

  it("defaults policyTypes to Ingress, plus Egress only when egress rules are present", () => {
    // An ingress-only policy without policyTypes isolates ingress, never egress.
    const ingressOnly = policy("app-ingress", {
      podSelector: { matchLabels: { app: "app" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: "lb" } } }] }],
    });
    expect(verdict([...WORKLOADS, ingressOnly], "app", "internet", 443).egress).toBe(true);
    expect(allowed([...WORKLOADS, ingressOnly], "db", "app", 8080)).toBe(false);
    // With egress rules and no policyTypes, the policy isolates both directions, so nothing gets in.
    const egressRules = policy("app-egress", {
      podSelector: { matchLabels: { app: "app" } },
      egress: [{ to: [{ podSelector: { matchLabels: { app: "db" } } }] }],
    });
    const all = [...WORKLOADS, egressRules];
    expect(allowed(all, "app", "db", 5432)).toBe(true);
    expect(allowed(all, "app", "internet", 443)).toBe(false);
    expect(verdict(all, "lb", "app", 8080)).toEqual({ allowed: false, egress: true, ingress: false });
    // policyTypes: [Egress] alone leaves ingress open.
    const egressTyped = policy("app-egress", {
      ...(egressRules.spec as NetworkPolicySpec),
      policyTypes: ["Egress"],
    });
    expect(allowed([...WORKLOADS, egressTyped], "lb", "app", 8080)).toBe(true);
  });

  it("ORs rules and policies; an empty from/to list and an empty ports list match everything", () => {
    const fromLb = policy("from-lb", {
      podSelector: { matchLabels: { app: "app" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: "lb" } } }], ports: [] }],
    });
    const fromDbOnHttp = policy("from-db", {
      podSelector: { matchLabels: { app: "app" } },
      ingress: [
        { from: [], ports: [{ port: "http" }] },
        { from: [{ podSelector: { matchLabels: { app: "nothing" } } }] },
      ],
    });
    expect(allowed([...WORKLOADS, fromLb], "lb", "app", 9999)).toBe(true);
    expect(allowed([...WORKLOADS, fromLb], "db", "app", 8080)).toBe(false);
    const both = [...WORKLOADS, fromLb, fromDbOnHttp];
    expect(allowed(both, "db", "app", 8080)).toBe(true);
    expect(allowed(both, "internet", "app", 8080)).toBe(true);
    expect(allowed(both, "db", "app", 9999)).toBe(false);
    // A rule with neither from nor ports admits everyone on every port.
    const openRule = policy("open", { podSelector: { matchLabels: { app: "db" } }, ingress: [{}] });
    expect(allowed([...WORKLOADS, DENY_ALL, openRule], "internet", "db", 9187)).toBe(true);
  });

  it("resolves named ports against the destination pod's container ports", () => {
    // db admits anyone on its port named "pg" (5432), and nothing else.
    const pgByName = policy("db-pg", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ port: "pg" }] }],
    });
    expect(allowed([...WORKLOADS, pgByName], "app", "db", 5432)).toBe(true);
    expect(allowed([...WORKLOADS, pgByName], "app", "db", 9187)).toBe(false);
    // A name the destination does not define matches nothing, even if another pod defines it.
    const httpOnDb = policy("db-http", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ port: "http" }] }],
    });
    expect(allowed([...WORKLOADS, httpOnDb], "app", "db", 8080)).toBe(false);
    // Egress: app may reach port "http" of whoever it connects to; lb names 443 "https", not "http".
    const appOut = policy("app-out", {
      podSelector: { matchLabels: { app: "app" } },
      policyTypes: ["Egress"],
      egress: [{ ports: [{ port: "http" }, { port: "pg" }] }],
    });
    const withSelf = [...WORKLOADS, appOut];
    expect(allowed(withSelf, "app", "db", "pg")).toBe(true);
    expect(allowed(withSelf, "app", "lb", 443)).toBe(false);
    expect(allowed(withSelf, "app", "app", "http")).toBe(true);
    expect(allowed(withSelf, "app", "internet", 443)).toBe(false);
  });

  it("matches endPort ranges inclusively and protocols exactly (TCP by default)", () => {
    const range = policy("range", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ port: 5000, endPort: 5432 }] }],
    });
    expect(allowed([...WORKLOADS, range], "app", "db", 5432)).toBe(true);
    expect(allowed([...WORKLOADS, range], "app", "db", 5000)).toBe(true);
    expect(allowed([...WORKLOADS, range], "app", "db", 9187)).toBe(false);
    expect(allowed([...WORKLOADS, range], "app", "db", 5432, "UDP")).toBe(false);
    const udp = policy("udp", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ protocol: "UDP" }] }],
    });
    expect(allowed([...WORKLOADS, udp], "app", "db", 5432)).toBe(false);
    expect(allowed([...WORKLOADS, udp], "app", "db", 5432, "UDP")).toBe(true);
  });

  describe("matchExpressions", () => {
    const labelled = [
      deployment("a", { app: "a", tier: "app" }, [["http", 80]]),
      deployment("b", { app: "b", tier: "db" }, []),
      deployment("c", { app: "c" }, []),
    ];
    it.each([
      ["In", { key: "tier", operator: "In", values: ["app", "db"] }, ["a", "b"]],
      [
        "NotIn (also matches pods without the key)",
        { key: "tier", operator: "NotIn", values: ["db"] },
        ["a", "c"],
      ],
      ["Exists", { key: "tier", operator: "Exists" }, ["a", "b"]],
      ["DoesNotExist", { key: "tier", operator: "DoesNotExist" }, ["c"]],
    ] as const)("%s", (_name, expression, expected) => {
      const p = policy("a-from", {
        podSelector: { matchLabels: { app: "a" } },
        ingress: [{ from: [{ podSelector: { matchExpressions: [expression] } }] }],
      });
      const model = networkModel([...labelled, p]);
      const sources = ["a", "b", "c"].filter((s) => canConnect(model, s, "a", 80).allowed);
      expect(sources).toEqual(expected);
    });

    it("ANDs matchLabels with every expression", () => {
      const p = policy("a-from", {
        podSelector: { matchLabels: { app: "a" } },
        ingress: [
          {
            from: [
              {
                podSelector: {
                  matchLabels: { tier: "db" },
                  matchExpressions: [{ key: "app", operator: "NotIn", values: ["b"] }],
                },
              },
            ],
          },
        ],
      });
      const model = networkModel([...labelled, p]);
      expect(["a", "b", "c"].filter((s) => canConnect(model, s, "a", 80).allowed)).toEqual([]);
    });
  });

  describe("namespaceSelector", () => {
    const fixtures = [
      APP,
      deployment("prom", { app: "prom" }, [], "monitoring"),
      deployment("app", { app: "app" }, [], "staging"),
      namespace("monitoring", { team: "ops" }),
      namespace("staging", { team: "dev" }),
    ];
    const from = (peers: NetworkPolicySpec["ingress"]) =>
      networkModel(
        [
          ...fixtures,
          policy("app-in", { podSelector: { matchLabels: { app: "app" } }, ingress: peers }, "shop"),
        ],
        {
          namespace: "shop",
        },
      );
    const sources = (model: ReturnType<typeof networkModel>) =>
      ["app", "monitoring/prom", "staging/app"].filter((s) => canConnect(model, s, "app", 8080).allowed);

    it("a podSelector alone means pods in the policy's own namespace", () => {
      expect(sources(from([{ from: [{ podSelector: { matchLabels: { app: "app" } } }] }]))).toEqual(["app"]);
    });

    it("a namespaceSelector alone means every pod in the matching namespaces", () => {
      expect(sources(from([{ from: [{ namespaceSelector: { matchLabels: { team: "ops" } } }] }]))).toEqual([
        "monitoring/prom",
      ]);
      // The automatic kubernetes.io/metadata.name label selects a namespace by name.
      const byName = { matchLabels: { "kubernetes.io/metadata.name": "staging" } };
      expect(sources(from([{ from: [{ namespaceSelector: byName }] }]))).toEqual(["staging/app"]);
      expect(sources(from([{ from: [{ namespaceSelector: {} }] }]))).toEqual([
        "app",
        "monitoring/prom",
        "staging/app",
      ]);
    });

    it("both selectors in one peer AND; in two peers they OR", () => {
      const ns = { matchExpressions: [{ key: "team", operator: "Exists" as const }] };
      const pod = { matchLabels: { app: "app" } };
      expect(sources(from([{ from: [{ namespaceSelector: ns, podSelector: pod }] }]))).toEqual([
        "staging/app",
      ]);
      expect(sources(from([{ from: [{ namespaceSelector: ns }, { podSelector: pod }] }]))).toEqual([
        "app",
        "monitoring/prom",
        "staging/app",
      ]);
    });

    it("ignores policies of other namespaces", () => {
      const elsewhere = policy("deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }, "staging");
      const model = networkModel([...fixtures, elsewhere], { namespace: "shop" });
      expect(canConnect(model, "monitoring/prom", "app", 8080).allowed).toBe(true);
      expect(canConnect(model, "staging/app", "app", 8080).allowed).toBe(false);
    });
  });

  describe("ipBlock and the outside world", () => {
    const PUBLIC = policy("lb-public", {
      podSelector: { matchLabels: { app: "lb" } },
      policyTypes: ["Ingress"],
      ingress: [
        { from: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["203.0.113.0/24"] } }], ports: [{ port: 443 }] },
      ],
    });
    const OUTSIDE: NetworkModelOptions = {
      external: [
        { name: "internet", ip: "198.51.100.9", ports: [443, 80] },
        { name: "blocklisted", ip: "203.0.113.7" },
      ],
    };

    it("lets the internet reach the balancer on 443, except from the excepted block", () => {
      expect(allowed([...WORKLOADS, PUBLIC], "internet", "lb", 443, "TCP", OUTSIDE)).toBe(true);
      expect(allowed([...WORKLOADS, PUBLIC], "internet", "lb", 80, "TCP", OUTSIDE)).toBe(false);
      expect(allowed([...WORKLOADS, PUBLIC], "blocklisted", "lb", 443, "TCP", OUTSIDE)).toBe(false);
    });

    it("treats pods as having no addresses an ipBlock matches, unless given", () => {
      expect(allowed([...WORKLOADS, PUBLIC], "app", "lb", 443)).toBe(false);
      const podIPs = { app: ["10.244.1.5"] };
      expect(allowed([...WORKLOADS, PUBLIC], "app", "lb", 443, "TCP", { podIPs })).toBe(true);
      const inCluster = policy("lb-in", {
        podSelector: { matchLabels: { app: "lb" } },
        ingress: [{ from: [{ ipBlock: { cidr: "10.244.0.0/16", except: ["10.244.1.0/24"] } }] }],
      });
      expect(allowed([...WORKLOADS, inCluster], "app", "lb", 443, "TCP", { podIPs })).toBe(false);
      expect(
        allowed([...WORKLOADS, inCluster], "app", "lb", 443, "TCP", { podIPs: { app: ["10.244.2.5"] } }),
      ).toBe(true);
    });

    it("checks egress to the internet through ipBlock rules, IPv6 included", () => {
      const out = policy("app-out", {
        podSelector: { matchLabels: { app: "app" } },
        policyTypes: ["Egress"],
        egress: [
          { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [{ port: 443 }] },
        ],
      });
      const world: NetworkModelOptions = {
        external: [
          { name: "internet", ip: "203.0.113.7" },
          { name: "intranet", ip: "10.1.2.3" },
          { name: "internet6", ip: "2001:db8::7" },
        ],
      };
      expect(allowed([...WORKLOADS, out], "app", "internet", 443, "TCP", world)).toBe(true);
      expect(allowed([...WORKLOADS, out], "app", "internet", 80, "TCP", world)).toBe(false);
      expect(allowed([...WORKLOADS, out], "app", "intranet", 443, "TCP", world)).toBe(false);
      // An IPv4 block never matches an IPv6 address; ::/0 does.
      expect(allowed([...WORKLOADS, out], "app", "internet6", 443, "TCP", world)).toBe(false);
      const out6 = policy("app-out6", {
        podSelector: { matchLabels: { app: "app" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "2001:db8::/32" } }] }],
      });
      expect(allowed([...WORKLOADS, out, out6], "app", "internet6", 443, "TCP", world)).toBe(true);
    });
  });

  it("checks DNS egress to kube-dns in kube-system, per protocol", () => {
    const dnsOnly = policy("app-dns", {
      podSelector: { matchLabels: { app: "app" } },
      policyTypes: ["Egress"],
      egress: [
        {
          to: [
            {
              namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
              podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
            },
          ],
          ports: [{ protocol: "UDP", port: 53 }],
        },
      ],
    });
    const all = [...WORKLOADS, dnsOnly];
    expect(allowed(all, "app", "kube-dns", 53, "UDP")).toBe(true);
    expect(allowed(all, "app", "kube-dns", 53, "TCP")).toBe(false);
    expect(allowed(all, "app", "db", 5432)).toBe(false);
    // A podSelector alone would look for kube-dns in the policy's own namespace and find nothing.
    const wrongNs = policy("app-dns", {
      podSelector: { matchLabels: { app: "app" } },
      policyTypes: ["Egress"],
      egress: [{ to: [{ podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }] }],
    });
    expect(allowed([...WORKLOADS, wrongNs], "app", "kube-dns", 53, "UDP")).toBe(false);
    // Named port "dns" resolves to 53/UDP on the DNS pods.
    const named = policy("app-dns", {
      podSelector: { matchLabels: { app: "app" } },
      policyTypes: ["Egress"],
      egress: [{ ports: [{ protocol: "UDP", port: "dns" }] }],
    });
    expect(allowed([...WORKLOADS, named], "app", "kube-dns", 53, "UDP")).toBe(true);
  });

  it("names the endpoints and port names it knows when asked about others", () => {
    const model = networkModel(WORKLOADS);
    expect(() => canConnect(model, "ap", "db", 5432)).toThrow(
      'canConnect: endpoint must be one of app, db, lb, kube-dns, internet, but "ap" was provided.',
    );
    expect(() => canConnect(model, "app", "db", "postgres")).toThrow(
      'canConnect: port must be a number or one of db\'s port names (pg, metrics), but "postgres" was provided.',
    );
    expect(() => canConnect(model, "internet", "internet", 443)).toThrow("both external addresses");
  });
});

describe("reachabilityMatrix", () => {
  // The demo shape: lb public on 443, app only from lb, db only from app; egress locked down
  // to exactly those hops plus DNS.
  const DEMO = [
    ...WORKLOADS,
    DENY_ALL,
    policy("lb", {
      podSelector: { matchLabels: { app: "lb" } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [{ from: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ port: "https" }] }],
      egress: [{ to: [{ podSelector: { matchLabels: { tier: "app" } } }], ports: [{ port: 8080 }] }],
    }),
    policy("app", {
      podSelector: { matchLabels: { app: "app" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { tier: "edge" } } }], ports: [{ port: "http" }] }],
      egress: [{ to: [{ podSelector: { matchLabels: { app: "db" } } }], ports: [{ port: "pg" }] }],
    }),
    policy("db", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: "app" } } }], ports: [{ port: 5432 }] }],
    }),
    policy("dns", {
      podSelector: {},
      policyTypes: ["Egress"],
      egress: [
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
          ports: [{ port: 53, protocol: "UDP" }, { port: 53 }],
        },
      ],
    }),
  ];

  it("lists sources as rows and destination ports as columns, in a stable order", () => {
    const m = reachabilityMatrix(networkModel(DEMO));
    expect(m.sources).toEqual(["app", "db", "lb", "internet"]);
    expect(m.columns.map((c) => c.label)).toEqual([
      "app:8080",
      "db:5432",
      "db:9187",
      "lb:443",
      "kube-dns:53",
      "kube-dns:53/UDP",
      "internet:443",
    ]);
    expect(m.columns[1]).toEqual({
      destination: "db",
      port: 5432,
      protocol: "TCP",
      portName: "pg",
      label: "db:5432",
    });
  });

  it("answers the questions the README asks", () => {
    const m = reachabilityMatrix(networkModel(DEMO));
    expect(isReachable(m, "internet", "lb:443")).toBe(true);
    expect(isReachable(m, "internet", "app:8080")).toBe(false);
    expect(isReachable(m, "lb", "app:8080")).toBe(true);
    expect(isReachable(m, "lb", "db:5432")).toBe(false);
    expect(isReachable(m, "app", "db:5432")).toBe(true);
    expect(isReachable(m, "app", "db:9187")).toBe(false);
    expect(isReachable(m, "db", "internet:443")).toBe(false);
    expect(isReachable(m, "db", "kube-dns:53/UDP")).toBe(true);
    expect(() => isReachable(m, "app", "db:5433")).toThrow("isReachable: column must be one of app:8080");
    expect(() => isReachable(m, "internet", "internet:443")).toThrow("outside the model");
  });

  it("renders a markdown table with ✓ for allowed, blank for blocked, – for out of scope", () => {
    const table = renderReachabilityTable(reachabilityMatrix(networkModel(DEMO)));
    expect(table).toBe(
      [
        "| from \\ to | app:8080 | db:5432 | db:9187 | lb:443 | kube-dns:53 | kube-dns:53/UDP | internet:443 |",
        "|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|",
        "| app |   | ✓ |   |   | ✓ | ✓ |   |",
        "| db |   |   |   |   | ✓ | ✓ |   |",
        "| lb | ✓ |   |   |   | ✓ | ✓ |   |",
        "| internet |   |   |   | ✓ | – | – | – |",
        "",
      ].join("\n"),
    );
  });
});
