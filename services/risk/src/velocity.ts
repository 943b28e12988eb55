import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/** Transfers out of one account within one window, the scored transfer included. */
export interface Velocity {
  readonly count: number;
  readonly sumMinor: number;
}

/** One transfer to count. */
export interface VelocityBump {
  readonly account: string;
  /** The input event's id: counting it twice is impossible. */
  readonly eventId: string;
  readonly amountMinor: number;
  /** Event time (the input's occurredAt), so a replay lands in the same window. */
  readonly atMs: number;
}

/** The per-account velocity window of the risk stage. */
export interface VelocityStore {
  /**
   * Counts a transfer in its account's window once per eventId, and returns the
   * window as it stood right after this transfer was first counted. Calling it again
   * with the same eventId (a replay after a crash) changes nothing and returns the same
   * numbers, however many transfers were counted in between.
   * @throws the Redis client's error when Redis is unreachable (transient for the runtime).
   */
  bump(b: VelocityBump): Promise<Velocity>;
}

export interface VelocityStoreOptions {
  /** Width of a fixed window; transfers count in `floor(atMs / windowMs)`. */
  readonly windowMs: number;
  /** How long a window's records live after its last bump; replays later than this count afresh. */
  readonly retentionMs: number;
  /** Key prefix (default `risk:velocity`); tests use a unique one. */
  readonly keyPrefix?: string;
}

/**
 * One hash per account and window: `count` and `sum`, plus one field per counted
 * eventId holding the `count:sum` snapshot taken when it was counted. A sorted set
 * of eventIds would make the bump idempotent but not the answer: a replay would see
 * transfers counted after it. The snapshot makes the replay return the first answer.
 */
const BUMP = `
local field = 'e:' .. ARGV[1]
local seen = redis.call('HGET', KEYS[1], field)
if seen then return seen end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local sum = redis.call('HINCRBY', KEYS[1], 'sum', ARGV[2])
local snapshot = string.format('%d:%d', count, sum)
redis.call('HSET', KEYS[1], field, snapshot)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return snapshot
`;

const BUMP_SHA = createHash("sha1").update(BUMP).digest("hex");

/** The Redis key of an account's window. */
export function velocityKey(prefix: string, account: string, atMs: number, windowMs: number): string {
  return `${prefix}:${account}:${Math.floor(atMs / windowMs)}`;
}

/** A velocity store on Redis: one Lua script call per bump, so it is atomic and pipelines. */
export function createVelocityStore(redis: Redis, opts: VelocityStoreOptions): VelocityStore {
  const prefix = opts.keyPrefix ?? "risk:velocity";
  return {
    async bump(b) {
      const key = velocityKey(prefix, b.account, b.atMs, opts.windowMs);
      const args = [key, b.eventId, String(b.amountMinor), String(opts.retentionMs)] as const;
      let reply: unknown;
      try {
        reply = await redis.evalsha(BUMP_SHA, 1, ...args);
      } catch (err) {
        // Redis answers NOSCRIPT (a ReplyError, no subclass to test) after a restart or
        // SCRIPT FLUSH; EVAL loads the script again.
        if (!(err instanceof Error && err.message.startsWith("NOSCRIPT"))) throw err;
        reply = await redis.eval(BUMP, 1, ...args);
      }
      const [count, sum] = String(reply).split(":").map(Number);
      return { count: count ?? 0, sumMinor: sum ?? 0 };
    },
  };
}
