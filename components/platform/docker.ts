import { isIP } from "node:net";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { cpuCores, dockerMemoryMb } from "./quantity";
import {
  checkProbes,
  compareStrings,
  dockerBuild,
  dockerHealthCommand,
  filesDigest,
  healthWaitSeconds,
  resolveHealthCheck,
  sidecarValues,
  sortedEntries,
  statefulMemberNames,
  validateTaskSpec,
  validateWorkloadSpec,
} from "./spec";
import type {
  ImageBuild,
  MemberAddress,
  Platform,
  PlatformStateStore,
  SidecarSpec,
  TaskSpec,
  Workload,
  WorkloadSpec,
} from "./types";
import { invalidArg } from "../errors";
import { componentToken } from "../resource";

export interface DockerPlatformArgs {
  /**
   * Prefix for every container, network and volume name on the Docker host, so two stacks can
   * share one engine (e.g. `ecommerce-dev`).
   */
  readonly prefix: string;
  /**
   * The address clients use for published ports: the Docker host's name when the engine is
   * remote (`docker.host` `ssh://me@build-1` -> `build-1`). @default "localhost"
   */
  readonly publicHost?: string;
  /**
   * The host address published ports bind to (an IPv4 or IPv6 literal). The default keeps a
   * stack on the machine that runs the engine; `0.0.0.0` (every interface) or one interface's
   * address makes it reachable from the network, as an engine on another host needs.
   * @default "127.0.0.1"
   */
  readonly bindAddress?: string;
  /**
   * The tier of the Prometheus that scrapes the stack (`monitoring`): every workload with metrics
   * ports admits it, so its container joins their networks. Unset: no scraper is admitted.
   */
  readonly scraperTier?: string;
}

/**
 * The host name clients reach a Docker engine's published ports on, from its `DOCKER_HOST`-style
 * address: `localhost` for a local socket (`unix://`, `npipe://`, unset).
 */
export function dockerPublicHost(host: string | undefined): string {
  if (host === undefined || host === "" || /^(unix|npipe):/.test(host)) return "localhost";
  const url = new URL(host);
  // IPv6 literals keep their brackets in URL.hostname, as a host:port address needs them.
  return url.hostname === "" ? "localhost" : url.hostname;
}

/**
 * Runs workloads as containers on one Docker engine.
 *
 * Networks follow the Kubernetes NetworkPolicies' matrix, with the tier as the unit: for each
 * tier `c` in a workload's `allowFrom`, its members join `<prefix>-<tier>-from-<c>`, and so do
 * the members of every workload and task of tier `c` deployed after it. A client therefore
 * reaches exactly the services that admit its tier, and two services that admit the same tier
 * never share a network. Members reach their peers on any of these; a workload or task on none
 * of them gets `<prefix>-<tier>` of its own (never Docker's default bridge). All of them are
 * internal (no route out). Only workloads with a public port also join `<prefix>-public`, the
 * one network with a route to the host, and publish on `bindAddress` only.
 *
 * A container's networks are fixed when it is created, so a service must be deployed before
 * its clients (as components do: a client's config names the service's hosts); admitting a
 * tier that already has members fails. Docker cannot filter ports: unlike on Kubernetes, a
 * client also reaches the service's `peerPorts`, and workloads of one tier share networks.
 */
export class DockerPlatform extends pulumi.ComponentResource implements Platform {
  public readonly kind = "docker" as const;
  public readonly canBuildImages = true;
  /** A sidecar is a container of its own on the member's networks. */
  public readonly sidecarsShareLoopback = false;
  private readonly prefix: string;
  private readonly publicHost: string;
  private readonly bindAddress: string;
  public readonly scraperTier: string | undefined;
  /**
   * The engine every container, network, volume and image goes to: the platform's own provider
   * (its `provider` option), passed explicitly because workloads are parented under the
   * components that deploy them, which may inherit another one.
   */
  private readonly provider: pulumi.ProviderResource | undefined;
  /** Networks by name suffix (`<tier>-from-<client>`, `<tier>`, `public`). */
  private readonly networks = new Map<string, docker.Network>();
  /** By client tier: the `<tier>-from-<client>` networks its later members join. */
  private readonly clientNetworks = new Map<string, docker.Network[]>();
  /** Tiers with members already declared (their networks are fixed), with the first one's name. */
  private readonly deployedTiers = new Map<string, string>();
  /** Tiers whose members publish ports (on the `public` network), for `probes`. */
  private readonly publishedTiers = new Set<string>();
  private readonly images = new Map<string, pulumi.Output<string>>();

