import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from "prom-client";

let processRegistry: Registry | undefined;

/** The process's Prometheus registry (with Node's default process metrics), created once. */
export function metricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: "jetmesh_process_" });
  }
  return processRegistry;
}

function once<M extends Metric>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const AGE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * The runtime's metrics. Labels are bounded: stage names, stream names, a fixed set of
 * outcomes and reasons; never an event id or an account.
 */
export function createStageMetrics(registry: Registry = metricsRegistry()) {
  const r = [registry];
  return {
    processed: once(
      registry,
      "jetmesh_messages_processed_total",
      () =>
        new Counter({
          name: "jetmesh_messages_processed_total",
          help: "Input messages finished, by outcome (acked, duplicate, skipped, retried, parked)",
          labelNames: ["stage", "stream", "outcome"] as const,
          registers: r,
        }),
    ),
    duplicates: once(
      registry,
      "jetmesh_duplicates_dropped_total",
      () =>
        new Counter({
          name: "jetmesh_duplicates_dropped_total",
          help: "Duplicates absorbed: redelivered inputs whose key was done (layer=idempotency) and outputs the stream's duplicate window dropped (layer=stream)",
          labelNames: ["stage", "layer"] as const,
          registers: r,
        }),
    ),
    redeliveries: once(
      registry,
      "jetmesh_redeliveries_total",
      () =>
        new Counter({
          name: "jetmesh_redeliveries_total",
          help: "Messages received with a delivery count above 1",
          labelNames: ["stage", "stream"] as const,
          registers: r,
        }),
    ),
    dlqParked: once(
      registry,
      "jetmesh_dlq_parked_total",
      () =>
        new Counter({
          name: "jetmesh_dlq_parked_total",
          help: "Messages parked in the DLQ, by reason class",
          labelNames: ["stage", "reason"] as const,
          registers: r,
        }),
    ),
    handlerDuration: once(
      registry,
      "jetmesh_handler_duration_seconds",
      () =>
        new Histogram({
          name: "jetmesh_handler_duration_seconds",
          help: "Time from receipt to ack of one message",
          labelNames: ["stage"] as const,
          buckets: LATENCY_BUCKETS,
          registers: r,
        }),
    ),
    eventAge: once(
      registry,
      "jetmesh_event_age_seconds",
      () =>
        new Histogram({
          name: "jetmesh_event_age_seconds",
          help: "Age of an input event (now minus its occurredAt) when the stage finished it",
          labelNames: ["stage"] as const,
          buckets: AGE_BUCKETS,
          registers: r,
        }),
    ),
    publishDuration: once(
      registry,
      "jetmesh_publish_duration_seconds",
      () =>
        new Histogram({
          name: "jetmesh_publish_duration_seconds",
          help: "Time from publish to the stream's acknowledgement",
          labelNames: ["stage"] as const,
          buckets: LATENCY_BUCKETS,
          registers: r,
        }),
    ),
    inFlight: once(
      registry,
      "jetmesh_in_flight_messages",
      () =>
        new Gauge({
          name: "jetmesh_in_flight_messages",
          help: "Messages this process is processing now",
          labelNames: ["stage"] as const,
          registers: r,
        }),
    ),
    consumerPending: once(
      registry,
      "jetmesh_consumer_pending_messages",
      () =>
        new Gauge({
          name: "jetmesh_consumer_pending_messages",
          help: "Messages in the stream not yet delivered to the stage's consumer (lag)",
          labelNames: ["stage", "stream"] as const,
          registers: r,
        }),
    ),
    consumerAckPending: once(
      registry,
      "jetmesh_consumer_ack_pending_messages",
      () =>
        new Gauge({
          name: "jetmesh_consumer_ack_pending_messages",
          help: "Messages delivered to the stage's consumer and not yet acknowledged",
          labelNames: ["stage", "stream"] as const,
          registers: r,
        }),
    ),
    consumerRestarts: once(
      registry,
      "jetmesh_consumer_restarts_total",
      () =>
        new Counter({
          name: "jetmesh_consumer_restarts_total",
          help: "Times the supervisor recreated a pull, by reason",
          labelNames: ["stage", "stream", "reason"] as const,
          registers: r,
        }),
    ),
    consumerDrift: once(
      registry,
      "jetmesh_consumer_config_drift",
      () =>
        new Gauge({
          name: "jetmesh_consumer_config_drift",
          help: "1 when the consumer's server config differs from what the stage declares",
          labelNames: ["stage", "stream"] as const,
          registers: r,
        }),
    ),
    paused: once(
      registry,
      "jetmesh_stage_paused",
      () =>
        new Gauge({
          name: "jetmesh_stage_paused",
          help: "1 while the stage does not pull because NATS or Redis is down",
          labelNames: ["stage"] as const,
          registers: r,
        }),
    ),
    lastProgress: once(
      registry,
      "jetmesh_last_progress_timestamp_seconds",
      () =>
        new Gauge({
          name: "jetmesh_last_progress_timestamp_seconds",
          help: "Unix time of the last message the stage finished",
          labelNames: ["stage"] as const,
          registers: r,
        }),
    ),
  };
}
export type StageMetrics = ReturnType<typeof createStageMetrics>;
