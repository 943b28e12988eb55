// `pnpm bench`: the raw broker, a hand-written exactly-once stage, @jetmesh/stage in both
// modes and the whole pipeline, measured in one run on servers the bench starts itself.
// Prints a table with ratios and writes the same figures as JSON.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, setPriority } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { type Infra, startBenchInfra } from "./infra.ts";
import { floorRow } from "./floor-row.ts";
import { ledgerRow } from "./ledger-row.ts";
import { pipelineRows } from "./pipeline.ts";
import { type RateSubject, rateRows } from "./rate-row.ts";
import { formatReport, ratios, targets } from "./report.ts";
import { consumerRow, publishRow, type RowContext, type RowResult, stageSpec } from "./rows.ts";
import pkg from "../package.json" with { type: "json" };

interface Row {
  readonly id: string;
  run(ctx: RowContext): Promise<RowResult | RowResult[]>;
}

const stage = (id: string, label: string, script: string, env: Record<string, string>): Row => ({
  id,
  run: (ctx) => consumerRow(ctx, stageSpec(ctx, id, label, script, env)),
});

const HANDWRITTEN: RateSubject = {
  key: "handwritten",
  label: "hand-written EO",
  script: "handwritten-stage.ts",
};

/**
 * A `rate.*` row: the hand-written stage and the runtime (this checkout's, or `--runtime-from`'s,
 * then each `--baseline` checkout's) with one ack mode, at the paced rates and preloaded.
 */
const rateRow = (
  ackMode: "plain" | "confirmed",
  runtimeFrom?: string,
  baselines: readonly string[] = [],
): Row => {
  const id = `rate.eo.${ackMode}`;
  const runtime = (key: string, dir?: string): RateSubject => ({
    key,
    label: `runtime EO${key.includes("@") ? ` ${key.slice(key.indexOf("@"))}` : ""}`,
    script: dir ? join(dir, "bench/src/runtime-stage.ts") : "runtime-stage.ts",
  });
  const subjects = [
    HANDWRITTEN,
    runtime("runtime", runtimeFrom),
    ...baselines.map((dir) => runtime(`runtime@${basename(dir)}`, dir)),
  ];
  return { id, run: (ctx) => rateRows(ctx, { id, label: `EO ${ackMode}`, ackMode, subjects }) };
};

/** Every row, in the order they run and print. */
export const ROWS: readonly Row[] = [
  {
    id: "broker.publish",
    run: (c) => publishRow(c, { id: "broker.publish", label: "broker publish", msgId: false }),
  },
  {
    id: "broker.publish.msgid",
    run: (c) => publishRow(c, { id: "broker.publish.msgid", label: "broker publish +Msg-Id", msgId: true }),
  },
  {
    id: "broker.consume",
    run: (c) =>
      consumerRow(c, {
        id: "broker.consume",
        label: "broker consume+ack",
        script: "raw-consumer.ts",
        durable: "raw",
        benchCreatesConsumer: true,
        usesRedis: false,
        env: { BENCH_PULL: String(c.inFlight) },
      }),
  },
  stage("handwritten.eo.plain", "hand-written EO plain", "handwritten-stage.ts", { BENCH_ACK_MODE: "plain" }),
  stage("handwritten.eo.confirmed", "hand-written EO confirmed", "handwritten-stage.ts", {
    BENCH_ACK_MODE: "confirmed",
  }),
  stage("runtime.eo.plain", "runtime EO plain", "runtime-stage.ts", { JETMESH_ACK_MODE: "plain" }),
  stage("runtime.eo.confirmed", "runtime EO confirmed", "runtime-stage.ts", {
    JETMESH_ACK_MODE: "confirmed",
  }),
  stage("runtime.alo.plain", "runtime ALO plain", "runtime-stage.ts", {
    JETMESH_MODE: "at-least-once",
    JETMESH_ACK_MODE: "plain",
  }),
  stage("runtime.alo.confirmed", "runtime ALO confirmed", "runtime-stage.ts", {
    JETMESH_MODE: "at-least-once",
    JETMESH_ACK_MODE: "confirmed",
  }),
  stage("runtime.eo.plain.export", "runtime EO plain +span export", "runtime-stage.ts", {
    JETMESH_ACK_MODE: "plain",
    BENCH_TRACING: "batch",
  }),
  stage("runtime.eo.plain.untraced", "runtime EO plain, no tracing SDK", "runtime-stage.ts", {
    JETMESH_ACK_MODE: "plain",
    BENCH_TRACING: "off",
  }),
  rateRow("plain"),
  rateRow("confirmed"),
  { id: "ledger.decide", run: (c) => ledgerRow(c, { id: "ledger.decide", label: "ledger decisions" }) },
  // The floor runs right before the pipeline, whose rows report their CPU per transfer against it.
  { id: "floor.transfer", run: (c) => floorRow(c) },
  { id: "floor.transfer.paced", run: (c) => floorRow(c, true) },
  { id: "pipeline", run: (c) => pipelineRows(c) },
];

