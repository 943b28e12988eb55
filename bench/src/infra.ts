// The bench's own servers (testkit: free 127.0.0.1 ports, temp folders, never the system
// servers on 4222/6379), the parent's clients, and what every row does with them: reset the
// streams, preload input events, watch a consumer's progress, offer a paced load.
import { type StreamDefinition, Streams, toStreamConfig } from "@jetmesh/contracts";
import { stageSettings } from "@jetmesh/stage";
import { consumerConfig } from "@jetmesh/stage/internal";
import {
  type NatsServerHandle,
  type RedisServerHandle,
  startInfra,
  stopAllProcesses,
} from "@jetmesh/testkit/local-infra";
import {
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type PubAck,
  type StreamConfig,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import type { WireEvent } from "./events.ts";
import { Latencies, type LatencySummary } from "./latency.ts";

/** The stream a stage row reads, and the streams it writes. */
export const INPUT: StreamDefinition = Streams.INGRESS;
const TOUCHED: readonly StreamDefinition[] = [Streams.INGRESS, Streams.VALIDATION, Streams.DLQ];

export interface Infra {
  readonly nats: NatsServerHandle;
  readonly redisServer: RedisServerHandle;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly redis: Redis;
  close(): Promise<void>;
}

/**
 * Starts a private nats-server (JetStream, file store) and redis-server without persistence
 * (the testkit's `startInfra`, as the mesh and chaos runners start theirs); connects to both.
 */
export async function startBenchInfra(): Promise<Infra> {
  const servers = await startInfra({ redisPersistence: false });
  // No URL was given to reuse: both servers are this call's.
  const nats = servers.nats as NatsServerHandle;
  const redisServer = servers.redis as RedisServerHandle;
  const nc = await connect({ servers: nats.url, name: "bench-driver" });
  const redis = new Redis(redisServer.url, { lazyConnect: false });
  return {
    nats,
    redisServer,
    nc,
    // Long enough for a machine that other work keeps busy: the driver must not be the one that fails.
    js: jetstream(nc, { timeout: 60_000 }),
    jsm: await jetstreamManager(nc),
    redis,
    async close() {
      redis.disconnect();
      await nc.close().catch(() => {});
      await servers.stop();
      await stopAllProcesses();
    },
  };
}

/** Deletes and recreates the streams a row touches (as the contracts define them) and empties Redis. */
export async function resetState(infra: Infra): Promise<void> {
  for (const def of TOUCHED) {
    await infra.jsm.streams.delete(def.name).catch(() => false);
    await infra.jsm.streams.add(toStreamConfig(def) as unknown as StreamConfig);
  }
  await infra.redis.flushall();
}

/** The consumer the runtime would create for a stage named `durable` with default settings. */
export async function addStageConsumer(infra: Infra, durable: string, maxAckPending: number): Promise<void> {
  const s = stageSettings({ maxAckPending });
  await infra.jsm.consumers.add(
    INPUT.name,
    consumerConfig({
      stream: INPUT.name,
      durable,
      ackWaitMs: s.ackWaitMs,
      maxAckPending: s.maxAckPending,
    }),
  );
}

/** Publishes events as fast as a window of `window` unacknowledged publishes allows. */
export async function preload(
  js: JetStreamClient,
  events: readonly WireEvent[],
  window = 1000,
): Promise<void> {
  let inFlight: Promise<PubAck>[] = [];
  for (const e of events) {
    inFlight.push(js.publish(e.subject, e.body, { msgID: e.msgID, headers: e.headers }));
    if (inFlight.length >= window) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
}

/** The last sequence stored in a stream (0 when empty). */
export async function lastSeq(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.last_seq;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls a consumer every `everyMs` until `test` holds (a missing consumer counts as not yet).
 * @throws when `stallMs` pass without the consumer's delivered or ack floor sequence moving
 *   (a slow machine is not a failure, a stuck one is), naming `what`.
 */
export async function pollConsumer(
  jsm: JetStreamManager,
  durable: string,
  test: (ci: ConsumerInfo) => boolean,
  opts: { what: string; stallMs: number; everyMs?: number; onPoll?: () => void; stream?: string },
): Promise<ConsumerInfo> {
  let progress = "";
  let movedAt = Date.now();
  for (;;) {
    const ci = await jsm.consumers.info(opts.stream ?? INPUT.name, durable).catch(() => undefined);
    if (ci && test(ci)) return ci;
    opts.onPoll?.();
    const now = ci ? `${ci.delivered.stream_seq}/${ci.ack_floor.stream_seq}` : "";
    if (now !== progress) {
      progress = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > opts.stallMs) {
      const state = ci
        ? `delivered ${ci.delivered.stream_seq}, ack floor ${ci.ack_floor.stream_seq}, pending ${ci.num_pending}, ack pending ${ci.num_ack_pending}`
        : "no consumer";
      throw new Error(`no progress for ${opts.stallMs} ms waiting for ${opts.what} (${state})`);
    }
    await sleep(opts.everyMs ?? 5);
  }
}

/**
 * Offers `events` at `ratePerSecond` (open loop: the schedule does not wait for the stage)
 * and measures, per message, the time from the publish call to the moment the broker
 * received the consumer's ack. The acks are observed by a plain subscription on
 * `$JS.ACK.<stream>.<durable>.>`, which receives a copy of every ack the consumer sends;
 * the stream sequence in the ack subject names the message (one publisher, so sequences
 * follow the publish order from `firstSeq`).
 * @throws when not every message was acked within `timeoutMs` after the last publish.
 */
export async function offerLoad(
  infra: Infra,
  opts: {
    events: readonly WireEvent[];
    ratePerSecond: number;
    durable: string;
    firstSeq: number;
    timeoutMs?: number;
    /** The stream the events go to (default INGRESS). */
    stream?: string;
  },
): Promise<LatencySummary> {
  const n = opts.events.length;
  const sentAt = new Float64Array(n);
  const seen = new Uint8Array(n);
  const lat = new Latencies(n);
  let acked = 0;
  let allAcked: () => void = () => {};
  const done = new Promise<void>((r) => {
    allAcked = r;
  });
  const sub = infra.nc.subscribe(`$JS.ACK.${opts.stream ?? INPUT.name}.${opts.durable}.>`, {
    callback: (_err, m) => {
      // "+ACK" (or an empty body) is an ack; +NAK, +WPI, +TERM are not.
      const d = m.data;
      if (d.length > 0 && !(d[0] === 0x2b && d[1] === 0x41)) return;
      const t = m.subject.split(".");
      // v1 subjects: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>;
      // v2 adds domain and account hash after ACK.
      const seq = Number(t.length >= 12 ? t[7] : t[5]);
      const i = seq - opts.firstSeq;
      if (i < 0 || i >= n || seen[i] || sentAt[i] === 0) return;
      seen[i] = 1;
      lat.record(performance.now() - sentAt[i]!);
      if (++acked === n) allAcked();
    },
  });
  await infra.nc.flush();
  const started = performance.now();
  let sent = 0;
  const publishes: Promise<unknown>[] = [];
  while (sent < n) {
    const due = Math.min(n, Math.floor(((performance.now() - started) * opts.ratePerSecond) / 1000) + 1);
    while (sent < due) {
      const e = opts.events[sent]!;
      sentAt[sent] = performance.now();
      publishes.push(infra.js.publish(e.subject, e.body, { msgID: e.msgID, headers: e.headers }));
      sent++;
    }
    if (sent < n) await sleep(1);
  }
  await Promise.all(publishes);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs).unref());
  const result = await Promise.race([done.then(() => "ok" as const), timer]);
  sub.unsubscribe();
  if (result === "timeout")
    throw new Error(`only ${acked} of ${n} offered messages acked within ${timeoutMs} ms`);
  return lat.summary();
}
