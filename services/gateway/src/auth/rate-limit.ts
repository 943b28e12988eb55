import type { Redis } from "ioredis";
import { runScript } from "../redis-scripts.ts";

/** A bucket's size: `burst` tokens, refilled at `perSecond`. */
export interface RatePolicy {
  readonly perSecond: number;
  readonly burst: number;
}

/** What one request drew from its client's bucket. */
export interface RateDecision {
  readonly allowed: boolean;
  /** Tokens left after this request (whole tokens). */
  readonly remaining: number;
  /** Seconds until a token is available again (0 when one is). */
  readonly retryAfterSeconds: number;
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number;
  readonly policy: RatePolicy;
}

export interface RateLimiter {
  /** Takes one token from `clientId`'s bucket. @throws when Redis is unreachable. */
  take(clientId: string, policy: RatePolicy): Promise<RateDecision>;
}

/** Redis key of a client's bucket. */
export function rateKey(clientId: string): string {
  return `gateway:rate:${clientId}`;
}

// One token bucket per client, shared by every gateway instance: state is {tokens, at},
// refilled lazily from Redis's own clock (TIME), so gateways with skewed clocks agree.
// Returns {allowed 0|1, tokens left ×1000, ms until the next token}.
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(h[1])
local at = tonumber(h[2])
if tokens == nil or at == nil then tokens = burst; at = now end
if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {allowed, math.floor(tokens * 1000), wait}
`;

/**
 * Per-client token buckets in Redis (`gateway:rate:<client>`), one Lua script per request,
 * so the limit holds across all gateway instances. A bucket left alone expires once full.
 */
export function createRateLimiter(redis: Redis): RateLimiter {
  return {
    async take(clientId, policy) {
      const [allowed, milliTokens, waitMs] = (await runScript(
        redis,
        TAKE,
        [rateKey(clientId)],
        [String(policy.perSecond), String(policy.burst)],
      )) as [number, number, number];
      const tokens = milliTokens / 1000;
      return {
        allowed: allowed === 1,
        remaining: Math.floor(tokens),
        retryAfterSeconds: allowed === 1 ? 0 : Math.max(1, Math.ceil(waitMs / 1000)),
        resetSeconds: Math.ceil((policy.burst - tokens) / policy.perSecond),
        policy,
      };
    },
  };
}

/**
 * The RateLimit header fields (IETF draft-ietf-httpapi-ratelimit-headers, the form with
 * separate fields) and, when refused, Retry-After.
 */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  const windowSeconds = Math.max(1, Math.ceil(d.policy.burst / d.policy.perSecond));
  return {
    "RateLimit-Limit": String(d.policy.burst),
    "RateLimit-Remaining": String(d.remaining),
    "RateLimit-Reset": String(d.allowed ? d.resetSeconds : d.retryAfterSeconds),
    "RateLimit-Policy": `${d.policy.burst};w=${windowSeconds}`,
    ...(d.allowed ? {} : { "Retry-After": String(d.retryAfterSeconds) }),
  };
}
