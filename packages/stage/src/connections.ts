import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";

/**
 * Connects to NATS (comma-separated URLs for a cluster) and reconnects forever:
 * a stage outlives broker restarts; the runtime pauses pulling while disconnected.
 */
export async function connectNats(opts: {
  url: string;
  name: string;
  /** Keep to the given URLs (e.g. behind a proxy) instead of learning cluster peers. */
  ignoreClusterUpdates?: boolean;
}): Promise<NatsConnection> {
  return connect({
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
  /** Connection errors are reported here (rate-limited by reconnect backoff); commands fail on their own. */
  onError?: (err: Error) => void;
}): Redis {
  const redis = new Redis(opts.url, {
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