  constructor(name: string, args: DockerPlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("platform", "DockerPlatform", opts);
    super(token, name, {}, options);
    if (!/^[a-z0-9][a-z0-9_.-]*$/.test(args.prefix)) {
      invalidArg(
        "DockerPlatform",
        name,
        "prefix",
        "be lowercase letters, digits, '.', '_' or '-'",
        args.prefix,
        "Use the stack name, e.g. ecommerce-dev.",
      );
    }
    const bindAddress = args.bindAddress ?? "127.0.0.1";
    if (isIP(bindAddress) === 0) {
      invalidArg(
        "DockerPlatform",
        name,
        "bindAddress",
        "be an IPv4 or IPv6 address (no brackets, no port)",
        args.bindAddress,
        "Use 127.0.0.1 (this host only), 0.0.0.0 (every interface) or one interface's address.",
      );
    }
    this.prefix = args.prefix;
    this.publicHost = args.publicHost ?? "localhost";
    this.bindAddress = bindAddress;
    this.scraperTier = args.scraperTier;
    this.provider = this.getProvider("docker:index/container:Container");
    this.registerOutputs({});
  }

  /** The network `<prefix>-<suffix>`, created on first use. */
  private network(suffix: string, labels: Readonly<Record<string, string>>): docker.Network {
    let net = this.networks.get(suffix);
    if (net === undefined) {
      const isPublic = suffix === "public";
      net = new docker.Network(
        `${this.prefix}-${suffix}`,
        {
          name: `${this.prefix}-${suffix}`,
          // Internal networks have no gateway: a data tier cannot be reached from, or reach, outside.
          internal: !isPublic,
          labels: sortedEntries({ "ha-backend.stack": this.prefix, ...labels }).map(([label, value]) => ({
            label,
            value,
          })),
        },
        { parent: this, provider: this.provider, protect: false },
      );
      this.networks.set(suffix, net);
    }
    return net;
  }

  /**
   * "public" names the edge network: a tier of that name would put its members on it. Throws
   * before anything is created.
   */
  private checkTiers(
    kind: "Workload" | "Task",
    name: string,
    tier: string,
    allowFrom: readonly string[],
  ): void {
    if (tier === "public" || allowFrom.includes("public")) {
      invalidArg(
        kind,
        name,
        tier === "public" ? "tier" : "allowFrom",
        "not name the tier public on Docker (the name of the edge network)",
        "public",
        "Use another tier name; publicPorts is how a workload takes outside connections.",
      );
    }
  }

  /**
   * The networks a new member of `tier` joins as a client (the services deployed so far that
   * admit it), or its own network when there are none and `needsOwn`. Marks the tier as deployed.
   */
  private clientSide(name: string, tier: string, needsOwn: boolean): docker.Network[] {
    const nets = [...(this.clientNetworks.get(tier) ?? [])];
    if (nets.length === 0 && needsOwn) nets.push(this.network(tier, { "ha-backend.tier": tier }));
    if (!this.deployedTiers.has(tier)) this.deployedTiers.set(tier, name);
    return nets;
  }

  /**
   * The Docker networks a member of `tier` deployed now would join: those of every service
   * declared so far that admits `tier`. A container started outside this program (another
   * stack's workers) on these networks reaches what the tier reaches, and nothing else.
   */
  public networksOf(tier: string): pulumi.Output<string[]> {
    return pulumi.all(this.byName(this.clientNetworks.get(tier) ?? []).map((net) => net.name));
  }

  /** Networks without repeats (a tier that admits itself is its own client), sorted by name. */
  private byName(nets: readonly docker.Network[]): docker.Network[] {
    const named = new Map([...this.networks].map(([suffix, net]) => [net, suffix]));
    return [...new Set(nets)].sort((a, b) => compareStrings(named.get(a) ?? "", named.get(b) ?? ""));
  }

