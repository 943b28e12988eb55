import { AccountPatterns, EventTypes, type LedgerPosted } from "@jetmesh/contracts";
import { defineStage, emit } from "@jetmesh/stage";
import type { BankClient } from "./bank-client.ts";

export interface PayoutDeps {
  readonly bank: BankClient;
}

/** True for transfers that leave the system through the external bank. */
export function isPayout(t: LedgerPosted): boolean {
  return AccountPatterns.bank.test(t.to);
}

/**
 * payout: LEDGER ledger.posted → PAYOUTS payouts.completed | payouts.failed for
 * transfers to a `bank:…` account; every other posting is acknowledged with no output.
 *
 * The bank call is the effect, keyed by the input eventId through the bank's
 * Idempotency-Key: a re-applied effect after a crash or a timeout gets the bank's first
 * answer back and pays nothing twice. A refusal (4xx) ends in payouts.failed, from which
 * the ledger compensates; timeouts, network errors and 5xx are transient and retried.
 */
export const payoutStage = defineStage<typeof EventTypes.LedgerPosted, PayoutDeps>({
  name: "payout",
  inputs: [{ stream: "LEDGER", types: [EventTypes.LedgerPosted] }],
  emits: [EventTypes.PayoutCompleted, EventTypes.PayoutFailed],
  handle: (event, ctx) => {
    if (!isPayout(event.data)) return [];
    const { transferId, from, to, amountMinor, currency } = event.data;
    const transfer = { transferId, from, to, amountMinor, currency };
    return {
      effect: async () => {
        const outcome = await ctx.deps.bank.pay(
          { transferId, account: to, amountMinor, currency },
          event.eventId,
          { signal: ctx.signal, parent: ctx.traceContext },
        );
        if (outcome.paid)
          return [emit(EventTypes.PayoutCompleted, { ...transfer, bankReference: outcome.reference })];
        ctx.logger.warn(
          { bank_status: outcome.status, reason: outcome.reason },
          "payout refused by the bank",
        );
        return [
          emit(EventTypes.PayoutFailed, { ...transfer, reason: outcome.reason, bankStatus: outcome.status }),
        ];
      },
    };
  },
});
