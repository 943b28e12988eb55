import { setTimeout as sleep } from "node:timers/promises";
import { JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { namesFor } from "@jetmesh/contracts";
import { CatalogStreams } from "./services.ts";

/** What is still moving, per durable consumer and stream. */
export interface PipelineBacklog {
  /** Sum of num_pending + num_ack_pending over every durable consumer. */
  readonly outstanding: number;
  /** `stream/consumer` → pending + ack pending, only those above 0. */
  readonly consumers: Readonly<Record<string, number>>;
  /** Last sequence of each stream. */
  readonly lastSeqs: Readonly<Record<string, number>>;
}

/**
 * Reads every durable consumer's backlog and every stream's last sequence once, in
 * `namespace` (JETMESH_NAMESPACE; default none). Streams are named as the contracts name them.
 */
export async function pipelineBacklog(jsm: JetStreamManager, namespace = ""): Promise<PipelineBacklog> {
  const names = namesFor(namespace);
  const consumers: Record<string, number> = {};
  const lastSeqs: Record<string, number> = {};
  let outstanding = 0;
  // Every stream of the catalog: one a stage adds to its manifest cannot be left out of the wait.
  for (const stream of CatalogStreams) {
    try {
      lastSeqs[stream] = (await jsm.streams.info(names.stream(stream))).state.last_seq;
    } catch (err) {
      if (err instanceof JetStreamApiError) continue; // not created yet
      throw err;
    }
    for await (const c of jsm.consumers.list(names.stream(stream))) {
      // Ephemeral (ordered) readers such as the ledger's projector or the checker may lag
      // by design and are not part of the pipeline's work.
      if (!c.config.durable_name) continue;
      const n = c.num_pending + c.num_ack_pending;
      outstanding += n;
      if (n > 0) consumers[`${stream}/${c.name}`] = n;
    }
  }
  return { outstanding, consumers, lastSeqs };
}

/** Options of {@link waitForQuiet}. */
export interface WaitForQuietOptions {
  /** Give up after this long (default 180 s). */
  readonly timeoutMs?: number;
  /** Poll interval (default 250 ms). */
  readonly intervalMs?: number;
  /** Consecutive quiet polls with unchanged streams needed (default 3). */
  readonly stablePolls?: number;
  /** The namespace whose pipeline is waited for (JETMESH_NAMESPACE; default none). */
  readonly namespace?: string;
  readonly onProgress?: (b: PipelineBacklog) => void;
}

/**
 * Resolves once the pipeline is quiet: every durable consumer on every stream has
 * nothing pending and nothing unacknowledged, and no stream grew, over `stablePolls`
 * consecutive polls (a message published between two consumer reads cannot slip through).
 * A message waiting for a redelivery is unacknowledged, so backoffs count as work.
 * @throws when `timeoutMs` passes, naming what was still outstanding.
 */
export async function waitForQuiet(
  jsm: JetStreamManager,
  o: WaitForQuietOptions = {},
): Promise<PipelineBacklog> {
  const deadline = Date.now() + (o.timeoutMs ?? 180_000);
  const need = o.stablePolls ?? 3;
  let streak = 0;
  let previous = "";
  let last: PipelineBacklog | undefined;
  for (;;) {
    last = await pipelineBacklog(jsm, o.namespace);
    o.onProgress?.(last);
    const seqs = JSON.stringify(last.lastSeqs);
    if (last.outstanding === 0 && seqs === previous) streak++;
    else streak = last.outstanding === 0 ? 1 : 0;
    previous = seqs;
    if (streak >= need) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `pipeline not quiet after ${o.timeoutMs ?? 180_000} ms: ${JSON.stringify(last.consumers)} outstanding`,
      );
    }
    await sleep(o.intervalMs ?? 250);
  }
}
