import { EventTypes } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { SagaTracker } from "./sagas.ts";

const DEADLINES = { validate: 100, score: 100, decide: 100, payout: 1000, reverse: 100 };
const ref = (type: string, stream: string, at: number, seq = 1) => ({ type, stream, seq, at });
const always = () => true;

describe("sagas", () => {
  it("reconciler - a transfer waits in the step its furthest event starts, whatever order the streams are read in", () => {
    const s = new SagaTracker();
    s.observe("t", ref(EventTypes.TransferScored, "RISK", 30));
    expect(s.get("t")).toMatchObject({ step: "decide", since: 30 });
    s.observe("t", ref(EventTypes.TransferRequested, "INGRESS", 10));
    expect(s.get("t")).toMatchObject({ step: "decide", since: 30 });
    expect(s.overdue(131, DEADLINES, always).map((t) => t.transferId)).toEqual(["t"]);
    expect(s.overdue(129, DEADLINES, always)).toEqual([]);
    // not judged while the stream that would end the step has not been read that far
    expect(s.overdue(131, DEADLINES, () => false)).toEqual([]);
  });

  it("reconciler - a bank posting waits for the payout, a refusal for the reversal; outcomes finish", () => {
    const s = new SagaTracker();
    s.observe("t", ref(EventTypes.LedgerPosted, "LEDGER", 10), true);
    expect(s.get("t")?.step).toBe("payout");
    s.observe("t", ref(EventTypes.PayoutFailed, "PAYOUTS", 20));
    expect(s.get("t")?.step).toBe("reverse");
    expect(s.observe("t", ref(EventTypes.LedgerReversed, "LEDGER", 30))?.finished).toBe(true);
    expect(s.get("t")).toBeUndefined();
    // a late-read earlier event of a finished transfer does not start it again
    expect(s.observe("t", ref(EventTypes.TransferRequested, "INGRESS", 1))).toBeUndefined();
    s.prune(31);
    expect(s.isFinished("t")).toBe(false);

    s.observe("u", ref(EventTypes.LedgerPosted, "LEDGER", 10), false);
    expect(s.isFinished("u")).toBe(true);
  });

  it("reconciler - a flagged step is resolved when the transfer leaves it, not by an earlier event", () => {
    const s = new SagaTracker();
    s.observe("t", ref(EventTypes.TransferValidated, "VALIDATION", 10));
    const [t] = s.overdue(500, DEADLINES, always);
    if (!t) throw new Error("not overdue");
    t.flagged = "score";
    expect(s.overdue(500, DEADLINES, always)).toEqual([]);
    expect(s.observe("t", ref(EventTypes.TransferRequested, "INGRESS", 5))?.resolved).toBeUndefined();
    expect(s.observe("t", ref(EventTypes.TransferScored, "RISK", 600))?.resolved).toBe("score");
    expect(s.get("t")?.flagged).toBeUndefined();
  });
});
