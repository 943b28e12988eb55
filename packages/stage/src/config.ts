import { type Static, type TObject, type TProperties, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { NAMESPACE_PATTERN } from "@jetmesh/contracts";
import { ConfigError } from "./errors.ts";
import { readSecretFile } from "./secrets.ts";

/**
 * Redis through Sentinel: the sentinels to ask for the primary of the group named
 * REDIS_SENTINEL_NAME (REDIS_URL then gives only the credentials and database; its host is
 * not used). Unset: REDIS_URL's server, as always.
 */
export const RedisSentinelEnv = {
  /** Comma-separated `host:port` of the sentinels, e.g. `10.0.0.5:26379,10.0.0.6:26379`. */
  REDIS_SENTINELS: Type.Optional(
    Type.String({
      pattern: "^[^,:\\s]+:[0-9]{1,5}(,[^,:\\s]+:[0-9]{1,5})*$",
      description: "comma-separated host:port, e.g. 10.0.0.5:26379,10.0.0.6:26379",
    }),
  ),
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: Type.Optional(
    Type.String({ pattern: "^[A-Za-z0-9._-]+$", description: "letters, digits, '.', '_' and '-'" }),
  ),
  /** The sentinels' own password (their `requirepass`, or the password of REDIS_SENTINEL_USERNAME), from a file. */
  REDIS_SENTINEL_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** The sentinels' ACL user to log in as (`jetmesh-access redis` gives each service one: its Redis user). */
  REDIS_SENTINEL_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
} satisfies TProperties;

/**
 * Environment variables every stage process understands. Services extend this
 * with their own keys through {@link parseConfig}.
 */
export const BaseEnv = {
  NATS_URL: Type.String({ default: "nats://127.0.0.1:4222" }),
  /** A credentials file (`nsc`'s user JWT and seed), for servers run in operator mode. */
  NATS_CREDS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** NKey user authentication: a file holding the service's seed (`SU…`), readable by it alone. */
  NATS_NKEY_SEED_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** User and password authentication (the password from a file). */
  NATS_USER: Type.Optional(Type.String({ minLength: 1 })),
  NATS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** TLS: the CA that signed the servers' certificates; a client certificate and key when the servers verify clients. */
  NATS_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  NATS_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  NATS_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_URL: Type.String({ default: "redis://127.0.0.1:6379" }),
  /** Redis ACL user of this service, and its password from a file (a password in REDIS_URL works too). */
  REDIS_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** TLS to Redis (with a rediss:// URL): the CA of its certificate. */
  REDIS_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  ...RedisSentinelEnv,
  LOG_LEVEL: Type.Union(
    ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((l) => Type.Literal(l)),
    { default: "info" },
  ),
  /** Port of /healthz, /readyz and /metrics; 0 picks a free one. */
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
  HTTP_HOST: Type.String({ default: "127.0.0.1" }),
  JETMESH_MODE: Type.Union([Type.Literal("exactly-once"), Type.Literal("at-least-once")], {
    default: "exactly-once",
  }),
  JETMESH_PRODUCTION: Type.Boolean({ default: false }),
  /**
   * Dev isolation: prefixes every stream, subject, KV bucket and Redis key this process names
   * (`namesFor` in @jetmesh/contracts), so developers share one dev NATS and Redis. Unset in
   * production: the names are the contracts' own.
   */
  JETMESH_NAMESPACE: Type.Optional(Type.String({ pattern: NAMESPACE_PATTERN.source, maxLength: 24 })),
  /** Operator's statement that every nats-server runs with `sync_interval: always` (2.10+). */
  JETMESH_SYNC_WRITES: Type.Boolean({ default: false }),
  JETMESH_REPLICAS: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
  JETMESH_MAX_IN_FLIGHT: Type.Integer({ minimum: 1, maximum: 10_000, default: 64 }),
  JETMESH_MAX_ACK_PENDING: Type.Integer({ minimum: 1, maximum: 100_000, default: 1024 }),
  /**
   * How long a delivery that arrives while none is held waits for others before the turn that
   * processes them together (one claim script, one socket write of publishes and acks, one
   * done script for all of them); 0 processes each delivery as it arrives.
   */
  JETMESH_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 0 }),
  /** How long the server waits for an ack (or a working() heartbeat) before redelivering. */
  JETMESH_ACK_WAIT_MS: Type.Integer({ minimum: 100, default: 30_000 }),
  /** Deliveries a message may take before it is parked in the DLQ (the runtime counts them). */
  JETMESH_MAX_DELIVER: Type.Integer({ minimum: 2, maximum: 1000, default: 12 }),
  JETMESH_RETRY_BASE_MS: Type.Integer({ minimum: 1, default: 250 }),
  JETMESH_RETRY_MAX_MS: Type.Integer({ minimum: 1, default: 30_000 }),
  JETMESH_IDEMPOTENCY_TTL_MS: Type.Integer({ minimum: 1000, default: 7 * 24 * 3600_000 }),
  /**
   * The business idempotency horizon: how long a client may repeat a request (the gateway
   * refuses an Idempotency-Key older than this). Every guard must outlive it plus the
   * redelivery horizon, so a request repeated at its edge still finds its keys.
   */
  JETMESH_IDEMPOTENCY_HORIZON_MS: Type.Integer({ minimum: 1000, default: 24 * 3600_000 }),
  /** Where a missing durable consumer starts when no position is recorded for it (see provision.ts). */
  JETMESH_CONSUMER_START: Type.Union([Type.Literal("resume"), Type.Literal("all"), Type.Literal("new")], {
    default: "resume",
  }),
  JETMESH_LEASE_MS: Type.Optional(Type.Integer({ minimum: 100 })),
  JETMESH_HANDLER_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 10 })),
  JETMESH_ACK_MODE: Type.Union([Type.Literal("plain"), Type.Literal("confirmed")], { default: "plain" }),
  JETMESH_PUBLISH_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  JETMESH_PUBLISH_RETRY_HORIZON_MS: Type.Integer({ minimum: 0, default: 30_000 }),
  JETMESH_DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 10_000 }),
  /** Failures of one dependency within JETMESH_BREAKER_WINDOW_MS that stop the stage pulling. */
  JETMESH_BREAKER_THRESHOLD: Type.Integer({ minimum: 1, default: 5 }),
  JETMESH_BREAKER_WINDOW_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  /** First wait before an open circuit is probed; doubles up to JETMESH_BREAKER_MAX_COOLDOWN_MS. */
  JETMESH_BREAKER_COOLDOWN_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  JETMESH_BREAKER_MAX_COOLDOWN_MS: Type.Integer({ minimum: 10, default: 30_000 }),
  /** Overrides the service name traces are reported under. */
  OTEL_SERVICE_NAME: Type.Optional(Type.String({ minLength: 1 })),
  /** OTLP/HTTP collector base URL; no span export when unset. */
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String()),
  OTEL_SDK_DISABLED: Type.Boolean({ default: false }),
  /** Share of new traces sampled (parent-based). */
  OTEL_TRACES_SAMPLER_ARG: Type.Number({ minimum: 0, maximum: 1, default: 1 }),
  /** Test-only: exit hard (SIGKILL) at this named step; see crash-points.ts. */
  JETMESH_CRASH_AT: Type.Optional(Type.String()),
  /** Test-only: crash at the Nth time the step is reached (default 1). */
  JETMESH_CRASH_AFTER: Type.Integer({ minimum: 1, default: 1 }),
} satisfies TProperties;