const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive integer");
  return n;
};

/** `--stage-rates`: positive integers, comma-separated. */
function rateList(v: string): number[] {
  return v.split(",").map((x) => positiveInt(x.trim()));
}

/** Rows selected by `--only`: comma-separated ids or id prefixes (`runtime`, `broker.publish`). */
export function selectRows(
  only: string | undefined,
  baseline?: string,
  runtimeFrom?: string,
  nodeFlags?: string,
): Row[] {
  let rows = only ? pick(only) : [...ROWS];
  if (nodeFlags) rows = rows.flatMap((r) => [r, ...flagTwins(r, nodeFlags)]);
  // A rate row runs its other runtimes inside each phase, next to its own.
  const others = baseline?.split(",").map((d) => resolve(d.trim())) ?? [];
  const from = runtimeFrom ? resolve(runtimeFrom) : undefined;
  rows = rows.map((r) =>
    r.id.startsWith("rate.") && (from || others.length)
      ? rateRow(r.id.endsWith("confirmed") ? "confirmed" : "plain", from, others)
      : r,
  );
  if (runtimeFrom) {
    const script = resolve(runtimeFrom, "bench/src/runtime-stage.ts");
    rows = rows.map((r) => {
      const twin = RUNTIME_ENV[r.id];
      return twin ? stage(r.id, twin.label, script, twin.env) : r;
    });
  }
  if (!baseline) return rows;
  // Each runtime row runs again with every other checkout's runtime, right after its own.
  return rows.flatMap((r) => {
    if (r.id === "ledger.decide")
      return [
        r,
        ...others.map((dir) => ({
          id: `${r.id}@${basename(dir)}`,
          run: (ctx: RowContext) =>
            ledgerRow(ctx, {
              id: `${r.id}@${basename(dir)}`,
              label: `ledger decisions @${basename(dir)}`,
              checkout: dir,
            }),
        })),
      ];
    if (r.id === "pipeline")
      return [
        r,
        ...others.map((dir) => ({
          id: `${r.id}@${basename(dir)}`,
          run: (ctx: RowContext) => pipelineRows(ctx, { checkout: dir, name: basename(dir) }),
        })),
      ];
    const twin = RUNTIME_ENV[r.id];
    if (!twin) return [r];
    return [
      r,
      ...others.map((dir) =>
        stage(
          `${r.id}@${basename(dir)}`,
          `${twin.label} @${basename(dir)}`,
          join(dir, "bench/src/runtime-stage.ts"),
          twin.env,
        ),
      ),
    ];
  });
}

/**
 * `--node-flags`: a stage row again with each set of node flags for its process, right after
 * its own, as `<row>@<flags>` (the ratios then include `<row> / the same on <flags>`).
 */
