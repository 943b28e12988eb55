import type { AnyEnvelope, Envelope, EventDataMap, EventType, StreamName } from "@jetmesh/contracts";
import type { Logger } from "pino";
import type { Context } from "./telemetry.ts";

/** One event a handler asks the runtime to publish. */
export interface Emission<T extends EventType = EventType> {
  readonly type: T;
  readonly data: EventDataMap[T];
  /** Account whose partition the subject takes; defaults to `data.from`. */
  readonly partitionKey?: string;
}

/** Builds an {@link Emission}. */
export function emit<T extends EventType>(
  type: T,
  data: EventDataMap[T],
  partitionKey?: string,
): Emission<T> {
  return partitionKey === undefined ? { type, data } : { type, data, partitionKey };
}

/** Where the message being handled came from. */
export interface Delivery {
  /** The stream, subject and sequence of the input event (for a replay: of the original). */
  readonly stream: string;
  readonly subject: string;
  readonly streamSequence: number;
  /** 1 on the first delivery (for a replay: of the replay). */
  readonly deliveryCount: number;
  /**
   * When the stream stored the message (ms, the broker's clock): for a stored outcome, when it
   * was decided (an event's occurredAt is its request's: event time travels with the event).
   * Absent for a replay and where the broker does not say.
   */
  readonly storedAtMs?: number;
  /**
   * Set when this is an operator's replay of a message the stage parked (`jetmesh dlq
   * replay`): where the replay is stored on REPLAY, and the DLQ sequence it was parked at.
   */
  readonly replay?: { readonly stream: string; readonly streamSequence: number; readonly dlqSeq?: number };
}

/** What a handler may use. It never acks, publishes or touches the idempotency store. */
export interface HandlerContext<Deps = unknown> {
  readonly stage: string;
  readonly deps: Deps;
  /** A child logger carrying stage, subject, stream_seq, event_id, transfer_id, trace_id. */
  readonly logger: Logger;
  readonly delivery: Delivery;
  /** Trace id of this message's consumer span (the transfer's trace). */
  readonly traceId: string;
  /**
   * The context holding this message's consumer span: the parent of any span the handler
   * or its effect opens (an outgoing HTTP call). The runtime passes it explicitly and does
   * not make it the active context (`context.active()` is the root in a handler): running
   * every message inside `context.with` cost about 7% of a stage's CPU.
   */
  readonly traceContext: Context;
  /**
   * Aborted when the handler runs past its time limit, or when the stage is stopping and
   * its drain deadline (JETMESH_DRAIN_TIMEOUT_MS) is near: a handler still running then
   * should give up; its message is nak'd and redelivered.
   */
  readonly signal: AbortSignal;
}

/**
 * The effect of one input, applied by the runtime between the `before-effect` and
 * `after-effect` crash points. It must be idempotent and keyed by the input's
 * eventId (or the transferId): the runtime may apply it again after a crash, and
 * it must then return the same emissions it returned the first time. It must also be
 * atomic (one Lua script, one idempotent HTTP call): an attempt that times out keeps
 * running while the retry starts, and a crash may cut it anywhere.
 */
export type Effect = () => Promise<readonly Emission[] | undefined>;

/** What a handler decides: events to emit, and optionally an effect whose result adds more. */
export interface Plan {
  readonly emit?: readonly Emission[];
  readonly effect?: Effect;
}

/**
 * Handles one decoded, validated input event. Return emissions (or a {@link Plan}).
 * Throw PermanentError for input that can never succeed (the message is parked in the
 * DLQ), TransientError (or any other error) to be retried with backoff.
 */
export type Handler<In extends EventType = EventType, Deps = unknown> = (
  event: Envelope<In>,
  ctx: HandlerContext<Deps>,
) => Promise<readonly Emission[] | Plan> | readonly Emission[] | Plan;

/** Wraps a handler, Watermill style: logging, timing, enrichment. */
export type Middleware<Deps = unknown> = (next: Handler<EventType, Deps>) => Handler<EventType, Deps>;

/** One input of a stage: a stream and the event types taken from it. */
export interface StageInput {
  readonly stream: StreamName;
  /** Event types handled; other types in the stream are acked and skipped. */
  readonly types: readonly EventType[];
}

/**
 * A stage, declared: its name (the durable consumer name on each input stream, the
 * idempotency key prefix and the `producer` of its events), what it consumes, what it
 * may emit, and its handler. The runtime owns the protocol around it.
 */
export interface StageDefinition<In extends EventType = EventType, Deps = unknown> {
  readonly name: string;
  readonly inputs: readonly StageInput[];
  /** Event types the handler may emit; emitting another is a bug and parks the input. */
  readonly emits: readonly EventType[];
  readonly handle: Handler<In, Deps>;
  readonly middleware?: readonly Middleware<Deps>[];
  /**
   * Health checks of external dependencies the handler names in
   * `TransientError.dependency`, each a request with no side effect that resolves when the
   * dependency answers. When a dependency keeps failing, the stage stops pulling (its
   * circuit opens) and calls its probe until it resolves; without a probe it tries traffic
   * again after a cooldown.
   */
  readonly probes?: Readonly<Record<string, (deps: Deps) => Promise<void>>>;
}

/** Declares a stage; checks the declaration's own consistency at once. */
export function defineStage<In extends EventType, Deps = unknown>(
  def: StageDefinition<In, Deps>,
): StageDefinition<In, Deps> {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(def.name))
    throw new Error(`stage name ${def.name} must match [a-z][a-z0-9-]{0,31}`);
  if (def.inputs.length === 0) throw new Error(`stage ${def.name} has no inputs`);
  return def;
}

/** Narrowing helper for handlers that take several event types. */
export function isEvent<T extends EventType>(env: AnyEnvelope | Envelope, type: T): env is Envelope<T> {
  return env.type === type;
}
