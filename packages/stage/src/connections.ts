import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  usernamePasswordAuthenticator,
} from "@nats-io/transport-node";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { NatsAuth, RedisAuth, RedisSentinel } from "./config.ts";

/** A server URL fit for a log line: any password in it masked. */
export function maskUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):([^@/]*)@/, "//$1:***@");
}

/**
 * The inbox prefix of a service: replies to its requests (PubAcks, confirmed acks, API
 * answers) come to `_INBOX_<name>.>`, so its NATS permissions can let it subscribe to its own
 * replies and nobody else's.
 */
export function inboxPrefixOf(name: string): string {
  return `_INBOX_${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/**
 * Connects to NATS (comma-separated URLs for a cluster) and reconnects forever: a stage
 * outlives broker restarts; the runtime pauses pulling while disconnected. Until the first
 * connection, each attempt that fails is logged (URL masked, the error) and retried with a
 * backoff up to 5 s, so a service started while NATS is away says so instead of hanging.
 */
export async function connectNats(opts: {
  url: string;
  name: string;
  /** Keep to the given URLs (e.g. behind a proxy) instead of learning cluster peers. */
  ignoreClusterUpdates?: boolean;
  /** Credentials and TLS (StageProcessConfig.natsAuth). */
  auth?: NatsAuth;
  /** Where attempts and the connection are logged; silent without one. */
  logger?: Logger;
}): Promise<NatsConnection> {
  const a = opts.auth ?? {};
  const servers = opts.url.split(",").map((s) => s.trim());
  const shown = servers.map(maskUrl).join(",");
  for (let attempt = 1; ; attempt++) {
    try {
      const nc = await connect({
        inboxPrefix: inboxPrefixOf(opts.name),
        ...(a.creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(a.creds)) } : {}),
        ...(a.nkeySeed ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(a.nkeySeed)) } : {}),
        ...(a.user && a.password ? { authenticator: usernamePasswordAuthenticator(a.user, a.password) } : {}),
        ...(a.tls ? { tls: { ...a.tls } } : {}),
        servers,
        name: opts.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        reconnectJitter: 100,
        pingInterval: 5000,
        maxPingOut: 2,
        timeout: 5000,
        ignoreClusterUpdates: opts.ignoreClusterUpdates ?? false,
        // Without this, every request (each JetStream publish, each confirmed ack) builds two
        // Error objects up front for their stack traces: about 9% of a stage's CPU at
        // saturation (bench/NOTES.md). Errors still carry their own stack and are wrapped
        // with a cause by the runtime.
        noAsyncTraces: true,
      });
      opts.logger?.info({ nats: shown, attempt, server: nc.getServer() }, "nats connected");
      return nc;
    } catch (err) {
      const waitMs = Math.min(250 * 2 ** Math.min(attempt - 1, 5), 5000);
      opts.logger?.warn(
        { nats: shown, attempt, err: err instanceof Error ? err.message : String(err), retry_in_ms: waitMs },
        "nats connection attempt failed; trying again",
      );
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/**
 * An ioredis client that reconnects by itself, pipelines concurrent commands
 * automatically (one network write for many messages), and fails commands fast while
 * disconnected or when Redis stops answering, so a stuck Redis becomes a transient
 * error instead of a hung message.
 *
 * With `sentinel`, every (re)connection asks the sentinels for the current primary and
 * checks that the server it reaches says `role:master` (ioredis's SentinelConnector; a
 * replica is left for the next sentinel). A failover reaches the client three ways: the
 * primary's connection breaks (killed), a write answers READONLY (demoted), or a sentinel
 * publishes `+switch-master` ({@link followSwitchMaster}: the only way off a primary that is
 * paused or cut off, whose connection never breaks by itself). Commands sent in between
 * fail like any while Redis is away (one retry, the command timeout).
 */
export function createRedis(opts: {
  url: string;
  name: string;
  commandTimeoutMs?: number;
  /** ACL user, password and TLS (StageProcessConfig.redisAuth). */
  auth?: RedisAuth;
  /**
   * Prepended to every key a command names, Lua scripts' KEYS included (`namesFor(ns).redisPrefix`,
   * dev isolation). SCAN patterns and the keys SCAN returns are not rewritten: a caller that
   * scans adds and strips it itself.
   */
  keyPrefix?: string;
  /** The sentinels to find the primary through (StageProcessConfig.redisSentinel); `url` then gives credentials and database only. */
  sentinel?: RedisSentinel;
  /** Connection errors are reported here (rate-limited by reconnect backoff); commands fail on their own. */
  onError?: (err: Error) => void;
  /** Where connection attempts, failures and the connection are logged (URL masked), unless onError is given. */
  logger?: Logger;
}): Redis {
  const a = opts.auth ?? {};
  const s = opts.sentinel;
  const redis = new Redis(opts.url, {
    ...(a.username ? { username: a.username } : {}),
    ...(a.password ? { password: a.password } : {}),
    ...(a.tlsCaFile ? { tls: { ca: readFileSync(a.tlsCaFile) } } : {}),
    ...(opts.keyPrefix ? { keyPrefix: opts.keyPrefix } : {}),
    ...(s
      ? {
          sentinels: s.sentinels.map((x) => ({ host: x.host, port: x.port })),
          name: s.name,
          ...(s.username ? { sentinelUsername: s.username } : {}),
          ...(s.password ? { sentinelPassword: s.password } : {}),
          // TLS (REDIS_TLS_CA_FILE) applies to the primary the sentinels name; the sentinels
          // themselves are spoken to in plain TCP.
          ...(a.tlsCaFile ? { enableTLSForSentinelMode: true } : {}),
          // Sentinels asked for the primary fail fast, and all of them unreachable is retried
          // at most a second apart (as the data connection's retryStrategy).
          sentinelCommandTimeout: 2000,
          sentinelRetryStrategy: (times: number) => Math.min(50 * times, 1000),
        }
      : {}),
    connectionName: opts.name,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? 5000,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    // Reconnect only when a failover made this node a replica; any other error reply
    // (NOSCRIPT on a script's first use, a WRONGTYPE) belongs to its command alone, and
    // reconnecting on it paused every stage for nothing.
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
  });
  if (s) followSwitchMaster(redis, s);
  const shown = s
    ? `sentinel ${s.name} at ${s.sentinels.map((x) => `${x.host}:${x.port}`).join(",")}`
    : maskUrl(opts.url);
  const log = opts.logger;
  let failures = 0;
  redis.on(
    "error",
    opts.onError ??
      ((err: Error) => {
        failures++;
        // Each attempt while Redis is away (at most one a second, the retry strategy's bound).
        log?.warn({ redis: shown, attempt: failures, err: err.message }, "redis connection attempt failed");
      }),
  );
  if (log)
    redis.on("ready", () => {
      log.info({ redis: shown, after_failures: failures }, "redis connected");
      failures = 0;
    });
  return redis;
}
/**
 * Moves `redis` to the new primary when a sentinel announces a failover of its group
 * (`+switch-master`): a connected client reconnects, which asks the sentinels again. A
 * client already reconnecting is left alone, it asks them anyway. ioredis's own
 * `failoverDetector` is not used: it disconnects the connector even while a reconnection is
 * asking the sentinels, and that ends the client for good (status "end", "Connection is
 * closed.", never retried; test/redis-sentinel.test.ts, a hung sentinel during a failover).
 * One subscriber per sentinel, retried every second; all closed when the client ends.
 */
function followSwitchMaster(redis: Redis, s: RedisSentinel): void {
  const watchers = s.sentinels.map(({ host, port }) => {
    const w = new Redis({
      host,
      port,
      ...(s.username ? { username: s.username } : {}),
      ...(s.password ? { password: s.password } : {}),
      lazyConnect: true,
      enableReadyCheck: false,
      maxRetriesPerRequest: null,
      retryStrategy: () => 1000,
    });
    w.on("error", () => {});
    w.on("message", (channel: string, message: string) => {
      // `<name> <old host> <old port> <new host> <new port>`
      const [name, , , newHost = "", newPort] = message.split(" ");
      if (channel !== "+switch-master" || name !== s.name) return;
      if (redis.status !== "ready" && redis.status !== "connect") return;
      // Already on the announced primary: a sentinel that was paused or cut off during the
      // failover announces it late, when it learns of it; reconnecting then only drops a good
      // connection (test/redis-sentinel.test.ts, a hung sentinel resumed).
      void connectedTo(redis, newHost, Number(newPort)).then((already) => {
        if (!already && (redis.status === "ready" || redis.status === "connect")) redis.disconnect(true);
      });
    });
    w.subscribe("+switch-master").catch(() => {});
    return w;
  });
  redis.once("end", () => {
    for (const w of watchers) w.disconnect();
  });
}
/**
 * True when `redis` is connected to `host:port`. Sentinels with `announce-hostnames` (compose's)
 * name servers by host name and the socket knows only addresses: a name is resolved first
 * (test/redis-sentinel-access.test.ts, names announced). Never rejects: a name that does not
 * resolve is not the server.
 */
async function connectedTo(redis: Redis, host: string, port: number): Promise<boolean> {
  const on = redis.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  if (!on?.remoteAddress || on.remotePort !== port) return false;
  if (isIP(host)) return on.remoteAddress === host;
  const addresses = await lookup(host, { all: true }).catch(() => []);
  return addresses.some((a) => a.address === on.remoteAddress);
}
export type { NatsConnection, Redis };