  /**
   * One pull (or one local build) per image reference, shared by every workload and task that
   * uses it and named after it; pulled images are kept locally for fast re-creates. Built images
   * are never pushed.
   *
   * A reference that is an Output (another stack's output, a CI build) is not known when the
   * resource must be named, so `owner` (the workload; a task's image is always plain) gets a pull
   * of its own, `<prefix>-workload-<owner>-image`. Its name stays put when the tag changes (the
   * pull is replaced, and the members with it), and it can never collide with a reference's
   * name, which starts `<prefix>-image-` (named `<prefix>-image-<owner>`, a workload `redis-7`
   * would clash with another's `redis:7`). Two workloads given the same Output pull the same
   * image twice, which is harmless: with `keepLocally`, neither pull's delete removes the image
   * from the engine. `validateWorkloadSpec` only lets a plain reference be built.
   */
  private image(
    ref: pulumi.Input<string>,
    build: ImageBuild | undefined,
    owner: string,
  ): pulumi.Output<string> {
    if (typeof ref !== "string") {
      return new docker.RemoteImage(
        `${this.prefix}-workload-${owner}-image`,
        { name: ref, keepLocally: true },
        { parent: this, provider: this.provider, protect: false },
      ).imageId;
    }
    let img = this.images.get(ref);
    if (img === undefined) {
      const resourceName = `${this.prefix}-image-${ref.replace(/[^a-zA-Z0-9.-]/g, "-")}`;
      img =
        build === undefined
          ? new docker.RemoteImage(
              resourceName,
              { name: ref, keepLocally: true },
              { parent: this, provider: this.provider, protect: false },
            ).imageId
          : new docker.Image(
              resourceName,
              {
                imageName: ref,
                build: dockerBuild(build),
                skipPush: true,
              },
              { parent: this, provider: this.provider, protect: false },
            ).imageName;
      this.images.set(ref, img);
    }
    return img;
  }

  /** Docker has no Prometheus Operator: the stack's own Prometheus (monitoring.enabled) reads a file. */
  monitors(name: string): pulumi.Resource[] {
    return invalidArg(
      "DockerPlatform",
      name,
      "monitors",
      "be declared only on a platform with the Prometheus Operator",
      "docker",
      "Run the stack's own Prometheus (Monitoring with a Docker stack) instead.",
    );
  }

  /** Docker has no API for members to keep shared state in: stateful tiers bring their own store. */
  stateStore(): PlatformStateStore | undefined {
    return undefined;
  }

  memberHosts(name: string, replicas: number): string[] {
    // Each member's network alias is its own name.
    return statefulMemberNames(name, replicas);
  }

  runTask(name: string, spec: TaskSpec, opts?: pulumi.ComponentResourceOptions): pulumi.Output<string> {
    validateTaskSpec(name, spec);
    this.checkTiers("Task", name, spec.tier, []);
    const parent = opts?.parent ?? this;
    const networks = this.byName(this.clientSide(name, spec.tier, true));
    const task = new docker.Container(
      name,
      {
        name: `${this.prefix}-${name}`,
        image: this.image(spec.image, spec.build, name),
        entrypoints: [...spec.command],
        envs: dockerEnv(spec, {}),
        user: spec.runAsUser !== undefined ? String(spec.runAsUser) : undefined,
        // Runs once: the create waits for it to exit (attach) and never restarts it.
        mustRun: false,
        attach: true,
        logs: true,
        restart: "no",
        networksAdvanced: networks.map((net) => ({ name: net.name })),
        // Secret files as the workloads' (0400, their reader's own): never the environment, which
        // the exited container keeps for `docker inspect` until the next run replaces it.
        uploads: dockerUploads(spec.files, spec.secretFiles, spec.fileOwner ?? spec.runAsUser ?? 0),
        labels: [
          { label: "ha-backend.stack", value: this.prefix },
          { label: "ha-backend.task", value: name },
          { label: "ha-backend.tier", value: spec.tier },
        ],
      },
      {
        parent,
        provider: this.provider,
        protect: false,
        deleteBeforeReplace: true,
        dependsOn: [...networks, ...(spec.after ?? [])],
        customTimeouts: { create: `${spec.timeoutSeconds}s` },
      },
    );
    // The provider records the exit code without judging it: a failed task fails `pulumi up`
    // here, as the Kubernetes Job's await does there.
    return task.exitCode.apply((code) => {
      if (code !== undefined && code !== 0) {
        throw new Error(
          `DockerPlatform: task "${name}" exited with code ${code}; its output is in \`docker logs ${this.prefix}-${name}\`.`,
        );
      }
      return name;
    });
  }

