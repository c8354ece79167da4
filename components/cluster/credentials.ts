import { readFileSync } from "node:fs";

/**
 * How an app receives its credentials from a {@link ServerCluster}: as files, never as
 * environment (on Docker, `docker inspect` shows any container's environment to whoever can
 * reach the engine). The Docker official images' convention:
 *
 * - each credential `NAME` is the file `/run/secrets/NAME` (mode 0400 on Docker, owned by the
 *   cluster's `credentialsOwner`; a mounted Secret on Kubernetes), holding exactly the value (no
 *   trailing newline);
 * - the plain variable `NAME_FILE` holds that path, so the app never hard-codes it.
 *
 * This module has no Pulumi import: apps use {@link readCredential} at run time.
 */

/** The directory credential files land in, in every app container. */
export const APP_SECRETS_DIR = "/run/secrets";

/** The suffix of the plain variable that names a credential's file (`DATABASE_URL_FILE`). */
export const FILE_SUFFIX = "_FILE";

/** The file a credential `name` lands in: `/run/secrets/<name>`. */
export function credentialPath(name: string): string {
  return `${APP_SECRETS_DIR}/${name}`;
}

/**
 * A credential the app was given, by name: the content of the file `<name>_FILE` names (with
 * trailing newlines dropped, as the official images' entrypoints read `*_FILE`), else the plain
 * variable `<name>` (images and tests that still pass it as environment), else undefined.
 *
 *     const url = readCredential("DATABASE_URL"); // reads $DATABASE_URL_FILE
 */
export function readCredential(
  name: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined {
  const file = env[`${name}${FILE_SUFFIX}`];
  if (file !== undefined && file !== "") return readFileSync(file, "utf8").replace(/\n+$/, "");
  return env[name];
}
