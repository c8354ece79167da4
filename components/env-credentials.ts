/**
 * The credentials that still reach a container as an environment variable, by variable name,
 * with the reason. Everything else goes as a file (mode 0400 on Docker, owned by the daemon's
 * uid; a mounted Secret on Kubernetes): the official images' `*_PASSWORD_FILE`, config files,
 * `/run/secrets/<NAME>` for the app. The README's "Credentials" section lists the same names,
 * and `test/unit/credential-files.test.ts` fails on any other credential in a container's
 * environment, for every stack file and its PostgreSQL and sticky-cookie variants.
 */
export const ENV_CREDENTIALS: Readonly<Record<string, string>> = {
  PATRONI_RESTAPI_PASSWORD:
    "The PostgreSQL settings task (a one-shot container or Job per settings change, run by " +
    "Platform.runTask) sends the REST API password to Patroni, and a task spec has no secret " +
    "files yet. Docker keeps the exited task container until the next settings change replaces it.",
};