  deploy(name: string, given: WorkloadSpec, opts?: pulumi.ComponentResourceOptions): Workload {
    // An Output image comes back carrying its check: every use below is of this spec.
    const spec = validateWorkloadSpec(name, given);
    if (spec.apiAccess !== undefined) {
      throw new Error(
        `DockerPlatform: workload "${name}" asks for apiAccess, but Docker has no API for members. ` +
          "Check platform.stateStore() first and use an EtcdCluster where it returns undefined.",
      );
    }
    const scraped = (spec.metricsPorts ?? []).length > 0 && this.scraperTier !== undefined;
    const allowFrom = [
      ...new Set([...(spec.allowFrom ?? []), ...(scraped ? [this.scraperTier as string] : [])]),
    ].sort();
    this.checkTiers("Workload", name, spec.tier, allowFrom);
    for (const client of allowFrom) {
      const earlier = this.deployedTiers.get(client);
      if (!this.networks.has(`${spec.tier}-from-${client}`) && earlier !== undefined) {
        invalidArg(
          "Workload",
          name,
          "allowFrom",
          "name only tiers with no members yet on Docker (a container's networks are fixed when it is created)",
          client,
          `Deploy ${name} before ${earlier} (tier ${client}): services before their clients.`,
        );
      }
    }
    checkProbes(name, spec, this.publishedTiers);
    for (const t of spec.probes ?? []) {
      // Not over the public network, which would put it beside every published container (the
      // UIs): over the one the probed tier admits it on (a scraper's tier is admitted by every
      // scraped workload). Networks are fixed when a container is created, so it must exist now.
      if (!this.networks.has(`${t}-from-${spec.tier}`)) {
        invalidArg(
          "Workload",
          name,
          "probes",
          `name tiers that already admit tier ${spec.tier} on Docker (a container's networks are fixed when it is created)`,
          t,
          `Deploy ${name} in a tier the workloads of tier ${t} admit (allowFrom, or the scraper's tier when they export metrics).`,
        );
      }
    }
    const parent = opts?.parent ?? this;
    const image = this.image(spec.image, spec.build, name);
    const published = (spec.publicPorts ?? []).length > 0;
    if (published) this.publishedTiers.add(spec.tier);
    const serverSide = allowFrom.map((client) => {
      const suffix = `${spec.tier}-from-${client}`;
      const known = this.networks.has(suffix);
      const net = this.network(suffix, { "ha-backend.tier": spec.tier, "ha-backend.from-tier": client });
      if (!known) this.clientNetworks.set(client, [...(this.clientNetworks.get(client) ?? []), net]);
      return net;
    });
    // Sidecars (exporters) run only where a scraper reads them, and meet their member on the
    // scraper's network alone: never on the client tiers' networks. Without a scraper nothing on
    // Docker could reach them.
    const sidecarSpecs = scraped ? (spec.sidecars ?? []) : [];
    const scraperNetwork = scraped ? this.networks.get(`${spec.tier}-from-${this.scraperTier}`) : undefined;
    const sidecarNetworks = sidecarSpecs.length > 0 && scraperNetwork !== undefined ? [scraperNetwork] : [];
    const networks = this.byName([
      ...serverSide,
      ...this.clientSide(name, spec.tier, serverSide.length === 0 && !published),
      ...(published ? [this.network("public", { "ha-backend.tier": "public" })] : []),
    ]);

    const files = pulumi.output(spec.files ?? {});
    const digest = files.apply((f) => filesDigest(f));
    const health = spec.healthCheck ? resolveHealthCheck(spec.healthCheck) : undefined;

    const members: MemberAddress[] = [];
    const containers: docker.Container[] = [];
    const sidecars: docker.Container[] = [];
    const names = statefulMemberNames(name, spec.replicas);
    const hosts = this.memberHosts(name, spec.replicas);
    for (let i = 0; i < spec.replicas; i++) {
      const member = names[i];
      const host = hosts[i];
      members.push({ name: member, host });
      const volume =
        spec.volume === undefined
          ? undefined
          : new docker.Volume(
              `${member}-data`,
              {
                name: `${this.prefix}-${member}-data`,
                labels: [
                  { label: "ha-backend.stack", value: this.prefix },
                  { label: "ha-backend.workload", value: name },
                ],
              },
              // Protected data: `pulumi destroy` stops here, and a delete (a replaced workload, a
              // lifted protection) leaves the volume on the engine.
              {
                parent,
                provider: this.provider,
                protect: spec.volume.protect ?? false,
                retainOnDelete: spec.volume.protect ?? false,
              },
            );

      const envs = dockerEnv(spec, memberValues(spec.memberEnv, member, host));
      const container = new docker.Container(
        member,
        {
          name: `${this.prefix}-${member}`,
          hostname: member,
          image,
          entrypoints: spec.command ? [...spec.command] : undefined,
          command: spec.args ? [...spec.args] : undefined,
          envs,
          user: spec.runAsUser !== undefined ? String(spec.runAsUser) : undefined,
          restart: "unless-stopped",
          mustRun: true,
          networksAdvanced: networks.map((net) => ({
            name: net.name,
            // The member's own name, and the workload's name shared by all members (DNS round robin).
            aliases: [member, name],
          })),
          uploads: dockerUploads(spec.files, spec.secretFiles, spec.fileOwner ?? spec.runAsUser ?? 0),
          volumes:
            volume && spec.volume ? [{ volumeName: volume.name, containerPath: spec.volume.mountPath }] : [],
          // Directories an unprivileged member writes that the image owns as root (see writablePaths).
          tmpfs:
            (spec.writablePaths ?? []).length > 0
              ? Object.fromEntries((spec.writablePaths ?? []).map((p) => [p, "mode=1777"]))
              : undefined,
          // One host port can be bound once: the first member is the entry point on a single host.
          ports:
            i === 0
              ? (spec.publicPorts ?? []).map((p) => ({
                  internal: spec.ports[p.target],
                  external: p.port,
                  ip: p.local ? "127.0.0.1" : this.bindAddress,
                }))
              : [],
          // `pulumi up` returns once every member is healthy, and fails if one never gets there.
          wait: health !== undefined,
          waitTimeout: health && healthWaitSeconds(health, spec.volume?.sizeGi),
          healthcheck: health && {
            tests: dockerHealthCommand(health, spec.ports),
            interval: `${health.intervalSeconds}s`,
            timeout: `${health.timeoutSeconds}s`,
            retries: health.failureThreshold,
            startPeriod: `${health.startPeriodSeconds}s`,
          },
          memory: spec.resources && pulumi.output(spec.resources.memory).apply(dockerMemoryMb),
          cpus: spec.resources && pulumi.output(spec.resources.cpu).apply((q) => String(cpuCores(q))),
          // Labels are shown by `docker inspect` to anyone on the host: names and digests only.
          labels: digest.apply((d) => [
            { label: "ha-backend.config-digest", value: d },
            { label: "ha-backend.member", value: member },
            { label: "ha-backend.stack", value: this.prefix },
            { label: "ha-backend.tier", value: spec.tier },
            { label: "ha-backend.workload", value: name },
          ]),
        },
        // Container names are fixed (they are addresses), so a replacement must delete first.
        // Containers hold no data (volumes do): never protected, whatever the component's options.
        {
          parent,
          provider: this.provider,
          protect: false,
          deleteBeforeReplace: true,
          dependsOn: networks,
        },
      );
      containers.push(container);
      for (const sc of sidecarSpecs) {
        sidecars.push(this.sidecar(member, host, sc, sidecarNetworks, spec.tier, name, parent));
      }
    }

    return {
      name,
      serviceHost: name,
      discoveryHost: name,
      members,
      ports: { ...spec.ports },
      publicAddresses: Object.fromEntries(
        (spec.publicPorts ?? []).map((p) => [p.target, pulumi.output(`${this.publicHost}:${p.port}`)]),
      ),
      resources: [...containers, ...sidecars],
      // The members' own containers: a balancer restarts with them, not with an exporter.
      membersRevision: pulumi.all(containers.map((c) => c.id)).apply((ids) => ids.join(",")),
      // Where a scraper is admitted (nothing else reaches them on Docker).
      metrics: Object.fromEntries(
        (scraped ? (spec.metricsPorts ?? []) : []).map((m) => {
          const owner = (spec.sidecars ?? []).find((sc) => m.port in sc.ports);
          const port = owner ? owner.ports[m.port] : spec.ports[m.port];
          return [
            m.port,
            members.map((mb) => ({
              instance: mb.name,
              address: `${owner ? `${mb.host}-${owner.name}` : mb.host}:${port}`,
              path: m.path ?? "/metrics",
            })),
          ];
        }),
      ),
    };
  }

