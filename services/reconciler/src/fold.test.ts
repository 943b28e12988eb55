import { EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { LedgerFold } from "./fold.ts";

const ev = (
  type: "ledger.posted" | "ledger.declined" | "ledger.reversed",
  transferId: string,
  from: string,
  to: string,
  amountMinor: number,
  eventId = `${type}-${transferId}`,
) => {
  const core = { transferId, from, to, amountMinor, currency: "EUR" };
  const lineage = { eventId, correlationId: transferId, causationId: `c-${eventId}`, producer: "ledger" };
  if (type === EventTypes.LedgerPosted) return makeEnvelope(type, { ...core, decision: "allow" }, lineage);
  if (type === EventTypes.LedgerDeclined)
    return makeEnvelope(type, { ...core, reason: "insufficient_funds" }, lineage);
  return makeEnvelope(type, { ...core, reason: "refused" }, lineage);
};

describe("fold", () => {
  it("reconciler - the fold moves money once per transfer, reverses a bank posting once, and keeps balances by sequence", () => {
    const f = new LedgerFold();
    expect(f.apply(1, ev("ledger.posted", "t1", "external", "acc-a", 1000), 0).moved).toEqual([
      "external",
      "acc-a",
    ]);
    // a second outcome of the same transfer, posted or declined, moves nothing
    expect(f.apply(2, ev("ledger.posted", "t1", "external", "acc-a", 1000, "other"), 0).moved).toEqual([]);
    expect(f.apply(3, ev("ledger.declined", "t1", "external", "acc-a", 1000), 0).moved).toEqual([]);
    f.apply(4, ev("ledger.posted", "t2", "acc-a", "bank:x", 300), 0);
    f.apply(5, ev("ledger.reversed", "t2", "acc-a", "bank:x", 300), 0);
    f.apply(6, ev("ledger.reversed", "t2", "acc-a", "bank:x", 300, "again"), 0);
    expect(f.balance("acc-a").get("EUR")).toBe(1000n);
    expect(f.balance("bank:x").get("EUR")).toBe(0n);
    expect(f.balanceAt("acc-a", 4)?.get("EUR")).toBe(700n);
    expect(f.balanceAt("acc-a", 3)?.get("EUR")).toBe(1000n);
    expect(f.balanceAt("acc-a", 0)).toEqual(new Map());
    // Redis ahead of the fold is not judged
    expect(f.balanceAt("acc-a", 7)).toBeUndefined();
    expect(f.posting("t2")).toMatchObject({ reversedSeq: 5 });
    // an undecodable message moves nothing, and the fold stands past it
    f.skip(7);
    expect(f.balanceAt("acc-a", 7)?.get("EUR")).toBe(1000n);
    // re-reading a sequence already folded changes nothing
    expect(f.apply(5, ev("ledger.posted", "t9", "external", "acc-z", 1), 0).moved).toEqual([]);
  });

  it("reconciler - an overdraft is reported at the sequence that made it; external may go below zero", () => {
    const f = new LedgerFold();
    expect(f.apply(1, ev("ledger.posted", "t1", "external", "acc-a", 50), 0).overdrafts).toEqual([]);
    const { overdrafts } = f.apply(2, ev("ledger.posted", "t2", "acc-a", "acc-b", 80), 0);
    expect(overdrafts).toEqual([
      {
        account: "acc-a",
        currency: "EUR",
        balance: -30n,
        seq: 2,
        eventId: "ledger.posted-t2",
        transferId: "t2",
      },
    ]);
  });

  it("reconciler - past the kept history an old sequence is unknown, not guessed", () => {
    const f = new LedgerFold();
    for (let i = 1; i <= 20; i++) f.apply(i, ev("ledger.posted", `t${i}`, "external", "acc-a", 1), 0);
    expect(f.balanceAt("acc-a", 20)?.get("EUR")).toBe(20n);
    expect(f.balanceAt("acc-a", 5)?.get("EUR")).toBe(5n);
    expect(f.balanceAt("acc-a", 4)).toBeUndefined();
  });
});
