// Rows 1 to 3: the raw broker, the hand-written stage and the runtime. Every process under
// test is a child running its bundle with plain node (bench/dist, as services are deployed),
// so its CPU time and RSS are its own; the bench process only drives load and watches from
// outside.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Streams } from "@jetmesh/contracts";
import { bundleOf, type ChildHandle, spawnProcess } from "@jetmesh/testkit";
import { makeEvents } from "./events.ts";
import {
  addStageConsumer,
  type Infra,
  lastSeq,
  offerLoad,
  pollConsumer,
  preload,
  resetState,
} from "./infra.ts";
import type { LatencySummary } from "./latency.ts";
import { type ProcCost, ProcWatch, sampleProcess } from "./proc-stats.ts";
import type { PublisherResult } from "./raw-publisher.ts";

const here = dirname(fileURLToPath(import.meta.url));
/** The bench package folder: the children's working directory. */
export const benchDir = dirname(here);

/** CPU and memory of one process over a row's measured interval. */
export interface ProcessCost {
  /** user+sys CPU time per message, microseconds, every thread of the process. */
  readonly cpuUsPerMsg: number;
  /** The main thread's share of it (node: JavaScript and I/O, not the GC helper threads). */
  readonly mainCpuUsPerMsg?: number;
  /** read+write system calls per message (how well I/O is batched). */
  readonly syscallsPerMsg?: number;
  /** Highest RSS sampled during the row, MB. */
  readonly maxRssMb: number;
  /** Peak RSS over the process's life (VmHWM), MB; for children started by the row. */
  readonly peakRssMb?: number;
}

export interface RowResult {
  readonly id: string;
  readonly label: string;
  /** Messages (or transfers) in the throughput measurement. */
  readonly messages: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly latency: LatencySummary & {
    /** Offered load of the latency phase; null when measured at saturation. */
    readonly offeredPerSecond: number | null;
    /** What a latency sample spans. */
    readonly spans: string;
  };
  /** Name of the process under test in `processes`. */
  readonly subject: string;
  readonly processes: Readonly<Record<string, ProcessCost>>;
  /** Row-specific facts (outputs stored, settings). */
  readonly facts?: Readonly<Record<string, number | string | boolean>>;
}

export interface RowContext {
  readonly infra: Infra;
  readonly messages: number;
  /** Offered load of the latency phase, messages/s. */
  readonly rate: number;
  readonly latencyMessages: number;
  readonly inFlight: number;
  readonly maxAckPending: number;
  readonly publishWindow: number;
  readonly tiny: boolean;
  /** Offered load of the pipeline's latency phase, transfers/s. */
  readonly pipelineRate: number;
  /** Length of each pipeline phase, seconds. */
  readonly pipelineSeconds: number;
  /** Offered rates of the `rate.*` rows' paced phases, messages/s. */
  readonly stageRates: readonly number[];
  /** Length of each paced phase's measurement, seconds. */
  readonly rateSeconds: number;
  /** Folder for `--cpu-prof` output of stage children, when profiling. */
  readonly profileDir?: string;
  /** Node flags for the process under test (a `--node-flags` twin row), after BENCH_NODE_FLAGS. */
  readonly nodeFlags?: readonly string[];
  readonly log: (line: string) => void;
}

const MB = 1024 * 1024;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export function cost(
  cpuMs: number,
  messages: number,
  maxRssBytes: number,
  peakRssBytes?: number,
  mainCpuMs?: number,
  syscalls?: number,
): ProcessCost {
  return {
    ...(syscalls !== undefined ? { syscallsPerMsg: round(syscalls / messages, 2) } : {}),
    cpuUsPerMsg: round((cpuMs * 1000) / messages, 2),
    ...(mainCpuMs !== undefined ? { mainCpuUsPerMsg: round((mainCpuMs * 1000) / messages, 2) } : {}),
    maxRssMb: round(maxRssBytes / MB),
    ...(peakRssBytes !== undefined ? { peakRssMb: round(peakRssBytes / MB) } : {}),
  };
}

/**
 * Each watched process's cost per message; the one under test (`subject`) also with its peak
 * RSS, main-thread CPU and syscalls.
 */
