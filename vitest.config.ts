import { defineConfig } from "vitest/config";
import LongestFirst from "./scripts/test-sequencer.ts";

export default defineConfig({
  test: {
    // bench/src/bench.test.ts runs `pnpm bench --tiny` once: proves the bench works, asserts no speed.
    include: [
      "packages/*/src/**/*.test.ts",
      "services/*/src/**/*.test.ts",
      "test/**/*.test.ts",
      "bench/src/**/*.test.ts",
    ],
    // Child processes run bundles (services, test/fixtures): built once per run, so that
    // `npx vitest run some.test.ts` works on a fresh clone and never runs a stale bundle.
    globalSetup: ["scripts/build.mjs"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Most files wait on servers, timeouts and child processes: with two workers the suite used
    // one core of two on average (1,055 s of CPU in 1,038 s), and took 1,030 s. Three workers
    // took 767 s in a run beside another engineer's tests, every test but one passing (the sim
    // test's old 240 s limit, since raised with its worlds' cost).
    maxWorkers: 3,
    // The longest files first, so that no worker runs alone at the end (scripts/test-sequencer.ts).
    sequence: { sequencer: LongestFirst },
    reporters: ["default", ["json", { outputFile: "reports/vitest.json" }]],
  },
});
