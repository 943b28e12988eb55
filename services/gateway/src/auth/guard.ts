import type { Logger } from "@jetmesh/stage";
import { json, unavailable } from "../http/reply.ts";
import type { RequestGuard } from "../http/server.ts";
import type { Authentication, Authenticator } from "./clients.ts";
import { type RateLimiter, type RatePolicy, rateLimitHeaders } from "./rate-limit.ts";

const CHALLENGE = 'Bearer realm="jetmesh"';

const REASONS: Record<Exclude<Authentication, { ok: true }>["reason"], string> = {
  missing: "send Authorization: Bearer <api key>",
  malformed: "the Authorization header must be Bearer followed by an api key",
  unknown: "the api key is not valid",
  expired: "the api key has expired",
};

/**
 * The API port's door: 401 (with WWW-Authenticate, RFC 6750) for a request without a valid
 * key, then one token from the client's bucket: 429 with Retry-After and RateLimit headers
 * when it is empty. Every admitted answer carries the RateLimit headers too. An unreachable
 * Redis is a 503: the limit is never silently dropped.
 */
export function createClientGuard(opts: {
  readonly authenticator: Authenticator;
  readonly limiter: RateLimiter;
  /** The bucket of a client whose entry names none. */
  readonly defaultRate: RatePolicy;
  readonly logger: Logger;
}): RequestGuard {
  return async (req) => {
    const raw = req.headers.authorization;
    const auth = opts.authenticator.authenticate(raw);
    if (!auth.ok) {
      return {
        ok: false,
        reply: json(
          401,
          { error: "unauthorized", detail: REASONS[auth.reason], field: "header:Authorization" },
          {
            "WWW-Authenticate": auth.reason === "missing" ? CHALLENGE : `${CHALLENGE}, error="invalid_token"`,
          },
        ),
      };
    }
    const principal = auth.principal;
    let decision: Awaited<ReturnType<RateLimiter["take"]>>;
    try {
      decision = await opts.limiter.take(principal.clientId, principal.rate ?? opts.defaultRate);
    } catch (err) {
      opts.logger.warn({ err }, "rate limiter unavailable");
      return { ok: false, reply: unavailable("rate limiter unavailable", 2) };
    }
    const headers = rateLimitHeaders(decision);
    if (!decision.allowed) {
      return {
        ok: false,
        reply: json(
          429,
          {
            error: "too many requests",
            detail: `client ${principal.clientId} may send ${decision.policy.perSecond} requests per second (bursts of ${decision.policy.burst})`,
          },
          headers,
        ),
      };
    }
    return { ok: true, principal, headers };
  };
}
