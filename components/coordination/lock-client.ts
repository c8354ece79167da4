import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { readCredential } from "../cluster/credentials";

/**
 * A distributed lock on etcd for apps (Node), over etcd's JSON API (`/v3/...`), with no
 * dependency: a lock is a key created only if absent (one transaction), attached to a lease.
 * Whoever created it holds the lock until it releases (revokes the lease) or stops renewing
 * and the lease runs out: a crashed holder loses the lock after at most the lease TTL.
 *
 * The fencing token is the key's create revision: etcd's revisions only grow, so every later
 * holder's token is larger. A resource protected by the lock should reject writes carrying a
 * token smaller than the largest it has seen: a holder that paused past its lease then cannot
 * overwrite its successor's work.
 */
export interface EtcdLockClientOptions {
  /** `http(s)://host:2379` of every member; a failed request moves on to the next. */
  readonly endpoints: readonly string[];
  /** PEM texts for HTTPS with a client certificate (the LockService's credentials). */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** Per request. @default 2000 */
  readonly requestTimeoutMs?: number;
  /** Key prefix. @default "/ha-backend/locks/" */
  readonly prefix?: string;
  /** The lease TTL {@link EtcdLockClient.acquire} uses unless told otherwise. @default 10 */
  readonly ttlSeconds?: number;
}

export interface HeldLock {
  readonly name: string;
  readonly leaseId: string;
  /** The key's create revision (an int64, as a decimal string): compare with BigInt. */
  readonly fencingToken: string;
}

export class LockTimeoutError extends Error {}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

export class EtcdLockClient {
  private next = 0;
  private readonly timeoutMs: number;
  private readonly prefix: string;
  private readonly ttlSeconds: number;

  constructor(private readonly options: EtcdLockClientOptions) {
    if (options.endpoints.length === 0) throw new Error("EtcdLockClient: give at least one endpoint");
    this.timeoutMs = options.requestTimeoutMs ?? 2000;
    this.prefix = options.prefix ?? "/ha-backend/locks/";
    this.ttlSeconds = options.ttlSeconds ?? 10;
  }

