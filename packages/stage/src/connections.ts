import { readFileSync } from "node:fs";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  usernamePasswordAuthenticator,
} from "@nats-io/transport-node";
import { Redis } from "ioredis";
import type { NatsAuth, RedisAuth } from "./config.ts";

/**
 * The inbox prefix of a service: replies to its requests (PubAcks, confirmed acks, API
 * answers) come to `_INBOX_<name>.>`, so its NATS permissions can let it subscribe to its own
 * replies and nobody else's.
 */
export function inboxPrefixOf(name: string): string {
  return `_INBOX_${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/**
 * Connects to NATS (comma-separated URLs for a cluster) and reconnects forever:
 * a stage outlives broker restarts; the runtime pauses pulling while disconnected.
 */
export async function connectNats(opts: {
  url: string;
  name: string;
  /** Keep to the given URLs (e.g. behind a proxy) instead of learning cluster peers. */
  ignoreClusterUpdates?: boolean;
  /** Credentials and TLS (StageProcessConfig.natsAuth). */
  auth?: NatsAuth;
}): Promise<NatsConnection> {
  const a = opts.auth ?? {};
  return connect({
    inboxPrefix: inboxPrefixOf(opts.name),
    ...(a.creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(a.creds)) } : {}),
    ...(a.nkeySeed ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(a.nkeySeed)) } : {}),
    ...(a.user && a.password ? { authenticator: usernamePasswordAuthenticator(a.user, a.password) } : {}),
    ...(a.tls ? { tls: { ...a.tls } } : {}),
    servers: opts.url.split(",").map((s) => s.trim()),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
    maxPingOut: 2,
    waitOnFirstConnect: true,
    timeout: 5000,
    ignoreClusterUpdates: opts.ignoreClusterUpdates ?? false,
    // Without this, every request (each JetStream publish, each confirmed ack) builds two
    // Error objects up front for their stack traces: about 9% of a stage's CPU at
    // saturation (bench/NOTES.md). Errors still carry their own stack and are wrapped
    // with a cause by the runtime.
    noAsyncTraces: true,
  });
}

/**
 * An ioredis client that reconnects by itself, pipelines concurrent commands
 * automatically (one network write for many messages), and fails commands fast while
 * disconnected or when Redis stops answering, so a stuck Redis becomes a transient
 * error instead of a hung message.
 */
export function createRedis(opts: {
  url: string;
  name: string;
  commandTimeoutMs?: number;
  /** ACL user, password and TLS (StageProcessConfig.redisAuth). */
  auth?: RedisAuth;
  /** Connection errors are reported here (rate-limited by reconnect backoff); commands fail on their own. */
  onError?: (err: Error) => void;
}): Redis {
  const a = opts.auth ?? {};
  const redis = new Redis(opts.url, {
    ...(a.username ? { username: a.username } : {}),
    ...(a.password ? { password: a.password } : {}),
    ...(a.tlsCaFile ? { tls: { ca: readFileSync(a.tlsCaFile) } } : {}),
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
  redis.on("error", opts.onError ?? (() => {}));
  return redis;
}
export type { NatsConnection, Redis };
