// The bank scenario for CI, in its own environment (the realistic bank with a short
// retention, the payout's short timeout and horizon, the payout reaching the bank through
// the runner's link): the payout killed and frozen mid-call, a bank outage longer than the
// payout's redelivery horizon, requests overtaken by their retry. Asserts the faults'
// reach on the bank's own counters and the bank's record against the log (B1-B5).
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { runScenario, scenarioNamed } from "@jetmesh/chaos";
import { expectSurvived, SEED } from "./support.ts";

const bank = scenarioNamed("bank");

describe("chaos against the realistic bank", () => {
  afterAll(() => stopAllProcesses(), 60_000);

  it("chaos - bank: 409s in flight, answers after the timeout, forgotten keys; every transfer paid or refused once", async () => {
    const r = await runScenario({
      scenario: bank,
      seed: SEED,
      durationMs: 36_000,
      rate: 15,
      warmupMs: 2000,
      quietTimeoutMs: 120_000,
    });
    expectSurvived(r, bank);
    for (const k of [
      "409 in flight",
      "answers after the client left",
      "forgotten keys",
      "kills mid-call",
      "pauses mid-call",
    ])
      expect(r.reach[k] ?? 0, k).toBeGreaterThan(0);
    expect(r.reach["requests for forgotten keys"]).toBe(0);
    expect(r.dlq).toBe(0);
    // Every transfer posted to a bank account was decided by the bank (B4 holds), and some of each.
    expect(r.bank?.paidTransfers).toBeGreaterThan(0);
    expect(r.bank?.refusedTransfers).toBeGreaterThan(0);
    expect(r.bank?.payouts).toBe(r.bank?.paidTransfers);
  }, 300_000);
});
