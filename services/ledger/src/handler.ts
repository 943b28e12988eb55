import { EventTypes, StreamNames } from "@jetmesh/contracts";
import { defineStage, isEvent, PermanentError, type Plan } from "@jetmesh/stage";
import type { LedgerWriter } from "./ledger-writer.ts";

/** What the ledger's handler uses. */
export interface LedgerDeps {
  readonly writer: Pick<LedgerWriter, "decide">;
}

/**
 * The ledger stage: the only writer of LEDGER, the source of truth for balances.
 * - transfers.scored → ledger.posted, or ledger.declined (`risk_denied`, `insufficient_funds`);
 * - payouts.failed → ledger.reversed of the stored posting, once per transfer.
 * The decision and its append are the stage's effect (ledger-writer.ts): decided on the fold
 * of LEDGER and appended with optimistic concurrency, so the append is the commit point. The
 * runtime publishes nothing for it: the handler returns no emissions, and an input whose
 * decision the log already holds (a redelivery, a second scoring of one transfer) appends
 * nothing again.
 */
export const ledgerStage = defineStage<
  typeof EventTypes.TransferScored | typeof EventTypes.PayoutFailed,
  LedgerDeps
>({
  name: "ledger",
  inputs: [
    { stream: StreamNames.Risk, types: [EventTypes.TransferScored] },
    { stream: StreamNames.Payouts, types: [EventTypes.PayoutFailed] },
  ],
  // What it writes, through its writer: declared so that start-up waits for LEDGER and checks its window.
  emits: [EventTypes.LedgerPosted, EventTypes.LedgerDeclined, EventTypes.LedgerReversed],
  handle: (evt, ctx): Plan => {
    if (!isEvent(evt, EventTypes.TransferScored) && !isEvent(evt, EventTypes.PayoutFailed))
      throw new PermanentError(`ledger does not handle ${(evt as { type: string }).type}`);
    return {
      effect: async () => {
        await ctx.deps.writer.decide(evt, ctx.traceContext);
        return [];
      },
    };
  },
});
