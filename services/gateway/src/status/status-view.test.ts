import { describe, expect, it } from "vitest";
import type { LineageEntry } from "./status-store.ts";
import { buildTransferView } from "./status-view.ts";

const t0 = Date.parse("2026-11-26T10:00:00.000Z");
function entry(type: string, n: number, causationId: string, stream: string, atMs: number): LineageEntry {
  return {
    type,
    eventId: `e-${n}`,
    causationId,
    transferId: "t-1",
    stream,
    sequence: n,
    occurredAt: new Date(t0 + atMs).toISOString(),
    traceId: "a".repeat(32),
  };
}

const requested = entry("transfers.requested", 1, "idempotency-key:k", "INGRESS", 0);
const validated = entry("transfers.validated", 2, "e-1", "VALIDATION", 4);
const scored = entry("transfers.scored", 3, "e-2", "RISK", 9);
const posted = entry("ledger.posted", 4, "e-3", "LEDGER", 15);
const failed = entry("payouts.failed", 5, "e-4", "PAYOUTS", 40);
const reversed = entry("ledger.reversed", 6, "e-5", "LEDGER", 41);

describe("status view", () => {
  it("gateway - status is the furthest step whatever order the events were recorded in", () => {
    const view = buildTransferView("t-1", [posted, requested, scored, validated]);
    expect(view?.status).toBe("posted");
    expect(view?.lineage.map((h) => h.type)).toEqual([
      "transfers.requested",
      "transfers.validated",
      "transfers.scored",
      "ledger.posted",
    ]);
    expect(view?.lineage.map((h) => h.sincePreviousMs)).toEqual([null, 4, 5, 6]);
    expect(view?.lineage[1]).toMatchObject({
      eventId: "e-2",
      causationId: "e-1",
      stream: "VALIDATION",
      sequence: 2,
    });
  });

  it("gateway - a failed payout ends the transfer reversed, a rejection ends it early", () => {
    expect(buildTransferView("t-1", [reversed, failed, posted, scored, validated, requested])?.status).toBe(
      "reversed",
    );
    expect(buildTransferView("t-1", [failed, posted])?.status).toBe("payout_failed");
    const rejected = { ...entry("transfers.rejected", 2, "e-1", "VALIDATION", 3), detail: { reasons: [] } };
    expect(buildTransferView("t-1", [requested, rejected])).toMatchObject({
      status: "rejected",
      lineage: [{}, { detail: { reasons: [] } }],
    });
  });

  it("gateway - a transfer with no known event has no view", () => {
    expect(buildTransferView("t-1", [])).toBeUndefined();
    expect(buildTransferView("t-1", [{ ...requested, type: "nope.nope" }])).toBeUndefined();
  });
});
