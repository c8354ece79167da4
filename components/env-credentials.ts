/**
 * The credentials that still reach a container as an environment variable, by variable name,
 * with the reason: none. Every credential goes as a file (mode 0400 on Docker, owned by the
 * daemon's uid; a mounted Secret on Kubernetes): the official images' `*_PASSWORD_FILE`, config
 * files, `/run/secrets/<NAME>` for the app, `PATRONI_RESTAPI_PASSWORD_FILE` for the PostgreSQL
 * settings task. An entry here is an exception that needs its reason; the README's
 * "Credentials" section lists the same names, and `test/unit/credential-files.test.ts` fails on
 * any other credential in a container's environment, for every stack file and its PostgreSQL
 * and sticky-cookie variants.
 */
export const ENV_CREDENTIALS: Readonly<Record<string, string>> = {};
