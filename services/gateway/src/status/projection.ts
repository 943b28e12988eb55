import {
  type AnyEnvelope,
  type Envelope,
  type EventType,
  EventTypes,
  PipelineStreams,
  Streams,
} from "@jetmesh/contracts";
import { defineStage, type Delivery, type HandlerContext } from "@jetmesh/stage";
import type { Histogram } from "prom-client";
import { latencyMarkOf } from "./outcome-latency.ts";
import type { LineageEntry, StatusStore } from "./status-store.ts";

/** Durable consumer name on every input stream and idempotency key prefix. */
export const STATUS_STAGE = "gateway-status";

export interface StatusProjectionDeps {
  readonly store: StatusStore;
  /** jetmesh_accepted_to_outcome_seconds (outcome-latency.ts); absent: not measured. */
  readonly latency?: Histogram<"outcome">;
}

/**
 * The streams whose events move a transfer's status (status-view.ts): the reference pipeline's.
 * A team's stream (a notifier's, say) moves none, so the projection neither reads it nor needs
 * a NATS grant on it (its permissions come from the gateway's manifest, which names these).
 */
const STATUS_STREAMS = PipelineStreams.filter((stream) =>
  Streams[stream].eventTypes.some((t) => (Object.values(EventTypes) as string[]).includes(t)),
);

/**
 * The status projection: every event of the reference pipeline, from each stream that carries
 * one, recorded under its transfer as one hash field per eventId (`status:<transferId>`).
 * It emits nothing; the write is the stage's effect, idempotent per event, so the
 * runtime may apply it again after a crash.
 */
export const statusProjection = defineStage<EventType, StatusProjectionDeps>({
  name: STATUS_STAGE,
  inputs: STATUS_STREAMS.map((stream) => ({ stream, types: Streams[stream].eventTypes })),
  emits: [],
  handle: (event, ctx) => ({
    effect: async () => {
      const mark = latencyMarkOf(event as AnyEnvelope, ctx.delivery.storedAtMs);
      await ctx.deps.store.record(lineageEntryOf(event, ctx.delivery, traceIdOf(ctx)), mark);
      // The second of accept and outcome to be recorded completes the transfer's latency; a
      // crash between the claim and the observation loses that one sample (never counts twice).
      if (mark && ctx.deps.latency) {
        const done = await ctx.deps.store.settle(event.data.transferId);
        if (done) ctx.deps.latency.observe({ outcome: done.outcome }, done.seconds);
      }
      return [];
    },
  }),
});

/** What the projection records of one delivered event. */
export function lineageEntryOf(
  event: Envelope,
  delivery: Delivery,
  traceId: string | undefined,
): LineageEntry {
  const detail = detailOf(event as AnyEnvelope);
  return {
    type: event.type,
    eventId: event.eventId,
    causationId: event.causationId,
    transferId: event.data.transferId,
    stream: delivery.stream,
    sequence: delivery.streamSequence,
    occurredAt: event.occurredAt,
    ...(event.actor !== undefined ? { actor: event.actor } : {}),
    ...(traceId ? { traceId } : {}),
    ...(detail ? { detail } : {}),
  };
}

/** The decision an event carries, for clients asking why; undefined for plain progress. */
function detailOf(e: AnyEnvelope): Record<string, unknown> | undefined {
  switch (e.type) {
    case EventTypes.TransferRejected:
      return { reasons: e.data.reasons };
    case EventTypes.TransferScored:
      return { score: e.data.score, decision: e.data.decision };
    case EventTypes.LedgerDeclined:
      return { reason: e.data.reason };
    case EventTypes.LedgerReversed:
      return { reason: e.data.reason };
    case EventTypes.PayoutCompleted:
      return { bankReference: e.data.bankReference };
    case EventTypes.PayoutFailed:
      return { reason: e.data.reason, bankStatus: e.data.bankStatus };
    default:
      return undefined;
  }
}

/** The trace the event belongs to: the runtime's consumer span for this message. */
function traceIdOf(ctx: HandlerContext<StatusProjectionDeps>): string | undefined {
  return ctx.traceId !== "00000000000000000000000000000000" ? ctx.traceId : undefined;
}
