import type { Redis } from "ioredis";
import { TransientError } from "./errors.ts";

/**
 * The dependency a stage's circuit breaker pauses on when Redis refuses writes because it
 * reached `maxmemory` (deploy/redis: `maxmemory-policy noeviction`, so a guard is never
 * evicted; a write fails instead). The stage stops pulling until Redis takes writes again
 * ({@link IdempotencyStore.writable} is the breaker's probe) instead of spending deliveries.
 */
export const REDIS_FULL = "redis-memory";

/**
 * A Redis reply error is an error code and a text; `OOM` is the code Redis gives a write
 * refused over maxmemory (the protocol's first word, not free text: ioredis has no field for it).
 */
function isRedisFull(err: unknown): boolean {
  return err instanceof Error && err.name === "ReplyError" && /^OOM\b/.test(err.message);
}

/** `err`, or a {@link TransientError} of {@link REDIS_FULL} when Redis refused a write for memory. */
export function redisFailure(err: unknown): unknown {
  return isRedisFull(err)
    ? new TransientError(
        "redis is full (maxmemory reached, noeviction): idempotency keys cannot be written",
        {
          cause: err,
          dependency: REDIS_FULL,
        },
      )
    : err;
}

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
 * done. The lease is fenced by the attempt's token (unique per process, message and
 * delivery): renewing it, marking the key done and releasing it succeed only for the
 * attempt that holds it, so an attempt that was paused past its lease while another took
 * the message over can change nothing. Claims, renewals and done marks requested while the
 * current batch of deliveries is being processed (until the next `process.nextTick`) go
 * to Redis together, as one script call each; every caller still waits for its own key's
 * answer. The keys of one call may sit on different slots, so the store needs one Redis
 * primary (not Redis Cluster).
 */
