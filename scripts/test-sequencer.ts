import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The test files that take longest, longest first, as measured in a clean-clone run of the
 * whole suite (two workers, 2026-11-30; seconds of wall time in brackets). On a clean clone
 * vitest has no durations from an earlier run and orders by file size, which put the sim's
 * mutation test (107 s) and the cluster chaos test last: one worker ran alone for the last
 * minute. Starting the long files first leaves the short ones to fill the end. A file missing
 * here only runs in vitest's own order, after these. The conformance file's time is in its
 * beforeAll, which the JSON report does not count.
 */
export const LONGEST_FIRST = [
  "packages/sim/src/sim.test.ts", // 180
  "packages/sim/src/mutants.test.ts", // 107
  "test/chaos/single-server.test.ts", // 98
  "test/new-stage.test.ts", // 93
  "test/e2e/long-run.test.ts", // 74
  "packages/ops/src/runbooks-live.test.ts", // 73
  "test/chaos/two-instances.test.ts", // 66
  "packages/sim/src/nats/conformance.test.ts", // about 60, in beforeAll
  "test/chaos/bank.test.ts", // 54
  "bench/src/bench.test.ts", // 52
  "services/reconciler/src/infra-health.test.ts", // 50
  "test/e2e/redis-failover.test.ts", // 46
  "test/clear-start.test.ts", // 43
  "test/observability/prometheus-e2e.test.ts", // 42
  "test/runtime-faults.test.ts", // 38
  "test/redis-sentinel.test.ts", // 36
  "test/e2e/mesh-traffic.test.ts", // 35
  "test/redis-sentinel-access.test.ts", // 35
  "test/chaos/cluster.test.ts", // 33
  "packages/testkit/src/invariants.test.ts", // 33
];

/** vitest's order, with LONGEST_FIRST in front (see there). */
export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.indexOf(relative(this.ctx.config.root, f.moduleId));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
