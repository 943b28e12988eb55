import { connect } from "node:net";

/**
 * The few Redis commands a fault needs (GET, SCAN, DEL), spoken in RESP on a fresh loopback
 * connection per call: the chaos runner reads and deletes keys from outside, as an operator
 * or an expiry would, without taking a client library the services use.
 */

/** A decoded RESP reply. */
export type RespValue = string | number | null | RespValue[];

/** Encodes one command as a RESP array of bulk strings. */
function encode(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

/** Parses one reply at `at`; undefined when `buf` does not hold all of it yet. */
function parse(buf: Buffer, at: number): { value: RespValue; next: number } | undefined {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return undefined;
  const kind = String.fromCharCode(buf[at] as number);
  const line = buf.toString("utf8", at + 1, eol);
  const after = eol + 2;
  if (kind === "+") return { value: line, next: after };
  if (kind === "-") throw new Error(`redis: ${line}`);
  if (kind === ":") return { value: Number(line), next: after };
  if (kind === "$") {
    const n = Number(line);
    if (n < 0) return { value: null, next: after };
    if (buf.length < after + n + 2) return undefined;
    return { value: buf.toString("utf8", after, after + n), next: after + n + 2 };
  }
  if (kind === "*") {
    const n = Number(line);
    if (n < 0) return { value: null, next: after };
    const items: RespValue[] = [];
    let next = after;
    for (let i = 0; i < n; i++) {
      const item = parse(buf, next);
      if (!item) return undefined;
      items.push(item.value);
      next = item.next;
    }
    return { value: items, next };
  }
  throw new Error(`redis: unexpected reply type ${JSON.stringify(kind)}`);
}

/**
 * Sends one command to `redis://host:port` and resolves with its reply.
 * @throws on an error reply, a refused connection or no answer within `timeoutMs`.
 */
export function redisCall(url: string, args: readonly string[], timeoutMs = 5000): Promise<RespValue> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname || "127.0.0.1", port: Number(u.port || 6379) });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, value?: RespValue) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(value as RespValue);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(new Error(`redis ${url}: no answer to ${args[0]} in ${timeoutMs} ms`)),
    );
    socket.once("connect", () => socket.write(encode(args)));
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        const r = parse(buf, 0);
        if (r) finish(undefined, r.value);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`redis ${url}: connection closed before a reply`)));
  });
}

/** GET as a string, or undefined when the key does not exist. */
export async function redisGet(url: string, key: string): Promise<string | undefined> {
  const v = await redisCall(url, ["GET", key]);
  return typeof v === "string" ? v : undefined;
}

/** Every key matching `pattern` (SCAN, so the server is never blocked on a large keyspace). */
export async function redisScan(url: string, pattern: string): Promise<string[]> {
  const keys = new Set<string>();
  let cursor = "0";
  do {
    const reply = await redisCall(url, ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]);
    if (!Array.isArray(reply) || typeof reply[0] !== "string" || !Array.isArray(reply[1]))
      throw new Error(`redis ${url}: unexpected SCAN reply`);
    cursor = reply[0];
    for (const k of reply[1]) if (typeof k === "string") keys.add(k);
  } while (cursor !== "0");
  return [...keys];
}

/** Deletes `keys` in batches; resolves with how many existed. */
export async function redisDelete(url: string, keys: readonly string[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < keys.length; i += 500) {
    const reply = await redisCall(url, ["DEL", ...keys.slice(i, i + 500)]);
    n += typeof reply === "number" ? reply : 0;
  }
  return n;
}
