import {
  BaseEnv,
  ConfigError,
  parseConfig,
  type StageProcessConfig,
  stageProcessConfig,
} from "@jetmesh/stage";
import type { PublisherSettings } from "@jetmesh/stage/internal";
import { Type } from "@sinclair/typebox";
import type { GatewaySettings } from "./app.ts";

const DAY_MS = 24 * 3600_000;

/**
 * The gateway's keys on top of the runtime's {@link BaseEnv} (NATS_*, REDIS_*, LOG_LEVEL,
 * HTTP_HOST, OTEL_*, JETMESH_* for the status projection stage). HTTP_PORT is not used: the
 * API listens on GATEWAY_PORT, /healthz, /readyz and /metrics on GATEWAY_OPS_PORT.
 */
export const GatewayEnv = {
  ...BaseEnv,
  GATEWAY_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  /** /healthz, /readyz and /metrics: for the platform, never exposed to API clients. */
  GATEWAY_OPS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8090 }),
  /** The API clients, their hashed keys, roles and accounts (auth/clients.ts); mode 0600. */
  GATEWAY_CLIENTS_FILE: Type.String({ minLength: 1 }),
  /** The versioned secrets transfer ids are derived with (transfers/transfer-ids.ts); mode 0600. */
  GATEWAY_ID_SECRETS_FILE: Type.String({ minLength: 1 }),
  /** A client's token bucket when its entry names none: refill per second, and size. */
  GATEWAY_RATE_PER_SECOND: Type.Number({ exclusiveMinimum: 0, default: 50 }),
  GATEWAY_RATE_BURST: Type.Integer({ minimum: 1, default: 100 }),
  /** Open connections per port beyond which new ones are refused. */
  GATEWAY_MAX_CONNECTIONS: Type.Integer({ minimum: 1, default: 1024 }),
  /** Time a client has to send its headers, then its whole request. */
  GATEWAY_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  GATEWAY_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  GATEWAY_KEEPALIVE_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  GATEWAY_MAX_BODY_BYTES: Type.Integer({ minimum: 256, maximum: 1024 * 1024, default: 16 * 1024 }),
  /** Publishes in flight in this process beyond which POST answers 503. */
  GATEWAY_MAX_PENDING: Type.Integer({ minimum: 1, default: 1024 }),
  /** num_pending of the INGRESS consumer beyond which POST answers 503. */
  GATEWAY_MAX_LAG: Type.Integer({ minimum: 0, default: 20_000 }),
  /** Durable name of the INGRESS consumer whose lag is watched (the validator). */
  GATEWAY_LAG_CONSUMER: Type.String({ minLength: 1, default: "validator" }),
  GATEWAY_LAG_POLL_MS: Type.Integer({ minimum: 100, default: 1000 }),
  /** How long an Idempotency-Key's record lives from its first use; at least JETMESH_IDEMPOTENCY_HORIZON_MS. */
  GATEWAY_IDEMPOTENCY_TTL_MS: Type.Integer({ minimum: 60_000, default: 7 * DAY_MS }),
  /**
   * Accept Idempotency-Keys that are not UUIDv7 (they carry no creation time, so the horizon
   * is only the record's life in Redis). Refused with JETMESH_PRODUCTION.
   */
  GATEWAY_ACCEPT_UNTIMED_KEYS: Type.Boolean({ default: true }),
  /** Lease of an in-flight request; default twice the longest publish. */
  GATEWAY_IDEMPOTENCY_LEASE_MS: Type.Optional(Type.Integer({ minimum: 100 })),
  /** How long a concurrent retry waits for the first request before 409 "in progress". */
  GATEWAY_IN_PROGRESS_WAIT_MS: Type.Integer({ minimum: 0, maximum: 30_000, default: 2000 }),
  GATEWAY_STATUS_TTL_MS: Type.Integer({ minimum: 60_000, default: 30 * DAY_MS }),
  /**
   * How long one publish may retry an unacknowledged send (same Nats-Msg-Id) before the
   * client gets 503. Short: the HTTP client is waiting and may retry itself.
   */
  GATEWAY_PUBLISH_RETRY_HORIZON_MS: Type.Integer({ minimum: 0, default: 1000 }),
};

export interface GatewayConfig extends StageProcessConfig {
  readonly gateway: GatewaySettings;
  readonly opsPort: number;
  readonly clientsFile: string;
  readonly idSecretsFile: string;
  readonly lag: { readonly consumer: string; readonly pollMs: number };
  readonly publisher: PublisherSettings;
}

