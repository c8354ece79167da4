import { createHash } from "node:crypto";
import * as g from "../../render-guard";
import type { PatroniRenderSpec } from "./patroni";

/**
 * Patroni's dynamic configuration: the settings every member takes from the DCS (`ttl`,
 * `loop_wait`, the PostgreSQL parameters Patroni manages cluster-wide, …). patroni.yml's
 * `bootstrap.dcs` seeds them only when the cluster is first initialised; after that the DCS is
 * the only source, so a change reaches a running cluster through `PATCH /config` on a member's
 * REST API: {@link renderApplySettingsScript}. One function ({@link patroniDynamicConfig}) gives
 * both, so the seeded and the applied settings can never differ.
 * https://patroni.readthedocs.io/en/latest/dynamic_configuration.html
 */

/** The dynamic configuration, as Patroni stores it in the DCS (its own key names). */
export interface PatroniDynamicConfig {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
  readonly maximum_lag_on_failover: number;
  readonly synchronous_mode: boolean;
  readonly synchronous_mode_strict: boolean;
  /** Permanent slots: see {@link permanentMemberSlots}. */
  readonly slots: Readonly<Record<string, { readonly type: "physical" }>>;
  readonly postgresql: {
    readonly use_pg_rewind: boolean;
    readonly use_slots: boolean;
    readonly parameters: Readonly<Record<string, string | number>>;
  };
}

/** What the dynamic configuration is computed from: part of a member's render spec. */
export type PatroniDynamicSpec = Pick<
  PatroniRenderSpec,
  | "timings"
  | "maximumLagOnFailover"
  | "synchronousMode"
  | "synchronousModeStrict"
  | "memberNames"
  | "maxConnections"
  | "sharedBuffers"
>;

/** Patroni's own mapping from a member name to its slot name (`slot_name_from_member_name`). */
export function slotNameForMember(member: string): string {
  return member
    .toLowerCase()
    .replace(/[^a-z0-9_]/gu, (c) =>
      c === "-" || c === "." ? "_" : `u${String(c.codePointAt(0)).padStart(4, "0")}`,
    )
    .slice(0, 63);
}

/**
 * A permanent physical slot per member (Patroni's `slots`). Patroni 3.0 keeps a slot on the
 * leader only for members whose key is in the DCS, and that key expires `ttl` seconds after a
 * member dies, so a new leader has no slot for the old one: the old leader came back from
 * pg_rewind asking for a slot that did not exist yet, and PostgreSQL retried only after
 * `wal_retrieve_retry_interval` (5 s); a member away longer than `ttl` lost its slot and with it
 * the WAL it needed. Permanent slots exist on every leader from its promotion on (Patroni skips
 * the leader's own), so a returning member streams at once; `max_slot_wal_keep_size` bounds what
 * they hold back.
 */
export function permanentMemberSlots(memberNames: readonly string[]): Record<string, { type: "physical" }> {
  const slots: Record<string, { type: "physical" }> = {};
  for (const slot of memberNames.map(slotNameForMember).sort()) slots[slot] = { type: "physical" };
  return slots;
}

/**
 * The dynamic settings' inputs, checked at the entry of every renderer that writes them (they end
 * up in postgresql.conf, which Patroni writes from them). {@link RenderInputError} names the field.
 */
export function guardDynamicSpec(renderer: string, s: PatroniDynamicSpec): void {
  const r = renderer;
  g.wholeNumber(r, "timings.ttl", s.timings.ttl, 1, 86_400);
  g.wholeNumber(r, "timings.loopWait", s.timings.loopWait, 1, 86_400);
  g.wholeNumber(r, "timings.retryTimeout", s.timings.retryTimeout, 1, 86_400);
  g.wholeNumber(r, "maximumLagOnFailover", s.maximumLagOnFailover, 0, Number.MAX_SAFE_INTEGER);
  g.listOf(r, "memberNames", s.memberNames, 1, 100, (f, n) => g.objectName(r, f, n));
  // PostgreSQL's own ceiling for max_connections.
  g.wholeNumber(r, "maxConnections", s.maxConnections, 1, 262_143);
  g.pgSize(r, "sharedBuffers", s.sharedBuffers);
}