/** What a setting accepts, in words, from its schema. */
function allowed(schema: TSchema | undefined): string {
  if (!schema) return "see the service's README";
  const s = schema as TSchema & Record<string, unknown>;
  if (Array.isArray(s.anyOf))
    return (s.anyOf as Array<Record<string, unknown>>)
      .map((b) => JSON.stringify(b.const ?? b.type))
      .join(" | ");
  const bounds = [
    s.minimum !== undefined ? `>= ${s.minimum}` : "",
    s.maximum !== undefined ? `<= ${s.maximum}` : "",
    s.minLength !== undefined ? `at least ${s.minLength} characters` : "",
    s.pattern !== undefined ? `matching ${s.pattern}` : "",
    s.maxLength !== undefined ? `at most ${s.maxLength} characters` : "",
  ].filter(Boolean);
  const type = s.type === "boolean" ? "true or false" : `${String(s.type ?? "a value")}`;
  return bounds.length ? `${type} ${bounds.join(", ")}` : type;
}

/**
 * Parses an environment with a schema, once: "" counts as unset, numbers and
 * booleans are converted, defaults applied.
 * @throws ConfigError listing every bad key with its rule.
 */
export function parseConfig<P extends TProperties>(
  props: P,
  env: Record<string, string | undefined>,
): Static<TObject<P>> {
  const schema = Type.Object(props);
  const raw: Record<string, string> = {};
  for (const key of Object.keys(props)) {
    const v = env[key];
    if (v !== undefined && v !== "") raw[key] = v;
  }
  // Convert may change its argument in place: keep `raw` as given, for the error lines.
  const value = Value.Default(schema, Value.Convert(schema, { ...raw }));
  // One line per bad key (unions report each branch: the first error of a key is enough).
  const problems = new Map<string, string>();
  for (const e of Value.Errors(schema, value)) {
    const key = e.path.slice(1).split("/")[0] as string;
    if (problems.has(key)) continue;
    const given = raw[key] === undefined ? "unset" : JSON.stringify(raw[key]);
    // A schema with a description says what it allows in words (a pattern would not).
    const rule = (props[key] as TSchema | undefined)?.description;
    problems.set(
      key,
      rule
        ? `${key} (${given}): wrong format; allowed: ${rule}`
        : `${key} (${given}): ${e.message.toLowerCase()}; allowed: ${allowed(props[key] as TSchema)}`,
    );
  }
  if (problems.size) throw new ConfigError([...problems.values()]);
  return value as Static<TObject<P>>;
}

