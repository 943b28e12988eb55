// The stage rows at the rates the pipeline gives a stage. The pipeline runs each stage far
// below its saturation (a few hundred messages/s against thousands when preloaded), so a
// delivery there is one message, not a batch: what a stage costs per turn (a pull, a Redis
// round trip, a socket write, a timer) is paid per message. This row runs the hand-written
// stage and the runtime with the same ack mode at paced offered rates and preloaded, one
// after the other within each phase, and reports each stage process's CPU per message.
import { makeEvents } from "./events.ts";
import { addStageConsumer, offerLoad, resetState } from "./infra.ts";
import { ProcWatch, sampleProcess } from "./proc-stats.ts";
import {
  type ConsumerRowSpec,
  consumerRow,
  processCosts,
  type RowContext,
  type RowResult,
  spawnChild,
  stageSpec,
} from "./rows.ts";

/** One stage process the row compares: the hand-written stage, or a runtime (of a checkout). */
export interface RateSubject {
  /** `handwritten`, `runtime`, or `runtime@<checkout>` (the ratios pair it with `runtime`). */
  readonly key: string;
  readonly label: string;
  /** bench/src script (relative), or another checkout's `bench/src/runtime-stage.ts`. */
  readonly script: string;
}

/**
 * Before a paced phase's measurement: a burst that gets the message path compiled (a stage in
 * the pipeline runs for hours; 10 s at 100/s would measure V8's tiers and its compiler
 * threads as much as the stage), then this many seconds at the phase's rate.
 */
const WARM_BURST = { messages: 5000, perSecond: 2500 } as const;
const WARM_SECONDS = 1;
/** Messages of the preload phase's latency tail: its figure is the drain's. */
const PRELOAD_TAIL = 50;

/**
 * Runs every subject at each of `ctx.stageRates` (messages/s, open loop) and preloaded with
 * `ctx.messages`. A paced phase starts the subject on empty streams, offers WARM_SECONDS of
 * the rate, then measures `ctx.rateSeconds` of it: CPU of the stage process (every thread,
 * /proc schedstat) from the first publish to the broker seeing the last ack, divided by the
 * messages; idle-time work (timers, probes, heartbeats of idle pulls) counts, as it does in
 * the pipeline. Latency is publish call → ack at the broker. The preload phase is the stage
 * rows' drain (rows.ts `consumerRow`). Results are `<id>.<rate|preload>.<subject key>`.
 */
export async function rateRows(
  ctx: RowContext,
  o: { id: string; label: string; ackMode: "plain" | "confirmed"; subjects: readonly RateSubject[] },
): Promise<RowResult[]> {
  const out: RowResult[] = [];
  const env = { BENCH_ACK_MODE: o.ackMode, JETMESH_ACK_MODE: o.ackMode };
  for (const phase of [...ctx.stageRates, "preload" as const]) {
    // Subjects alternate within a phase, so a machine that gets busier moves them alike.
    for (const s of o.subjects) {
      const id = `${o.id}.${phase}.${s.key}`;
      const label = `${s.label} ${o.ackMode} @ ${phase === "preload" ? "preload" : `${phase}/s`}`;
      const spec = stageSpec(ctx, id, label, s.script, env);
      const r =
        phase === "preload"
          ? await consumerRow({ ...ctx, latencyMessages: PRELOAD_TAIL }, spec)
          : await pacedPhase(ctx, spec, phase);
      out.push({
        ...r,
        facts: { ...r.facts, paced: phase !== "preload", phase: String(phase), subject: s.key },
      });
    }
  }
  return out;
}

async function pacedPhase(ctx: RowContext, spec: ConsumerRowSpec, rate: number): Promise<RowResult> {
  const { infra } = ctx;
  await resetState(infra);
  if (spec.benchCreatesConsumer) await addStageConsumer(infra, spec.durable, ctx.maxAckPending);
  const child = await spawnChild(ctx, spec.id, spec.script, { BENCH_STAGE: spec.durable, ...spec.env });
  try {
    // Both stages print it once their pull is set up (the runtime after creating its consumer).
    await child.waitForLine(/bench stage ready/, 60_000);
    const burst = ctx.tiny ? 100 : WARM_BURST.messages;
    const settle = Math.max(10, Math.round(rate * (ctx.tiny ? 0.5 : WARM_SECONDS)));
    const warm = burst + settle;
    const events = makeEvents(warm, spec.id);
    for (const [from, to, perSecond] of [
      [0, burst, WARM_BURST.perSecond],
      [burst, warm, rate],
    ] as const)
      await offerLoad(infra, {
        events: events.slice(from, to),
        ratePerSecond: perSecond,
        durable: spec.durable,
        firstSeq: from + 1,
      });
    const n = Math.max(10, Math.round(rate * ctx.rateSeconds));
    const { nats, redisServer } = infra;
    const watch = new ProcWatch({
      [spec.id]: child.pid,
      "nats-server": nats.pid,
      "redis-server": redisServer.pid,
    });
    watch.start();
    const t0 = performance.now();
    const latency = await offerLoad(infra, {
      events: makeEvents(n, spec.id, warm),
      ratePerSecond: rate,
      durable: spec.durable,
      firstSeq: warm + 1,
    });
    const elapsedMs = performance.now() - t0;
    const costs = watch.stop();
    if (!child.isRunning()) throw new Error(`${spec.id} exited:\n${child.lines().slice(-30).join("\n")}`);
    return {
      id: spec.id,
      label: spec.label,
      messages: n,
      seconds: Math.round(elapsedMs) / 1000,
      perSecond: Math.round((n * 1000) / elapsedMs),
      latency: {
        ...latency,
        offeredPerSecond: rate,
        spans: "publish call → the consumer's ack at the broker",
      },
      subject: spec.id,
      processes: processCosts(costs, n, spec.id, sampleProcess(child.pid).peakRssBytes),
      facts: { in_flight: ctx.inFlight, offered_per_second: rate },
    };
  } finally {
    await child.stop(15_000);
  }
}
