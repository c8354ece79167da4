import { parse } from "yaml";
import {
  failoverBudgetSeconds,
  patroniMemberEnv,
  PATRONI_DEFAULT_TIMINGS,
  PATRONI_FAST_TIMINGS,
  renderPatroniYml,
  renderPostBootstrap,
  slotNameForMember,
  timingsProblem,
} from "../../components/database/render/patroni";
import { renderPgRouter } from "../../components/database/render/router";
import { haproxyCheck } from "../support/daemons";
import { expectGolden } from "../support/golden";
import { RENDER_CREDS as creds, RENDER_SPEC as spec } from "../support/patroni";

describe("renderPatroniYml", () => {
  it("matches the golden file, with the settings failover depends on", () => {
    const text = renderPatroniYml(spec, creds);
    expectGolden("patroni.yml", text);
    const doc = parse(text);
    expect(doc.bootstrap.dcs).toMatchObject({
      ttl: 10,
      loop_wait: 2,
      retry_timeout: 3,
      synchronous_mode: true,
    });
    expect(doc.bootstrap.dcs.postgresql).toMatchObject({ use_pg_rewind: true, use_slots: true });
    expect(doc.etcd3.hosts).toEqual(["etcd-0:2379", "etcd-1:2379", "etcd-2:2379"]);
    expect(doc.postgresql.connect_address).toBe("orders-pg-1:5432");
    expect(doc.postgresql.pg_hba).toContain("host replication replicator samenet scram-sha-256");
    expect(doc.postgresql.pg_hba).toContain("host orders shop all scram-sha-256");
    expect(doc.postgresql.pg_hba.at(-1)).toBe("host all all all reject");
  });

  it("uses the Kubernetes API (ConfigMaps, the namespace only) as the DCS on Kubernetes", () => {
    const doc = parse(
      renderPatroniYml(
        {
          ...spec,
          dcs: {
            kind: "kubernetes",
            namespace: "prod",
            labels: { "app.kubernetes.io/part-of": "ha-backend" },
            scopeLabel: "app.kubernetes.io/name",
          },
        },
        creds,
      ),
    );
    expect(doc.kubernetes).toEqual({
      namespace: "prod",
      labels: { "app.kubernetes.io/part-of": "ha-backend" },
      scope_label: "app.kubernetes.io/name",
      use_endpoints: false,
      bypass_api_service: false,
    });
    expect(doc.etcd3).toBeUndefined();
  });

  it("leaves the member's identity to its environment when one file serves every member", () => {
    const doc = parse(renderPatroniYml({ ...spec, member: undefined }, creds));
    expect(doc.name).toBeUndefined();
    expect(doc.restapi).toEqual({ listen: "0.0.0.0:8008" });
    expect(doc.postgresql.connect_address).toBeUndefined();
    expect(patroniMemberEnv(5432, 8008)).toEqual({
      PATRONI_NAME: "{name}",
      PATRONI_POSTGRESQL_CONNECT_ADDRESS: "{host}:5432",
      PATRONI_RESTAPI_CONNECT_ADDRESS: "{host}:8008",
    });
  });

  it("limits replication, rewind and superuser logins to the peer networks it is given", () => {
    const hba: string[] = parse(
      renderPatroniYml({ ...spec, peerNetworks: ["10.0.0.0/8", "172.16.0.0/12"] }, creds),
    ).postgresql.pg_hba;
    expect(hba.filter((l) => l.includes(" replicator "))).toEqual([
      "host replication replicator 10.0.0.0/8 scram-sha-256",
      "host replication replicator 172.16.0.0/12 scram-sha-256",
    ]);
    expect(hba.filter((l) => l.includes("samenet"))).toEqual([]);
    expect(hba.filter((l) => l.includes(" rewind_user "))).toHaveLength(2);
  });

  it("keeps a slot for every member on whichever member leads, its WAL capped, so one that was away streams at once", () => {
    const doc = parse(renderPatroniYml(spec, creds));
    // Permanent slots: the leader holds them from promotion on, whether or not the member's DCS
    // key has expired (Patroni skips the leader's own).
    expect(doc.bootstrap.dcs.slots).toEqual({
      orders_pg_0: { type: "physical" },
      orders_pg_1: { type: "physical" },
      orders_pg_2: { type: "physical" },
    });
    expect(doc.bootstrap.dcs.postgresql.use_slots).toBe(true);
    // A member that never comes back costs at most this much of the leader's disk.
    expect(doc.postgresql.parameters.max_slot_wal_keep_size).toBe("2560MB");
  });

  it.each([
    ["orders-pg-0", "orders_pg_0"],
    ["Shop.DB-1", "shop_db_1"],
    ["db@2", "dbu00642"],
    ["a\u{1F600}b", "au128512b"],
    ["x".repeat(70), "x".repeat(63)],
  ])("names member %s's slot %s, as Patroni does", (member, slot) => {
    expect(slotNameForMember(member)).toBe(slot);
  });

  it("runs the post-bootstrap script through /bin/sh (secret files carry no execute bit)", () => {
    expect(parse(renderPatroniYml(spec, creds)).bootstrap.post_bootstrap).toBe(
      "/bin/sh /etc/ha-backend/pg/post-bootstrap.sh",
    );
  });

  it("writes a post-bootstrap script that creates the app role and database, quoting the password", () => {
    const script = renderPostBootstrap(spec, "p'w");
    expect(script).toContain(`CREATE ROLE "shop" LOGIN PASSWORD 'p''w';`);
    expect(script).toContain(`CREATE DATABASE "orders" OWNER "shop";`);
  });
});

