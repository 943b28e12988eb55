import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildVariant } from "../../../scripts/build.mjs";
import { type Mutant, mutate } from "./mutants.ts";

const root = join(import.meta.dirname, "..", "..", "..");

/** What running the simulator against one planted bug gave. */
export interface MutantVerdict {
  readonly mutant: string;
  readonly caught: boolean;
  /** The first failing seed, when caught. */
  readonly seed?: string;
  /** Its first violation line. */
  readonly violation?: string;
  /** Worlds run (up to and including the failing one, per worker). */
  readonly worlds: number;
  readonly seconds: number;
}

/**
 * Builds the simulator with `mutant` planted (packages/sim/dist/mutants/<name>.mjs) and runs
 * up to `seeds` worlds in one process, stopping at the first failing world (run mutants side
 * by side to use more cores).
 */
export async function runMutant(
  mutant: Mutant,
  o: { seeds: number; transfers: number; base?: string },
): Promise<MutantVerdict> {
  const started = process.hrtime.bigint();
  const outfile = join(root, "packages/sim/dist/mutants", `${mutant.name}.mjs`);
  await buildVariant("packages/sim/src/cli.ts", outfile, {
    [mutant.file]: mutate(mutant, readFileSync(join(root, mutant.file), "utf8")),
  });
  const args = [
    outfile,
    "--seeds",
    String(o.seeds),
    "--base",
    o.base ?? `mutant-${mutant.name}`,
    "--transfers",
    String(o.transfers),
    "--stop-on-failure",
  ];
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString();
      // One failing world is the proof: the others need not finish.
      if (/^FAIL /m.test(text)) child.kill("SIGKILL");
    });
    child.stderr.on("data", () => {});
    child.on("exit", () => resolve(text));
  });
  const fail = /^FAIL (\S+):/m.exec(out);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const worlds = (out.match(/^(ok|FAIL) /gm) ?? []).length;
  const summary = /^(\d+) seeds in/m.exec(out);
  if (!fail)
    return { mutant: mutant.name, caught: false, worlds: summary ? Number(summary[1]) : worlds, seconds };
  const violation = new RegExp(`seed ${fail[1]} failed[^\\n]*\\n\\s+violation: ([^\\n]+)`).exec(out)?.[1];
  return {
    mutant: mutant.name,
    caught: true,
    seed: fail[1] as string,
    ...(violation ? { violation } : {}),
    worlds,
    seconds,
  };
}