function flagTwins(row: Row, sets: string): Row[] {
  if (row.id === "pipeline")
    // The mesh's services (all but the simulated bank) get the flags in NODE_OPTIONS.
    return sets
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((set) => ({
        id: `${row.id}@${set}`,
        run: (ctx) => pipelineRows({ ...ctx, nodeFlags: set.split(/\s+/) }, { name: set }),
      }));
  if (!row.id.startsWith("handwritten") && !row.id.startsWith("runtime")) return [];
  return sets
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((set) => ({
      id: `${row.id}@${set}`,
      run: async (ctx) => {
        const r = (await row.run({ ...ctx, nodeFlags: set.split(/\s+/) })) as RowResult;
        return { ...r, id: `${row.id}@${set}`, label: `${r.label} @${set}` };
      },
    }));
}

/** The runtime rows that `--baseline` and `--runtime-from` can run from another checkout. */
const RUNTIME_ENV: Record<string, { label: string; env: Record<string, string> }> = {
  "runtime.eo.plain": { label: "runtime EO plain", env: { JETMESH_ACK_MODE: "plain" } },
  "runtime.eo.confirmed": { label: "runtime EO confirmed", env: { JETMESH_ACK_MODE: "confirmed" } },
  "runtime.alo.plain": {
    label: "runtime ALO plain",
    env: { JETMESH_MODE: "at-least-once", JETMESH_ACK_MODE: "plain" },
  },
  "runtime.alo.confirmed": {
    label: "runtime ALO confirmed",
    env: { JETMESH_MODE: "at-least-once", JETMESH_ACK_MODE: "confirmed" },
  },
};

function pick(only: string): Row[] {
  const wanted = only
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  // An exact id names that row alone; anything else is a prefix (`runtime`, `runtime.eo`).
  const matches = (r: Row, w: string) =>
    ROWS.some((x) => x.id === w) ? r.id === w : r.id.startsWith(`${w}.`) || w.startsWith(`${r.id}.`);
  // The pipeline's rows are read against the floor: asking for them runs it too.
  const picked = ROWS.filter(
    (r) =>
      wanted.some((w) => matches(r, w)) ||
      (r.id.startsWith("floor.transfer") &&
        wanted.some((w) => w === "pipeline" || w.startsWith("pipeline."))),
  );
  if (picked.length === 0)
    throw new InvalidArgumentError(`no row matches ${only}; rows: ${ROWS.map((r) => r.id).join(", ")}`);
  return picked;
}

export interface BenchOptions {
  messages: number;
  tiny?: boolean;
  only?: string;
  json: string;
  rate: number;
  latencyMessages?: number;
  inFlight: number;
  maxAckPending: number;
  window: number;
  repeat: number;
  profile?: string | boolean;
  pipelineRate: number;
  pipelineSeconds: number;
  stageRates: string;
  rateSeconds: number;
  baseline?: string;
  runtimeFrom?: string;
  nodeFlags?: string;
  priority?: number;
}

/**
 * Builds the bench bundles of another checkout with its own build script, so that its rows
 * run what its sources say. A checkout from before the bundles runs its sources through tsx.
 */
function buildCheckout(dir: string, log: (s: string) => void, all: boolean): void {
  const script = join(dir, "scripts/build.mjs");
  // The pipeline runs every service of the copy: all of its bundles.
  if (existsSync(script))
    execFileSync(process.execPath, [script, ...(all ? [] : ["bench", "ledger"])], { stdio: "inherit" });
  else log(`bench: ${dir} has no scripts/build.mjs: its rows run through tsx (RSS about 80 MB higher)`);
}

