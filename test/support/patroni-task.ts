/**
 * The dynamic-settings task of a PostgresCluster as the mocked engine synthesizes it on Docker:
 * the command line, files and credential variables of the one-shot container (`<cluster>-pg-dcs-
 * <digest>`) `pulumi up` would run, for a live test to run it against Patroni on loopback.
 *
 * What the container's network and file system give it is substituted, nothing else: the member
 * host names in the command line become the live members' loopback addresses (ports stay the
 * component's), and the container paths of the uploads (in the command line and in the
 * variables) become files in the test's directory, with the upload's mode, owned by the
 * unprivileged user that stands for the task's uid. The credentials' variable names are the
 * task's own; which one carries the user, and which names the secret upload holding the
 * password, is read from the members' patroni.yml (`restapi.authentication`), so the task must
 * carry exactly what the members check.
 */
import { join } from "node:path";
import { parse } from "yaml";
import { unwrapSecrets, type ProgramRun, type RecordedResource } from "../../scripts/mock-engine";
import { ownedDir, writeOwned } from "./postgres";

const CONTAINER = "docker:index/container:Container";

interface Upload {
  readonly file: string;
  readonly content: string;
  /** Octal, e.g. `0400`. */
  readonly permissions?: string;
  readonly owner?: string;
}

interface ContainerInputs {
  readonly hostname?: string;
  readonly user?: string;
  readonly entrypoints?: string[];
  readonly envs?: string[];
  readonly uploads?: Upload[];
}

export interface SynthesizedSettingsTask {
  /** The container's resource name, `<cluster>-pg-dcs-<settings digest>`. */
  readonly name: string;
  /** The task's command line, member hosts and container paths substituted: run it as it is. */
  readonly command: readonly string[];
  /** The settings file the task uploads (its single `.json` upload), as the component rendered it. */
  readonly settingsJson: string;
  /**
   * The names of the variables the task passes the REST API's credentials in: the user's, and the
   * one naming the file that holds the password.
   */
  readonly credentialEnv: { readonly username: string; readonly passwordFile: string };
  /**
   * The local file the password's secret upload became (mode 0400, the unprivileged user's, as
   * the upload is the task user's): holds the mocked password until the live test writes its own.
   */
  readonly passwordFile: string;
  /** The task's other variables, container paths substituted. */
  readonly otherEnv: Readonly<Record<string, string>>;
  /** How long `pulumi up` lets the task run (the container's create timeout), in ms. */
  readonly timeoutMs: number;
}

function inputsOf(r: RecordedResource): ContainerInputs {
  return unwrapSecrets(r.inputs) as ContainerInputs;
}

function container(run: ProgramRun, name: string): ContainerInputs {
  const r = run.resources.find((x) => x.type === CONTAINER && x.name === name);
  if (r === undefined) throw new Error(`the run has no container ${name}`);
  return inputsOf(r);
}

/** `NAME=value` pairs of a container's environment. */
function envOf(c: ContainerInputs): Map<string, string> {
  return new Map(
    (c.envs ?? []).map((e) => {
      const at = e.indexOf("=");
      return [e.slice(0, at), e.slice(at + 1)];
    }),
  );
}

/**
 * The REST API credentials member `name` checks: `restapi.authentication` of the patroni.yml its
 * command line starts Patroni with.
 */
function restAuthentication(run: ProgramRun, name: string): { username: string; password: string } {
  const member = container(run, name);
  const yml = (member.entrypoints ?? []).find((a) => a.endsWith(".yml"));
  const content = (member.uploads ?? []).find((u) => u.file === yml)?.content;
  if (content === undefined)
    throw new Error(`${name} uploads no patroni.yml (command: ${member.entrypoints})`);
  const auth = (parse(content) as { restapi?: { authentication?: { username: string; password: string } } })
    .restapi?.authentication;
  if (auth === undefined) throw new Error(`${name}'s patroni.yml has no restapi.authentication`);
  return auth;
}

/**
 * The settings task of the PostgresCluster whose members are the live `members` (same names),
 * its uploads written under `<dir>/task` (owned by the unprivileged user that runs it).
 */
