import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { cpuCores, dockerMemoryMb } from "./quantity";
import {
  dockerBuild,
  dockerHealthCommand,
  filesDigest,
  healthWaitSeconds,
  resolveHealthCheck,
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
  TaskSpec,
  Workload,
  WorkloadSpec,
} from "./types";
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
 * Networks: every tier gets an internal network (`<prefix>-<tier>`, no route out). A workload's
 * members join their own tier's network (peers) and the network of every tier in `allowFrom`,
 * so exactly those tiers can resolve and reach them. Only workloads with a public port also
 * join `<prefix>-public`, the one network with a route to the host.
 */
export class DockerPlatform extends pulumi.ComponentResource implements Platform {
  public readonly kind = "docker" as const;
  public readonly canBuildImages = true;
  private readonly prefix: string;
  private readonly publicHost: string;
  /**
   * The engine every container, network, volume and image goes to: the platform's own provider
   * (its `provider` option), passed explicitly because workloads are parented under the
   * components that deploy them, which may inherit another one.
   */
  private readonly provider: pulumi.ProviderResource | undefined;
  private readonly networks = new Map<string, docker.Network>();
  private readonly images = new Map<string, pulumi.Output<string>>();

  constructor(name: string, args: DockerPlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    const [token, options] = componentToken("platform", "DockerPlatform", opts);
    super(token, name, {}, options);
    if (!/^[a-z0-9][a-z0-9_.-]*$/.test(args.prefix)) {
      throw new Error(
        `DockerPlatform "${name}": prefix must be lowercase letters, digits, '.', '_' or '-', but ` +
          `${JSON.stringify(args.prefix)} was provided. Use the stack name, e.g. ecommerce-dev.`,
      );
    }
    this.prefix = args.prefix;
    this.publicHost = args.publicHost ?? "localhost";
    this.provider = this.getProvider("docker:index/container:Container");
    this.registerOutputs({});
  }

  /** The tier's internal network, created on first use so deploy order never matters. */
  private network(tier: string): docker.Network {
    let net = this.networks.get(tier);
    if (net === undefined) {
      const isPublic = tier === "public";
      net = new docker.Network(
        `${this.prefix}-${tier}`,
        {
          name: `${this.prefix}-${tier}`,
          // Internal networks have no gateway: a data tier cannot be reached from, or reach, outside.
          internal: !isPublic,
          labels: [
            { label: "ha-backend.stack", value: this.prefix },
            { label: "ha-backend.tier", value: tier },
          ],
        },
        { parent: this, provider: this.provider, protect: false },
      );
      this.networks.set(tier, net);
    }
    return net;
  }

  /**
   * One pull (or one local build) per image, shared by every workload that uses it; pulled
   * images are kept locally for fast re-creates. Built images are never pushed.
   */
  private image(ref: string, build: ImageBuild | undefined): pulumi.Output<string> {
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
    const parent = opts?.parent ?? this;
    const network = this.network(spec.tier);
    const task = new docker.Container(
      name,
      {
        name: `${this.prefix}-${name}`,
        image: this.image(spec.image, spec.build),
        entrypoints: [...spec.command],
        envs: dockerEnv(spec, {}),
        user: spec.runAsUser !== undefined ? String(spec.runAsUser) : undefined,
        // Runs once: the create waits for it to exit (attach) and never restarts it.
        mustRun: false,
        attach: true,
        logs: true,
        restart: "no",
        networksAdvanced: [{ name: network.name }],
        uploads: sortedEntries(spec.files).map(([path, content]) => ({
          file: path,
          content,
          permissions: "0444",
        })),
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
        dependsOn: [network, ...(spec.after ?? [])],
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

  deploy(name: string, spec: WorkloadSpec, opts?: pulumi.ComponentResourceOptions): Workload {
    validateWorkloadSpec(name, spec);
    if (spec.apiAccess !== undefined) {
      throw new Error(
        `DockerPlatform: workload "${name}" asks for apiAccess, but Docker has no API for members. ` +
          "Check platform.stateStore() first and use an EtcdCluster where it returns undefined.",
      );
    }
    const parent = opts?.parent ?? this;
    const image = this.image(spec.image, spec.build);
    // "public" is reserved for the edge network; a tier of that name would share it.
    const tiers = [...new Set([spec.tier, ...(spec.allowFrom ?? [])])].filter((t) => t !== "public");
    const networkNames = [
      ...tiers.map((t) => this.network(t)),
      ...((spec.publicPorts ?? []).length > 0 ? [this.network("public")] : []),
    ];

    const files = pulumi.output(spec.files ?? {});
    const digest = files.apply((f) => filesDigest(f));
    const health = spec.healthCheck ? resolveHealthCheck(spec.healthCheck) : undefined;

    const secretFiles = sortedEntries(spec.secretFiles);
    const members: MemberAddress[] = [];
    const containers: docker.Container[] = [];
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
          networksAdvanced: networkNames.map((net) => ({
            name: net.name,
            // The member's own name, and the workload's name shared by all members (DNS round robin).
            aliases: [member, name],
          })),
          uploads: [
            ...sortedEntries(spec.files).map(([path, content]) => ({
              file: path,
              content,
              permissions: "0444",
            })),
            // Only the content of a secret file is secret, so the config files stay reviewable.
            ...secretFiles.map(([path, content]) => ({
              file: path,
              content: pulumi.secret(content),
              permissions: "0444",
            })),
          ],
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
              ? (spec.publicPorts ?? []).map((p) => ({ internal: spec.ports[p.target], external: p.port }))
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
          memory: spec.resources ? dockerMemoryMb(spec.resources.memory) : undefined,
          cpus: spec.resources ? String(cpuCores(spec.resources.cpu)) : undefined,
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
          dependsOn: networkNames,
        },
      );
      containers.push(container);
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
      resources: containers,
      membersRevision: pulumi.all(containers.map((c) => c.id)).apply((ids) => ids.join(",")),
    };
  }
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
