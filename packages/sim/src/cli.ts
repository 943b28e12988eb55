// `pnpm sim`: runs seeded worlds (packages/sim/README.md) and prints seeds per second; a
// failing seed prints its replay command, its violations, its faults and the end of its trace.
import { fork } from "node:child_process";
import { Command, InvalidArgumentError } from "commander";
import { addProfiles, describeProfile, type LayerProfile, startProfile } from "./profile.ts";
import { runWorld, type WorldResult } from "./world.ts";
import pkg from "../package.json" with { type: "json" };

// nats.js builds an Error (and its stack) for every request it sends, to report a timeout
// well; in a world of thousands of requests that was 5% of the time, and still 2% with two
// frames. Failures here are reported by seed and trace, not by stack.
Error.stackTraceLimit = 0;

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

interface Options {
  seeds: number;
  seed?: string;
  base: string;
  transfers: number;
  faults: boolean;
  traffic: "http" | "direct";
  linger: number;
  workers: number;
  worker?: string;
  json: boolean;
  stopOnFailure: boolean;
  profile: boolean;
}

const program = new Command("jetmesh-sim")
  .version(pkg.version, "--version", "print the version and exit")
  .description(
    "runs the real stages against a simulated JetStream, Redis and bank on virtual time, one world per seed",
  )
  .option("--seeds <n>", "how many worlds (seeds <base>-0 … <base>-<n-1>)", int("--seeds"), 100)
  .option("--seed <seed>", "run this one seed and print its whole trace")
  .option("--base <text>", "prefix of the seeds of --seeds", "sim")
  .option("--transfers <n>", "customer transfers per world", int("--transfers"), 200)
  .option("--no-faults", "worlds without faults (the baseline)")
  .option(
    "--traffic <how>",
    "http: clients call the real gateway; direct: requests published straight into INGRESS (the worlds before the gateway, for their seeds)",
    (v: string) => {
      if (v !== "http" && v !== "direct") throw new InvalidArgumentError("--traffic must be http or direct");
      return v;
    },
    "http",
  )
  .option(
    "--linger <ms>",
    "JETMESH_LINGER_MS of every stage (0: the runtime's default; the mesh runs its stages with 3)",
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 1000)
        throw new InvalidArgumentError("--linger must be an integer from 0 to 1000");
      return n;
    },
    0,
  )
  .option("--workers <n>", "processes sharing the seeds", int("--workers"), 1)
  .option("--json", "one JSON line per world", false)
  .option("--stop-on-failure", "stop at the first failing seed", false)
  .option(
    "--profile",
    "sample the CPU and print where a world's time goes, by layer (real code, simulator, checks)",
    false,
  )
  .option("--worker <i/n>", "(internal) run every n-th seed from i and print JSON lines")
  // Bad flags exit 2 (a failing world exits 1), as the chaos CLI does.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

function seedsOf(o: Options): string[] {
  if (o.seed !== undefined) return [o.seed];
  return Array.from({ length: o.seeds }, (_, i) => `${o.base}-${i}`);
}

function describe(r: WorldResult): string {
  const c = r.counts;
  return (
    `${r.ok ? "ok  " : "FAIL"} ${r.seed}: ${c.accepted} accepted, ${c.posted} posted, ${c.reversed} reversed, ` +
    `${c.declined} declined, ${c.rejected} rejected, ${c.paid} paid, ${c.crashes} crashes, ${r.faults.length} faults; ` +
    `${(r.virtualMs / 1000).toFixed(1)} virtual s in ${r.realMs.toFixed(0)} ms`
  );
}

function failure(r: WorldResult, o: Options): string {
  const replay = `pnpm sim --seed ${r.seed} --transfers ${o.transfers}${o.faults ? "" : " --no-faults"}${o.traffic === "direct" ? " --traffic direct" : ""}${o.linger ? ` --linger ${o.linger}` : ""}`;
  return [
    `seed ${r.seed} failed; replay: ${replay}`,
    ...r.violations.slice(0, 10).map((v) => `  violation: ${v}`),
    ...r.faults.map((f) => `  fault ${f}`),
    "  trace (last lines):",
    ...r.trace.map((t) => `    ${t}`),
  ].join("\n");
}

