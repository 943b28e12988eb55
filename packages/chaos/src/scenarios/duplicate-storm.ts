import type { Scenario } from "../scenario.ts";

/**
 * Every request sent three times with the same Idempotency-Key: all at once, one after
 * the other, or two together and a third later (drawn per request). The faults are the
 * copies; the traffic counts them.
 */
export const duplicateStorm: Scenario = {
  name: "storm",
  title: "duplicate storm: every request sent three times, some concurrently",
  kinds: ["duplicate-copy"],
  storm: true,
  plan: () => [],
  inject: () => Promise.reject(new Error("the storm has no scheduled faults")),
};
