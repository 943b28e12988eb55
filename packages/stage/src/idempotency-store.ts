import type { Redis } from "ioredis";

/**
 * The answer to a claim on `{stage}:{eventId}`:
 * - `claimed`: this attempt owns the lease; `previousAttempt` is the traceparent of
 *   an earlier attempt that failed transiently (to link spans), if any;
 * - `done`: an earlier attempt finished; `result` is what it stored;
 * - `busy`: another attempt holds the lease for `retryInMs` more.
 */
export type ClaimResult =
  | { readonly state: "claimed"; readonly previousAttempt?: string }
  | { readonly state: "done"; readonly result: string }
  | { readonly state: "busy"; readonly retryInMs: number };

/**
 * Redis idempotency keys, one per (stage, input event). A key is a lease while an
 * attempt runs, a retry marker after a transient failure and the stored result once
 * done. Every operation is one round trip (Lua where it must be atomic), so with
 * ioredis auto-pipelining concurrent messages share network writes.
 */
export interface IdempotencyStore {
  /** Takes the lease unless the key is done or leased by another attempt. */
  claim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<ClaimResult>;
  /** Stores the result; the key lives `ttlMs` more. Unconditional: the outputs are published. */
  markDone(key: string, result: string, ttlMs: number): Promise<void>;
  /** Gives the lease back after a transient failure, keeping the attempt's traceparent for the retry. */
  release(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<void>;
}

// Values: "L|<attempt>|<traceparent>" lease, "R|<traceparent>" retry marker, "D|<result>" done.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if (not v) or string.sub(v, 1, 2) == 'R|' then
  redis.call('SET', KEYS[1], 'L|' .. ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
  if v then return {'claimed', string.sub(v, 3)} end
  return {'claimed', ''}
end
if string.sub(v, 1, 2) == 'D|' then return {'done', string.sub(v, 3)} end
return {'busy', tostring(redis.call('PTTL', KEYS[1]))}
`;
const RELEASE = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 3) == ('L|' .. ARGV[1] .. '|') then
  redis.call('SET', KEYS[1], 'R|' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;

type ScriptedRedis = Redis & {
  jetmeshClaim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<[string, string]>;
  jetmeshRelease(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<number>;
};

class RedisIdempotencyStore implements IdempotencyStore {
  readonly #redis: ScriptedRedis;
  constructor(redis: Redis) {
    // defineCommand uses EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart).
    if (!("jetmeshClaim" in redis)) {
      redis.defineCommand("jetmeshClaim", { numberOfKeys: 1, lua: CLAIM });
      redis.defineCommand("jetmeshRelease", { numberOfKeys: 1, lua: RELEASE });
    }
    this.#redis = redis as ScriptedRedis;
  }

  async claim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<ClaimResult> {
    const [state, arg] = await this.#redis.jetmeshClaim(key, attempt, leaseMs, traceparent);
    if (state === "claimed") return arg ? { state, previousAttempt: arg } : { state };
    if (state === "done") return { state, result: arg };
    return { state: "busy", retryInMs: Math.max(1, Number(arg)) };
  }

  async markDone(key: string, result: string, ttlMs: number): Promise<void> {
    await this.#redis.set(key, `D|${result}`, "PX", ttlMs);
  }

  async release(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<void> {
    await this.#redis.jetmeshRelease(key, attempt, traceparent, ttlMs);
  }
}

/** The Redis implementation of {@link IdempotencyStore}. */
export function createIdempotencyStore(redis: Redis): IdempotencyStore {
  return new RedisIdempotencyStore(redis);
}