/** The protocol settings of one stage, derived from the environment. */
export interface StageSettings {
  readonly mode: "exactly-once" | "at-least-once";
  /** JETMESH_NAMESPACE; "" for none. Every name the stage gives NATS and Redis resolves through `namesFor(namespace)`. */
  readonly namespace: string;
  readonly production: boolean;
  /** The operator asserts the servers fsync every write (`sync_interval: always`). */
  readonly syncWrites: boolean;
  readonly replicas: number;
  /** Messages processed at once by this process; the iterator buffers at most as many more. */
  readonly maxInFlight: number;
  /** The consumer's MaxAckPending: the broker-side bound over all instances. */
  readonly maxAckPending: number;
  /** JETMESH_LINGER_MS: how long deliveries wait to be processed together (0: never). */
  readonly lingerMs: number;
  readonly ackWaitMs: number;
  /** Deliveries before a message is parked; the server's max_deliver is unlimited. */
  readonly maxDeliver: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly idempotencyTtlMs: number;
  /** How long a client may repeat a request; guards outlive it (JETMESH_IDEMPOTENCY_HORIZON_MS). */
  readonly idempotencyHorizonMs: number;
  /** Where a missing consumer starts without a recorded position (JETMESH_CONSUMER_START). */
  readonly consumerStart: "resume" | "all" | "new";
  readonly leaseMs: number;
  readonly handlerTimeoutMs: number;
  readonly ackMode: "plain" | "confirmed";
  readonly publishTimeoutMs: number;
  readonly publishRetryHorizonMs: number;
  readonly drainTimeoutMs: number;
  /** Circuit breakers of external dependencies (flow-control.ts). */
  readonly breaker: {
    readonly threshold: number;
    readonly windowMs: number;
    readonly cooldownMs: number;
    readonly maxCooldownMs: number;
  };
  readonly crashAt?: string;
  readonly crashAfter: number;
}

/** Default settings, overridable piecewise (tests and benches use this). */
export function stageSettings(overrides: Partial<StageSettings> = {}): StageSettings {
  const base = { ...settingsFromEnv(parseConfig(BaseEnv, {})), ...overrides };
  // Lease and handler timeout follow the ack wait unless set explicitly.
  return {
    ...base,
    leaseMs: overrides.leaseMs ?? base.ackWaitMs,
    handlerTimeoutMs: overrides.handlerTimeoutMs ?? Math.floor(base.ackWaitMs * 0.8),
  };
}