/**
 * The settings under patroni.yml's `bootstrap.dcs`, and exactly what the apply script sends to a
 * running cluster. Key order is the file's (it is rendered as YAML in this order).
 */
export function patroniDynamicConfig(s: PatroniDynamicSpec): PatroniDynamicConfig {
  guardDynamicSpec("patroniDynamicConfig", s);
  return {
    ttl: s.timings.ttl,
    loop_wait: s.timings.loopWait,
    retry_timeout: s.timings.retryTimeout,
    maximum_lag_on_failover: s.maximumLagOnFailover,
    synchronous_mode: s.synchronousMode,
    synchronous_mode_strict: s.synchronousModeStrict,
    slots: permanentMemberSlots(s.memberNames),
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        wal_level: "replica",
        hot_standby: "on",
        wal_log_hints: "on",
        max_wal_senders: 10,
        max_replication_slots: 10,
        max_connections: s.maxConnections,
        shared_buffers: s.sharedBuffers,
        password_encryption: "scram-sha-256",
      },
    },
  };
}

/** Object keys sorted at every level, so equal settings always give the same text. */
function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The file the apply script reads (`SETTINGS_JSON`): canonical JSON (keys sorted, two-space
 * indent, trailing newline), so it diffs well and hashes the same for the same settings. No
 * secrets: it can be a plain config file.
 */
export function renderDynamicConfigJson(config: PatroniDynamicConfig): string {
  // JSON escapes everything, but Patroni writes these into postgresql.conf (`name = 'value'`).
  const r = "renderDynamicConfigJson";
  for (const [name, value] of Object.entries(config.postgresql.parameters)) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) {
      const rule = "have names like PostgreSQL's parameters (a lowercase letter, then a-z, 0-9, _)";
      throw new g.RenderInputError(r, "postgresql.parameters", rule, name);
    }
    g.pgParameterValue(r, `postgresql.parameters.${name}`, value);
  }
  return `${JSON.stringify(sortedKeys(config), null, 2)}\n`;
}

/**
 * A short, stable name for a set of settings: the first 10 hex digits of the SHA-256 of
 * {@link renderDynamicConfigJson}. Name the one-shot apply task after it: a changed setting gives
 * a new task (which runs), the same settings the same task (which does not run again).
 */
export function settingsDigest(config: PatroniDynamicConfig): string {
  return createHash("sha256").update(renderDynamicConfigJson(config)).digest("hex").slice(0, 10);
}

/**
 * The variables the apply script takes the REST API credentials from: the user's name (Patroni's
 * own variable name), and the path of a file holding the password (the official images'
 * `<NAME>_FILE` convention), so the password is never in a container's environment.
 */
export const APPLY_SETTINGS_ENV = {
  username: "PATRONI_RESTAPI_USERNAME",
  passwordFile: "PATRONI_RESTAPI_PASSWORD_FILE",
} as const;

/** The apply script's exit codes. */
export const APPLY_SETTINGS_EXIT = {
  /** The members hold the settings (applied now, or already in place). */
  ok: 0,
  /** No member answered `GET /config` within the attempts and the deadline. */
  unreachable: 1,
  /** Bad arguments, an unreadable settings file, or credentials missing (variable, file or content). */
  usage: 2,
  /** A member refused the credentials (HTTP 401 or 403). */
  refused: 3,
  /** No member accepted the `PATCH /config` within the attempts and the deadline. */
  patchFailed: 4,
  /** Accepted, but the members did not all report the settings within the deadline. */
  notConfirmed: 5,
} as const;

