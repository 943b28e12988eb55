/**
 * Helpers for the ledger's tests (imported by *.test.ts only): real nats-server and
 * redis-server on free ports, the streams as the deploy step creates them, inputs as risk
 * and payout emit them, LEDGER events as the ledger appends them, LEDGER read back with the
 * testkit's reader (never through the ledger's code), and a ledger instance wired as main.ts
 * wires it.
 */
import {
  type AnyEnvelope,
  encodeEvent,
  type EventDataMap,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  outputEventId,
  type StreamName,
  Streams,
  subjectFor,
  toStreamConfig,
} from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { createEventPublisher, provisionStreams } from "@jetmesh/stage/internal";
import {
  type NatsServerHandle,
  type RedisServerHandle,
  readStoredEvents,
  type StoredEvent,
  startNats,
  startRedis,
  streamPosition,
  waitFor,
} from "@jetmesh/testkit";
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
import { createLedgerWriter, type LedgerWriter } from "./ledger-writer.ts";
import { checkLogIntegrity } from "./log-integrity.ts";
import { createLogFollower, type LogFollower } from "./log-follower.ts";
import { createRedisProjection, type RedisProjection } from "./redis-projection.ts";
import { createSnapshotStore, openSnapshotBucket } from "./snapshots.ts";
import { type LedgerStore, LedgerKeys } from "./store.ts";

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
  // tests restart, roll back and stop Redis under it: it reconnects, and the commands say what failed
  redis.on("error", () => {});
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

/** Creates one stream from its contract definition. */
export async function addStream(jsm: JetStreamManager, name: StreamName): Promise<void> {
  await jsm.streams.add(toStreamConfig(Streams[name]) as unknown as StreamConfig);
}

/** The deploy step: every stream of the contracts, LEDGER included (the ledger never creates it). */
export async function provision(jsm: JetStreamManager, logger: Logger): Promise<void> {
  await provisionStreams(jsm, { replicas: 1, logger });
}

/** Marks the projection whole, as a finished restore of an empty log would. */
export async function markReady(redis: Redis): Promise<void> {
  await redis.set(LedgerKeys.epoch, "test");
}

export type Core = { transferId: string; from: string; to: string; amountMinor: number; currency: string };

/** A transfer of `amountMinor` EUR. */
export const eur = (transferId: string, from: string, to: string, amountMinor: number): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency: "EUR",
});

/** Only the transfer fields, whatever else `t` carries. */
const pick = ({ transferId, from, to, amountMinor, currency }: Core): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency,
});

/** A LEDGER event as the ledger appends it for input event `cause`. */
export function ledgerEvent<T extends "ledger.posted" | "ledger.declined" | "ledger.reversed">(
  type: T,
  data: EventDataMap[T],
  cause: string,
): AnyEnvelope {
  return makeEnvelope(type, data, {
    eventId: outputEventId("ledger", cause, type),
    correlationId: data.transferId,
    causationId: cause,
    producer: "ledger",
  }) as AnyEnvelope;
}

export const posted = (core: Core, decision: "allow" | "review" = "allow", cause = `sc-${core.transferId}`) =>
  ledgerEvent(EventTypes.LedgerPosted, { ...pick(core), decision }, cause);
export const declined = (
  core: Core,
  reason: "insufficient_funds" | "risk_denied",
  cause = `sc-${core.transferId}`,
) => ledgerEvent(EventTypes.LedgerDeclined, { ...pick(core), reason }, cause);
export const reversed = (core: Core, reason = "bank refused", cause = `pf-${core.transferId}`) =>
  ledgerEvent(EventTypes.LedgerReversed, { ...pick(core), reason }, cause);

/** transfers.scored as risk emits it. */
export function scoredInput(
  core: Core,
  decision: "allow" | "review" | "deny" = "allow",
  eventId = `sc-${core.transferId}`,
) {
  return makeEnvelope(
    EventTypes.TransferScored,
    { ...pick(core), score: decision === "deny" ? 90 : 10, decision, factors: [] },
    { eventId, correlationId: core.transferId, causationId: `va-${core.transferId}`, producer: "risk" },
  );
}

/** payouts.failed as payout emits it for a posting. */
export function failedInput(core: Core, eventId = `pf-${core.transferId}`, reason = "account closed") {
  return makeEnvelope(
    EventTypes.PayoutFailed,
    { ...pick(core), reason, bankStatus: 422 },
    { eventId, correlationId: core.transferId, causationId: `po-${core.transferId}`, producer: "payout" },
  );
}

