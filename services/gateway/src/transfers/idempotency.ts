import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/** Redis key of the idempotency record of one Idempotency-Key. */
export function idempotencyKey(key: string): string {
  return `gateway:idem:${key}`;
}

/** What the gateway answered for an accepted transfer; replayed verbatim. */
export interface AcceptedAnswer {
  readonly transferId: string;
  readonly eventId: string;
  readonly traceId: string;
}

/** Outcome of {@link IdempotencyRecords.claim}. */
export type Claim =
  /** The caller holds the lease and must publish, then `complete` or `release`. */
  | { readonly kind: "claimed"; readonly owner: string }
  /** Done earlier with the same body: replay the stored answer, publish nothing. */
  | { readonly kind: "done"; readonly answer: AcceptedAnswer }
  /** Another request with the same key and body holds the lease for `leaseLeftMs` more. */
  | { readonly kind: "pending"; readonly leaseLeftMs: number }
  /** The key was used for a different body. */
  | { readonly kind: "conflict" };

/**
 * The gateway's idempotency records, `gateway:idem:<key>` = hash {bodyHash, status,
 * owner, answer}. A claim takes a lease (the key's TTL while `pending`), so a gateway
 * that dies mid-publish frees the key for the client's retry; the retry republishes the
 * same derived Nats-Msg-Id, which the stream drops. Done records live `ttlMs`.
 * Every method throws when Redis is unreachable; the caller answers 503.
 */
export interface IdempotencyRecords {
  claim(key: string, bodyHash: string): Promise<Claim>;
  /** Stores the answer; false when another owner claimed meanwhile (its answer wins). */
  complete(key: string, owner: string, bodyHash: string, answer: AcceptedAnswer): Promise<boolean>;
  /** Frees a claim whose publish failed, so a retry is not told "in progress". */
  release(key: string, owner: string): Promise<void>;
}

const CLAIM = `
local hash = redis.call('HGET', KEYS[1], 'bodyHash')
if not hash then
  redis.call('HSET', KEYS[1], 'bodyHash', ARGV[1], 'status', 'pending', 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
if hash ~= ARGV[1] then return {'conflict'} end
if redis.call('HGET', KEYS[1], 'status') == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'answer')}
end
return {'pending', tostring(redis.call('PTTL', KEYS[1]))}
`;

// Stores the answer when the caller still owns the claim or the lease lapsed with nobody
// else claiming: either way the answer is the one the client is about to receive.
const COMPLETE = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'bodyHash', ARGV[2], 'status', 'done', 'owner', ARGV[1], 'answer', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`;

const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

export interface IdempotencyOptions {
  /** Longer than the slowest publish, so a live request never loses its lease. */
  readonly leaseMs: number;
  /** How long a done record answers replays. */
  readonly ttlMs: number;
}

/** Creates the record store over an ioredis client (scripts run with EVALSHA). */
export function createIdempotencyRecords(redis: Redis, opts: IdempotencyOptions): IdempotencyRecords {
  let owners = 0;
  const ownerPrefix = `${process.pid}-${Date.now().toString(36)}-`;
  return {
    async claim(key, bodyHash) {
      const owner = `${ownerPrefix}${++owners}`;
      const res = (await runScript(
        redis,
        CLAIM,
        [idempotencyKey(key)],
        [bodyHash, owner, String(opts.leaseMs)],
      )) as [string, string?] | undefined;
      switch (res?.[0]) {
        case "claimed":
          return { kind: "claimed", owner };
        case "conflict":
          return { kind: "conflict" };
        case "done":
          return { kind: "done", answer: JSON.parse(res[1] ?? "null") as AcceptedAnswer };
        case "pending":
          return { kind: "pending", leaseLeftMs: Math.max(0, Number(res[1])) };
        default:
          throw new Error(`unexpected idempotency claim result ${JSON.stringify(res)}`);
      }
    },
    async complete(key, owner, bodyHash, answer) {
      const stored = await runScript(
        redis,
        COMPLETE,
        [idempotencyKey(key)],
        [owner, bodyHash, JSON.stringify(answer), String(opts.ttlMs)],
      );
      return stored === 1;
    },
    async release(key, owner) {
      await runScript(redis, RELEASE, [idempotencyKey(key)], [owner]);
    },
  };
}

const shas = new Map<string, string>();

/** EVALSHA, loading the script on NOSCRIPT (first use, or after a Redis restart). */
async function runScript(redis: Redis, script: string, keys: string[], args: string[]): Promise<unknown> {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash("sha1").update(script).digest("hex");
    shas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    // A Redis error reply's code is its first word; NOSCRIPT has no class of its own.
    if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}
