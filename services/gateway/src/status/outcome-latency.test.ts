import { EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createOutcomeLatencyMetric, latencyMarkOf } from "./outcome-latency.ts";

const core = (to: string) => ({ transferId: "t-1", from: "acc-a", to, amountMinor: 5, currency: "EUR" });
const env = (type: string, data: Record<string, unknown>) =>
  makeEnvelope(type as never, data as never, {
    eventId: "e-1",
    correlationId: "t-1",
    causationId: "c",
    producer: "test",
    occurredAt: "2026-11-30T10:00:00.000Z",
  }) as never;

describe("accepted-to-outcome latency", () => {
  it("gateway - the request marks the accept time, a terminal event its outcome at its store time; steps on the way mark nothing", () => {
    const at = Date.parse("2026-11-30T10:00:00.000Z");
    expect(
      latencyMarkOf(env(EventTypes.TransferRequested, { ...core("acc-b"), requestedAt: "x" }), 5),
    ).toEqual({
      kind: "accepted",
      atMs: at,
    });
    expect(
      latencyMarkOf(env(EventTypes.LedgerPosted, { ...core("acc-b"), decision: "allow" }), at + 900),
    ).toEqual({
      kind: "outcome",
      outcome: "posted",
      atMs: at + 900,
    });
    // a bank posting goes on to the payout; the bank's answer (or the reversal) ends it
    expect(
      latencyMarkOf(env(EventTypes.LedgerPosted, { ...core("bank:x"), decision: "allow" }), at),
    ).toBeUndefined();
    expect(
      latencyMarkOf(env(EventTypes.PayoutCompleted, { ...core("bank:x"), bankReference: "r" }), at),
    ).toMatchObject({
      outcome: "paid",
    });
    expect(
      latencyMarkOf(env(EventTypes.PayoutFailed, { ...core("bank:x"), reason: "r", bankStatus: 422 }), at),
    ).toBeUndefined();
    expect(
      latencyMarkOf(env(EventTypes.LedgerReversed, { ...core("bank:x"), reason: "r" }), at),
    ).toMatchObject({
      outcome: "reversed",
    });
    expect(
      latencyMarkOf(env(EventTypes.TransferRejected, { ...core("acc-b"), reasons: [] }), at),
    ).toMatchObject({
      outcome: "rejected",
    });
    expect(
      latencyMarkOf(env(EventTypes.LedgerDeclined, { ...core("acc-b"), reason: "x" }), at),
    ).toMatchObject({
      outcome: "declined",
    });
    // a replay carries no store time of its own: no outcome mark
    expect(
      latencyMarkOf(env(EventTypes.LedgerDeclined, { ...core("acc-b"), reason: "x" }), undefined),
    ).toBeUndefined();
  });

  it("gateway - the histogram exports every outcome from the start, with the SLO's 7.5 s bucket", async () => {
    const registry = new Registry();
    createOutcomeLatencyMetric(registry);
    const text = await registry.metrics();
    for (const o of ["rejected", "declined", "posted", "paid", "reversed"])
      expect(text).toContain(`jetmesh_accepted_to_outcome_seconds_count{outcome="${o}"} 0`);
    expect(text).toContain('le="7.5"');
  });
});
