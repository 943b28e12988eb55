import { AccountPatterns, type AnyEnvelope, EventTypes } from "@jetmesh/contracts";
import { Histogram, type Registry } from "prom-client";

/** How a transfer ended (I1's terminal outcomes), as the latency metric labels it. */
export const OutcomeKinds = {
  Rejected: "rejected",
  Declined: "declined",
  /** A posting to an account that is not a bank's: nothing follows it. */
  Posted: "posted",
  /** A bank posting the bank paid. */
  Paid: "paid",
  /** A bank posting the bank refused, reversed by the ledger. */
  Reversed: "reversed",
} as const;
export type OutcomeKind = (typeof OutcomeKinds)[keyof typeof OutcomeKinds];

/**
 * What an event marks in its transfer's status hash for the latency: the accept time (the
 * request's occurredAt, which the gateway stamps when it accepts) or the terminal outcome and
 * when the stream stored it (an output's occurredAt is its input's, so the outcome's own time is
 * the broker's store time). Both come from the event and the broker, never from a process's
 * memory, so they survive a gateway restart.
 */
export type LatencyMark =
  | { readonly kind: "accepted"; readonly atMs: number }
  | { readonly kind: "outcome"; readonly outcome: OutcomeKind; readonly atMs: number };

/**
 * The mark `event` leaves, or undefined for an event on the way (validated, scored, a bank
 * posting…) and for an outcome without a store time (a replay).
 */
export function latencyMarkOf(event: AnyEnvelope, storedAtMs: number | undefined): LatencyMark | undefined {
  const outcome = (o: OutcomeKind): LatencyMark | undefined =>
    storedAtMs === undefined ? undefined : { kind: "outcome", outcome: o, atMs: storedAtMs };
  switch (event.type) {
    case EventTypes.TransferRequested: {
      const atMs = Date.parse(event.occurredAt);
      return Number.isFinite(atMs) ? { kind: "accepted", atMs } : undefined;
    }
    case EventTypes.TransferRejected:
      return outcome(OutcomeKinds.Rejected);
    case EventTypes.LedgerDeclined:
      return outcome(OutcomeKinds.Declined);
    case EventTypes.LedgerPosted:
      return AccountPatterns.bank.test(event.data.to) ? undefined : outcome(OutcomeKinds.Posted);
    case EventTypes.PayoutCompleted:
      return outcome(OutcomeKinds.Paid);
    case EventTypes.LedgerReversed:
      return outcome(OutcomeKinds.Reversed);
    default:
      return undefined;
  }
}

/** Buckets (seconds): the latency SLO's 7.5 s among them (slo-alerts.yml). */
export const OUTCOME_LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 30, 60, 300, 1800];

/**
 * `jetmesh_accepted_to_outcome_seconds{outcome}`: from the gateway's 202 (the request event's
 * occurredAt) to the terminal outcome (its event's occurredAt), observed once per transfer
 * by whichever gateway instance records the second of the two (status-store.ts settle).
 */
export function createOutcomeLatencyMetric(registry: Registry): Histogram<"outcome"> {
  const h = new Histogram({
    name: "jetmesh_accepted_to_outcome_seconds",
    help: "Time from a transfer's acceptance (202) to its terminal outcome, by outcome; once per transfer",
    labelNames: ["outcome"] as const,
    buckets: OUTCOME_LATENCY_BUCKETS,
    registers: [registry],
  });
  // Every outcome from the start, so that rate() and increase() see the first one.
  for (const outcome of Object.values(OutcomeKinds)) h.zero({ outcome });
  return h;
}