/** The median run by throughput; by CPU per message for a paced phase (its rate is the offered one). */
function median(rs: RowResult[]): RowResult {
  const cpu = (r: RowResult) => r.processes[r.subject]?.cpuUsPerMsg ?? 0;
  const sorted = [...rs].sort((a, b) => (a.facts?.paced ? cpu(a) - cpu(b) : a.perSecond - b.perSecond));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export async function runBench(o: BenchOptions, log: (s: string) => void = (s) => console.error(s)) {
  const messages = o.tiny ? Math.min(o.messages, 300) : o.messages;
  const rate = o.tiny ? Math.min(o.rate, 1000) : o.rate;
  const latencyMessages = o.latencyMessages ?? (o.tiny ? 200 : Math.min(messages, rate * 4));
  const rows = selectRows(o.only, o.baseline, o.runtimeFrom, o.nodeFlags);
  for (const dir of [...(o.baseline?.split(",") ?? []), ...(o.runtimeFrom ? [o.runtimeFrom] : [])])
    buildCheckout(
      resolve(dir.trim()),
      log,
      rows.some((r) => r.id.startsWith("pipeline")),
    );
  // Opt-in: on a machine shared with other work, a higher priority (negative niceness,
  // root only) for the bench, its servers and children (they inherit it) steadies the figures.
  if (o.priority !== undefined) setPriority(0, o.priority);
  // Other work on the machine moves absolute figures (the ratios less so): say so.
  const load0 = loadavg()[0]!;
  if (load0 > cpus().length * 0.5)
    log(
      `bench: load average ${load0.toFixed(1)} on ${cpus().length} cpus: absolute figures will be low and noisy`,
    );
  const infra: Infra = await startBenchInfra();
  const results: RowResult[] = [];
  const failures: { row: string; error: string }[] = [];
  try {
    const ctx: RowContext = {
      infra,
      messages,
      rate,
      latencyMessages,
      inFlight: o.inFlight,
      maxAckPending: o.maxAckPending,
      publishWindow: o.window,
      tiny: o.tiny ?? false,
      pipelineRate: o.tiny ? Math.min(o.pipelineRate, 100) : o.pipelineRate,
      pipelineSeconds: o.tiny ? 2 : o.pipelineSeconds,
      stageRates: o.tiny ? [100] : rateList(o.stageRates),
      rateSeconds: o.tiny ? 1 : o.rateSeconds,
      ...(o.profile
        ? { profileDir: resolve(typeof o.profile === "string" ? o.profile : "reports/profiles") }
        : {}),
      log,
    };
    // With --repeat, rounds run every selected row in turn (ABCABC, not AABBCC) so that a
    // machine that gets busier or quieter moves every row alike; each row keeps its median.
    const runs = new Map<string, RowResult[][]>();
    for (let round = 0; round < o.repeat; round++) {
      // Each round starts one row later, so no row always runs first (or right after another).
      const order = rows.map((_, i) => rows[(i + round) % rows.length]!);
      for (const row of order) {
        if (row.id.startsWith("pipeline") && round > 0) continue;
        log(`bench: ${row.id}${o.repeat > 1 ? ` (round ${round + 1} of ${o.repeat})` : ""}…`);
        let list: RowResult[];
        try {
          const r = await row.run(ctx);
          list = Array.isArray(r) ? r : [r];
        } catch (err) {
          // One broken row must not cost the others: it is reported, and the exit code says so.
          log(`bench: ${row.id} failed: ${(err as Error).stack ?? err}`);
          failures.push({ row: row.id, error: (err as Error).message });
          continue;
        }
        for (const x of list)
          log(
            `bench: ${x.id}: ${x.perSecond}/s, p99 ${x.latency.p99.toFixed(2)} ms, ${x.processes[x.subject]?.cpuUsPerMsg} µs/msg`,
          );
        runs.set(row.id, [...(runs.get(row.id) ?? []), list]);
      }
    }
    for (const row of rows) {
      const rowRuns = runs.get(row.id) ?? [];
      for (let k = 0; k < (rowRuns[0]?.length ?? 0); k++) results.push(median(rowRuns.map((rs) => rs[k]!)));
    }
  } finally {
    await infra.close();
  }
  const rs = ratios(results);
  const ts = targets(results);
  return {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      natsServer: infra.nc.info?.version,
      messages,
      latencyMessages,
      offeredRate: rate,
      inFlight: o.inFlight,
      maxAckPending: o.maxAckPending,
      publishWindow: o.window,
      repeat: o.repeat,
      tiny: o.tiny ?? false,
      loadAverageAtStart: load0,
      priority: o.priority ?? 0,
      loadAverageAtEnd: loadavg()[0],
    },
    rows: results,
    failures,
    ratios: rs,
    targets: ts,
    table: formatReport(results, rs, ts),
  };
}

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name("bench")
    .version(pkg.version, "--version", "print the version and exit")
    .description("jetmesh benchmark: broker baseline, hand-written EO stage, @jetmesh/stage, pipeline")
    .option("--messages <n>", "messages per throughput row", positiveInt, 50_000)
    .option("--tiny", "a few hundred messages per row (CI: proves the bench works)")
    .option(
      "--only <rows>",
      "comma-separated row ids or prefixes (broker, handwritten, runtime.eo, pipeline…)",
    )
    .option("--json <file>", "where to write the JSON report", "reports/bench.json")
    .option("--rate <n>", "offered load of the stage rows' latency phase, messages/s", positiveInt, 5_000)
    .option("--latency-messages <n>", "messages in each latency phase (default: 4 s of --rate)", positiveInt)
    .option("--in-flight <n>", "messages in flight per stage (K; JETMESH_MAX_IN_FLIGHT)", positiveInt, 64)
    .option("--max-ack-pending <n>", "consumers' MaxAckPending", positiveInt, 1024)
    .option("--window <n>", "PubAcks in flight in the publish rows", positiveInt, 256)
    .option("--repeat <n>", "runs per row; the median by throughput is reported", positiveInt, 1)
    .option(
      "--profile [dir]",
      "write --cpu-prof profiles of the processes under test (default reports/profiles)",
    )
    .option(
      "--baseline <checkouts>",
      "also run each runtime row with the runtime of other checkouts (comma-separated; git archive + pnpm install), for before/after ratios",
    )
    .option(
      "--priority <nice>",
      "niceness of the bench and everything it starts (-20..19; negative needs root)",
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < -20 || n > 19) throw new InvalidArgumentError("must be -20..19");
        return n;
      },
    )
    .option(
      "--runtime-from <checkout>",
      "run the runtime rows with the runtime of another checkout (a snapshot that edits in this one cannot disturb)",
    )
    .option(
      "--node-flags <sets>",
      "also run each stage row with these node flags for its process, right after its own (sets separated by ';'), for same-run ratios",
    )
    .option(
      "--pipeline-rate <n>",
      "offered load of the pipeline latency row, transfers/s",
      positiveInt,
      1_000,
    )
    .option("--pipeline-seconds <n>", "duration of each pipeline phase", positiveInt, 10)
    .option(
      "--stage-rates <list>",
      "offered rates of the rate.* rows' paced phases, messages/s, comma-separated",
      (v: string) => {
        rateList(v); // refuses a bad list at parse time
        return v;
      },
      "100,300",
    )
    .option("--rate-seconds <n>", "measured seconds of each paced phase of the rate.* rows", positiveInt, 10)
    .parse(argv);
  const o = program.opts<BenchOptions>();
  const report = await runBench(o);
  const { table, ...json } = report;
  console.log(table);
  const file = resolve(o.json);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  console.error(`bench: wrote ${file}`);
  if (json.failures.length) {
    console.error(
      `bench: ${json.failures.length} row(s) failed: ${json.failures.map((f) => f.row).join(", ")}`,
    );
    process.exitCode = 1;
  }
}

if (process.argv[1]?.endsWith("main.ts")) {
  main(process.argv).then(
    () => process.exit(process.exitCode ?? 0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
