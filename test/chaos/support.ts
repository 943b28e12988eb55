// Shared by the chaos suites: the seed, and the assertions every scenario makes after a
// printout of its tables. test/package.json does not list @jetmesh/chaos, so the suites
// import the package's public entry by path.
import { expect } from "vitest";
import {
  formatDetails,
  formatFaults,
  formatReach,
  formatSummary,
  type Scenario,
  type ScenarioResult,
} from "@jetmesh/chaos";

/** Fixed so a failure replays: `pnpm chaos --scenario <name> --seed <SEED> --duration <ms>ms --rate <rate>`. */
export const SEED = "20261126";

/**
 * Prints the tables, then asserts: both checkers clean (I1-I6, S1 and M1 from the streams, B1-B5
 * against the bank's record), nothing lost or doubled, every planned fault kind injected.
 */
export function expectSurvived(r: ScenarioResult, scenario: Scenario): void {
  console.log(
    `${formatSummary([r])}\n\n${formatFaults([r])}\n\n${formatReach([r])}\n\n${formatDetails([r])}`,
  );
  expect(r.violations).toEqual([]);
  expect(r.invariantsChecked).toEqual([
    "I1",
    "I2",
    "I3",
    "I4",
    "I5",
    "I6",
    "S1",
    "M1",
    "B1",
    "B2",
    "B3",
    "B4",
    "B5",
  ]);
  expect(r.lost).toBe(0);
  expect(r.doubled).toBe(0);
  expect(r.accepted).toBeGreaterThan(0);
  for (const kind of scenario.kinds)
    expect(r.faultCounts[kind] ?? 0, `faults of kind ${kind}`).toBeGreaterThan(0);
  expect(r.problems).toEqual([]);
}
