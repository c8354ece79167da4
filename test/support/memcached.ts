import { connect } from "node:net";

/**
 * An in-memory cache on loopback answers in well under a millisecond; the bound only tells a
 * hung or stopped node from a live one, so it is far above what a busy 2-core machine adds.
 */
const REPLY_TIMEOUT_MS = 5_000;

/**
 * One memcached text-protocol request on a fresh connection (tests only): resolves with the
 * reply once it is complete (`expectEnd` seen), rejects on a refused connection or after
 * {@link REPLY_TIMEOUT_MS}.
 */
function request(host: string, port: number, line: string, expectEnd: RegExp): Promise<string> {
  if (!host.startsWith("127.")) return Promise.reject(new Error("tests talk to loopback only"));
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let reply = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached ${host}:${port}: no reply in ${REPLY_TIMEOUT_MS} ms`));
    }, REPLY_TIMEOUT_MS);
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("data", (d) => {
      reply += d.toString();
      if (expectEnd.test(reply)) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.write(line);
  });
}

export async function mcSet(host: string, port: number, key: string, value: string): Promise<void> {
  const r = await request(host, port, `set ${key} 0 0 ${Buffer.byteLength(value)}\r\n${value}\r\n`, /\r\n$/);
  if (r !== "STORED\r\n") throw new Error(`set ${key}: ${r.trim()}`);
}

/** The value, or undefined on a miss. */
export async function mcGet(host: string, port: number, key: string): Promise<string | undefined> {
  const r = await request(host, port, `get ${key}\r\n`, /END\r\n$/);
  const m = /^VALUE \S+ \d+ \d+\r\n([\s\S]*)\r\nEND\r\n$/.exec(r);
  return m ? m[1] : undefined;
}
