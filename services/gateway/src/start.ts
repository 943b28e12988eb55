import { type ClientEntry, namesFor, StreamNames } from "@jetmesh/contracts";
import {
  type Logger,
  type NatsConnection,
  type ReadinessProbe,
  type Redis,
  runStage,
  type StageHandle,
} from "@jetmesh/stage";
import { type CrashHook, createEventPublisher, createStageMetrics } from "@jetmesh/stage/internal";
import { type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { Registry } from "prom-client";
import { createGateway, type GatewayServers } from "./app.ts";
import { createApiKeyAuthenticator } from "./auth/clients.ts";
import type { GatewayConfig } from "./config.ts";
import { watchNatsConnection } from "./nats-connection.ts";
import { createOutcomeLatencyMetric } from "./status/outcome-latency.ts";
import { statusProjection } from "./status/projection.ts";
import { createStatusStore } from "./status/status-store.ts";
import { type LagMonitor, startLagMonitor } from "./transfers/load-shedding.ts";
import { storedRequestReader } from "./transfers/submit.ts";
import type { TransferIds } from "./transfers/transfer-ids.ts";

/** What a gateway process is wired from: its clients, made by the composition root. */
export interface GatewayWiring {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly redis: Redis;
  readonly logger: Logger;
  /** The process registry, served on /metrics; the publisher's and projection's metrics join it. */
  readonly registry: Registry;
  readonly config: GatewayConfig;
  /** The API clients (parsed clients file). */
  readonly clients: readonly ClientEntry[];
  readonly ids: TransferIds;
}

/** The gateway's servers and the poll that feeds its load shedding. */
export interface GatewayParts {
  /** Not listening yet: the caller owns `listen` and `close`, or hands them connections. */
  readonly servers: GatewayServers;
  /** The validator's INGRESS lag, polled every `config.lag.pollMs`; `stop()` on shutdown. */
  readonly lag: LagMonitor;
}

/**
 * Wires the gateway's API and ops servers as a gateway process runs them: the API-key
 * authenticator, the runtime's event publisher (PubAcks through one inbox), reads of stored
 * requests for duplicates, the NATS connection state and the INGRESS lag monitor.
 * Starts the lag poll (a timer); serve.ts and the simulator both call this.
 */
export function createGatewayServers(
  w: GatewayWiring,
  o: { probes?: readonly ReadinessProbe[] } = {},
): GatewayParts {
  const { config, logger, registry, nc } = w;
  const lag = startLagMonitor({
    jsm: w.jsm,
    stream: namesFor(config.stage.namespace).stream(StreamNames.Ingress),
    consumer: config.lag.consumer,
    intervalMs: config.lag.pollMs,
    logger,
  });
  const servers = createGateway({
    settings: config.gateway,
    authenticator: createApiKeyAuthenticator(w.clients),
    ids: w.ids,
    redis: w.redis,
    publisher: createEventPublisher({
      js: jetstream(nc),
      // PubAcks through one inbox subscription, not a nats.js request per transfer.
      nc,
      settings: config.publisher,
      logger,
      stage: "gateway",
      metrics: createStageMetrics(registry),
    }),
    readStored: storedRequestReader((stream, seq) => w.jsm.streams.getMessage(stream, { seq })),
    natsConnected: watchNatsConnection(nc).connected,
    lag: lag.current,
    logger,
    registry,
    ...(o.probes ? { probes: o.probes } : {}),
  });
  return { servers, lag };
}

/**
 * Runs the status projection (`gateway-status`, a stage of its own) in at-least-once mode
 * whatever the environment says: it emits nothing and its write (one hash field per eventId)
 * is idempotent by itself, so the lease and done keys of exactly-once mode would buy nothing
 * and cost two Redis scripts per batch of every stream's traffic. Resolves once it consumes
 * (it waits for every pipeline stream first; `onWaiting` says for what).
 */
export function startStatusProjection(
  w: Omit<GatewayWiring, "jsm" | "clients" | "ids">,
  o: { onWaiting?: (what: string) => void; crashHook?: CrashHook } = {},
): Promise<StageHandle> {
  return runStage({
    definition: statusProjection,
    deps: {
      store: createStatusStore(w.redis, { ttlMs: w.config.gateway.statusTtlMs }),
      latency: createOutcomeLatencyMetric(w.registry),
    },
    nc: w.nc,
    redis: w.redis,
    logger: w.logger,
    settings: { ...w.config.stage, mode: "at-least-once" },
    registry: w.registry,
    ...(o.onWaiting ? { onWaiting: o.onWaiting } : {}),
    ...(o.crashHook ? { crashHook: o.crashHook } : {}),
  });
}