  /**
   * A member's sidecar: a container of its own, `<member>-<name>` (a container sharing the
   * member's network namespace loses it when the member restarts), on `networks` (the scraper's),
   * reaching the member there by its host name (`{self}`).
   */
  private sidecar(
    member: string,
    host: string,
    sc: SidecarSpec,
    networks: readonly docker.Network[],
    tier: string,
    workload: string,
    parent: pulumi.Resource,
  ): docker.Container {
    const sidecarName = `${member}-${sc.name}`;
    return new docker.Container(
      sidecarName,
      {
        name: `${this.prefix}-${sidecarName}`,
        hostname: sidecarName,
        image: this.image(sc.image, undefined, sidecarName),
        command: sc.args ? sidecarValues([...sc.args], host) : undefined,
        envs: sortedEntries(sidecarValues(sc.env ?? {}, host)).map(([k, v]) => `${k}=${v}`),
        user: String(sc.runAsUser),
        restart: "unless-stopped",
        mustRun: true,
        networksAdvanced: networks.map((net) => ({ name: net.name, aliases: [sidecarName] })),
        uploads: dockerUploads(
          undefined,
          Object.fromEntries(
            Object.entries(sc.secretFiles ?? {}).map(([p, c]) => [
              p,
              pulumi.output(c).apply((t) => sidecarValues(t, host)),
            ]),
          ),
          sc.runAsUser,
        ),
        memory: sc.resources && pulumi.output(sc.resources.memory).apply(dockerMemoryMb),
        cpus: sc.resources && pulumi.output(sc.resources.cpu).apply((q) => String(cpuCores(q))),
        // Not `ha-backend.workload`: what reads that label (a task, `docker ps --filter`) means
        // the members themselves.
        labels: [
          { label: "ha-backend.sidecar", value: sc.name },
          { label: "ha-backend.sidecar-of", value: member },
          { label: "ha-backend.stack", value: this.prefix },
          { label: "ha-backend.tier", value: tier },
          { label: "ha-backend.workload-of", value: workload },
        ],
      },
      {
        parent,
        provider: this.provider,
        protect: false,
        deleteBeforeReplace: true,
        dependsOn: [...networks],
      },
    );
  }
}

