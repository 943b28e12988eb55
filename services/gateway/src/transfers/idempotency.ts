import type { Redis } from "ioredis";
import { runScript } from "../redis-scripts.ts";

/**
 * Redis key of the idempotency record of one client's Idempotency-Key: `scoped` is
 * `<client>:<key>` (submit.ts `scopedKey`), so one client can neither pre-claim nor replay
 * another's key.
 */
export function idempotencyKey(scoped: string): string {
  return `gateway:idem:${scoped}`;
}

/** What the gateway answered for an accepted transfer; replayed verbatim. */
export interface AcceptedAnswer {
  readonly transferId: string;
  readonly eventId: string;
  readonly traceId: string;
}

/** Outcome of {@link IdempotencyRecords.claim}. */
export type Claim =
  /**
   * The caller holds the lease and must publish, then `complete`, `release` (not stored) or
   * `unsure` (maybe stored). `firstAt` is when the key was first claimed: the event's time,
   * the same on every retry, so a retry publishes the same bytes.
   */
  | { readonly kind: "claimed"; readonly owner: string; readonly firstAt: string }
  /** Done earlier with the same body: replay the stored answer, publish nothing. */
  | { readonly kind: "done"; readonly answer: AcceptedAnswer }
  /** Another request with the same key and body holds the lease for `leaseLeftMs` more. */
  | { readonly kind: "pending"; readonly leaseLeftMs: number }
  /** The key was used for a different body. */
  | { readonly kind: "conflict" };

/**
 * The gateway's idempotency records, `gateway:idem:<client>:<key>` = hash {bodyHash, status, owner,
 * leaseUntil, firstAt, answer}, living `ttlMs` (at least the idempotency horizon) from the
 * first claim, whatever happens to the request:
 * - `pending`: one request holds a lease until `leaseUntil`; a gateway that dies mid-publish
 *   lets the lease lapse, and the client's retry takes it over (same body only);
 * - `unsure`: a publish went unanswered, so the event may be stored: the key stays bound to
 *   its body (another body is a conflict) until a retry with the same body learns the answer
 *   by publishing the same Nats-Msg-Id again;
 * - `done`: the answer, replayed.
 * Only a publish the stream refused outright (`release`) forgets the key.
 * Every method throws when Redis is unreachable; the caller answers 503.
 */
export interface IdempotencyRecords {
  claim(key: string, bodyHash: string): Promise<Claim>;
  /** Stores the answer; false when another owner claimed meanwhile (its answer wins). */
  complete(key: string, owner: string, bodyHash: string, answer: AcceptedAnswer): Promise<boolean>;
  /** Forgets a claim whose publish the stream refused (nothing stored), so a retry starts afresh. */
  release(key: string, owner: string): Promise<void>;
  /** Keeps the key bound to its body after a publish that may have been stored. */
  unsure(key: string, owner: string): Promise<void>;
}

const CLAIM = `
local h = redis.call('HMGET', KEYS[1], 'bodyHash', 'status', 'leaseUntil', 'firstAt', 'answer')
local now = tonumber(ARGV[4])
if not h[1] then
  redis.call('HSET', KEYS[1], 'bodyHash', ARGV[1], 'status', 'pending', 'owner', ARGV[2],
    'leaseUntil', tostring(now + tonumber(ARGV[3])), 'firstAt', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {'claimed', ARGV[5]}
end
if h[1] ~= ARGV[1] then return {'conflict'} end
if h[2] == 'done' then return {'done', h[5]} end
if h[2] == 'pending' and tonumber(h[3]) > now then return {'pending', tostring(tonumber(h[3]) - now)} end
redis.call('HSET', KEYS[1], 'status', 'pending', 'owner', ARGV[2], 'leaseUntil', tostring(now + tonumber(ARGV[3])))
return {'claimed', h[4]}
`;

// Stores the answer when the caller still owns the claim: the answer is the one the
// client is about to receive.
const COMPLETE = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'bodyHash', ARGV[2], 'status', 'done', 'owner', ARGV[1], 'answer', ARGV[3])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`;

const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

const UNSURE = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'unsure', 'leaseUntil', '0')
  return 1
end
return 0
`;

export interface IdempotencyOptions {
  /** Longer than the slowest publish, so a live request never loses its lease. */
  readonly leaseMs: number;
  /** How long a record lives from its first claim: at least the idempotency horizon. */
  readonly ttlMs: number;
}

/** Creates the record store over an ioredis client (scripts run with EVALSHA). */
export function createIdempotencyRecords(redis: Redis, opts: IdempotencyOptions): IdempotencyRecords {
  let owners = 0;
  const ownerPrefix = `${process.pid}-${Date.now().toString(36)}-`;
  return {
    async claim(key, bodyHash) {
      const owner = `${ownerPrefix}${++owners}`;
      const now = Date.now();
      const res = (await runScript(
        redis,
        CLAIM,
        [idempotencyKey(key)],
        [bodyHash, owner, String(opts.leaseMs), String(now), new Date(now).toISOString(), String(opts.ttlMs)],
      )) as [string, string?] | undefined;
      switch (res?.[0]) {
        case "claimed":
          return { kind: "claimed", owner, firstAt: res[1] ?? new Date(now).toISOString() };
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
    async unsure(key, owner) {
      await runScript(redis, UNSURE, [idempotencyKey(key)], [owner]);
    },
  };
}
