// The fault plans, without processes: the same seed gives the same plan, and every plan
// contains what its scenario promises, whatever the seed and duration.
import { describe, expect, it } from "vitest";
import { createPrng, formatSchedule, parseDuration, planOf, Scenarios, scenarioNamed } from "@jetmesh/chaos";

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
