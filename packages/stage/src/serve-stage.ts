import { type EventType, namesFor } from "@jetmesh/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { StageProcessConfig } from "./config.ts";
import { connectNats, createRedis, maskUrl } from "./connections.ts";
import type { StageDefinition } from "./define-stage.ts";
import { type ReadinessProbe, serveHttp } from "./http-server.ts";
import { createLogger } from "./logger.ts";
import { metricsRegistry } from "./metrics.ts";
import { runStage } from "./run-stage.ts";
import { exitOnConfigError } from "./service-start.ts";
import { onShutdown } from "./shutdown.ts";
import { startTelemetry } from "./telemetry.ts";

/** The clients a stage's deps are built from. */
export interface StageClients {
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly logger: Logger;
}

/** What a process's start step is given: its clients, the metrics registry, and a way to say what it waits for. */
export interface ProcessClients extends StageClients {
  readonly registry: Registry;
  /** Shown in /readyz (`waiting_for`) until the part is started. */
  readonly waiting: (what: string) => void;
}

/** What a process runs once connected: a health per probe name, how to stop, and when it is started. */
export interface ProcessParts {
  readonly health: Readonly<Record<string, ReadinessProbe["health"]>>;
  /** Called first on SIGTERM/SIGINT, before the HTTP server, NATS and Redis close. */
  stop(): Promise<void> | void;
  /** Resolves once running; a rejection (a ConfigError) stops the process with its message. */
  readonly started?: Promise<unknown>;
}

/** What {@link serveProcess} needs. */
export interface ServeProcessOptions {
  readonly name: string;
  readonly config: StageProcessConfig;
  /** The service's version (its package.json), reported in traces. */
  readonly version: string;
  /** The /readyz probes, by name: each answers "waiting" until `start` gave its health. */
  readonly probes: readonly string[];
  readonly start: (clients: ProcessClients) => ProcessParts | Promise<ProcessParts>;
}

/**
 * Runs a service process: one pino root, OpenTelemetry, the HTTP server with /healthz,
 * /readyz and /metrics (up first: /healthz answers as soon as the process lives, /readyz
 * says what start-up waits for), the NATS and Redis clients, the part `start` wires, and
 * the drain on SIGTERM (the part, HTTP, NATS, Redis, telemetry, in that order).
 * @throws what `start` or its `started` throws (ConfigError for settings that contradict exactly-once).
 */
export async function serveProcess(o: ServeProcessOptions): Promise<void> {
  const { name, config } = o;
  const logger = createLogger({ service: name, level: config.logLevel });
  const telemetry = startTelemetry({ serviceName: name, serviceVersion: o.version, ...config.telemetry });
  const registry = metricsRegistry();
  let parts: ProcessParts | undefined;
  let waitingFor = `nats at ${maskUrl(config.natsUrl)}`;
  const probes = o.probes.map((p) => ({
    name: p,
    health: () => parts?.health[p]?.() ?? { ok: false, waiting_for: waitingFor },
  }));
  const http = await serveHttp({ host: config.httpHost, port: config.httpPort, logger, probes, registry });
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  onShutdown(logger, [
    () => parts?.stop(),
    () => http.close(),
    () => nc?.drain(),
    () => redis?.quit(),
    () => telemetry.shutdown(),
  ]);
  nc = await connectNats({ url: config.natsUrl, name, auth: config.natsAuth, logger });
  redis = createRedis({
    url: config.redisUrl,
    name,
    auth: config.redisAuth,
    ...(config.redisSentinel ? { sentinel: config.redisSentinel } : {}),
    logger,
    keyPrefix: namesFor(config.stage.namespace).redisPrefix,
  });
  waitingFor = "start-up";
  const waiting = (what: string) => {
    waitingFor = what;
  };
  try {
    parts = await o.start({ nc, redis, logger, registry, waiting });
    await parts.started;
  } catch (e) {
    // Settings that contradict exactly-once: the readable block and exit 2, as for a bad env.
    exitOnConfigError(name, e);
    throw e;
  }
}

/** What {@link serveStage} needs: the stage, its configuration, and how to build its deps. */
export interface ServeStageOptions<In extends EventType, Deps> {
  readonly definition: StageDefinition<In, Deps>;
  readonly config: StageProcessConfig;
  /** The service's version (its package.json), reported in traces. */
  readonly version: string;
  readonly deps: (clients: StageClients) => Deps | Promise<Deps>;
}

/**
 * Runs a stage as a service process ({@link serveProcess} around {@link runStage}); a
 * stage's main.ts is its definition and this one call.
 * @throws what runStage throws (ConfigError for settings that contradict exactly-once).
 */
export function serveStage<In extends EventType, Deps>(o: ServeStageOptions<In, Deps>): Promise<void> {
  const name = o.definition.name;
  return serveProcess({
    name,
    config: o.config,
    version: o.version,
    probes: [name],
    start: async (c) => {
      const stage = await runStage({
        definition: o.definition,
        deps: await o.deps(c),
        nc: c.nc,
        redis: c.redis,
        logger: c.logger,
        registry: c.registry,
        settings: o.config.stage,
        onWaiting: c.waiting,
      });
      return { health: { [name]: () => stage.health() }, stop: () => stage.stop() };
    },
  });
}
