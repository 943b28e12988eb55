import {
  type DeclineReason,
  type Envelope,
  EventTypes,
  type RiskDecision,
  StreamNames,
} from "@jetmesh/contracts";
import {
  defineStage,
  type Emission,
  emit,
  type HandlerContext,
  isEvent,
  PermanentError,
  type Plan,
  TransientError,
} from "@jetmesh/stage";
import type { LedgerStore } from "./store.ts";

/** What the ledger's handler uses. */
export interface LedgerDeps {
  readonly store: Pick<LedgerStore, "post" | "reverse">;
  /** Told when a script refused because the projection is not whole (the projector restores). */
  readonly onNotReady?: (reason: string) => void;
}

type Ctx = HandlerContext<LedgerDeps>;

/** How long a refused decision waits before its retry: about one restore step. */
const NOT_READY_RETRY_MS = 1000;

function notReady(ctx: Ctx, what: string): never {
  ctx.deps.onNotReady?.(`${what} refused: projection not whole`);
  throw new TransientError("ledger projection is being restored", { retryAfterMs: NOT_READY_RETRY_MS });
}

/**
 * transfers.scored → one POST script: replay a stored outcome, or decline a denied
 * transfer, or check funds and move the money. Emits ledger.posted or ledger.declined.
 * An outcome stored for another input event (the same transfer scored twice) emits
 * nothing: the transfer already has its terminal event.
 */
async function post(evt: Envelope<typeof EventTypes.TransferScored>, ctx: Ctx): Promise<readonly Emission[]> {
  const { transferId, from, to, amountMinor, currency, decision } = evt.data;
  const r = await ctx.deps.store.post({
    cause: evt.eventId,
    transferId,
    from,
    to,
    amountMinor,
    currency,
    decision,
  });
  if (r.kind === "not-ready") notReady(ctx, "posting");
  if (r.kind === "replay" && r.cause !== evt.eventId) {
    ctx.logger.info(
      { outcome: r.status, first_cause: r.cause },
      "transfer already decided for another event; nothing to emit",
    );
    return [];
  }
  const core = { transferId, from, to, amountMinor, currency };
  if (r.kind === "replay") ctx.logger.debug({ outcome: r.status }, "replaying the stored outcome");
  return r.status === "posted"
    ? [emit(EventTypes.LedgerPosted, { ...core, decision: r.detail as RiskDecision })]
    : [emit(EventTypes.LedgerDeclined, { ...core, reason: r.detail as DeclineReason })];
}

/**
 * payouts.failed → one REVERSE script: credit `from` back and debit `to`, once per
 * transfer, with the amounts of the stored posting. Emits ledger.reversed; a redelivery
 * re-emits the same event (dropped by the duplicate window or the idempotency key).
 */
async function reverse(
  evt: Envelope<typeof EventTypes.PayoutFailed>,
  ctx: Ctx,
): Promise<readonly Emission[]> {
  const { transferId, from, to, reason } = evt.data;
  const r = await ctx.deps.store.reverse({ cause: evt.eventId, transferId, from, to, reason });
  switch (r.kind) {
    case "not-ready":
      return notReady(ctx, "reversal");
    case "unknown":
      // The posting may be in the log but not yet projected; MaxDeliver bounds the wait.
      throw new TransientError(`no posting of transfer ${transferId} to reverse yet`);
    case "not-posted":
      throw new PermanentError(`transfer ${transferId} was ${r.status} (${r.detail}); nothing to reverse`);
    default:
      if (r.kind === "replay" && r.cause !== evt.eventId) {
        ctx.logger.info(
          { first_cause: r.cause },
          "transfer already reversed for another event; nothing to emit",
        );
        return [];
      }
      return [
        emit(EventTypes.LedgerReversed, {
          transferId,
          from: r.from,
          to: r.to,
          amountMinor: r.amountMinor,
          currency: r.currency,
          reason: r.reason,
        }),
      ];
  }
}

/**
 * The ledger stage: the only writer of balances. Its Redis script is the stage's
 * effect, so the runtime runs it between its crash points; after a crash the script
 * returns the stored outcome and the same event is published again with the same id.
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
  emits: [EventTypes.LedgerPosted, EventTypes.LedgerDeclined, EventTypes.LedgerReversed],
  handle: (evt, ctx): Plan => {
    if (isEvent(evt, EventTypes.TransferScored)) return { effect: () => post(evt, ctx) };
    if (isEvent(evt, EventTypes.PayoutFailed)) return { effect: () => reverse(evt, ctx) };
    throw new PermanentError(`ledger does not handle ${(evt as { type: string }).type}`);
  },
});
