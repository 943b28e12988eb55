// Short versions of the scenarios that need a stage scaled out (two ledgers, two payouts)
// and Redis from outside: a rollback to an older snapshot, a consumer lost after its keys,
// an instance frozen past its lease. They share one environment fit for all three (the
// mesh with the extra instances), one after the other; each sends its own traffic and the
// checkers read every stream and the bank's record after each. Each asserts its reach:
// the fault did what it is for, not only that nothing broke.
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChaosEnv, envOptionsFor, runScenario, scenarioNamed } from "@jetmesh/chaos";
import { startChaosEnv } from "@jetmesh/chaos";
import { expectSurvived, SEED } from "./support.ts";

const RATE = 15;
const rollback = scenarioNamed("redis-rollback");
const consumerLoss = scenarioNamed("consumer-loss");
const pausePastLease = scenarioNamed("pause-past-lease");

describe("chaos with two instances of the ledger and of payout", () => {
  let env: ChaosEnv | undefined;
  const run = (scenario: typeof rollback, durationMs: number) => {
    if (!env) throw new Error("environment not started");
    return runScenario({
      scenario,
      seed: SEED,
      durationMs,
      rate: RATE,
      env,
      warmupMs: 2000,
      quietTimeoutMs: 120_000,
    });
  };

  beforeAll(async () => {
    env = await startChaosEnv({ ...envOptionsFor([rollback, consumerLoss, pausePastLease]) });
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await stopAllProcesses();
  }, 60_000);

  it("chaos - the environment runs two ledgers and two payouts, each with its own port and log", () => {
    for (const stage of ["ledger", "payout"] as const) {
      const all = env?.instances(stage) ?? [];
      expect(all.map((i) => i.label)).toEqual([`${stage}#1`, `${stage}#2`]);
      expect(new Set(all.map((i) => i.url)).size).toBe(2);
      expect(all.every((i) => i.isRunning())).toBe(true);
    }
  });

  it("chaos - redis rolled back to a snapshot under traffic: decisions erased from Redis, money moved once", async () => {
    const r = await run(rollback, 12_000);
    expectSurvived(r, rollback);
    expect(r.faultCounts["redis-rollback"]).toBe(2);
    expect(r.reach["decisions erased"]).toBeGreaterThan(0);
    expect(r.faults.every((f) => (f.reach?.["decisions erased"] ?? 0) > 0)).toBe(true);
  }, 150_000);

  it("chaos - a durable consumer deleted after its keys: recreated at its position, nothing doubled", async () => {
    const r = await run(consumerLoss, 12_000);
    expectSurvived(r, consumerLoss);
    expect(r.reach["recreated at their position"]).toBe(r.faultCounts["consumer-loss"]);
    expect(r.reach["recreated from the start"]).toBe(0);
    expect(r.faults.every((f) => /then durable \w+ on [A-Z]+/.test(f.detail))).toBe(true);
  }, 150_000);

  it("chaos - one of two instances frozen past its ack wait and lease: the other takes over, the stale one changes nothing", async () => {
    const r = await run(pausePastLease, 22_000);
    expectSurvived(r, pausePastLease);
    expect(new Set(r.faults.map((f) => f.action.target))).toEqual(new Set(["ledger", "payout"]));
    expect(r.reach["taken over"]).toBeGreaterThan(0);
    for (const f of r.faults) expect(f.reach?.["taken over"], f.detail).toBeGreaterThan(0);
  }, 200_000);
});