/** Publishes an event with its headers and Nats-Msg-Id; returns the stream sequence. */
export async function publishEvent(
  js: JetStreamClient,
  env: AnyEnvelope | ReturnType<typeof scoredInput> | ReturnType<typeof failedInput>,
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

/** LEDGER as stored, read and decoded by the testkit (not by the ledger's code). */
export async function readLedger(js: JetStreamClient, jsm: JetStreamManager): Promise<StoredEvent[]> {
  return readStoredEvents(js, Streams.LEDGER.name, await streamPosition(jsm, Streams.LEDGER.name));
}

/** One ledger instance's parts, wired as main.ts wires them. */
export interface LedgerParts {
  readonly follower: LogFollower;
  readonly writer: LedgerWriter;
  readonly projection: RedisProjection | undefined;
  stop(): Promise<void>;
}

/**
 * Checks the log, starts the follower (from the latest snapshot), the Redis projection (when
 * a store is given) and the writer, as main.ts does.
 * @throws when the log is not the one the snapshot or the projection was built from.
 */
export async function startLedgerParts(o: {
  nc: NatsConnection;
  logger: Logger;
  store?: LedgerStore;
  snapshotBucket?: string;
  snapshotEvery?: number;
  catchUpTimeoutMs?: number;
  publishTimeoutMs?: number;
  epochCheckMs?: number;
  /** LEDGER_OUTCOME_TTL_MS of the follower, the writer and (through `store`) the projection. */
  outcomeTtlMs?: number;
}): Promise<LedgerParts> {
  const js = jetstream(o.nc);
  const jsm = await jetstreamManager(o.nc);
  const bucket = await openSnapshotBucket(js, o.snapshotBucket ?? "ledger-snapshots");
  const snapshots = createSnapshotStore(bucket, { chunkBytes: 64 * 1024 });
  const snapshot = await snapshots.readLatest();
  const verdict = await checkLogIntegrity({
    jsm,
    ...(snapshot ? { snapshot: snapshot.pointer } : {}),
    ...(o.store ? { projection: await o.store.marks() } : {}),
  });
  if (verdict.problem) throw new Error(verdict.problem.message);
  const follower = createLogFollower({
    js,
    jsm,
    snapshots,
    logger: o.logger,
    snapshotEvery: o.snapshotEvery ?? 1000,
    ...(o.outcomeTtlMs !== undefined ? { outcomeTtlMs: o.outcomeTtlMs } : {}),
    streamCreated: verdict.position.created,
    ...(snapshot ? { from: snapshot.state } : {}),
  });
  await follower.start();
  const projection = o.store
    ? createRedisProjection({
        js,
        jsm,
        store: o.store,
        follower,
        logger: o.logger,
        streamCreated: verdict.position.created,
        checkEveryMs: o.epochCheckMs ?? 100,
      })
    : undefined;
  projection?.start();
  const writer = createLedgerWriter({
    follower,
    publisher: createEventPublisher({
      js,
      nc: o.nc,
      settings: { publishTimeoutMs: o.publishTimeoutMs ?? 2000, publishRetryHorizonMs: 0 },
      logger: o.logger,
      stage: "ledger",
    }),
    logger: o.logger,
    catchUpTimeoutMs: o.catchUpTimeoutMs ?? 5000,
    ...(o.outcomeTtlMs !== undefined ? { outcomeTtlMs: o.outcomeTtlMs } : {}),
  });
  return {
    follower,
    writer,
    projection,
    async stop() {
      await projection?.stop();
      await follower.stop();
    },
  };
}

/** Every input on RISK and PAYOUTS taken and acked, and Redis has applied the whole log. */
export async function ledgerQuiet(infra: Infra, ledger: LedgerParts, store: LedgerStore): Promise<void> {
  await waitFor(
    async () => {
      for (const s of ["RISK", "PAYOUTS"]) {
        const c = await infra.jsm.consumers.info(s, "ledger");
        if (c.num_pending !== 0 || c.num_ack_pending !== 0) return false;
      }
      const last = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
      return ledger.projection?.ready() === true && (await store.appliedSeq()) >= last;
    },
    { what: "ledger quiet", timeoutMs: 30_000, intervalMs: 50 },
  );
}

/** The DLQ's messages, each one's reason header. */
export async function parkedReasons(infra: Infra): Promise<string[]> {
  const events = await readStoredEvents(
    infra.js,
    Streams.DLQ.name,
    await streamPosition(infra.jsm, Streams.DLQ.name),
    { decode: false },
  );
  return events.map((e) => e.headers["jetmesh-dlq-reason"] ?? "");
}