export function processCosts(
  costs: Readonly<Record<string, ProcCost>>,
  messages: number,
  subject: string,
  peakRssBytes: number,
): Record<string, ProcessCost> {
  const processes: Record<string, ProcessCost> = {};
  for (const [name, c] of Object.entries(costs))
    processes[name] = cost(
      c.cpuMs,
      messages,
      c.maxRssBytes,
      name === subject ? peakRssBytes : undefined,
      name === subject ? c.mainCpuMs : undefined,
      name === subject ? c.syscalls : undefined,
    );
  return processes;
}

export async function spawnChild(
  ctx: RowContext,
  name: string,
  script: string,
  env: Record<string, string>,
): Promise<ChildHandle> {
  // One folder per row (a checkout run through tsx adds its loader thread's profile).
  const dir = ctx.profileDir ? join(ctx.profileDir, name) : undefined;
  if (dir && !existsSync(dir)) mkdirSync(dir, { recursive: true });
  const prof = dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
  // An absolute script runs from its own checkout (the --baseline rows). A checkout from
  // before the bundles has none: its sources run through tsx, as they did then (about
  // 80 MB more RSS, so compare its CPU, not its memory).
  const source = isAbsolute(script) ? script : join(here, script);
  const bundle = bundleOf(source);
  const entry = existsSync(bundle) || !isAbsolute(script) ? [bundle] : ["--import", "tsx", source];
  return spawnProcess({
    name,
    command: process.execPath,
    // BENCH_NODE_FLAGS: extra node flags for the processes under test (diagnostics).
    args: [
      ...prof,
      ...(process.env.BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
      ...(ctx.nodeFlags ?? []),
      ...entry,
    ],
    cwd: isAbsolute(script) ? dirname(dirname(script)) : benchDir,
    env: {
      NATS_URL: ctx.infra.nats.url,
      REDIS_URL: ctx.infra.redisServer.url,
      LOG_LEVEL: "info",
      ...env,
    },
  });
}

/** Row 1a: async publish with a window of PubAcks in flight. */
export async function publishRow(
  ctx: RowContext,
  spec: { id: string; label: string; msgId: boolean },
): Promise<RowResult> {
  await resetState(ctx.infra);
  const child = await spawnChild(ctx, spec.id, "raw-publisher.ts", {
    BENCH_MESSAGES: String(ctx.messages),
    BENCH_WINDOW: String(ctx.publishWindow),
    BENCH_MSG_ID: spec.msgId ? "1" : "0",
    BENCH_TAG: spec.id,
  });
  try {
    await child.waitForLine(/bench publisher ready/, 60_000);
    const watch = new ProcWatch({ "nats-server": ctx.infra.nats.pid });
    watch.start();
    process.kill(child.pid, "SIGUSR2");
    const line = await child.waitForLine(/^BENCH_RESULT /, Math.max(60_000, ctx.messages * 2));
    const costs = watch.stop();
    const r = JSON.parse(line.slice("BENCH_RESULT ".length)) as PublisherResult;
    const stored = await lastSeq(ctx.infra.jsm, Streams.INGRESS.name);
    return {
      id: spec.id,
      label: spec.label,
      messages: r.messages,
      seconds: round(r.elapsedMs / 1000, 3),
      perSecond: Math.round((r.messages * 1000) / r.elapsedMs),
      latency: {
        ...r.latency,
        offeredPerSecond: null,
        spans: `publish call → PubAck, ${ctx.publishWindow} in flight`,
      },
      subject: "publisher",
      processes: {
        publisher: cost(r.cpuMs, r.messages, r.peakRssBytes),
        "nats-server": cost(costs["nats-server"]!.cpuMs, r.messages, costs["nats-server"]!.maxRssBytes),
      },
      facts: { stored, window: ctx.publishWindow },
    };
  } finally {
    await child.stop(5_000);
  }
}

/** What a consuming row runs: the raw consumer, the hand-written stage or the runtime. */
export interface ConsumerRowSpec {
  readonly id: string;
  readonly label: string;
  /** A file in bench/src, or an absolute path into another checkout's bench/src. */
  readonly script: string;
  readonly env: Record<string, string>;
  /** The durable consumer; created by the bench unless the runtime creates its own. */
  readonly durable: string;
  readonly benchCreatesConsumer: boolean;
  /** Stream the row's outputs go to (counted as a sanity check), if any. */
  readonly outputStream?: string;
  /** Whether Redis takes part (its CPU is reported). */
  readonly usesRedis: boolean;
}

/**
 * A stage row's spec: the hand-written stage (the bench creates its consumer) or the runtime
 * (`runtime-stage.ts` of this or another checkout, which creates its own), taking the whole
 * backlog with K in flight.
 */
export function stageSpec(
  ctx: RowContext,
  id: string,
  label: string,
  script: string,
  env: Record<string, string>,
): ConsumerRowSpec {
  const runtime = script.endsWith("runtime-stage.ts");
  return {
    id,
    label,
    script,
    durable: runtime ? "runtime" : "handwritten",
    benchCreatesConsumer: !runtime,
    outputStream: "VALIDATION",
    usesRedis: true,
    env: {
      // A preloaded backlog is there before the stage creates its consumer: take all of it.
      JETMESH_CONSUMER_START: "all",
      BENCH_IN_FLIGHT: String(ctx.inFlight),
      JETMESH_MAX_IN_FLIGHT: String(ctx.inFlight),
      JETMESH_MAX_ACK_PENDING: String(ctx.maxAckPending),
      ...env,
    },
  };
}

/**
 * Rows 1b, 2 and 3. Throughput: `messages` events are preloaded, then the child starts and
 * drains them; the rate is counted from the first delivery to the ack floor reaching the last
 * message, as the broker sees it (polled every 5 ms). Latency: the drained child then gets
 * `latencyMessages` more at a fixed offered rate, each timed from the publish call to the
 * broker receiving its ack.
 */
export async function consumerRow(ctx: RowContext, spec: ConsumerRowSpec): Promise<RowResult> {
  const { infra } = ctx;
  await resetState(infra);
  if (spec.benchCreatesConsumer) await addStageConsumer(infra, spec.durable, ctx.maxAckPending);
  await preload(infra.js, makeEvents(ctx.messages, spec.id));
  const first = 1;
  const last = await lastSeq(infra.jsm, Streams.INGRESS.name);
  if (last !== ctx.messages) throw new Error(`preloaded ${last} messages, wanted ${ctx.messages}`);
  const child = await spawnChild(ctx, spec.id, spec.script, { BENCH_STAGE: spec.durable, ...spec.env });
  const alive = () => {
    if (!child.isRunning()) throw new Error(`${spec.id} exited:\n${child.lines().slice(-30).join("\n")}`);
  };
  try {
    await pollConsumer(infra.jsm, spec.durable, (ci) => ci.delivered.stream_seq >= first, {
      what: `${spec.id} to start consuming`,
      stallMs: 90_000,
      everyMs: 2,
      onPoll: alive,
    });
    const pids: Record<string, number> = { [spec.id]: child.pid, "nats-server": infra.nats.pid };
    if (spec.usesRedis) pids["redis-server"] = infra.redisServer.pid;
    const watch = new ProcWatch(pids);
    watch.start();
    const t0 = performance.now();
    await pollConsumer(infra.jsm, spec.durable, (ci) => ci.ack_floor.stream_seq >= last, {
      what: `${spec.id} to ack ${ctx.messages} messages`,
      stallMs: 60_000,
      everyMs: 5,
      onPoll: alive,
    });
    const elapsedMs = performance.now() - t0;
    const costs = watch.stop();
    const outputs = spec.outputStream ? await lastSeq(infra.jsm, spec.outputStream) : undefined;
    if (outputs !== undefined && outputs !== ctx.messages)
      ctx.log(`warning: ${spec.id} stored ${outputs} outputs for ${ctx.messages} inputs`);

    const latency = await offerLoad(infra, {
      events: makeEvents(ctx.latencyMessages, spec.id, ctx.messages),
      ratePerSecond: ctx.rate,
      durable: spec.durable,
      firstSeq: last + 1,
    });
    const processes = processCosts(costs, ctx.messages, spec.id, sampleProcess(child.pid).peakRssBytes);
    return {
      id: spec.id,
      label: spec.label,
      messages: ctx.messages,
      seconds: round(elapsedMs / 1000, 3),
      perSecond: Math.round((ctx.messages * 1000) / elapsedMs),
      latency: {
        ...latency,
        offeredPerSecond: ctx.rate,
        spans: "publish call → the consumer's ack at the broker",
      },
      subject: spec.id,
      processes,
      facts: {
        ...(outputs !== undefined ? { outputs } : {}),
        in_flight: ctx.inFlight,
        max_ack_pending: ctx.maxAckPending,
      },
    };
  } finally {
    if (process.env.BENCH_ECHO)
      for (const l of child.lines()) if (l.includes(process.env.BENCH_ECHO)) ctx.log(l);
    await child.stop(15_000);
  }
}
