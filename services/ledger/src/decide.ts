import {
  AccountPatterns,
  type DeclineReason,
  EventTypes,
  LedgerProjection,
  type PayoutFailed,
  type TransferScored,
  transferCoreOf,
} from "@jetmesh/contracts";
import { type Emission, emit } from "@jetmesh/stage";
import type { TransferOutcome } from "./fold.ts";

/**
 * The ledger's decisions as pure functions of what the log says: a scored transfer is
 * posted or declined, a failed payout reversed, on the balances and outcomes of the fold of
 * LEDGER (plus the decisions on their way into it). Nothing here reads Redis: the log is the
 * only state a decision rests on, and its append is the commit point (ledger-writer.ts).
 */

/** What a decision reads: the fold of LEDGER, with the decisions not yet in it on top. */
export interface LedgerView {
  /** Balance in minor units; 0 for an account the log never named. */
  balance(account: string, currency: string): bigint;
  /** The transfer's outcome, undefined when the log has none or it is past the decision horizon. */
  outcome(transferId: string): TransferOutcome | undefined;
  /**
   * True when an input that occurred at `occurredAt` (ISO time) is old enough that an outcome
   * of its transfer may be forgotten (outcome-ttl.ts, rule 1); absent: nothing is forgotten.
   */
  forgets?(occurredAt: string): boolean;
}

/** What to do with one input. */
export type Decision =
  /** The transfer already has this outcome (or reversal) in the log: nothing to append. */
  | { readonly kind: "decided"; readonly outcome: TransferOutcome }
  /** Append this event. */
  | { readonly kind: "append"; readonly emission: Emission }
  /** A reversal of a posting the view does not hold (yet). */
  | { readonly kind: "unknown" }
  /** An input that can never be decided (forged or broken upstream): park it. */
  | { readonly kind: "refuse"; readonly reason: string };

const external = LedgerProjection.externalAccount;

/**
 * Whatever the stages upstream say, the ledger moves only positive safe-integer amounts
 * between accounts of the known shapes: money leaves a customer (or enters from `external`)
 * and lands on a customer or a bank account.
 */
function transferShape(t: {
  from: string;
  to: string;
  amountMinor: number;
  currency: string;
}): string | undefined {
  if (!Number.isSafeInteger(t.amountMinor) || t.amountMinor <= 0)
    return `amount ${t.amountMinor} is not a positive integer`;
  if (!/^[A-Z]{3}$/.test(t.currency)) return `currency ${JSON.stringify(t.currency)} is not a code`;
  if (t.from !== external && !AccountPatterns.customer.test(t.from))
    return `source account ${JSON.stringify(t.from)} is neither ${external} nor a customer`;
  if (!AccountPatterns.customer.test(t.to) && !AccountPatterns.bank.test(t.to))
    return `destination account ${JSON.stringify(t.to)} is neither a customer nor a bank account`;
  if (t.from === t.to) return "source and destination are the same account";
  return undefined;
}

/**
 * transfers.scored → ledger.posted, or ledger.declined (`risk_denied` for a denied score,
 * `insufficient_funds` when `from`, unless it is `external`, would go below zero); refused
 * when the transfer is unknown and its input (which occurred at `occurredAt`) is past the
 * input horizon (outcome-ttl.ts).
 */
export function decidePosting(view: LedgerView, t: TransferScored, occurredAt?: string): Decision {
  const known = view.outcome(t.transferId);
  if (known) return { kind: "decided", outcome: known };
  // Its outcome may be one the ledger no longer remembers: posting it would post it twice.
  if (occurredAt !== undefined && view.forgets?.(occurredAt))
    return {
      kind: "refuse",
      reason: `transfer ${t.transferId} refused: its input occurred at ${occurredAt}, past the ledger's input horizon (half of LEDGER_OUTCOME_TTL_MS), and the ledger holds no outcome of it; it may have been decided and forgotten. Check LEDGER (jetmesh view ledger) before sending it again`,
    };
  const bad = transferShape(t);
  if (bad) return { kind: "refuse", reason: `transfer ${t.transferId} refused: ${bad}` };
  const core = transferCoreOf(t);
  const decline = (reason: DeclineReason): Decision => ({
    kind: "append",
    emission: emit(EventTypes.LedgerDeclined, { ...core, reason }),
  });
  if (t.decision === "deny") return decline("risk_denied");
  if (t.from !== external && view.balance(t.from, t.currency) < BigInt(t.amountMinor))
    return decline("insufficient_funds");
  return { kind: "append", emission: emit(EventTypes.LedgerPosted, { ...core, decision: t.decision }) };
}

/**
 * payouts.failed → ledger.reversed of the stored posting (its accounts and amount, not the
 * input's), once per transfer. Compensation has no funds check: it undoes money that moved to
 * a bank account (the only payouts), which nothing spends.
 */
export function decideReversal(view: LedgerView, f: PayoutFailed): Decision {
  const posting = view.outcome(f.transferId);
  if (!posting) return { kind: "unknown" };
  if (posting.status !== "posted")
    return {
      kind: "refuse",
      reason: `transfer ${f.transferId} was ${posting.status} (${posting.detail}); nothing to reverse`,
    };
  if (posting.reversal) return { kind: "decided", outcome: posting };
  // Payouts go to bank accounts only, which never spend: undoing one never takes an account
  // below zero. A customer may have spent what a posting gave it, so a "failed payout" of a
  // posting to a customer (forged or broken upstream) would overdraw it.
  if (!AccountPatterns.bank.test(posting.to))
    return {
      kind: "refuse",
      reason: `payouts.failed for ${f.transferId}, whose posting paid ${posting.to}: only a posting to a bank account is paid out`,
    };
  if (
    posting.from !== f.from ||
    posting.to !== f.to ||
    posting.amountMinor !== f.amountMinor ||
    posting.currency !== f.currency
  )
    return {
      kind: "refuse",
      reason: `payouts.failed for ${f.transferId} names ${f.amountMinor} ${f.currency} ${f.from}→${f.to}; the posting moved ${posting.amountMinor} ${posting.currency} ${posting.from}→${posting.to}`,
    };
  return {
    kind: "append",
    emission: emit(EventTypes.LedgerReversed, {
      transferId: posting.transferId,
      from: posting.from,
      to: posting.to,
      amountMinor: posting.amountMinor,
      currency: posting.currency,
      reason: f.reason,
    }),
  };
}
