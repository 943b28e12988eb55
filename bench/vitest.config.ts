import { defineConfig } from "vitest/config";

// The bench's own test, alone (the root config, and so the README's test command, runs it too):
// `npx vitest run --config bench/vitest.config.ts` or `pnpm --filter @jetmesh/bench test`.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["src/**/*.test.ts"],
    // The bench's children run bundles (bench/dist, services): built once per run.
    globalSetup: ["../scripts/build.mjs"],
    testTimeout: 600_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
