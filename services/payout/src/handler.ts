import {
  AccountPatterns,
  type Envelope,
  EventTypes,
  type LedgerPosted,
  transferCoreOf,
} from "@jetmesh/contracts";
import {
  defineStage,
  type Emission,
  emit,
  type HandlerContext,
  PermanentError,
  TransientError,
} from "@jetmesh/stage";
import type { BankClient, BankOutcome } from "./bank-client.ts";
import type { PayoutRecord, PayoutRecords } from "./records.ts";

export interface PayoutDeps {
  readonly bank: BankClient;
  readonly records: PayoutRecords;
  /**
   * How long the bank remembers an idempotency key (its documented retention). Past it, a
   * key whose outcome this stage never learned may be paid again if sent again: the payout
   * is parked for an operator instead.
   */
  readonly bankRetentionMs: number;
}

/** True for transfers that leave the system through the external bank. */
export function isPayout(t: LedgerPosted): boolean {
  return AccountPatterns.bank.test(t.to);
}

/** The bank's idempotency key of a transfer: one per transfer, whatever event asks for it. */
export function bankKeyOf(transferId: string): string {
  return `payout:${transferId}`;
}

/** The event of a final outcome: the same bytes for every delivery that finds it. */
function outcomeEvent(t: LedgerPosted, r: PayoutRecord): Emission {
  const transfer = transferCoreOf(t);
  if (r.state === "paid")
    return emit(EventTypes.PayoutCompleted, { ...transfer, bankReference: r.reference });
  if (r.state === "refused")
    return emit(EventTypes.PayoutFailed, { ...transfer, reason: r.reason, bankStatus: r.status });
  throw new Error("an intent has no event");
}

function recordOf(bankKey: string, o: BankOutcome): PayoutRecord {
  const since = new Date().toISOString();
  return o.paid
    ? { state: "paid", bankKey, since, reference: o.reference }
    : { state: "refused", bankKey, since, status: o.status, reason: o.reason };
}

/**
 * The effect: pay a transfer at most once, and learn its outcome without ever guessing it.
 * 1. A final outcome recorded (by any earlier delivery, of any event of this transfer) is
 *    replayed as it is.
 * 2. The intent is recorded before the first call. An intent found (an earlier attempt
 *    reached the bank, or may have) is first resolved by asking the bank for the key: paid or
 *    refused is recorded; "processing" is retried; "unknown" means never received, or
 *    forgotten: within the bank's retention it was never received, so it is sent; past it,
 *    sending could pay twice, so the input is parked for an operator.
 * 3. The call: only a 2xx with a reference (paid) or a 422 (refused) is final and recorded;
 *    everything else is retried (a 409 while the key is in flight, any other 4xx, malformed
 *    answers, timeouts, 5xx). Compensation (payouts.failed) follows a positive refusal only.
 * Records are written with compare-and-set on the revision read: a paused attempt that wakes
 * up late cannot overwrite what another attempt recorded.
 */
async function payOnce(
  event: Envelope<typeof EventTypes.LedgerPosted>,
  ctx: HandlerContext<PayoutDeps>,
): Promise<readonly Emission[]> {
  const t = event.data;
  const { bank, records, bankRetentionMs } = ctx.deps;
  const call = { signal: ctx.signal, parent: ctx.traceContext };
  const key = bankKeyOf(t.transferId);
  const { record, revision, created } = await records.begin(t.transferId, key);
  if (record.state !== "intent") return [outcomeEvent(t, record)];
  // An intent found (not created now): an earlier attempt went, or may have gone, to the bank.
  if (!created) {
    const known = await bank.status(key, call);
    if (known.state === "processing")
      throw new TransientError(`bank is still processing ${key}`, { retryAfterMs: 250 });
    if (known.state === "decided")
      return [outcomeEvent(t, await records.settle(t.transferId, recordOf(key, known.outcome), revision))];
    const age = Date.now() - Date.parse(record.since);
    if (age >= bankRetentionMs)
      throw new PermanentError(
        `payout outcome unknown: an attempt for ${key} may have reached the bank ${Math.round(age / 1000)} s ago, and the bank forgets keys after ${Math.round(bankRetentionMs / 1000)} s; reconcile with the bank before replaying`,
      );
  }
  const outcome = await bank.pay(
    { transferId: t.transferId, account: t.to, amountMinor: t.amountMinor, currency: t.currency },
    key,
    call,
  );
  const stands = await records.settle(t.transferId, recordOf(key, outcome), revision);
  if (stands.state === "refused")
    ctx.logger.warn({ bank_status: stands.status, reason: stands.reason }, "payout refused by the bank");
  return [outcomeEvent(t, stands)];
}

/**
 * payout: LEDGER ledger.posted → PAYOUTS payouts.completed | payouts.failed for transfers
 * to a `bank:…` account; every other posting is acknowledged with no output. The bank call
 * is the effect, keyed by the transfer (not the event: a second posting of one transfer is
 * never paid twice), with its intent and outcome recorded in JetStream (records.ts).
 */
export const payoutStage = defineStage<typeof EventTypes.LedgerPosted, PayoutDeps>({
  name: "payout",
  inputs: [{ stream: "LEDGER", types: [EventTypes.LedgerPosted] }],
  emits: [EventTypes.PayoutCompleted, EventTypes.PayoutFailed],
  probes: { bank: (deps) => deps.bank.probe() },
  handle: (event, ctx) => {
    if (!isPayout(event.data)) return [];
    return { effect: () => payOnce(event, ctx) };
  },
});