export interface ApplySettingsOptions {
  /** Rounds over the members before giving up (each step: wait, patch, confirm). @default 60 */
  readonly attempts?: number;
  /** Seconds between rounds. @default 5 */
  readonly intervalSeconds?: number;
  /** Seconds after which the script gives up whatever the attempts left. @default 300 */
  readonly deadlineSeconds?: number;
  /** Seconds one HTTP request may take. @default 5 */
  readonly requestTimeoutSeconds?: number;
}

/** Positive whole seconds or counts, so a bad value fails at render time, not in the task. */
function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new g.RenderInputError("renderApplySettingsScript", name, "be a whole number of at least 1", value);
  }
  // Past a day nothing is bounded any more (and 1e21 would print as 1e+21, a Python float).
  return g.wholeNumber("renderApplySettingsScript", name, value, 1, 86_400);
}

/**
 * A Python 3 script (standard library only: the Patroni image has python3 but neither curl nor
 * wget) that brings a running cluster's dynamic configuration to the settings in a JSON file:
 *
 *     python3 apply-settings.py SETTINGS_JSON HOST:PORT [HOST:PORT ...]
 *         [--attempts N] [--interval S] [--deadline S] [--request-timeout S]
 *
 * with the REST API's user in `PATRONI_RESTAPI_USERNAME` and its password in the file
 * `PATRONI_RESTAPI_PASSWORD_FILE` names (one trailing newline dropped; never printed). It waits
 * until some member answers `GET /config` (the cluster is initialised and its DCS reachable),
 * sends `PATCH /config` with the settings to one member (basic auth; Patroni merges them into
 * the DCS and writes nothing when nothing changed, so a re-run is a no-op), then polls
 * `GET /config` on every member until each one that answers reports every setting. Every wait is
 * bounded by `--attempts` rounds and `--deadline` seconds. Exit codes: {@link APPLY_SETTINGS_EXIT}.
 *
 * Keys absent from the file are left as they are (a slot of a removed member stays until it is
 * removed: a `null` value in the file deletes a key, as Patroni's PATCH does). A member that
 * never answers is reported but does not fail the run: it reads the settings from the DCS when
 * it comes back. Values are compared as Patroni compares them when patching (as strings).
 */