/** Stage settings from a parsed {@link BaseEnv} configuration. */
export function settingsFromEnv(c: Static<TObject<typeof BaseEnv>>): StageSettings {
  return {
    mode: c.JETMESH_MODE,
    namespace: c.JETMESH_NAMESPACE ?? "",
    production: c.JETMESH_PRODUCTION,
    syncWrites: c.JETMESH_SYNC_WRITES,
    replicas: c.JETMESH_REPLICAS,
    maxInFlight: c.JETMESH_MAX_IN_FLIGHT,
    maxAckPending: c.JETMESH_MAX_ACK_PENDING,
    lingerMs: c.JETMESH_LINGER_MS,
    ackWaitMs: c.JETMESH_ACK_WAIT_MS,
    maxDeliver: c.JETMESH_MAX_DELIVER,
    retryBaseMs: c.JETMESH_RETRY_BASE_MS,
    retryMaxMs: c.JETMESH_RETRY_MAX_MS,
    idempotencyTtlMs: c.JETMESH_IDEMPOTENCY_TTL_MS,
    idempotencyHorizonMs: c.JETMESH_IDEMPOTENCY_HORIZON_MS,
    consumerStart: c.JETMESH_CONSUMER_START,
    leaseMs: c.JETMESH_LEASE_MS ?? c.JETMESH_ACK_WAIT_MS,
    handlerTimeoutMs: c.JETMESH_HANDLER_TIMEOUT_MS ?? Math.floor(c.JETMESH_ACK_WAIT_MS * 0.8),
    ackMode: c.JETMESH_ACK_MODE,
    publishTimeoutMs: c.JETMESH_PUBLISH_TIMEOUT_MS,
    publishRetryHorizonMs: c.JETMESH_PUBLISH_RETRY_HORIZON_MS,
    drainTimeoutMs: c.JETMESH_DRAIN_TIMEOUT_MS,
    breaker: {
      threshold: c.JETMESH_BREAKER_THRESHOLD,
      windowMs: c.JETMESH_BREAKER_WINDOW_MS,
      cooldownMs: c.JETMESH_BREAKER_COOLDOWN_MS,
      maxCooldownMs: Math.max(c.JETMESH_BREAKER_COOLDOWN_MS, c.JETMESH_BREAKER_MAX_COOLDOWN_MS),
    },
    ...(c.JETMESH_CRASH_AT ? { crashAt: c.JETMESH_CRASH_AT } : {}),
    crashAfter: c.JETMESH_CRASH_AFTER,
  };
}

/** How a service authenticates to NATS (secrets already read from their files). */
export interface NatsAuth {
  /** The contents of a `.creds` file (user JWT and seed). */
  readonly creds?: string;
  readonly nkeySeed?: string;
  readonly user?: string;
  readonly password?: string;
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
}

/** How a service authenticates to Redis (the password already read from its file). */
export interface RedisAuth {
  readonly username?: string;
  readonly password?: string;
  readonly tlsCaFile?: string;
}

/** The sentinels that name a service's Redis primary (REDIS_SENTINELS, REDIS_SENTINEL_NAME). */
export interface RedisSentinel {
  readonly sentinels: readonly { readonly host: string; readonly port: number }[];
  /** The monitored group's name. */
  readonly name: string;
  /** The sentinels' ACL user (REDIS_SENTINEL_USERNAME); without one, `password` is their `requirepass`. */
  readonly username?: string;
  /** The sentinels' password (read from REDIS_SENTINEL_PASSWORD_FILE). */
  readonly password?: string;
}

/** Everything a stage process needs from its environment. */
export interface StageProcessConfig {
  readonly natsUrl: string;
  readonly natsAuth: NatsAuth;
  readonly redisUrl: string;
  readonly redisAuth: RedisAuth;
  /** Set: the primary is found (and found again after a failover) through these sentinels. */
  readonly redisSentinel?: RedisSentinel;
  readonly logLevel: string;
  readonly httpPort: number;
  readonly httpHost: string;
  readonly stage: StageSettings;
  /** Spread into startTelemetry({ serviceName, serviceVersion, ...telemetry }). */
  readonly telemetry: {
    readonly disabled: boolean;
    readonly sampleRatio?: number;
    readonly otlpEndpoint?: string;
  };
}