export function synthesizedSettingsTask(
  run: ProgramRun,
  members: readonly { readonly name: string; readonly host: string }[],
  dir: string,
): SynthesizedSettingsTask {
  const tasks = run.resources.filter((r) => r.type === CONTAINER && r.name.includes("-pg-dcs-"));
  if (tasks.length !== 1) {
    throw new Error(`expected one settings task, found ${tasks.map((t) => t.name).join(", ") || "none"}`);
  }
  const task = inputsOf(tasks[0]);

  // Container paths become files in the test's directory, keeping their base names and modes.
  const files = ownedDir(join(dir, "task"));
  const paths = new Map<string, string>();
  for (const u of task.uploads ?? []) {
    const local = join(files, u.file.split("/").pop() as string);
    if (u.permissions === undefined) throw new Error(`the task uploads ${u.file} without a mode`);
    writeOwned(local, u.content, parseInt(u.permissions, 8));
    paths.set(u.file, local);
  }
  const json = (task.uploads ?? []).filter((u) => u.file.endsWith(".json"));
  if (json.length !== 1) throw new Error(`expected one .json upload, found ${json.length}`);

  // A member's host name (its container's hostname, Docker's alias) becomes its loopback address.
  const hosts = new Map(members.map((m) => [container(run, m.name).hostname as string, m.host]));
  const substituted = new Set<string>();
  const command = (task.entrypoints ?? []).map((arg) => {
    const path = paths.get(arg);
    if (path !== undefined) return path;
    const hostPort = /^([^:/\s]+):(\d+)$/.exec(arg);
    const ip = hostPort === null ? undefined : hosts.get(hostPort[1]);
    if (hostPort === null || ip === undefined) return arg;
    substituted.add(hostPort[1]);
    return `${ip}:${hostPort[2]}`;
  });
  if (substituted.size !== hosts.size) {
    throw new Error(
      `the task's command line names ${[...substituted].join(", ") || "no member"}, not every member (${[...hosts.keys()].join(", ")}): ${task.entrypoints}`,
    );
  }

  // The credentials every member checks: the user in a variable, the password in a secret
  // upload (the task user's own, 0400) whose path a variable names.
  const env = envOf(task);
  const nameOf = (value: string, what: string): string => {
    const names = [...env].filter(([, v]) => v === value).map(([k]) => k);
    if (names.length !== 1) {
      throw new Error(
        `expected one variable of the task to carry the REST API ${what}, found ${names.length} (${[...env.keys()].join(", ")})`,
      );
    }
    return names[0];
  };
  const auth = restAuthentication(run, members[0].name);
  for (const m of members.slice(1)) {
    if (JSON.stringify(restAuthentication(run, m.name)) !== JSON.stringify(auth)) {
      throw new Error(`${m.name} checks other REST API credentials than ${members[0].name}`);
    }
  }
  const secret = (task.uploads ?? []).filter((u) => u.content === auth.password);
  if (secret.length !== 1) {
    throw new Error(`expected one upload of the task to hold the REST API password, found ${secret.length}`);
  }
  const upload = secret[0];
  if (upload.permissions !== "0400" || upload.owner === undefined || upload.owner !== task.user) {
    throw new Error(
      `the REST API password's upload ${upload.file} must be 0400 and the task user's (${task.user}), ` +
        `but it is ${upload.permissions} owned by ${upload.owner}`,
    );
  }
  if ([...env.values()].some((v) => v.includes(auth.password))) {
    throw new Error("a variable of the task holds the REST API password itself");
  }
  const credentialEnv = {
    username: nameOf(auth.username, "user"),
    passwordFile: nameOf(upload.file, `password's file (${upload.file})`),
  };
  // Container paths in the variables become the local files, as in the command line.
  const otherEnv = Object.fromEntries(
    [...env]
      .filter(([k]) => k !== credentialEnv.username && k !== credentialEnv.passwordFile)
      .map(([k, v]) => [k, paths.get(v) ?? v]),
  );

  const timeout = /^(\d+)s$/.exec(tasks[0].options.customTimeouts?.create ?? "");
  if (timeout === null) throw new Error(`the task has no create timeout in seconds`);
  return {
    name: tasks[0].name,
    command,
    settingsJson: json[0].content,
    credentialEnv,
    passwordFile: paths.get(upload.file) as string,
    otherEnv,
    timeoutMs: Number(timeout[1]) * 1000,
  };
}
