// Test support: real nats-server and redis-server (from @jetmesh/testkit), clients, and
// helpers that read streams directly with the contracts codec (never through the code
// under test).
import {
  type AnyEnvelope,
  decodeEvent,
  deriveId,
  encodeEvent,
  eventHeaders,
  EventTypes,
  type Envelope,
  makeEnvelope,
  subjectFor,
} from "@jetmesh/contracts";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { type NatsServerHandle, type RedisServerHandle, startNats, startRedis } from "@jetmesh/testkit";
import { Redis } from "ioredis";

export interface Infra {
  readonly nats: NatsServerHandle;
  readonly redisServer: RedisServerHandle;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly redis: Redis;
  close(): Promise<void>;
}

/** Starts a private nats-server (JetStream, file store) and redis-server and connects to both. */
export async function startInfra(opts: { redisPersistence?: boolean } = {}): Promise<Infra> {
  const [nats, redisServer] = await Promise.all([
    startNats(),
    startRedis({ persistence: opts.redisPersistence ?? false }),
  ]);
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  redis.on("error", () => {}); // servers are killed on purpose; commands report their own errors
  return {
    nats,
    redisServer,
    nc,
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    redis,
    async close() {
      redis.disconnect();
      await nc.close().catch(() => {});
      await Promise.all([nats.stop(), redisServer.stop()]);
    },
  };
}

/** A transfers.requested event with a deterministic id (the same `i` gives the same event). */
export function requested(
  i: number,
  over: Partial<Envelope<"transfers.requested">["data"]> = {},
  tag = "t",
): Envelope<"transfers.requested"> {
  const transferId = over.transferId ?? `${tag}-${i}`;
  return makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: `acc-${i % 7}`,
      to: `acc-${(i % 7) + 1}`,
      amountMinor: 100 + i,
      currency: "EUR",
      requestedAt: new Date(0).toISOString(),
      ...over,
    },
    {
      eventId: deriveId("test-request", transferId),
      correlationId: transferId,
      causationId: `request:${transferId}`,
      producer: "test",
    },
  );
}

/** Publishes an event as the gateway would: headers and Nats-Msg-Id = eventId. */
export async function publishEvent(
  js: JetStreamClient,
  env: AnyEnvelope | Envelope,
): Promise<{ seq: number; duplicate: boolean }> {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
  const data = env.data as { from: string };
  const ack = await js.publish(subjectFor(env.type, data.from), encodeEvent(env), {
    msgID: env.eventId,
    headers: h,
  });
  return { seq: ack.seq, duplicate: ack.duplicate };
}

/** One stored message of a stream, decoded with the contracts codec when it decodes. */
export interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly headers: Record<string, string>;
  readonly data: Uint8Array;
  readonly env?: AnyEnvelope;
}

/** Reads a whole stream by sequence (direct gets), in order. */
export async function readStream(jsm: JetStreamManager, stream: string): Promise<StoredEvent[]> {
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const out: StoredEvent[] = [];
  const batch = 256;
  for (let start = info.state.first_seq; start <= info.state.last_seq; start += batch) {
    const seqs = [];
    for (let s = start; s < Math.min(start + batch, info.state.last_seq + 1); s++) seqs.push(s);
    const msgs = await Promise.all(
      seqs.map((seq) => jsm.streams.getMessage(stream, { seq }).catch(() => null)),
    );
    for (const m of msgs) {
      if (!m) continue;
      const headers: Record<string, string> = {};
      if (m.header) for (const k of m.header.keys()) headers[k] = m.header.get(k);
      let env: AnyEnvelope | undefined;
      try {
        env = decodeEvent(m.data);
      } catch {
        env = undefined;
      }
      out.push({ seq: m.seq, subject: m.subject, headers, data: m.data, ...(env ? { env } : {}) });
    }
  }
  return out;
}
