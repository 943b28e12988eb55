// checkBankRecord over hand-made stored events and a hand-made bank record: pure, no servers.
import {
  type AnyEnvelope,
  type BankPayout,
  type BankRecord,
  type EventDataMap,
  type EventType,
  Headers,
  makeEnvelope,
} from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { checkBankRecord, type StoredEvent } from "./index.ts";

let seq = 0;
function stored<T extends EventType>(stream: string, type: T, data: EventDataMap[T]): StoredEvent {
  const transferId = (data as { transferId: string }).transferId;
  const env = makeEnvelope(type, data, {
    eventId: `ev-${++seq}`,
    correlationId: transferId,
    causationId: `cause-${seq}`,
    producer: "test",
  }) as AnyEnvelope;
  return { stream, seq, subject: `${type}.00`, timestampMs: seq, headers: {}, env };
}

const core = (t: string, to = "bank:acme-1", amountMinor = 500) => ({
  transferId: t,
  from: "acc-1",
  to,
  amountMinor,
  currency: "EUR",
});
const posted = (t: string, to?: string, amount?: number) =>
  stored("LEDGER", "ledger.posted", { ...core(t, to, amount), decision: "allow" });
const reversed = (t: string) => stored("LEDGER", "ledger.reversed", { ...core(t), reason: "refused" });
const completed = (t: string, ref: string) =>
  stored("PAYOUTS", "payouts.completed", { ...core(t), bankReference: ref });
const failed = (t: string) =>
  stored("PAYOUTS", "payouts.failed", { ...core(t), reason: "account refused", bankStatus: 422 });
const paid = (t: string, ref: string, amountMinor = 500): BankPayout => ({
  idempotencyKey: `payout:${t}`,
  reference: ref,
  transferId: t,
  account: "bank:acme-1",
  amountMinor,
  currency: "EUR",
  paidAt: "2026-01-01T00:00:00.000Z",
});
const refusal = (t: string) => ({
  idempotencyKey: `payout:${t}`,
  transferId: t,
  reason: "account refused",
  refusedAt: "2026-01-01T00:00:00.000Z",
});

describe("checkBankRecord", () => {
  it("bank record - a paid and a refused-then-reversed transfer agree with the log", () => {
    const r = checkBankRecord({
      ledger: [posted("t1"), posted("t2"), reversed("t2"), posted("t3", "acc-2")],
      payouts: [completed("t1", "bnk-1"), failed("t2")],
      bank: { payouts: [paid("t1", "bnk-1")], refusals: [refusal("t2")] },
    });
    expect(r.violations).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.counts).toMatchObject({ postedToBank: 2, paidTransfers: 1, refusedTransfers: 1, reversed: 1 });
  });

  it("bank record - paid twice, paid then reversed, refused never reversed, posted never decided", () => {
    const bank: BankRecord = {
      payouts: [paid("t1", "bnk-1"), paid("t1", "bnk-1b"), paid("t2", "bnk-2")],
      refusals: [refusal("t3")],
    };
    const dlq: StoredEvent = {
      stream: "DLQ",
      seq: 1,
      subject: "dlq.payout",
      timestampMs: 1,
      headers: {
        [Headers.CorrelationId.toLowerCase()]: "t4",
        [Headers.DlqReason.toLowerCase()]: "payout outcome unknown",
      },
    };
    const r = checkBankRecord({
      ledger: [posted("t1"), posted("t2"), reversed("t2"), posted("t3"), posted("t4")],
      payouts: [completed("t1", "bnk-1"), failed("t2"), failed("t3")],
      dlq: [dlq],
      bank,
    });
    expect(r.ok).toBe(false);
    expect(r.violationCounts).toEqual({ B1: 1, B2: 1, B3: 1, B4: 1, B5: 0 });
    expect(r.violations.map((v) => `${v.invariant} ${v.transferId}`)).toEqual([
      "B1 t1",
      "B2 t2",
      "B3 t3",
      "B4 t4",
    ]);
    expect(r.violations[3]?.message).toMatch(/parked in the DLQ: payout outcome unknown/);
  });

  it("bank record - the bank paid something else than LEDGER posted, or PAYOUTS invents an answer", () => {
    const r = checkBankRecord({
      ledger: [posted("t1"), posted("t2"), posted("t3")],
      payouts: [completed("t1", "bnk-1"), completed("t2", "bnk-x"), completed("t3", "bnk-3"), failed("t5")],
      bank: { payouts: [paid("t1", "bnk-1", 999), paid("t2", "bnk-2"), paid("t9", "bnk-9")], refusals: [] },
    });
    // t1 wrong amount, t2 wrong reference, t3 never paid (also B4), t5 never refused, t9 never posted.
    expect(r.violationCounts.B5).toBe(5);
    expect(r.violationCounts.B4).toBe(1);
  });
});
