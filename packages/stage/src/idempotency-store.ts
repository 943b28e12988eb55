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
 * done. Claims and done marks requested while the current batch of deliveries is being
 * processed (until the next `process.nextTick`) go to Redis together, as one script call
 * each; every caller still waits for its own key's answer. The keys of one call may sit
 * on different slots, so the store needs one Redis primary (not Redis Cluster).
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
// Batched forms: ARGV holds (attempt, leaseMs, traceparent) per key; the answer is a flat
// list of (state, arg) pairs in key order.
const CLAIM_MANY = `
local out = {}
for i, key in ipairs(KEYS) do
  local a, lease, tp = ARGV[i * 3 - 2], ARGV[i * 3 - 1], ARGV[i * 3]
  local v = redis.call('GET', key)
  if (not v) or string.sub(v, 1, 2) == 'R|' then
    redis.call('SET', key, 'L|' .. a .. '|' .. tp, 'PX', lease)
    out[#out + 1] = 'claimed'
    out[#out + 1] = v and string.sub(v, 3) or ''
  elseif string.sub(v, 1, 2) == 'D|' then
    out[#out + 1] = 'done'
    out[#out + 1] = string.sub(v, 3)
  else
    out[#out + 1] = 'busy'
    out[#out + 1] = tostring(redis.call('PTTL', key))
  end
end
return out
`;
// ARGV holds (value, ttlMs) per key.
const DONE_MANY = `
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i * 2 - 1], 'PX', ARGV[i * 2])
end
return #KEYS
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
  jetmeshClaimMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<string[]>;
  jetmeshDoneMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  jetmeshRelease(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<number>;
};

class RedisIdempotencyStore implements IdempotencyStore {
  readonly #redis: ScriptedRedis;
  constructor(redis: Redis) {
    // defineCommand uses EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart).
    if (!("jetmeshClaimMany" in redis)) {
      redis.defineCommand("jetmeshClaimMany", { lua: CLAIM_MANY });
      redis.defineCommand("jetmeshDoneMany", { lua: DONE_MANY });
      redis.defineCommand("jetmeshRelease", { numberOfKeys: 1, lua: RELEASE });
    }
    this.#redis = redis as ScriptedRedis;
  }

  #claims: Pending<ClaimResult>[] = [];
  #dones: Pending<void>[] = [];
  #flushing = false;

  claim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<ClaimResult> {
    return this.#enqueue(this.#claims, key, [attempt, leaseMs, traceparent]);
  }

  markDone(key: string, result: string, ttlMs: number): Promise<void> {
    return this.#enqueue(this.#dones, key, [`D|${result}`, ttlMs]);
  }

  #enqueue<T>(queue: Pending<T>[], key: string, args: (string | number)[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      queue.push({ key, args, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // After the promise jobs of this turn: every message of the delivered batch has
        // reached its claim (or its done mark) by then.
        process.nextTick(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushing = false;
    const claims = this.#claims;
    const dones = this.#dones;
    this.#claims = [];
    this.#dones = [];
    if (claims.length) {
      this.#redis.jetmeshClaimMany(claims.length, ...keysThenArgs(claims)).then((flat) => {
        for (let i = 0; i < claims.length; i++) {
          const state = flat[i * 2];
          const arg = flat[i * 2 + 1] ?? "";
          claims[i]!.resolve(
            state === "claimed"
              ? arg
                ? { state, previousAttempt: arg }
                : { state }
              : state === "done"
                ? { state, result: arg }
                : { state: "busy", retryInMs: Math.max(1, Number(arg)) },
          );
        }
      }, rejectAll(claims));
    }
    if (dones.length) {
      this.#redis.jetmeshDoneMany(dones.length, ...keysThenArgs(dones)).then(() => {
        for (const d of dones) d.resolve();
      }, rejectAll(dones));
    }
  }

  async release(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<void> {
    await this.#redis.jetmeshRelease(key, attempt, traceparent, ttlMs);
  }
}

interface Pending<T> {
  readonly key: string;
  readonly args: (string | number)[];
  resolve(value: T): void;
  reject(err: unknown): void;
}

function keysThenArgs(batch: readonly Pending<unknown>[]): (string | number)[] {
  const out: (string | number)[] = batch.map((p) => p.key);
  for (const p of batch) for (const a of p.args) out.push(a);
  return out;
}

const rejectAll =
  (batch: readonly Pending<unknown>[]) =>
  (err: unknown): void => {
    for (const p of batch) p.reject(err);
  };

/** The Redis implementation of {@link IdempotencyStore}. */
export function createIdempotencyStore(redis: Redis): IdempotencyStore {
  return new RedisIdempotencyStore(redis);
}
