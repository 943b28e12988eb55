// Proof that the simulator catches bugs: each mutant (mutants.ts) is planted alone in a build
// of the simulator and must make a world fail within the seed budget; the failing seed is
// printed so it can be replayed. Mutants marked equivalent must still apply to the code
// (a refactor that drops one fails here), and say why they cannot fail a world.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MUTANTS, mutate } from "./mutants.ts";
import { type MutantVerdict, runMutant } from "./mutation.ts";

const root = join(import.meta.dirname, "..", "..", "..");
/** Worlds per mutant at most (each stops at its first failing world). */
const BUDGET = Number(process.env.SIM_MUTANT_SEEDS ?? 40);

describe("sim mutants", () => {
  it("sim mutants - every mutant still applies to the code it plants its bug in", () => {
    for (const m of MUTANTS) {
      const text = readFileSync(join(root, m.file), "utf8");
      expect(mutate(m, text), m.name).not.toBe(text);
    }
    expect(MUTANTS.filter((m) => !m.equivalent).length).toBeGreaterThanOrEqual(7);
  });

  it(`sim mutants - each planted bug fails a world within ${BUDGET} seeds`, async () => {
    const live = MUTANTS.filter((m) => !m.equivalent);
    const verdicts: MutantVerdict[] = [];
    const queue = [...live];
    // Two at a time: one process each, on this machine's two cores.
    await Promise.all(
      [0, 1].map(async () => {
        for (let m = queue.shift(); m; m = queue.shift())
          verdicts.push(await runMutant(m, { seeds: BUDGET, transfers: 200 }));
      }),
    );
    for (const v of verdicts)
      console.info(
        v.caught
          ? `${v.mutant}: caught by seed ${v.seed} (replay: node packages/sim/dist/mutants/${v.mutant}.mjs --seed ${v.seed}) in ${v.seconds.toFixed(1)} s: ${v.violation}`
          : `${v.mutant}: NOT caught in ${v.worlds} worlds`,
      );
    expect(verdicts.filter((v) => !v.caught).map((v) => v.mutant)).toEqual([]);
    expect(verdicts).toHaveLength(live.length);
  }, 600_000);
});
