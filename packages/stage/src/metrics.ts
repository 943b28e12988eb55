import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from "prom-client";

let processRegistry: Registry | undefined;

/**
 * How often the event loop's delay is sampled for `nodejs_eventloop_lag_*` (prom-client's
 * default is 10 ms). Each sample is a timer that wakes the loop: at 10 ms that was about 10 ms
 * of CPU a second in every process, idle or not, a tenth of a stage's CPU at the 100
 * messages/s the pipeline gives it (bench/NOTES.md). At 100 ms the lag percentiles come from
 * 10 samples a second instead of 100; a block of the loop still delays the sample it covers.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The process's Prometheus registry, created once, with Node's default process metrics
 * under their standard names (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...): one service per process, told apart by the
 * scrape job, so the usual Node dashboards and alerts work unchanged. The event loop's
 * delay is sampled every {@link EVENT_LOOP_SAMPLE_MS}.
 */
export function metricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
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
  // One gauge or counter per name in a registry, whoever asks first (the runtime, the gateway).
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    once(registry, name, () => new Gauge<L>({ name, help, labelNames, registers: r }));
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    once(registry, name, () => new Counter<L>({ name, help, labelNames, registers: r }));
  return {
    processed: counter(
      "jetmesh_messages_processed_total",
      "Input messages finished, by outcome (acked, duplicate, skipped, busy, retried, parked)",
      ["stage", "stream", "outcome"] as const,
    ),
    duplicates: counter(
      "jetmesh_duplicates_dropped_total",
      "Duplicates absorbed: redelivered inputs whose key was done (layer=idempotency) and outputs the stream's duplicate window dropped (layer=stream)",
      ["stage", "layer"] as const,
    ),
    redeliveries: counter("jetmesh_redeliveries_total", "Messages received with a delivery count above 1", [
      "stage",
      "stream",
    ] as const),
    dlqParked: counter("jetmesh_dlq_parked_total", "Messages parked in the DLQ, by reason class", [
      "stage",
      "reason",
    ] as const),
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
    inFlight: gauge("jetmesh_in_flight_messages", "Messages this process is processing now", [
      "stage",
    ] as const),
    consumerPending: gauge(
      "jetmesh_consumer_pending_messages",
      "Messages in the stream not yet delivered to the stage's consumer (lag)",
      ["stage", "stream"] as const,
    ),
    consumerAckPending: gauge(
      "jetmesh_consumer_ack_pending_messages",
      "Messages delivered to the stage's consumer and not yet acknowledged",
      ["stage", "stream"] as const,
    ),
    consumerRestarts: counter(
      "jetmesh_consumer_restarts_total",
      "Times the supervisor recreated a pull, by reason",
      ["stage", "stream", "reason"] as const,
    ),
    consumerDrift: gauge(
      "jetmesh_consumer_config_drift",
      "1 when the consumer's server config differs from what the stage declares",
      ["stage", "stream"] as const,
    ),
    paused: gauge("jetmesh_stage_paused", "1 while the stage does not pull because NATS or Redis is down", [
      "stage",
    ] as const),
    dlqParkFailures: counter(
      "jetmesh_dlq_park_failures_total",
      "Parks the DLQ refused (full or unreachable); the message stays in its stream and is parked later",
      ["stage"] as const,
    ),
    divergentReplays: counter(
      "jetmesh_divergent_replays_total",
      "Redeliveries whose output differed from the one stored under its id (state lost in between); the stored one stands",
      ["stage"] as const,
    ),
    dependencyUp: gauge(
      "jetmesh_dependency_up",
      "0 while the stage's circuit breaker for an external dependency is open (the stage does not pull)",
      ["stage", "dependency"] as const,
    ),
    lastProgress: gauge(
      "jetmesh_last_progress_timestamp_seconds",
      "Unix time of the last message the stage finished",
      ["stage"] as const,
    ),
  };
}
export type StageMetrics = ReturnType<typeof createStageMetrics>;
