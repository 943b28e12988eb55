// The fault plans, without processes: the same seed gives the same plan, and every plan
// contains what its scenario promises, whatever the seed and duration.
import { describe, expect, it } from "vitest";
import {
  CHAOS_SETTINGS,
  createPrng,
  formatSchedule,
  parseDuration,
  planOf,
  Scenarios,
  scenarioNamed,
} from "@jetmesh/chaos";

const SEEDS = ["1", "42", "7031", "20261126", "chaos"];
const DURATIONS = [6_000, 15_000, 86_000, 600_000];

describe("chaos plans", () => {
  it("chaos - the same seed and duration replay the same schedule; another seed draws another", () => {
    for (const s of Scenarios) {
      const a = formatSchedule(s.name, "7", planOf(s, "7", 60_000));
      expect(formatSchedule(s.name, "7", planOf(s, "7", 60_000))).toBe(a);
      if (s.name !== "storm") expect(formatSchedule(s.name, "7", planOf(s, "8", 60_000))).not.toBe(a);
    }
    const p = createPrng(99);
    const q = createPrng("99");
    expect(Array.from({ length: 5 }, () => p.next())).toEqual(Array.from({ length: 5 }, () => q.next()));
  });

  it("chaos - every plan holds its kinds, in time order, within the fault phase", () => {
    for (const s of Scenarios) {
      for (const seed of SEEDS) {
        for (const d of DURATIONS) {
          const plan = planOf(s, seed, d);
          const kinds = new Set(plan.map((a) => a.kind));
          for (const k of s.kinds)
            if (k !== "duplicate-copy") expect(kinds.has(k), `${s.name} ${seed} ${d} ${k}`).toBe(true);
          for (const [i, a] of plan.entries()) {
            expect(a.id).toBe(i + 1);
            expect(a.atMs).toBeGreaterThanOrEqual(i ? (plan[i - 1]?.atMs ?? 0) : 0);
            expect(a.atMs).toBeLessThan(d);
            expect(a.holdMs).toBeGreaterThanOrEqual(0);
          }
        }
      }
    }
  });

  it("chaos - kills hit every stage more than once; nats dies twice; network covers both links", () => {
    for (const seed of SEEDS) {
      for (const d of DURATIONS) {
        const kills = planOf(scenarioNamed("kill"), seed, d);
        for (const stage of ["gateway", "validator", "risk", "ledger", "payout"])
          expect(kills.filter((a) => a.target === stage).length, `${seed} ${d} ${stage}`).toBeGreaterThan(1);
        expect(planOf(scenarioNamed("nats"), seed, d).length).toBeGreaterThanOrEqual(2);
        const net = planOf(scenarioNamed("network"), seed, d);
        for (const kind of ["net-cut", "net-hold", "net-latency"])
          for (const link of ["nats", "redis"])
            expect(
              net.some((a) => a.kind === kind && a.params?.link === link),
              `${seed} ${d} ${kind} ${link}`,
            ).toBe(true);
        const cluster = planOf(scenarioNamed("cluster"), seed, d);
        expect(cluster.slice(0, 2).map((a) => a.kind)).toEqual([
          "kill-stream-leader",
          "kill-stream-follower",
        ]);
        expect(
          planOf(scenarioNamed("slow"), seed, d).filter((a) => a.target === "validator").length,
        ).toBeGreaterThanOrEqual(2);
      }
    }
  });

  it("chaos - rollbacks, consumer losses, pauses past the lease and the bank's faults, whatever the seed", () => {
    const ackWait = Number(CHAOS_SETTINGS.JETMESH_ACK_WAIT_MS);
    const inputs = ["validator/INGRESS", "risk/VALIDATION", "ledger/RISK", "ledger/PAYOUTS", "payout/LEDGER"];
    for (const seed of SEEDS) {
      for (const d of DURATIONS) {
        expect(planOf(scenarioNamed("redis-rollback"), seed, d).length).toBeGreaterThanOrEqual(2);
        const losses = planOf(scenarioNamed("consumer-loss"), seed, d);
        expect(losses.length).toBeGreaterThanOrEqual(2);
        for (const a of losses) expect(inputs).toContain(a.target);
        // Distinct inputs until all five were hit.
        const first = losses.slice(0, 5).map((a) => a.target);
        expect(new Set(first).size).toBe(first.length);
        const pauses = planOf(scenarioNamed("pause-past-lease"), seed, d);
        expect(new Set(pauses.map((a) => a.target))).toEqual(new Set(["ledger", "payout"]));
        // Longer than the ack wait plus the lease (which follows the ack wait).
        for (const a of pauses) expect(a.holdMs).toBeGreaterThan(2 * ackWait);
        const bank = planOf(scenarioNamed("bank"), seed, d);
        const outages = bank.filter((a) => a.kind === "bank-outage");
        expect(outages).toHaveLength(1);
        expect(bank[0]?.kind).not.toBe("bank-outage");
        for (const k of ["kill-service", "pause-stage"])
          expect(bank.filter((a) => a.kind === k).every((a) => a.target === "payout")).toBe(true);
      }
    }
  });

  it("chaos - the bank's outage outlasts the payout's redelivery horizon, as the payout computes it", async () => {
    // The payout's own config check (services/payout/src/config.ts) with the scenario's settings.
    const { loadConfig } = await import("@jetmesh/payout/config");
    const { redeliveryHorizonMs } = await import("@jetmesh/stage");
    const bank = scenarioNamed("bank");
    const env = { ...CHAOS_SETTINGS, ...bank.env?.serviceEnv?.payout };
    const config = loadConfig(env);
    const horizon = redeliveryHorizonMs(config.stage);
    expect(config.bank.retentionMs).toBeGreaterThanOrEqual(2 * horizon);
    expect(Number(bank.env?.serviceEnv?.["bank-sim"]?.BANK_RETENTION_MS)).toBe(config.bank.retentionMs);
    expect(Number(bank.env?.serviceEnv?.["bank-sim"]?.BANK_SLOW_MS)).toBeGreaterThan(config.bank.timeoutMs);
    for (const seed of SEEDS) {
      for (const a of planOf(bank, seed, 180_000).filter((x) => x.kind === "bank-outage"))
        expect(a.holdMs).toBeGreaterThan(horizon);
    }
  });

  it("chaos - durations parse as the CLI takes them", () => {
    expect(parseDuration("60s")).toBe(60_000);
    expect(parseDuration("10m")).toBe(600_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("45")).toBe(45_000);
    expect(() => parseDuration("ten minutes")).toThrow(/invalid duration/);
    expect(() => parseDuration("0s")).toThrow(/positive/);
  });
});
