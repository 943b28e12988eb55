import { Streams } from "@jetmesh/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { createBrokerHealthMetrics, readReplication } from "./broker-health.ts";
import { createNatsMonitorMetrics, readMonitor } from "./nats-monitor.ts";
import { createRedisHealthMetrics, readRedisHealth } from "./redis-health.ts";

/** What {@link startInfraHealth} needs. */
export interface InfraHealthOptions {
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly registry: Registry;
  readonly logger: Logger;
  /** How often both are read. */
  readonly intervalMs: number;
  /** How long one stream-info request or one Redis round may take before it counts as unanswered. */
  readonly timeoutMs: number;
  /** Keys one Redis round may SCAN at most. */
  readonly scanBudget: number;
  /** Default: every stream of the contracts. */
  readonly streams?: readonly string[];
  /** nats-servers' monitoring URLs (`http://nats-1:8222`), read too when given. */
  readonly monitorUrls?: readonly string[];
}

/** A running sampler of NATS and Redis health. */
export interface InfraHealth {
  /** Reads both now (waits for a round in progress first); never throws. */
  sample(): Promise<void>;
  stop(): Promise<void>;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/**
 * Reads, every `intervalMs` and from the start (not only once the reconciler is ready), the
 * NATS cluster's stream replication (broker-health.ts) and Redis's memory and keys
 * (redis-health.ts), and exports them: a process other than the stages, so the figures stay
 * when a stage hangs or dies. A round that finds NATS disconnected drops the NATS series; one
 * that Redis does not answer sets jetmesh_redis_up to 0.
 */
export function startInfraHealth(o: InfraHealthOptions): InfraHealth {
  const broker = createBrokerHealthMetrics(o.registry);
  const monitor = o.monitorUrls?.length ? createNatsMonitorMetrics(o.registry) : undefined;
  const readMonitors = async () => {
    if (monitor)
      monitor.record(await Promise.all((o.monitorUrls ?? []).map((u) => readMonitor(u, o.timeoutMs))));
  };
  const redis = createRedisHealthMetrics(o.registry, `${o.redis.options.host}:${o.redis.options.port}`);
  const streams = o.streams ?? Object.values(Streams).map((d) => d.name);
  let running: Promise<void> | undefined;
  let stopped = false;
  let redisWasUp = true;

  const readBroker = async () => {
    if (o.nc.isClosed()) return broker.clear();
    try {
      const jsm = await jetstreamManager(o.nc, { timeout: o.timeoutMs, checkAPI: false });
      const server = o.nc.info?.server_name;
      const views = await readReplication(jsm, streams, server);
      const account = await jsm.getAccountInfo().then(
        (a) => ({ bytes: a.storage, limitBytes: a.limits.max_storage }),
        () => undefined,
      );
      broker.record(views, server, account);
    } catch (err) {
      broker.clear();
      o.logger.warn({ err }, "nats cluster health could not be read");
    }
  };
  const readRedis = async () => {
    try {
      redis.record(await within(readRedisHealth(o.redis, o.scanBudget), o.timeoutMs, "redis"));
      redisWasUp = true;
    } catch (err) {
      redis.down();
      if (redisWasUp) o.logger.warn({ err }, "redis health could not be read");
      redisWasUp = false;
    }
  };
  const round = () => {
    running ??= Promise.all([readBroker(), readRedis(), readMonitors()]).then(
      () => {
        running = undefined;
      },
      () => {
        running = undefined;
      },
    );
    return running;
  };
  const timer = setInterval(() => {
    if (!running && !stopped) void round();
  }, o.intervalMs);
  timer.unref();
  void round();
  return {
    async sample() {
      if (running) await running;
      await round();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (running) await running;
    },
  };
}
