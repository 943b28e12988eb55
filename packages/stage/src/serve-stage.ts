import type { EventType } from "@jetmesh/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { StageProcessConfig } from "./config.ts";
import { connectNats, createRedis } from "./connections.ts";
import type { StageDefinition } from "./define-stage.ts";
import { serveHttp } from "./http-server.ts";
import { createLogger } from "./logger.ts";
import { runStage, type StageHandle } from "./run-stage.ts";
import { onShutdown } from "./shutdown.ts";
import { startTelemetry } from "./telemetry.ts";

/** The clients a stage's deps are built from. */
export interface StageClients {
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly logger: Logger;
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
 * Runs a stage as a service process: one pino root, OpenTelemetry, the HTTP server with
 * /healthz, /readyz and /metrics (up first: /healthz answers as soon as the process lives,
 * /readyz says what start-up waits for), the NATS and Redis clients, {@link runStage}, and
 * the drain on SIGTERM. A stage's main.ts is its definition and this one call.
 * @throws what runStage throws (ConfigError for settings that contradict exactly-once).
 */
export async function serveStage<In extends EventType, Deps>(o: ServeStageOptions<In, Deps>): Promise<void> {
  const name = o.definition.name;
  const config = o.config;
  const logger = createLogger({ service: name, level: config.logLevel });
  const telemetry = startTelemetry({ serviceName: name, serviceVersion: o.version, ...config.telemetry });
  let stage: StageHandle | undefined;
  let waitingFor = `nats at ${config.natsUrl}`;
  const probe = { name, health: () => stage?.health() ?? { ok: false, waiting_for: waitingFor } };
  const http = await serveHttp({ host: config.httpHost, port: config.httpPort, logger, probes: [probe] });
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  onShutdown(logger, [
    () => stage?.stop(),
    () => http.close(),
    () => nc?.drain(),
    () => redis?.quit(),
    () => telemetry.shutdown(),
  ]);
  nc = await connectNats({ url: config.natsUrl, name, auth: config.natsAuth });
  redis = createRedis({ url: config.redisUrl, name, auth: config.redisAuth });
  waitingFor = "start-up";
  stage = await runStage({
    definition: o.definition,
    deps: await o.deps({ nc, redis, logger }),
    nc,
    redis,
    logger,
    settings: config.stage,
    onWaiting: (what) => {
      waitingFor = what;
    },
  });
}