/**
 * The base process configuration from a parsed environment that includes
 * {@link BaseEnv}'s keys (a service parses `{ ...BaseEnv, ...own }` once, then calls this).
 */
export function stageProcessConfig(c: Static<TObject<typeof BaseEnv>>): StageProcessConfig {
  const natsAuth = natsAuthOf(c);
  const redisAuth = redisAuthOf(c);
  const redisSentinel = redisSentinelOf(c);
  if (c.JETMESH_PRODUCTION) {
    // Unauthenticated NATS lets anyone forge events or delete streams; unauthenticated
    // Redis lets anyone write balances and guards (issue 12). Production refuses both.
    const on = authenticates({ natsAuth, redisAuth, redisUrl: c.REDIS_URL });
    const problems = [
      ...(on.nats
        ? []
        : [
            "production: NATS needs credentials (NATS_CREDS_FILE, NATS_NKEY_SEED_FILE or NATS_USER + NATS_PASSWORD_FILE)",
          ]),
      ...(on.redis
        ? []
        : ["production: Redis needs a password (REDIS_PASSWORD_FILE, with REDIS_USERNAME for an ACL user)"]),
    ];
    if (problems.length) throw new ConfigError(problems);
  }
  return {
    natsUrl: c.NATS_URL,
    natsAuth,
    redisUrl: c.REDIS_URL,
    redisAuth,
    ...(redisSentinel ? { redisSentinel } : {}),
    logLevel: c.LOG_LEVEL,
    httpPort: c.HTTP_PORT,
    httpHost: c.HTTP_HOST,
    stage: settingsFromEnv(c),
    telemetry: {
      disabled: c.OTEL_SDK_DISABLED,
      sampleRatio: c.OTEL_TRACES_SAMPLER_ARG,
      ...(c.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: c.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
      ...(c.OTEL_SERVICE_NAME ? { serviceName: c.OTEL_SERVICE_NAME } : {}),
    },
  };
}

function natsAuthOf(c: Static<TObject<typeof BaseEnv>>): NatsAuth {
  const problems: string[] = [];
  if ([c.NATS_CREDS_FILE, c.NATS_NKEY_SEED_FILE, c.NATS_USER].filter(Boolean).length > 1)
    problems.push("NATS_CREDS_FILE, NATS_NKEY_SEED_FILE and NATS_USER: choose one way to authenticate");
  if (!!c.NATS_USER !== !!c.NATS_PASSWORD_FILE) problems.push("NATS_USER and NATS_PASSWORD_FILE go together");
  if (!!c.NATS_TLS_CERT_FILE !== !!c.NATS_TLS_KEY_FILE)
    problems.push("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together");
  const auth: { -readonly [K in keyof NatsAuth]: NatsAuth[K] } = {};
  if (c.NATS_CREDS_FILE) auth.creds = readSecret(c.NATS_CREDS_FILE, "NATS_CREDS_FILE", problems);
  if (c.NATS_NKEY_SEED_FILE)
    auth.nkeySeed = readSecret(c.NATS_NKEY_SEED_FILE, "NATS_NKEY_SEED_FILE", problems);
  if (c.NATS_USER && c.NATS_PASSWORD_FILE) {
    auth.user = c.NATS_USER;
    auth.password = readSecret(c.NATS_PASSWORD_FILE, "NATS_PASSWORD_FILE", problems);
  }
  if (c.NATS_TLS_CA_FILE || c.NATS_TLS_CERT_FILE)
    auth.tls = {
      ...(c.NATS_TLS_CA_FILE ? { caFile: c.NATS_TLS_CA_FILE } : {}),
      ...(c.NATS_TLS_CERT_FILE ? { certFile: c.NATS_TLS_CERT_FILE } : {}),
      ...(c.NATS_TLS_KEY_FILE ? { keyFile: c.NATS_TLS_KEY_FILE } : {}),
    };
  if (problems.length) throw new ConfigError(problems);
  return auth;
}

function redisAuthOf(c: Static<TObject<typeof BaseEnv>>): RedisAuth {
  const problems: string[] = [];
  const auth: { -readonly [K in keyof RedisAuth]: RedisAuth[K] } = {};
  if (c.REDIS_USERNAME) auth.username = c.REDIS_USERNAME;
  if (c.REDIS_PASSWORD_FILE)
    auth.password = readSecret(c.REDIS_PASSWORD_FILE, "REDIS_PASSWORD_FILE", problems);
  if (c.REDIS_TLS_CA_FILE) auth.tlsCaFile = c.REDIS_TLS_CA_FILE;
  if (problems.length) throw new ConfigError(problems);
  return auth;
}

/**
 * The Sentinel configuration of a parsed environment; undefined without REDIS_SENTINELS.
 * @throws ConfigError when a port is out of range, the name is missing or the password file unreadable.
 */
function redisSentinelOf(c: Static<TObject<typeof RedisSentinelEnv>>): RedisSentinel | undefined {
  const problems: string[] = [];
  if (!c.REDIS_SENTINELS) {
    if (c.REDIS_SENTINEL_NAME || c.REDIS_SENTINEL_PASSWORD_FILE)
      problems.push("REDIS_SENTINEL_NAME and REDIS_SENTINEL_PASSWORD_FILE need REDIS_SENTINELS");
    if (c.REDIS_SENTINEL_USERNAME) problems.push("REDIS_SENTINEL_USERNAME needs REDIS_SENTINELS");
    if (problems.length) throw new ConfigError(problems);
    return undefined;
  }
  const sentinels = c.REDIS_SENTINELS.split(",").map((hp) => {
    const at = hp.lastIndexOf(":");
    return { host: hp.slice(0, at), port: Number(hp.slice(at + 1)) };
  });
  for (const s of sentinels)
    if (s.port < 1 || s.port > 65535)
      problems.push(
        `REDIS_SENTINELS (${JSON.stringify(c.REDIS_SENTINELS)}): port ${s.port} of ${s.host}; allowed: 1 to 65535`,
      );
  if (!c.REDIS_SENTINEL_NAME)
    problems.push("REDIS_SENTINEL_NAME (unset): REDIS_SENTINELS needs the name the sentinels monitor");
  const password = c.REDIS_SENTINEL_PASSWORD_FILE
    ? readSecret(c.REDIS_SENTINEL_PASSWORD_FILE, "REDIS_SENTINEL_PASSWORD_FILE", problems)
    : undefined;
  if (c.REDIS_SENTINEL_USERNAME && !c.REDIS_SENTINEL_PASSWORD_FILE)
    problems.push("REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD_FILE (the user's password)");
  if (problems.length) throw new ConfigError(problems);
  return {
    sentinels,
    name: c.REDIS_SENTINEL_NAME as string,
    ...(c.REDIS_SENTINEL_USERNAME ? { username: c.REDIS_SENTINEL_USERNAME } : {}),
    ...(password ? { password } : {}),
  };
}

/**
 * The Sentinel configuration from an environment alone, for tools that read no other
 * {@link BaseEnv} key (the ops CLI): the same keys and rules as a service's.
 * @throws ConfigError listing every bad key.
 */
export function loadRedisSentinel(env: Record<string, string | undefined>): RedisSentinel | undefined {
  return redisSentinelOf(parseConfig(RedisSentinelEnv, env));
}

function readSecret(path: string, key: string, problems: string[]): string | undefined {
  try {
    return readSecretFile(path, key);
  } catch (err) {
    problems.push(...(err instanceof ConfigError ? err.problems : [(err as Error).message]));
    return undefined;
  }
}

/** True when the configuration authenticates to NATS and to Redis (production demands both). */
export function authenticates(c: Pick<StageProcessConfig, "natsAuth" | "redisAuth" | "redisUrl">): {
  nats: boolean;
  redis: boolean;
} {
  const inUrl = (() => {
    try {
      return new URL(c.redisUrl).password !== "";
    } catch {
      return false;
    }
  })();
  return {
    nats: !!(c.natsAuth.creds || c.natsAuth.nkeySeed || c.natsAuth.password),
    redis: !!(c.redisAuth.password || inUrl),
  };
}

/** Loads the base stage configuration; services add their own keys with {@link parseConfig}. */
export function loadStageConfig(env: Record<string, string | undefined>): StageProcessConfig {
  return stageProcessConfig(parseConfig(BaseEnv, env));
}