async function runSeeds(seeds: readonly string[], o: Options, each: (r: WorldResult) => void): Promise<void> {
  for (const seed of seeds) {
    const r = await runWorld({
      seed,
      transfers: o.transfers,
      faults: o.faults,
      traffic: o.traffic,
      lingerMs: o.linger,
    });
    each(r);
    if (!r.ok && o.stopOnFailure) return;
  }
}

/** Splits the seeds over `workers` child processes (this same program with --worker). */
async function runWorkers(
  seeds: readonly string[],
  o: Options,
  each: (r: WorldResult) => void,
  profiled: (p: LayerProfile) => void,
): Promise<void> {
  const script = process.argv[1] as string;
  const base: string[] = [];
  const given = process.argv.slice(2);
  for (let i = 0; i < given.length; i++) {
    const a = given[i] as string;
    if (a === "--workers") i++;
    else if (!a.startsWith("--workers=")) base.push(a);
  }
  await Promise.all(
    Array.from({ length: o.workers }, (_, i) => {
      const child = fork(script, [...base, "--workers", "1", "--worker", `${i}/${o.workers}`], {
        stdio: ["ignore", "pipe", "inherit", "ipc"],
        execArgv: process.execArgv,
      });
      let buffer = "";
      child.stdout?.on("data", (d: Buffer) => {
        buffer += d.toString();
        let nl = buffer.indexOf("\n");
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.startsWith('{"profile"'))
            profiled((JSON.parse(line) as { profile: LayerProfile }).profile);
          else if (line.startsWith("{")) each(JSON.parse(line) as WorldResult);
          nl = buffer.indexOf("\n");
        }
      });
      return new Promise<void>((resolve) => child.on("exit", () => resolve()));
    }),
  );
  void seeds;
}

async function main(o: Options): Promise<number> {
  const all = seedsOf(o);
  if (o.worker) {
    const [i, n] = o.worker.split("/").map(Number) as [number, number];
    const mine = all.filter((_, k) => k % n === i);
    const stop = o.profile ? await startProfile() : undefined;
    await runSeeds(mine, o, (r) => process.stdout.write(`${JSON.stringify(r)}\n`));
    if (stop) process.stdout.write(`${JSON.stringify({ profile: await stop(mine.length) })}\n`);
    return 0;
  }
  const started = process.hrtime.bigint();
  const failed: WorldResult[] = [];
  let done = 0;
  const each = (r: WorldResult) => {
    done += 1;
    if (!r.ok) failed.push(r);
    if (o.json) console.log(JSON.stringify(r));
    else if (!r.ok) console.log(`${describe(r)}\n${failure(r, o)}`);
    else if (o.seed !== undefined) console.log(describe(r));
    if (o.seed !== undefined && r.ok) console.log(r.trace.map((t) => `  ${t}`).join("\n"));
  };
  let profile: LayerProfile | undefined;
  if (o.workers > 1 && o.seed === undefined)
    await runWorkers(all, o, each, (p) => {
      profile = addProfiles(profile, p);
    });
  else {
    const stop = o.profile ? await startProfile() : undefined;
    await runSeeds(all, o, each);
    if (stop) profile = await stop(done);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (profile) console.log(describeProfile(profile));
  if (failed.length) console.log(`failing seeds: ${failed.map((r) => r.seed).join(" ")}`);
  console.log(
    `${done} seeds in ${seconds.toFixed(1)} s: ${(done / seconds).toFixed(2)} seeds/s (${((done / seconds) * 60).toFixed(0)} a minute), ${o.transfers} transfers per world, ${o.workers} worker(s); ${failed.length} failed`,
  );
  return failed.length === 0 && done === all.length ? 0 : 1;
}

program.action(async (o: Options) => {
  // Explicit: a world's leftovers must not keep the process (or a CI job) alive.
  process.exit(await main(o));
});
await program.parseAsync();