/**
 * Reads the gateway's environment once ("" counts as unset).
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const c = parseConfig(GatewayEnv, env);
  const publisher: PublisherSettings = {
    namespace: c.JETMESH_NAMESPACE ?? "",
    publishTimeoutMs: c.JETMESH_PUBLISH_TIMEOUT_MS,
    publishRetryHorizonMs: c.GATEWAY_PUBLISH_RETRY_HORIZON_MS,
  };
  const longestPublishMs = publisher.publishTimeoutMs + publisher.publishRetryHorizonMs;
  const leaseMs = c.GATEWAY_IDEMPOTENCY_LEASE_MS ?? 2 * longestPublishMs;
  const problems: string[] = [];
  if (leaseMs <= longestPublishMs) {
    // A lease that lapses mid-publish lets a retry publish concurrently: still one
    // stored event (same Nats-Msg-Id), but the retry's client waits for nothing.
    problems.push(
      `GATEWAY_IDEMPOTENCY_LEASE_MS ${leaseMs} must exceed the longest publish ${longestPublishMs} ms (JETMESH_PUBLISH_TIMEOUT_MS + GATEWAY_PUBLISH_RETRY_HORIZON_MS)`,
    );
  }
  if (c.GATEWAY_IDEMPOTENCY_TTL_MS < c.JETMESH_IDEMPOTENCY_HORIZON_MS) {
    problems.push(
      `GATEWAY_IDEMPOTENCY_TTL_MS ${c.GATEWAY_IDEMPOTENCY_TTL_MS} must be at least the idempotency horizon ${c.JETMESH_IDEMPOTENCY_HORIZON_MS} (JETMESH_IDEMPOTENCY_HORIZON_MS): a key repeated within it must still find its record`,
    );
  }
  if (c.JETMESH_PRODUCTION && c.GATEWAY_ACCEPT_UNTIMED_KEYS) {
    problems.push(
      "production: GATEWAY_ACCEPT_UNTIMED_KEYS must be false (keys must be UUIDv7, so their age against the idempotency horizon is known without trusting Redis)",
    );
  }
  if (c.GATEWAY_HEADERS_TIMEOUT_MS > c.GATEWAY_REQUEST_TIMEOUT_MS)
    problems.push(
      `GATEWAY_HEADERS_TIMEOUT_MS ${c.GATEWAY_HEADERS_TIMEOUT_MS} must not exceed GATEWAY_REQUEST_TIMEOUT_MS ${c.GATEWAY_REQUEST_TIMEOUT_MS}`,
    );
  if (c.GATEWAY_PORT !== 0 && c.GATEWAY_PORT === c.GATEWAY_OPS_PORT)
    problems.push("GATEWAY_OPS_PORT must differ from GATEWAY_PORT: the ops endpoints are not the API's");
  if (problems.length) throw new ConfigError(problems);
  return {
    ...stageProcessConfig(c),
    httpPort: c.GATEWAY_PORT,
    opsPort: c.GATEWAY_OPS_PORT,
    clientsFile: c.GATEWAY_CLIENTS_FILE,
    idSecretsFile: c.GATEWAY_ID_SECRETS_FILE,
    gateway: {
      maxBodyBytes: c.GATEWAY_MAX_BODY_BYTES,
      maxPending: c.GATEWAY_MAX_PENDING,
      maxLag: c.GATEWAY_MAX_LAG,
      idempotencyLeaseMs: leaseMs,
      idempotencyTtlMs: c.GATEWAY_IDEMPOTENCY_TTL_MS,
      idempotencyHorizonMs: c.JETMESH_IDEMPOTENCY_HORIZON_MS,
      acceptUntimedKeys: c.GATEWAY_ACCEPT_UNTIMED_KEYS,
      inProgressWaitMs: c.GATEWAY_IN_PROGRESS_WAIT_MS,
      statusTtlMs: c.GATEWAY_STATUS_TTL_MS,
      defaultRate: { perSecond: c.GATEWAY_RATE_PER_SECOND, burst: c.GATEWAY_RATE_BURST },
      maxConnections: c.GATEWAY_MAX_CONNECTIONS,
      headersTimeoutMs: c.GATEWAY_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: c.GATEWAY_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: c.GATEWAY_KEEPALIVE_TIMEOUT_MS,
    },
    lag: { consumer: c.GATEWAY_LAG_CONSUMER, pollMs: c.GATEWAY_LAG_POLL_MS },
    publisher,
  };
}
