// The ledger row: how many decisions per second the ledger service makes, as deployed (its
// bundle, tracing and metrics on), on a preloaded backlog of transfers.scored. A quarter of
// the transfers fund customer accounts from `external`; the rest move money between them,
// so the funds check runs on balances the same backlog changes. `--baseline <checkout>`
// runs the row again with that checkout's ledger (its own bundle), for before/after ratios.
import { join } from "node:path";
import {
  encodeEvent,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  StreamNames,
  Streams,
  subjectFor,
  toStreamConfig,
} from "@jetmesh/contracts";
import type { StreamConfig } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { WireEvent } from "./events.ts";
import { lastSeq, offerLoad, pollConsumer, preload } from "./infra.ts";
import { ProcWatch, sampleProcess } from "./proc-stats.ts";
import { benchDir, processCosts, type RowContext, type RowResult, spawnChild } from "./rows.ts";

const ACCOUNTS = 50;
/** Streams the ledger reads and writes, recreated before each run. */
const STREAMS = [Streams.RISK, Streams.LEDGER, Streams.PAYOUTS, Streams.DLQ] as const;

/** `n` scored transfers: every fourth funds an account from `external`, the rest move money. */
export function scoredEvents(n: number, tag: string, offset = 0): WireEvent[] {
  const out: WireEvent[] = new Array(n);
  const at = new Date().toISOString();
  for (let k = 0; k < n; k++) {
    const i = offset + k;
    const transferId = `${tag}-${i}`;
    const funding = i % 4 === 0;
    const from = funding ? "external" : `acc-${i % ACCOUNTS}`;
    const to = funding ? `acc-${(i / 4) % ACCOUNTS}` : `acc-${(i + 7) % ACCOUNTS}`;
    const env = makeEnvelope(
      EventTypes.TransferScored,
      {
        transferId,
        from,
        to,
        amountMinor: funding ? 10_000 : 100 + (i % 500),
        currency: "EUR",
        score: 10,
        decision: "allow",
        factors: [],
      },
      {
        eventId: `${tag}-scored-${i}`,
        correlationId: transferId,
        causationId: `${tag}-validated-${i}`,
        producer: "risk",
        occurredAt: at,
      },
    );
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    out[k] = { subject: subjectFor(env.type, from), body: encodeEvent(env), headers: h, msgID: env.eventId };
  }
  return out;
}

/**
 * The ledger service of `checkout` (default: this one) drains `messages` preloaded
 * transfers.scored; decisions/s from its first delivery to its ack floor reaching the last.
 */
export async function ledgerRow(
  ctx: RowContext,
  spec: { id: string; label: string; checkout?: string },
): Promise<RowResult> {
  const { infra } = ctx;
  for (const def of STREAMS) {
    await infra.jsm.streams.delete(def.name).catch(() => false);
    await infra.jsm.streams.add(toStreamConfig(def) as unknown as StreamConfig);
  }
  // The ledger's snapshot bucket is the stream behind a KV bucket.
  await infra.jsm.streams.delete("KV_ledger-snapshots").catch(() => false);
  await infra.redis.flushall();
  await preload(infra.js, scoredEvents(ctx.messages, spec.id));
  const last = await lastSeq(infra.jsm, StreamNames.Risk);
  if (last !== ctx.messages) throw new Error(`preloaded ${last} scored transfers, wanted ${ctx.messages}`);
  const root = spec.checkout ?? join(benchDir, "..");
  const child = await spawnChild(ctx, spec.id, join(root, "services/ledger/src/main.ts"), {
    HTTP_PORT: "0",
    // The backlog is preloaded before the ledger creates its consumer: take all of it.
    JETMESH_CONSUMER_START: "all",
    JETMESH_MAX_IN_FLIGHT: String(ctx.inFlight),
    JETMESH_MAX_ACK_PENDING: String(ctx.maxAckPending),
  });
  const alive = () => {
    if (!child.isRunning()) throw new Error(`${spec.id} exited:\n${child.lines().slice(-30).join("\n")}`);
  };
  try {
    await pollConsumer(infra.jsm, "ledger", (ci) => ci.delivered.stream_seq >= 1, {
      what: `${spec.id} to start deciding`,
      stallMs: 90_000,
      everyMs: 2,
      onPoll: alive,
      stream: StreamNames.Risk,
    });
    const pids = {
      [spec.id]: child.pid,
      "nats-server": infra.nats.pid,
      "redis-server": infra.redisServer.pid,
    };
    const watch = new ProcWatch(pids);
    watch.start();
    const t0 = performance.now();
    await pollConsumer(infra.jsm, "ledger", (ci) => ci.ack_floor.stream_seq >= last, {
      what: `${spec.id} to decide ${ctx.messages} transfers`,
      stallMs: 60_000,
      everyMs: 5,
      onPoll: alive,
      stream: StreamNames.Risk,
    });
    const elapsedMs = performance.now() - t0;
    const costs = watch.stop();
    const decisions = await lastSeq(infra.jsm, StreamNames.Ledger);
    if (decisions !== ctx.messages)
      ctx.log(`warning: ${spec.id} stored ${decisions} decisions for ${ctx.messages} transfers`);
    // Latency at a quarter of the stage rows' offered load: publish → the input's ack, which
    // the ledger sends only once its decision is in LEDGER.
    const latency = await offerLoad(infra, {
      events: scoredEvents(ctx.latencyMessages, spec.id, ctx.messages),
      ratePerSecond: Math.max(1, Math.round(ctx.rate / 4)),
      durable: "ledger",
      firstSeq: last + 1,
      stream: StreamNames.Risk,
    });
    const processes = processCosts(costs, ctx.messages, spec.id, sampleProcess(child.pid).peakRssBytes);
    const seconds = elapsedMs / 1000;
    return {
      id: spec.id,
      label: spec.label,
      messages: ctx.messages,
      seconds: Math.round(seconds * 1000) / 1000,
      perSecond: Math.round(ctx.messages / seconds),
      latency: {
        ...latency,
        offeredPerSecond: Math.max(1, Math.round(ctx.rate / 4)),
        spans: "publish of transfers.scored → the ledger's ack of it (its decision appended)",
      },
      subject: spec.id,
      processes,
      facts: { decisions, in_flight: ctx.inFlight },
    };
  } finally {
    await child.stop(15_000);
  }
}
