import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { pipelineBacklog } from "@jetmesh/mesh";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { WatchedProcess } from "./environment.ts";
import { StageOutputs } from "./stages.ts";

/**
 * Watches a chaos run from outside: the pipeline's backlog and progress (every durable
 * consumer's pending + unacknowledged messages, the streams' last sequences) and the
 * resident memory of every process. Recovery times are computed from these samples.
 */

/** One look at the pipeline. */
export interface PipelineSample {
  readonly atMs: number;
  /** num_pending + num_ack_pending over the money pipeline's durable consumers (validator, risk, ledger, payout). */
  readonly outstanding: number;
  /** The same over the gateway's status projection (a read model, not on the money path). */
  readonly statusLag: number;
  /** `stream/consumer` → backlog, for the consumers that have one. */
  readonly consumers: Readonly<Record<string, number>>;
  /** Last sequence of each stream. */
  readonly lastSeqs: Readonly<Record<string, number>>;
}

/** Memory of one process name across its restarts. */
export interface RssStats {
  readonly name: string;
  readonly samples: number;
  readonly maxMb: number;
  /** Max over the first and the last third of the samples: a leak shows as a rise. */
  readonly firstThirdMaxMb: number;
  readonly lastThirdMaxMb: number;
}

export interface Monitor {
  samples(): readonly PipelineSample[];
  rss(): RssStats[];
  stop(): Promise<void>;
}

/** Durable name of the gateway's status projection. */
const STATUS_CONSUMER = "gateway-status";

/** Starts sampling; polls never overlap, a failed poll (broker down) leaves a gap. */
export function startMonitor(o: {
  jsm: JetStreamManager;
  processes: () => WatchedProcess[];
  intervalMs?: number;
  rssIntervalMs?: number;
}): Monitor {
  const samples: PipelineSample[] = [];
  const rss = new Map<string, number[]>();
  const stop = new AbortController();
  const pipeline = (async () => {
    while (!stop.signal.aborted) {
      try {
        const b = await pipelineBacklog(o.jsm);
        let status = 0;
        for (const [k, n] of Object.entries(b.consumers)) if (k.endsWith(`/${STATUS_CONSUMER}`)) status += n;
        samples.push({
          atMs: Date.now(),
          outstanding: b.outstanding - status,
          statusLag: status,
          consumers: b.consumers,
          lastSeqs: b.lastSeqs,
        });
      } catch {
        // the broker is down or slow: no sample this round
      }
      await sleep(o.intervalMs ?? 300, undefined, { signal: stop.signal }).catch(() => {});
    }
  })();
  const memory = (async () => {
    while (!stop.signal.aborted) {
      await Promise.all(
        o.processes().map(async (p) => {
          const mb = await rssMb(p.pid);
          if (mb === undefined) return;
          const list = rss.get(p.name) ?? [];
          list.push(mb);
          rss.set(p.name, list);
        }),
      );
      await sleep(o.rssIntervalMs ?? 1000, undefined, { signal: stop.signal }).catch(() => {});
    }
  })();
  return {
    samples: () => samples,
    rss: () =>
      [...rss].map(([name, list]) => {
        const third = Math.max(1, Math.floor(list.length / 3));
        return {
          name,
          samples: list.length,
          maxMb: Math.max(...list),
          firstThirdMaxMb: Math.max(...list.slice(0, third)),
          lastThirdMaxMb: Math.max(...list.slice(-third)),
        };
      }),
    async stop() {
      stop.abort();
      await Promise.all([pipeline, memory]);
    },
  };
}

/** VmRSS of a process in MiB; undefined when it is gone. */
export async function rssMb(pid: number): Promise<number | undefined> {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long after `endMs` the stages a fault stopped moved again: the first sample in which
 * each of `stages` (default: every stage of the money path) has written to its stream
 * since the fault ended, or has nothing to do (no backlog on its consumers; for the
 * gateway, no more traffic after `trafficEndMs`). Undefined when that never happened.
 */
export function progressMs(
  samples: readonly PipelineSample[],
  endMs: number,
  trafficEndMs: number,
  stages?: readonly string[],
): number | undefined {
  const watched = StageOutputs.filter((x) => !stages || stages.includes(x.stage));
  let base: PipelineSample | undefined;
  for (const s of samples) {
    if (s.atMs <= endMs) {
      base = s;
      continue;
    }
    base ??= s;
    const moved = watched.every(({ stage, output }) => {
      if ((s.lastSeqs[output] ?? 0) > ((base as PipelineSample).lastSeqs[output] ?? 0)) return true;
      if (stage === "gateway") return s.atMs > trafficEndMs;
      return backlogOf(s, stage) === 0;
    });
    if (moved) return s.atMs - endMs;
  }
  return undefined;
}

/**
 * How long after `endMs` the money path's backlog drained: the first sample where it is
 * at most `threshold`. Undefined when that never happened in the samples.
 */
export function drainMs(
  samples: readonly PipelineSample[],
  endMs: number,
  threshold: number,
): number | undefined {
  for (const s of samples) if (s.atMs > endMs && s.outstanding <= threshold) return s.atMs - endMs;
  return undefined;
}

function backlogOf(s: PipelineSample, stage: string): number {
  let n = 0;
  for (const [k, v] of Object.entries(s.consumers)) if (k.endsWith(`/${stage}`)) n += v;
  return n;
}