export function renderApplySettingsScript(o: ApplySettingsOptions = {}): string {
  const attempts = positive("attempts", o.attempts ?? 60);
  const interval = positive("intervalSeconds", o.intervalSeconds ?? 5);
  const deadline = positive("deadlineSeconds", o.deadlineSeconds ?? 300);
  const requestTimeout = positive("requestTimeoutSeconds", o.requestTimeoutSeconds ?? 5);
  const e = APPLY_SETTINGS_EXIT;
  return `#!/usr/bin/env python3
# Generated by ha-backend (components/database/render/patroni-settings.ts). No secrets: the REST
# API user comes from the environment, its password from the file the environment names.
"""Brings a running Patroni cluster's dynamic configuration to the settings in a JSON file.

usage: apply-settings.py SETTINGS_JSON HOST:PORT [HOST:PORT ...]
           [--attempts N] [--interval S] [--deadline S] [--request-timeout S]

Environment: ${APPLY_SETTINGS_ENV.username}, and ${APPLY_SETTINGS_ENV.passwordFile}, the path of a file
holding the password (restapi.authentication; one trailing newline is dropped).
Exit codes: ${e.ok} applied or already in place; ${e.unreachable} no member answered GET /config; ${e.usage} usage;
${e.refused} credentials refused; ${e.patchFailed} PATCH /config failed; ${e.notConfirmed} members did not confirm the settings.
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_REFUSED, EXIT_PATCH, EXIT_UNCONFIRMED = ${e.ok}, ${e.unreachable}, ${e.usage}, ${e.refused}, ${e.patchFailed}, ${e.notConfirmed}

# Members are addressed directly: never through an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(message):
    print("apply-settings: " + message, flush=True)


def fail(code, message):
    log("FAILED: " + message)
    sys.exit(code)


class Clock:
    """The run's deadline: every wait and every request ends by it."""

    def __init__(self, seconds, request_timeout):
        self.end = time.monotonic() + seconds
        self.request_timeout = request_timeout

    def left(self):
        return self.end - time.monotonic()

    def timeout(self):
        return max(1.0, min(self.request_timeout, self.left()))

    def pause(self, seconds):
        """Sleeps between rounds; False when the deadline comes first."""
        if self.left() <= seconds:
            return False
        time.sleep(seconds)
        return True


def call(member, method, clock, body=None, auth=None):
    """One request to /config: (status, JSON body or None). Raises OSError when unreachable."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request("http://%s/config" % member, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with OPENER.open(request, timeout=clock.timeout()) as response:
            text = response.read().decode("utf-8")
            status = response.status
    except urllib.error.HTTPError as error:
        return error.code, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def reason(error):
    """A short, password-free description of a failed request."""
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return error.__class__.__name__ + ": " + str(error)


def mismatches(want, have, prefix=""):
    """Dotted keys of \`want\` that \`have\` does not hold (leaves compared as strings, as Patroni's
    patch_config compares them; a null in \`want\` means the key must be absent)."""
    found = []
    for key in sorted(want):
        path = prefix + key
        value = want[key]
        present = isinstance(have, dict) and key in have
        current = have[key] if present else None
        if isinstance(value, dict):
            if not isinstance(current, dict):
                found.append(path)
            else:
                found.extend(mismatches(value, current, path + "."))
        elif value is None:
            if present:
                found.append(path)
        elif not present or str(current) != str(value):
            found.append(path)
    return found


def read_password(path):
    """The password in \`path\`, without one trailing newline (what an editor or echo adds)."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read()
    except (OSError, ValueError) as error:
        # The reason only (no such file, permission denied): never the content.
        fail(EXIT_USAGE, "cannot read the password file %s (${APPLY_SETTINGS_ENV.passwordFile}): %s" % (path, getattr(error, "strerror", None) or error.__class__.__name__))
    if password.endswith("\\n"):
        password = password[:-1]
    if not password:
        fail(EXIT_USAGE, "the password file %s (${APPLY_SETTINGS_ENV.passwordFile}) is empty" % path)
    return password


def lookup(config, path):
    for key in path.split("."):
        if not isinstance(config, dict) or key not in config:
            return "(absent)"
        config = config[key]
    return json.dumps(config)


def find_member(members, args, clock):
    """The first member that answers GET /config, and the configuration it reports."""
    last = {}
    for attempt in range(1, args.attempts + 1):
        for member in members:
            try:
                status, config = call(member, "GET", clock)
            except OSError as error:
                last[member] = reason(error)
                continue
            if status == 200 and isinstance(config, dict):
                return member, config
            last[member] = "HTTP %d" % status
        if attempt == args.attempts or not clock.pause(args.interval):
            break
        log("round %d: no member answers GET /config yet; next round in %d s" % (attempt, args.interval))
    fail(
        EXIT_UNREACHABLE,
        "no member answered GET /config in %d round(s) or %d s: %s"
        % (args.attempts, args.deadline, "; ".join("%s: %s" % m for m in sorted(last.items()))),
    )


def patch(members, first, desired, auth, args, clock):
    """PATCH /config on one member (the one that answered first, then the others); its name."""
    order = [first] + [m for m in members if m != first]
    last = {}
    for attempt in range(1, args.attempts + 1):
        for member in order:
            try:
                status, _ = call(member, "PATCH", clock, desired, auth)
            except OSError as error:
                last[member] = reason(error)
                continue
            if status in (401, 403):
                fail(
                    EXIT_REFUSED,
                    "%s refused the credentials (HTTP %d): %s and the password in %s must match restapi.authentication in patroni.yml"
                    % (member, status, "${APPLY_SETTINGS_ENV.username}", "${APPLY_SETTINGS_ENV.passwordFile}"),
                )
            if status == 200:
                return member
            # 409: another change won the race; 503: the cluster has no configuration yet.
            last[member] = "HTTP %d" % status
        if attempt == args.attempts or not clock.pause(args.interval):
            break
    fail(
        EXIT_PATCH,
        "no member accepted PATCH /config in %d round(s) or %d s: %s"
        % (args.attempts, args.deadline, "; ".join("%s: %s" % m for m in sorted(last.items()))),
    )


def confirm(members, patched, desired, args, clock):
    """Waits until every member that answers reports the settings (the patched one at least)."""
    for attempt in range(1, args.attempts + 1):
        confirmed, pending, silent = [], {}, []
        for member in members:
            try:
                status, config = call(member, "GET", clock)
            except OSError:
                silent.append(member)
                continue
            if status != 200 or not isinstance(config, dict):
                silent.append(member)
                continue
            wrong = mismatches(desired, config)
            if wrong:
                pending[member] = (wrong, config)
            else:
                confirmed.append(member)
        if not pending and patched in confirmed:
            return confirmed, silent
        if attempt == args.attempts or not clock.pause(args.interval):
            break
    details = ["%s: %s" % (m, ", ".join("%s is %s" % (k, lookup(c, k)) for k in w)) for m, (w, c) in sorted(pending.items())]
    if patched not in confirmed and patched not in pending:
        details.append("%s (patched) no longer answers" % patched)
    fail(EXIT_UNCONFIRMED, "settings not reported within %d round(s) or %d s: %s" % (args.attempts, args.deadline, "; ".join(details)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", help="JSON file with the desired dynamic configuration")
    parser.add_argument("members", nargs="+", help="members' REST API addresses, host:port")
    parser.add_argument("--attempts", type=int, default=${attempts}, help="rounds over the members per step")
    parser.add_argument("--interval", type=int, default=${interval}, help="seconds between rounds")
    parser.add_argument("--deadline", type=int, default=${deadline}, help="seconds for the whole run")
    parser.add_argument("--request-timeout", type=int, default=${requestTimeout}, help="seconds per HTTP request")
    args = parser.parse_args()
    if min(args.attempts, args.interval, args.deadline, args.request_timeout) < 1:
        fail(EXIT_USAGE, "--attempts, --interval, --deadline and --request-timeout must be at least 1")
    try:
        with open(args.settings, encoding="utf-8") as f:
            desired = json.load(f)
    except (OSError, ValueError) as error:
        fail(EXIT_USAGE, "cannot read %s: %s" % (args.settings, error))
    if not isinstance(desired, dict) or not desired:
        fail(EXIT_USAGE, "%s must hold a non-empty JSON object" % args.settings)
    username = os.environ.get("${APPLY_SETTINGS_ENV.username}", "")
    password_file = os.environ.get("${APPLY_SETTINGS_ENV.passwordFile}", "")
    if not username or not password_file:
        fail(EXIT_USAGE, "${APPLY_SETTINGS_ENV.username} and ${APPLY_SETTINGS_ENV.passwordFile} must be set")
    password = read_password(password_file)
    auth = "Basic " + base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
    clock = Clock(args.deadline, args.request_timeout)

    member, current = find_member(args.members, args, clock)
    differing = mismatches(desired, current)
    if differing:
        log("%s reports %d setting(s) to change: %s" % (member, len(differing), ", ".join(differing)))
    else:
        log("%s reports every setting in place already; PATCH /config changes nothing" % member)
    patched = patch(args.members, member, desired, auth, args, clock)
    log("PATCH /config accepted by %s" % patched)
    confirmed, silent = confirm(args.members, patched, desired, args, clock)
    log("settings reported by %d of %d member(s): %s" % (len(confirmed), len(args.members), ", ".join(confirmed)))
    if silent:
        log("WARNING: no answer from %s; a member takes the settings from the DCS when it is back" % ", ".join(silent))
    log("done: %s" % ("applied" if differing else "already in place"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
`;
}
