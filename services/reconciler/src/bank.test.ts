import { type BankPayout, type BankRefusal, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { compareWithBank, type PayoutOutcome } from "./bank.ts";
import { LedgerFold } from "./fold.ts";

const T0 = Date.parse("2026-11-30T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const lineage = (id: string) => ({
  eventId: `e-${id}`,
  correlationId: id,
  causationId: `c-${id}`,
  producer: "ledger",
});

function ledger(): LedgerFold {
  const f = new LedgerFold();
  let seq = 0;
  const post = (transferId: string, to: string, amountMinor: number) =>
    f.apply(
      ++seq,
      makeEnvelope(
        EventTypes.LedgerPosted,
        { transferId, from: "external", to, amountMinor, currency: "EUR", decision: "allow" },
        lineage(transferId),
      ),
      T0,
    );
  const reverse = (transferId: string, to: string, amountMinor: number) =>
    f.apply(
      ++seq,
      makeEnvelope(
        EventTypes.LedgerReversed,
        { transferId, from: "external", to, amountMinor, currency: "EUR", reason: "refused" },
        { ...lineage(transferId), eventId: `r-${transferId}` },
      ),
      T0,
    );
  post("t-ok", "bank:a", 100);
  post("t-twice", "bank:a", 100);
  post("t-differs", "bank:a", 100);
  post("t-rev-paid", "bank:a", 100);
  reverse("t-rev-paid", "bank:a", 100);
  post("t-refused", "bank:a", 100);
  reverse("t-refused", "bank:a", 100);
  post("t-refused-open", "bank:a", 100);
  post("t-refused-completed", "bank:a", 100);
  post("t-unknown", "bank:a", 100);
  post("t-customer", "acc-1", 100);
  return f;
}

const paid = (transferId: string, amountMinor = 100, account = "bank:a"): BankPayout => ({
  idempotencyKey: `payout:${transferId}`,
  transferId,
  account,
  amountMinor,
  currency: "EUR",
  reference: `ref-${transferId}`,
  paidAt: iso(T0 + 10),
});
const refused = (transferId: string): BankRefusal => ({
  idempotencyKey: `payout:${transferId}`,
  transferId,
  reason: "account refused",
  refusedAt: iso(T0 + 10),
});
const outcome = (type: PayoutOutcome["type"]): PayoutOutcome => ({ type, seq: 1, at: T0 + 20 });

describe("bank comparison", () => {
  it("reconciler - each way the bank's record can disagree with LEDGER and PAYOUTS is found, and nothing else", () => {
    const fold = ledger();
    const outcomes = new Map<string, PayoutOutcome>([
      ["t-ok", outcome(EventTypes.PayoutCompleted)],
      ["t-refused-completed", outcome(EventTypes.PayoutCompleted)],
      ["t-unknown", outcome(EventTypes.PayoutCompleted)],
    ]);
    const cmp = compareWithBank({
      postings: fold.postings(),
      outcomes,
      payouts: [
        paid("t-ok"),
        paid("t-twice"),
        paid("t-twice"),
        paid("t-differs", 90),
        paid("t-rev-paid"),
        paid("t-ghost"),
      ],
      refusals: [refused("t-refused"), refused("t-refused-open"), refused("t-refused-completed")],
      horizon: T0 + 60_000,
      graceMs: 1000,
      isPosted: (id) => fold.posting(id) !== undefined,
    });
    expect([...cmp.found.keys()].sort()).toEqual([
      "t-differs:paid_differs",
      "t-ghost:paid_unposted",
      "t-refused-completed:refused_but_completed",
      "t-refused-open:refused_not_reversed",
      "t-rev-paid:paid_but_reversed",
      "t-twice:paid_twice",
    ]);
    // PAYOUTS says paid, the list does not name it: the status endpoint decides
    expect(cmp.confirm).toEqual(["t-unknown"]);
    expect(cmp.judged.has("t-ok")).toBe(true);
    expect(cmp.judged.has("t-customer")).toBe(false);
    expect(cmp.found.get("t-twice:paid_twice")).toMatchObject({
      kind: "bank_mismatch",
      transferId: "t-twice",
      account: "bank:a",
      command: "pnpm jetmesh trace t-twice",
      evidence: { check: "paid_twice", bankKey: "payout:t-twice" },
    });
  });

  it("reconciler - what happened within the grace, or past what the followers have read, is not judged yet", () => {
    const fold = ledger();
    const cmp = compareWithBank({
      postings: fold.postings(),
      outcomes: new Map(),
      payouts: [paid("t-ghost")],
      refusals: [refused("t-refused-open")],
      horizon: T0 + 500,
      graceMs: 1000,
      isPosted: (id) => fold.posting(id) !== undefined,
    });
    expect(cmp.found.size).toBe(0);
    expect(cmp.judged.size).toBe(0);
  });
});
