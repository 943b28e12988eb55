import { writeFile } from "node:fs/promises";
import { stopAllProcesses } from "@jetmesh/testkit";
import { Command, InvalidArgumentError } from "commander";
import { formatMs, parseDuration } from "./duration.ts";
import type { ChaosEnv } from "./environment.ts";
import { formatDetails, formatFaults, formatReach, formatSchedule, formatSummary } from "./report.ts";
import { planOf, runScenario, type ScenarioResult } from "./run.ts";
import { Scenarios, scenarioNamed } from "./scenarios/all.ts";
import pkg from "../package.json" with { type: "json" };

// The chaos CLI (`pnpm chaos`). Every setting is a flag; nothing is read from the environment.

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};
const duration = (name: string) => (v: string) => {
  try {
    return parseDuration(v);
  } catch (err) {
    throw new InvalidArgumentError(`${name}: ${(err as Error).message}`);
  }
};
const keyValue = (v: string, all: Record<string, string>) => {
  const i = v.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`--env takes KEY=VALUE, got ${v}`);
  return { ...all, [v.slice(0, i)]: v.slice(i + 1) };
};

const program = new Command()
  .name("jetmesh-chaos")
  .version(pkg.version, "--version", "print the version and exit")
  .description(
    "Runs fault scenarios against the whole mesh under steady traffic with client retries, then checks I1 to I6, S1 and M1\n" +
      "from the streams, B1 to B5 against the bank's record, and that each fault reached what it aims at.\n" +
      `Scenarios: ${Scenarios.map((s) => `${s.name} (${s.title})`).join("; ")}.`,
  )
  .option("-s, --scenario <names>", "all, or comma-separated scenario names", "all")
  .option(
    "-d, --duration <d>",
    "fault phase, split evenly over the scenarios (60s, 10m, 1h)",
    duration("--duration"),
    60_000,
  )
  .option("--seed <seed>", "seed of every random choice (default: random, printed)")
  .option("-r, --rate <r>", "new transfers per second", positive("--rate"), 20)
  .option("-a, --accounts <n>", "customer accounts", positive("--accounts"), 20)
  .option("--json <file>", "also write the results as JSON to this file")
  .option("--keep-data", "keep each scenario's logs and JetStream store (their folder is printed)", false)
  .option("--log-level <level>", "LOG_LEVEL of the services", "warn")
  .option(
    "--quiet-timeout <d>",
    "how long the pipeline may take to go quiet",
    duration("--quiet-timeout"),
    240_000,
  )
  .option("--rss-limit <mib>", "largest RSS any process may reach", positive("--rss-limit"), 768)
  .option("-e, --env <KEY=VALUE>", "environment for every service (repeatable)", keyValue, {})
  .option(
    "--fail-on-crash",
    "a service that dies on its own fails the run (default: restarted, reported)",
    false,
  )
  .option("--plan-only", "print the fault schedules and exit", false)
  .addHelpText(
    "after",
    "\nThe same seed and duration replay the same schedule and traffic; a scenario of an `all` run replays\n" +
      "alone with its own duration (printed). Exit status: 0 when every scenario passed, 1 otherwise.",
  )
  .parse();

const opts = program.opts<{
  scenario: string;
  duration: number;
  seed?: string;
  rate: number;
  accounts: number;
  json?: string;
  keepData: boolean;
  logLevel: string;
  quietTimeout: number;
  rssLimit: number;
  env: Record<string, string>;
  planOnly: boolean;
  failOnCrash: boolean;
}>();

const names =
  opts.scenario === "all" ? Scenarios.map((s) => s.name) : opts.scenario.split(",").map((s) => s.trim());
const scenarios = (() => {
  try {
    return names.map(scenarioNamed);
  } catch (err) {
    return program.error((err as Error).message, { exitCode: 2 });
  }
})();
const seed = opts.seed ?? String(Math.floor(Math.random() * 1_000_000));
const each = Math.floor(opts.duration / scenarios.length);
const out = (line: string) => process.stdout.write(`${line}\n`);

out(`jetmesh chaos: seed ${seed}`);
out(
  `scenarios ${names.join(", ")}; fault phase ${formatMs(each)} each (${formatMs(opts.duration)} in all); ` +
    `${opts.rate} transfers/s over ${opts.accounts} accounts`,
);
for (const s of scenarios) out(`\n${formatSchedule(s.name, seed, planOf(s, seed, each))}`);
if (opts.planOnly) process.exit(0);

const abort = new AbortController();
let current: ChaosEnv | undefined;
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    abort.abort();
    process.stderr.write(`\n${signal}: stopping every process the chaos run started\n`);
    void (async () => {
      await current?.stop().catch(() => {});
      await stopAllProcesses().catch(() => {});
      process.exit(130);
    })();
  });
}

const results: ScenarioResult[] = [];
try {
  for (const s of scenarios) {
    if (abort.signal.aborted) break;
    out(
      `\n== ${s.name}: ${s.title} (seed ${seed}, replay: pnpm chaos --scenario ${s.name} --duration ${each}ms --seed ${seed} --rate ${opts.rate})`,
    );
    const r = await runScenario({
      scenario: s,
      seed,
      durationMs: each,
      rate: opts.rate,
      accounts: Math.floor(opts.accounts),
      quietTimeoutMs: opts.quietTimeout,
      rssLimitMb: opts.rssLimit,
      serviceEnv: opts.env,
      logLevel: opts.logLevel,
      keepData: opts.keepData,
      failOnCrash: opts.failOnCrash,
      log: out,
      signal: abort.signal,
      onEnv: (env) => {
        current = env;
      },
    });
    results.push(r);
    out(`== ${s.name}: ${r.ok ? "pass" : "FAIL"} in ${formatMs(r.timings.totalMs)}`);
  }
} finally {
  await stopAllProcesses().catch(() => {});
}

out(
  `\n${formatSummary(results)}\n\n${formatFaults(results)}\n\n${formatReach(results)}\n\n${formatDetails(results)}`,
);
if (opts.json) await writeFile(opts.json, `${JSON.stringify({ seed, results }, null, 2)}\n`);
const ok = results.length === scenarios.length && results.every((r) => r.ok);
out(`\nseed ${seed}: ${ok ? "every scenario passed" : "FAILED"}`);
process.exit(ok ? 0 : 1);
