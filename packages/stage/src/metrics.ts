import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from "prom-client";

let processRegistry: Registry | undefined;

/**
 * The process's Prometheus registry, created once, with Node's default process metrics
 * under their standard names (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...): one service per process, told apart by the
 * scrape job, so the usual Node dashboards and alerts work unchanged.
 */
export function metricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

function once<M extends Metric>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

/**
 * Values of the `outcome` label of `jetmesh_messages_processed_total`: acked (done, outputs
 * published), duplicate (key already done; acked), skipped (a type the stage does not
 * take; acked), busy (another attempt holds the lease; nak'd until it expires), retried
 * (transient failure; nak'd with backoff), parked (in the DLQ; termed), park_failed (the
 * DLQ refused it; it stays in its stream and the park is retried), fenced (the attempt lost
 * its lease to another attempt and left the message to it). Test runs also see `crashed`
 * (a simulated crash point).
 */
export const Outcomes = [
  "acked",
  "duplicate",
  "skipped",
  "busy",
  "retried",
  "parked",
  "park_failed",
  "fenced",
] as const;
/** `reason` values of `jetmesh_dlq_parked_total`: the permanent error's class, or max_deliver. */
const PARK_REASONS = ["PermanentError", "ContractError", "max_deliver"] as const;
/** `layer` values of `jetmesh_duplicates_dropped_total`. */
const DUPLICATE_LAYERS = ["idempotency", "stream"] as const;

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const AGE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const seeded = new WeakSet<Metric>();

/**
 * The runtime's metrics. Labels are bounded: stage names, stream names, a fixed set of
 * outcomes and reasons; never an event id, a subject (it carries the partition) or an
 * account. Every call on the same registry returns the same metric objects.
 *
 * Counters that alerts watch with `increase()` are created at 0 for a stage (its
 * outcomes, redeliveries, DLQ reasons, duplicate layers) so that their first event is an
 * increase Prometheus can see, not a series that appears at 1: by {@link seed} at start,
 * and in any case when the stage finishes its first message. The consume loop creates
 * `jetmesh_consumer_restarts_total` at 0 for each of its restart reasons when it starts.
 */
export function createStageMetrics(registry: Registry = metricsRegistry()) {
  const metrics = defineStageMetrics(registry);
  const seen = new Set<string>();
  const seed = (stage: string, streams: readonly string[]): void => {
    for (const stream of streams) {
      if (seen.has(`${stage}\u0000${stream}`)) continue;
      seen.add(`${stage}\u0000${stream}`);
      for (const outcome of Outcomes) metrics.processed.inc({ stage, stream, outcome }, 0);
      metrics.redeliveries.inc({ stage, stream }, 0);
    }
    if (seen.has(stage)) return;
    seen.add(stage);
    for (const reason of PARK_REASONS) metrics.dlqParked.inc({ stage, reason }, 0);
    metrics.dlqParkFailures.inc({ stage }, 0);
    metrics.divergentReplays.inc({ stage }, 0);
    for (const layer of DUPLICATE_LAYERS) metrics.duplicates.inc({ stage, layer }, 0);
  };
  if (!seeded.has(metrics.processed)) {
    seeded.add(metrics.processed);
    // prom-client assigns `inc` per instance, so wrap the instance rather than subclass.
    const inc = metrics.processed.inc.bind(metrics.processed) as (
      labels: { stage: string; stream: string; outcome: string },
      value?: number,
    ) => void;
    metrics.processed.inc = ((labels: { stage: string; stream: string; outcome: string }, value?: number) => {
      if (typeof labels === "object" && labels.stage && labels.stream) seed(labels.stage, [labels.stream]);
      inc(labels, value);
    }) as typeof metrics.processed.inc;
  }
  return {
    ...metrics,
    /**
     * Creates the stage's watched counters at 0 for its input streams; call once when the
     * stage starts. Idempotent.
     */
    seed,
  };
}

function defineStageMetrics(registry: Registry) {
  const r = [registry];
  return {
    processed: once(
      registry,
      "jetmesh_messages_processed_total",
      () =>
        new Counter({
          name: "jetmesh_messages_processed_total",
          help: "Input messages finished, by outcome (acked, duplicate, skipped, busy, retried, parked)",
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
          help: "Age of an acked input event when the stage finished it: now minus the occurredAt its producer stamped, so the wait in the stream plus this hop's processing",
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
    dlqParkFailures: once(
      registry,
      "jetmesh_dlq_park_failures_total",
      () =>
        new Counter({
          name: "jetmesh_dlq_park_failures_total",
          help: "Parks the DLQ refused (full or unreachable); the message stays in its stream and is parked later",
          labelNames: ["stage"] as const,
          registers: r,
        }),
    ),
    divergentReplays: once(
      registry,
      "jetmesh_divergent_replays_total",
      () =>
        new Counter({
          name: "jetmesh_divergent_replays_total",
          help: "Redeliveries whose output differed from the one stored under its id (state lost in between); the stored one stands",
          labelNames: ["stage"] as const,
          registers: r,
        }),
    ),
    dependencyUp: once(
      registry,
      "jetmesh_dependency_up",
      () =>
        new Gauge({
          name: "jetmesh_dependency_up",
          help: "0 while the stage's circuit breaker for an external dependency is open (the stage does not pull)",
          labelNames: ["stage", "dependency"] as const,
          registers: r,
        }),
    ),
    streamFill: once(
      registry,
      "jetmesh_stream_fill_ratio",
      () =>
        new Gauge({
          name: "jetmesh_stream_fill_ratio",
          help: "Share of a stream's byte and message limits in use, as the stage last read it (discard=new refuses writes at 1)",
          labelNames: ["stream", "limit"] as const,
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
