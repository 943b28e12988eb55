import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { StreamNames } from "@jetmesh/contracts";
import { pipelineBacklog } from "@jetmesh/mesh";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { WatchedProcess } from "./environment.ts";

/**
 * Watches a chaos run from outside: the pipeline's backlog and progress (every durable
 * consumer's pending + unacknowledged messages, the streams' last sequences) and the
 * resident memory of every process. Recovery times are computed from these samples.
 */

/** One look at the pipeline. */
export interface PipelineSample {
  readonly atMs: number;
  /** num_pending + num_ack_pending over every durable consumer. */
  readonly outstanding: number;
  /** Sum of the last sequences of the streams the stages write (not INGRESS, not DLQ): grows when stages work. */
  readonly progress: number;
  /** `stream/consumer` → backlog, for the consumers that have one. */
  readonly consumers: Readonly<Record<string, number>>;
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

const DOWNSTREAM = [StreamNames.Validation, StreamNames.Risk, StreamNames.Ledger, StreamNames.Payouts];

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
        samples.push({
          atMs: Date.now(),
          outstanding: b.outstanding,
          progress: DOWNSTREAM.reduce((sum, s) => sum + (b.lastSeqs[s] ?? 0), 0),
          consumers: b.consumers,
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
 * How long after `endMs` the pipeline recovered: the first sample where the backlog is
 * at most `threshold` and the stages have produced output since the fault ended (or have
 * nothing left to do). Undefined when that never happened in the samples.
 */
export function recoveryMs(
  samples: readonly PipelineSample[],
  endMs: number,
  threshold: number,
): number | undefined {
  let base: number | undefined;
  for (const s of samples) {
    if (s.atMs <= endMs) {
      base = s.progress;
      continue;
    }
    base ??= s.progress;
    if (s.outstanding <= threshold && (s.progress > base || s.outstanding === 0)) return s.atMs - endMs;
  }
  return undefined;
}