export interface IdempotencyStore {
  /** Takes the lease unless the key is done or leased by another attempt. */
  claim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<ClaimResult>;
  /**
   * Extends `attempt`'s lease to `leaseMs` from now.
   * @returns false when the attempt no longer holds the lease (another attempt took it, or
   *   it expired and the key is gone): the attempt must stop and change nothing.
   */
  extend(key: string, attempt: string, leaseMs: number): Promise<boolean>;
  /**
   * Stores the result, unless another attempt holds the lease; the key lives `ttlMs` more.
   * A key found done by an earlier attempt, or gone (its lease lapsed with nobody claiming),
   * counts as marked: the outputs of this attempt are published either way.
   * @returns false when another attempt holds the lease (this one was fenced out).
   */
  markDone(key: string, attempt: string, result: string, ttlMs: number): Promise<boolean>;
  /**
   * Gives the lease back after a transient failure, keeping the attempt's traceparent for
   * the retry. @returns false when the attempt did not hold the lease (nothing changed).
   */
  release(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<boolean>;
  /**
   * Resolves when Redis takes a write (a short-lived probe key); rejects while it refuses
   * writes, e.g. full at maxmemory. The stage's breaker probe for {@link REDIS_FULL}.
   */
  writable(): Promise<void>;
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
// ARGV holds (attempt, value, ttlMs) per key; the answer is 1 (marked) or 0 (fenced) per key.
const DONE_MANY = `
local out = {}
for i, key in ipairs(KEYS) do
  local a = ARGV[i * 3 - 2]
  local v = redis.call('GET', key)
  if v and string.sub(v, 1, 2) == 'L|' and string.sub(v, 1, string.len(a) + 3) ~= ('L|' .. a .. '|') then
    out[i] = 0
  else
    if not (v and string.sub(v, 1, 2) == 'D|') then
      redis.call('SET', key, ARGV[i * 3 - 1], 'PX', ARGV[i * 3])
    end
    out[i] = 1
  end
end
return out
`;
// ARGV holds (attempt, leaseMs) per key; the answer is 1 (extended) or 0 (not the holder) per key.
const EXTEND_MANY = `
local out = {}
for i, key in ipairs(KEYS) do
  local a = ARGV[i * 2 - 1]
  local v = redis.call('GET', key)
  if v and string.sub(v, 1, string.len(a) + 3) == ('L|' .. a .. '|') then
    redis.call('PEXPIRE', key, ARGV[i * 2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`;
const RELEASE = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 3) == ('L|' .. ARGV[1] .. '|') then
  redis.call('SET', KEYS[1], 'R|' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;

const STORE_COMMANDS = ["jetmeshClaimMany", "jetmeshDoneMany", "jetmeshExtendMany", "jetmeshRelease"];

/**
 * Leaves `commands` out of the client's auto-pipelining (`enableAutoPipelining`, which
 * createRedis turns on for the handlers' commands). The store batches its own calls per turn;
 * auto-pipelining added, per call, a `setImmediate` before the write, a new ioredis Pipeline
 * object, and a wait behind any pipeline still awaiting its replies: at one message per turn
 * (a stage below saturation) claim + done cost about 3× the CPU and 5× the time of a direct
 * send (bench/NOTES.md). Commands on one connection keep their order either way.
 */
function sentDirectly(redis: Redis, commands: readonly string[]): void {
  const options = (
    redis as { options?: { enableAutoPipelining?: boolean; autoPipeliningIgnoredCommands?: string[] } }
  ).options;
  if (!options?.enableAutoPipelining) return;
  // A new array: ioredis's default one is shared by every client that did not set its own.
  options.autoPipeliningIgnoredCommands = [...(options.autoPipeliningIgnoredCommands ?? []), ...commands];
}

type ScriptedRedis = Redis & {
  jetmeshClaimMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<string[]>;
  jetmeshDoneMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number[]>;
  jetmeshExtendMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number[]>;
  jetmeshRelease(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<number>;
};

class RedisIdempotencyStore implements IdempotencyStore {
  readonly #redis: ScriptedRedis;
  constructor(redis: Redis) {
    // defineCommand uses EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart).
    if (!("jetmeshExtendMany" in redis)) {
      redis.defineCommand("jetmeshClaimMany", { lua: CLAIM_MANY });
      redis.defineCommand("jetmeshDoneMany", { lua: DONE_MANY });
      redis.defineCommand("jetmeshExtendMany", { lua: EXTEND_MANY });
      redis.defineCommand("jetmeshRelease", { numberOfKeys: 1, lua: RELEASE });
      sentDirectly(redis, STORE_COMMANDS);
    }
    this.#redis = redis as ScriptedRedis;
  }

  #claims: Pending<ClaimResult>[] = [];
  #dones: Pending<boolean>[] = [];
  #extends: Pending<boolean>[] = [];
  #flushing = false;

  claim(key: string, attempt: string, leaseMs: number, traceparent: string): Promise<ClaimResult> {
    return this.#enqueue(this.#claims, key, [attempt, leaseMs, traceparent]);
  }

  extend(key: string, attempt: string, leaseMs: number): Promise<boolean> {
    return this.#enqueue(this.#extends, key, [attempt, leaseMs]);
  }

  markDone(key: string, attempt: string, result: string, ttlMs: number): Promise<boolean> {
    return this.#enqueue(this.#dones, key, [attempt, `D|${result}`, ttlMs]);
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
    const renewals = this.#extends;
    this.#claims = [];
    this.#dones = [];
    this.#extends = [];
    // The script calls of one flush leave in one socket write (auto-pipelining did that too).
    const socket = (this.#redis as { stream?: { cork?(): void; uncork?(): void } }).stream;
    socket?.cork?.();
    try {
      this.#send(claims, dones, renewals);
    } finally {
      socket?.uncork?.();
    }
  }

  #send(claims: Pending<ClaimResult>[], dones: Pending<boolean>[], renewals: Pending<boolean>[]): void {
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
    for (const [batch, run] of [
      [dones, this.#redis.jetmeshDoneMany],
      [renewals, this.#redis.jetmeshExtendMany],
    ] as const) {
      if (batch.length === 0) continue;
      run.call(this.#redis, batch.length, ...keysThenArgs(batch)).then((flags) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(flags[i] === 1);
      }, rejectAll(batch));
    }
  }

  async release(key: string, attempt: string, traceparent: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.#redis.jetmeshRelease(key, attempt, traceparent, ttlMs)) === 1;
    } catch (err) {
      throw redisFailure(err);
    }
  }

  async writable(): Promise<void> {
    try {
      await this.#redis.set("jetmesh:probe:writable", "1", "PX", 1000);
    } catch (err) {
      throw redisFailure(err);
    }
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
    const e = redisFailure(err);
    for (const p of batch) p.reject(e);
  };

/** The Redis implementation of {@link IdempotencyStore}. */
export function createIdempotencyStore(redis: Redis): IdempotencyStore {
  return new RedisIdempotencyStore(redis);
}
