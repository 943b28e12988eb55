import { EventTypes, type PipelineEventType } from "@jetmesh/contracts";
import type { LineageEntry } from "./status-store.ts";

/** Where a transfer is, named for clients rather than after event types. */
export const TransferStatuses = {
  Requested: "requested",
  Validated: "validated",
  Rejected: "rejected",
  Scored: "scored",
  Posted: "posted",
  Declined: "declined",
  Paid: "paid",
  PayoutFailed: "payout_failed",
  Reversed: "reversed",
} as const;
export type TransferStatus = (typeof TransferStatuses)[keyof typeof TransferStatuses];

/**
 * The status each event type of the reference pipeline moves a transfer to, and how far along
 * the flow that is (a team stage's events, a notification say, move no status: left out).
 * The projection reads five streams concurrently, so events can be recorded out of
 * order; the furthest step wins, never the last write.
 */
const STEPS: Readonly<Record<PipelineEventType, { status: TransferStatus; rank: number }>> = {
  [EventTypes.TransferRequested]: { status: TransferStatuses.Requested, rank: 0 },
  [EventTypes.TransferValidated]: { status: TransferStatuses.Validated, rank: 1 },
  [EventTypes.TransferRejected]: { status: TransferStatuses.Rejected, rank: 1 },
  [EventTypes.TransferScored]: { status: TransferStatuses.Scored, rank: 2 },
  [EventTypes.LedgerPosted]: { status: TransferStatuses.Posted, rank: 3 },
  [EventTypes.LedgerDeclined]: { status: TransferStatuses.Declined, rank: 3 },
  [EventTypes.PayoutCompleted]: { status: TransferStatuses.Paid, rank: 4 },
  [EventTypes.PayoutFailed]: { status: TransferStatuses.PayoutFailed, rank: 4 },
  [EventTypes.LedgerReversed]: { status: TransferStatuses.Reversed, rank: 5 },
};

/** One hop of the lineage as `GET /v1/transfers/:id` shows it. */
export interface LineageHop {
  readonly type: string;
  readonly eventId: string;
  readonly causationId: string;
  readonly stream: string;
  readonly sequence: number;
  readonly occurredAt: string;
  /** Milliseconds since the event that caused it (or the one before); null for the first. */
  readonly sincePreviousMs: number | null;
  readonly traceId: string | null;
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface TransferView {
  readonly transferId: string;
  readonly status: TransferStatus;
  readonly lineage: readonly LineageHop[];
}

/** Folds a transfer's recorded events into its view; undefined when none is known. */
export function buildTransferView(
  transferId: string,
  entries: readonly LineageEntry[],
): TransferView | undefined {
  const known = entries.filter((e) => e.type in STEPS);
  if (known.length === 0) return undefined;
  const rank = (e: LineageEntry) => STEPS[e.type as PipelineEventType].rank;
  const ordered = [...known].sort(
    (a, b) =>
      Date.parse(a.occurredAt) - Date.parse(b.occurredAt) || rank(a) - rank(b) || a.sequence - b.sequence,
  );
  const byId = new Map(ordered.map((e) => [e.eventId, e]));
  const furthest = ordered.reduce((best, e) => (rank(e) >= rank(best) ? e : best));
  return {
    transferId,
    status: STEPS[furthest.type as PipelineEventType].status,
    lineage: ordered.map((e, i) => {
      const before = byId.get(e.causationId) ?? ordered[i - 1];
      return {
        type: e.type,
        eventId: e.eventId,
        causationId: e.causationId,
        stream: e.stream,
        sequence: e.sequence,
        occurredAt: e.occurredAt,
        sincePreviousMs: before ? Date.parse(e.occurredAt) - Date.parse(before.occurredAt) : null,
        traceId: e.traceId ?? null,
        ...(e.detail ? { detail: e.detail } : {}),
      };
    }),
  };
}