  /**
   * A client configured from the environment a `LockService`'s `appEnv()` gives a
   * `ServerCluster`: `<prefix>ENDPOINTS` (comma-separated), `<prefix>CA_PEM` and
   * `<prefix>CLIENT_CERT_PEM` (plain), `<prefix>TTL_SECONDS`, and the client key from the file
   * `<prefix>CLIENT_KEY_PEM_FILE` names (each PEM may also come as a `_FILE`, or, for the key,
   * as the plain variable: see `readCredential`). Throws naming the first variable missing.
   */
  static fromEnv(
    env: Readonly<Record<string, string | undefined>> = process.env,
    prefix = "LOCK_",
    options: Omit<EtcdLockClientOptions, "endpoints" | "tls" | "ttlSeconds"> = {},
  ): EtcdLockClient {
    const need = (name: string): string => {
      const v = readCredential(`${prefix}${name}`, env);
      if (v === undefined || v === "") {
        throw new Error(
          `EtcdLockClient.fromEnv: ${prefix}${name} (or ${prefix}${name}_FILE) is not set. Pass the lock service's appEnv() to the app.`,
        );
      }
      return v;
    };
    const ttl = env[`${prefix}TTL_SECONDS`];
    const ttlSeconds = ttl === undefined || ttl === "" ? undefined : Number(ttl);
    if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)) {
      throw new Error(
        `EtcdLockClient.fromEnv: ${prefix}TTL_SECONDS must be whole seconds, but "${ttl}" was provided.`,
      );
    }
    return new EtcdLockClient({
      ...options,
      endpoints: need("ENDPOINTS")
        .split(",")
        .map((e) => e.trim())
        .filter((e) => e !== ""),
      tls: { ca: need("CA_PEM"), cert: need("CLIENT_CERT_PEM"), key: need("CLIENT_KEY_PEM") },
      ttlSeconds,
    });
  }

  /**
   * Takes the lock `name`, waiting up to `waitMs` for the holder to release it or lose it.
   * The lease lasts `ttlSeconds` (the client's, by default) unless renewed with {@link keepAlive}.
   */
  async acquire(
    name: string,
    {
      ttlSeconds = this.ttlSeconds,
      waitMs = 10_000,
      pollMs = 100,
    }: { ttlSeconds?: number; waitMs?: number; pollMs?: number } = {},
  ): Promise<HeldLock> {
    const deadline = Date.now() + waitMs;
    // A member dying or a leader election fails a request or two: retry within the wait.
    const retrying = async (path: string, body: unknown) => {
      for (;;) {
        try {
          return await this.call(path, body);
        } catch (e) {
          if (Date.now() + pollMs > deadline) throw e;
          await new Promise((r) => setTimeout(r, pollMs));
        }
      }
    };
    const grant = await retrying("/v3/lease/grant", { TTL: String(ttlSeconds) });
    const leaseId = String(grant.ID);
    const key = b64(this.prefix + name);
    for (;;) {
      const txn = await retrying("/v3/kv/txn", {
        compare: [{ key, result: "EQUAL", target: "CREATE", create_revision: "0" }],
        success: [{ request_put: { key, value: b64(leaseId), lease: leaseId } }],
        failure: [{ request_range: { key } }],
      });
      if (txn.succeeded === true) {
        return { name, leaseId, fencingToken: String((txn.header as { revision: string }).revision) };
      }
      if (Date.now() + pollMs > deadline) {
        await this.call("/v3/lease/revoke", { ID: leaseId }).catch(() => undefined);
        throw new LockTimeoutError(`lock ${name}: still held by another client after ${waitMs} ms`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Renews the lease; returns the seconds it now has. Throws once the lease is gone (lock lost). */
  async keepAlive(lock: HeldLock): Promise<number> {
    const r = await this.call("/v3/lease/keepalive", { ID: lock.leaseId });
    const ttl = Number((r.result as { TTL?: string } | undefined)?.TTL ?? 0);
    if (ttl <= 0) throw new Error(`lock ${lock.name}: lease ${lock.leaseId} expired, the lock is lost`);
    return ttl;
  }

  /** Releases the lock: revoking the lease deletes the key at once. */
  async release(lock: HeldLock): Promise<void> {
    await this.call("/v3/lease/revoke", { ID: lock.leaseId });
  }

  /** The current holder's fencing token and lease, if the lock is held. */
  async holder(name: string): Promise<{ fencingToken: string; leaseId: string } | undefined> {
    const r = await this.call("/v3/kv/range", { key: b64(this.prefix + name) });
    const kv = (r.kvs as { create_revision: string; lease?: string }[] | undefined)?.[0];
    return kv ? { fencingToken: kv.create_revision, leaseId: String(kv.lease ?? "0") } : undefined;
  }

  /** POSTs to one endpoint after another until one answers (each try bounded by the timeout). */
  private async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    let last: unknown;
    for (let i = 0; i < this.options.endpoints.length; i++) {
      const endpoint = this.options.endpoints[this.next % this.options.endpoints.length];
      try {
        return await this.post(endpoint, path, body);
      } catch (e) {
        last = e;
        this.next++; // this member is down or unreachable: use the next one from now on
      }
    }
    throw last;
  }

  private post(endpoint: string, path: string, body: unknown): Promise<Record<string, unknown>> {
    const url = new URL(path, endpoint);
    const tls = this.options.tls;
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
          timeout: this.timeoutMs,
          ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
        },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => {
            if (res.statusCode !== 200)
              return reject(new Error(`etcd ${path}: HTTP ${res.statusCode} ${text}`));
            try {
              // A keepalive answers one JSON line per renewal; the first is enough.
              resolve(JSON.parse(text.split("\n")[0]) as Record<string, unknown>);
            } catch (e) {
              reject(e);
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`etcd ${path}: no answer in ${this.timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }
}