/**
 * Config files readable by anyone in the container (0444); secret files (0400) only by `owner`,
 * the uid of the daemon that reads them. Only a secret file's content is marked secret, so the
 * config files stay reviewable.
 */
function dockerUploads(
  files: Readonly<Record<string, pulumi.Input<string>>> | undefined,
  secretFiles: Readonly<Record<string, pulumi.Input<string>>> | undefined,
  owner: number,
): docker.types.input.ContainerUpload[] {
  return [
    ...sortedEntries(files).map(([path, content]) => ({ file: path, content, permissions: "0444" })),
    ...sortedEntries(secretFiles).map(([path, content]) => ({
      file: path,
      content: pulumi.secret(content),
      permissions: "0400",
      owner: String(owner),
      group: String(owner),
    })),
  ];
}

/** `{name}` and `{host}` filled in for one member. */
export function memberValues(
  env: Readonly<Record<string, string>> | undefined,
  name: string,
  host: string,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env ?? {}).map(([k, v]) => [k, v.split("{name}").join(name).split("{host}").join(host)]),
  );
}

/**
 * `KEY=value` strings, sorted. Docker has no secret store outside Swarm: when any secret is
 * present the whole list is marked secret, so state, previews and synth output never show it.
 */
function dockerEnv(
  spec: Pick<WorkloadSpec, "env" | "secretEnv">,
  perMember: Record<string, string>,
): pulumi.Output<string[]> {
  const plain = pulumi.output({ ...spec.env, ...perMember });
  const secret = pulumi.output(spec.secretEnv ?? {});
  const all = pulumi
    .all([plain, secret])
    .apply(([p, s]) => sortedEntries({ ...p, ...s }).map(([k, v]) => `${k}=${v}`));
  return Object.keys(spec.secretEnv ?? {}).length > 0 ? pulumi.secret(all) : all;
}
