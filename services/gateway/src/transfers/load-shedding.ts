import type { Logger } from "@jetmesh/stage";
import type { JetStreamManager } from "@nats-io/jetstream";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";

/** Why a request must wait; undefined when it may go on. */
export type ShedReason = "too many publishes in flight" | "downstream lag too high" | undefined;

/**
 * Admission for publishes. The gateway answers 503 + Retry-After rather than queueing
 * without bound: in-flight publishes are capped in this process, and the stream's reader
 * (the validator's INGRESS consumer) may not fall further behind than `maxLag`.
 */
export interface LoadShedder {
  /** Takes a publish slot, or says why not; a granted slot must be given back. */
  acquire(): { readonly ok: true; release(): void } | { readonly ok: false; readonly reason: ShedReason };
  /** Publishes in flight now. */
  inFlight(): number;
}

export function createLoadShedder(opts: {
  maxPending: number;
  maxLag: number;
  lag: () => number | undefined;
}): LoadShedder {
  let inFlight = 0;
  return {
    acquire() {
      const lag = opts.lag();
      if (lag !== undefined && lag > opts.maxLag) return { ok: false, reason: "downstream lag too high" };
      if (inFlight >= opts.maxPending) return { ok: false, reason: "too many publishes in flight" };
      inFlight++;
      let released = false;
      return {
        ok: true,
        release() {
          if (released) return;
          released = true;
          inFlight--;
        },
      };
    },
    inFlight: () => inFlight,
  };
}

/** The last known lag of one consumer, polled in the background. */
export interface LagMonitor {
  /** `num_pending` at the last poll; undefined before the first answer or while the consumer does not exist. */
  current(): number | undefined;
  stop(): void;
}

/**
 * Polls `jsm.consumers.info(stream, consumer).num_pending` every `intervalMs`. A missing
 * stream or consumer (the validator not deployed yet) means no lag is known, so nothing
 * is shed on its account; a failed poll keeps the last value until one succeeds, because
 * an unreachable NATS already fails the publish itself.
 */
export function startLagMonitor(opts: {
  jsm: JetStreamManager;
  stream: string;
  consumer: string;
  intervalMs: number;
  logger: Logger;
}): LagMonitor {
  let lag: number | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async (): Promise<void> => {
    try {
      const info = await opts.jsm.consumers.info(opts.stream, opts.consumer);
      lag = info.num_pending;
    } catch (err) {
      if (isMissing(err)) lag = undefined;
      else opts.logger.debug({ err, stream: opts.stream, consumer: opts.consumer }, "lag poll failed");
    } finally {
      // Polls never overlap: the next starts one interval after this one settled.
      if (!stopped) timer = setTimeout(() => void poll(), opts.intervalMs);
    }
  };
  void poll();
  return {
    current: () => lag,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

function isMissing(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.ConsumerNotFound || err.code === JetStreamApiCodes.StreamNotFound)
  );
}
