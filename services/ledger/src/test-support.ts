/**
 * Helpers for the ledger's tests (imported by *.test.ts only): real nats-server and
 * redis-server on free ports, the LEDGER stream, and events as the stage emits them.
 */
import {
  type AnyEnvelope,
  deriveId,
  encodeEvent,
  type EventDataMap,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  type StreamName,
  Streams,
  subjectFor,
  toStreamConfig,
} from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { type NatsServerHandle, type RedisServerHandle, startNats, startRedis } from "@jetmesh/testkit";
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { LedgerKeys } from "./store.ts";

export interface Infra {
  readonly nats: NatsServerHandle;
  readonly redisServer: RedisServerHandle;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly redis: Redis;
  readonly logger: Logger;
  close(): Promise<void>;
}

/** Starts nats-server (JetStream) and redis-server on free ports, with clients. */
export async function startInfra(opts: { nats?: boolean } = {}): Promise<Infra> {
  const [nats, redisServer] = await Promise.all([
    opts.nats === false ? Promise.resolve(undefined) : startNats(),
    startRedis(),
  ]);
  const nc = nats ? await connect({ servers: nats.url }) : (undefined as unknown as NatsConnection);
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  return {
    nats: nats as NatsServerHandle,
    redisServer,
    nc,
    js: nats ? jetstream(nc) : (undefined as unknown as JetStreamClient),
    jsm: nats ? await jetstreamManager(nc) : (undefined as unknown as JetStreamManager),
    redis,
    logger: createLogger({ service: "ledger-test", level: process.env.LOG_LEVEL ?? "silent" }),
    async close() {
      redis.disconnect();
      if (nats) await nc.close().catch(() => {});
      await Promise.all([nats?.stop(), redisServer.stop()]);
    },
  };
}

/** Creates a stream from its contract definition. */
export async function addStream(jsm: JetStreamManager, name: StreamName): Promise<void> {
  await jsm.streams.add(toStreamConfig(Streams[name]) as unknown as StreamConfig);
}

/** Marks the projection whole, as a finished restore of an empty log would. */
export async function markReady(redis: Redis): Promise<void> {
  await redis.set(LedgerKeys.epoch, "test");
}

type Core = { transferId: string; from: string; to: string; amountMinor: number; currency: string };

/** A LEDGER event as the ledger stage would emit it for input event `cause`. */
export function ledgerEvent<T extends "ledger.posted" | "ledger.declined" | "ledger.reversed">(
  type: T,
  data: EventDataMap[T],
  cause: string,
): AnyEnvelope {
  return makeEnvelope(type, data, {
    eventId: deriveId("out", "ledger", cause, "0"),
    correlationId: data.transferId,
    causationId: cause,
    producer: "ledger",
  }) as AnyEnvelope;
}

/** Only the transfer fields, whatever else `t` carries. */
const pick = ({ transferId, from, to, amountMinor, currency }: Core): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency,
});

export const posted = (core: Core, decision: "allow" | "review" = "allow", cause = `sc-${core.transferId}`) =>
  ledgerEvent(EventTypes.LedgerPosted, { ...pick(core), decision }, cause);
export const declined = (
  core: Core,
  reason: "insufficient_funds" | "risk_denied",
  cause = `sc-${core.transferId}`,
) => ledgerEvent(EventTypes.LedgerDeclined, { ...pick(core), reason }, cause);
export const reversed = (core: Core, reason = "bank refused", cause = `pf-${core.transferId}`) =>
  ledgerEvent(EventTypes.LedgerReversed, { ...pick(core), reason }, cause);

/** Publishes an event with its headers and Nats-Msg-Id; returns the stream sequence. */
export async function publishEvent(
  js: JetStreamClient,
  env: AnyEnvelope,
  msgId = env.eventId,
): Promise<number> {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
  h.set("Nats-Msg-Id", msgId);
  const ack = await js.publish(subjectFor(env.type, (env.data as Core).from), encodeEvent(env), {
    msgID: msgId,
    headers: h,
  });
  return ack.seq;
}