describe("Patroni timings", () => {
  it.each([
    [PATRONI_FAST_TIMINGS, undefined],
    [PATRONI_DEFAULT_TIMINGS, undefined],
    [{ ttl: 10, loopWait: 5, retryTimeout: 3 }, "loopWait + 2 × retryTimeout (11) must not exceed ttl (10)"],
    [{ ttl: 10, loopWait: 0, retryTimeout: 3 }, "loopWait and retryTimeout must be at least 1"],
  ])("%j -> %s", (t, problem) => {
    expect(timingsProblem(t)).toBe(problem);
  });

  it("computes the failover budget from the lease, the loop and the router's checks", () => {
    expect(failoverBudgetSeconds(PATRONI_FAST_TIMINGS, { intervalMs: 500, rise: 2 })).toBe(13);
    expect(failoverBudgetSeconds(PATRONI_DEFAULT_TIMINGS, { intervalMs: 2000, rise: 2 })).toBe(44);
  });
});

describe("renderPgRouter", () => {
  const cfg = renderPgRouter({
    members: [0, 1, 2].map((i) => ({
      name: `orders-pg-${i}`,
      host: `orders-pg-${i}`,
      pgPort: 5432,
      restApiPort: 8008,
    })),
    rwPort: 5432,
    roPort: 5433,
    statsPort: 8404,
    check: { intervalMs: 1000, timeoutMs: 800, fall: 2, rise: 2 },
    dynamicDns: { resolvers: [] },
    clientTimeoutMs: 3_600_000,
  });

  it("follows the leader through Patroni's REST API", () => {
    expectGolden("pg-router.cfg", cfg);
    expect(cfg).toContain("http-check send meth GET uri /primary");
    expect(cfg).toContain("http-check send meth GET uri /replica");
    expect(cfg).toContain("use_backend primary if { nbsrv(replicas) eq 0 }");
    expect(cfg).toContain("server orders-pg-2 orders-pg-2:5432 check port 8008");
    expect(cfg).toContain("on-marked-down shutdown-sessions");
  });

  it("passes haproxy -c", () => {
    const r = haproxyCheck(cfg, {
      "orders-pg-0": "127.0.3.1",
      "orders-pg-1": "127.0.3.2",
      "orders-pg-2": "127.0.3.3",
    });
    expect(r.output).not.toMatch(/WARNING|ALERT/);
    expect(r.code).toBe(0);
  });
});
