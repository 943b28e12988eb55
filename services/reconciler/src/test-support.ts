/**
 * Helpers for the reconciler's tests (imported by *.test.ts only): a world of real
 * nats-server, redis-server and bank simulator (real HTTP), the streams as the deploy step
 * creates them, pipeline events written as the stages write them (contracts codec and
 * headers), the ledger's Redis projection kept as the ledger keeps it, and the findings read
 * back from RECONCILE with a plain ordered consumer.
 */
import {
  decodeFinding,
  encodeEvent,
  type EventDataMap,
  type EventType,
  EventTypes,
  eventHeaders,
  type Finding,
  LedgerProjection,
  makeEnvelope,
  newId,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import { readStoredEvents, startNats, startRedis, streamPosition, waitFor } from "@jetmesh/testkit";
import type { NatsServerHandle, RedisServerHandle } from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import type { ReconcilerSettings } from "./config.ts";
import { type Reconciler, startReconciler } from "./reconciler.ts";

export const REFUSED = "bank:refused";

/**
 * A bank the world talks to over HTTP. The tests pass the bank simulator's server function
 * (a service's test may import another service; this helper may not).
 */
export interface BankHandle {
  readonly url: string;
  close(): Promise<void>;
}

export interface World {
  readonly nats: NatsServerHandle;
  readonly redisServer: RedisServerHandle;
  readonly bank: BankHandle;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly redis: Redis;
  readonly logger: Logger;
  close(): Promise<void>;
}

/**
 * nats-server, redis-server and the bank on free ports; every stream created. `startBank`
 * starts a bank that refuses payouts to {@link REFUSED} and decides at once.
 */
export async function startWorld(startBank: () => Promise<BankHandle>): Promise<World> {
  const [nats, redisServer, bank] = await Promise.all([startNats(), startRedis(), startBank()]);
  const nc = await connect({ servers: nats.url, name: "reconciler-test" });
  const jsm = await jetstreamManager(nc);
  const logger = createLogger({ service: "reconciler-test", level: process.env.LOG_LEVEL ?? "silent" });
  await provisionStreams(jsm, { replicas: 1, logger });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  // The projection is whole from the start, as after the ledger's first apply.
  await redis.set(LedgerProjection.epochKey, JSON.stringify({ test: true }));
  return {
    nats,
    redisServer,
    bank,
    nc,
    js: jetstream(nc),
    jsm,
    redis,
    logger,
    async close() {
      redis.disconnect();
      await nc.close().catch(() => {});
      await Promise.all([nats.stop(), redisServer.stop(), bank.close()]);
    },
  };
}

/** Settings short enough for tests: every check runs within a second. */
export function testSettings(w: World, over: Partial<ReconcilerSettings> = {}): ReconcilerSettings {
  return {
    bankUrl: w.bank.url,
    bankTimeoutMs: 2000,
    deadlines: { validate: 1000, score: 1000, decide: 1000, payout: 1000, reverse: 1000 },
    scanMs: 200,
    sampleMs: 300,
    sampleSize: 16,
    fullCheckMs: 1000,
    bankCheckMs: 500,
    bankGraceMs: 0,
    dlqCheckMs: 300,
    infraMs: 500,
    infraTimeoutMs: 2000,
    redisScanBudget: 10_000,
    natsMonitorUrls: [],
    dlqMaxAgeMs: 60_000,
    settingsCheckMs: 500,
    missingGraceMs: 0,
    consumerLagMs: 300,
    consumers: [],
    ...over,
  };
}

/** A reconciler in this process, with its own metrics registry. */
export function reconcilerIn(w: World, settings: ReconcilerSettings, instance = "test-1") {
  const registry = new Registry();
  const r: Reconciler = startReconciler({
    nc: w.nc,
    redis: w.redis,
    logger: w.logger,
    registry,
    settings,
    stage: { ackWaitMs: 30_000, maxAckPending: 1024, replicas: 1 },
    instance,
  });
  return { reconciler: r, registry };
}

/** Writes pipeline events as the stages do, and the ledger's projection as the ledger does. */
export class Pipeline {
  readonly #w: World;
  constructor(w: World) {
    this.#w = w;
  }

  async emit<T extends EventType>(
    type: T,
    data: EventDataMap[T],
    transferId: string,
    cause: string,
    producer: string,
  ) {
    const env = makeEnvelope(type, data, {
      eventId: newId(),
      correlationId: transferId,
      causationId: cause,
      producer,
    });
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    const from = (data as { from: string }).from;
    const ack = await this.#w.js.publish(subjectFor(type, from), encodeEvent(env), {
      headers: h,
      msgID: env.eventId,
    });
    if (type.startsWith("ledger.")) await this.#project(ack.seq, type, data as EventDataMap["ledger.posted"]);
    return { eventId: env.eventId, seq: ack.seq };
  }

  /** The ledger's APPLY: balances, the accounts set and applied-seq together. */
  async #project(
    seq: number,
    type: string,
    d: { from: string; to: string; amountMinor: number; currency: string },
  ) {
    const tx = this.#w.redis.multi();
    const [from, to] = type === EventTypes.LedgerReversed ? [d.to, d.from] : [d.from, d.to];
    if (type !== EventTypes.LedgerDeclined) {
      tx.hincrby(LedgerProjection.balanceKey(from), d.currency, -d.amountMinor);
      tx.hincrby(LedgerProjection.balanceKey(to), d.currency, d.amountMinor);
      tx.sadd(LedgerProjection.accountsKey, from, to);
    }
    tx.set(LedgerProjection.appliedSeqKey, String(seq));
    await tx.exec();
  }

  /**
   * A transfer's events up to `until`: requested, validated, scored, then the ledger's outcome
   * (posted or declined); `rejected` instead of validated.
   */
  async transfer(
    t: { transferId: string; from: string; to: string; amountMinor: number; currency?: string },
    until: "requested" | "validated" | "rejected" | "scored" | "posted" | "declined",
  ) {
    const core = {
      transferId: t.transferId,
      from: t.from,
      to: t.to,
      amountMinor: t.amountMinor,
      currency: t.currency ?? "EUR",
    };
    const id = t.transferId;
    let cause = (
      await this.emit(
        EventTypes.TransferRequested,
        { ...core, requestedAt: new Date().toISOString() },
        id,
        `http:${id}`,
        "gateway",
      )
    ).eventId;
    if (until === "requested") return cause;
    if (until === "rejected") {
      return (
        await this.emit(
          EventTypes.TransferRejected,
          { ...core, reasons: [{ field: "/to", rule: "same account" }] },
          id,
          cause,
          "validator",
        )
      ).eventId;
    }
    cause = (await this.emit(EventTypes.TransferValidated, core, id, cause, "validator")).eventId;
    if (until === "validated") return cause;
    cause = (
      await this.emit(
        EventTypes.TransferScored,
        { ...core, score: 10, decision: "allow", factors: [] },
        id,
        cause,
        "risk",
      )
    ).eventId;
    if (until === "scored") return cause;
    if (until === "declined")
      return (
        await this.emit(
          EventTypes.LedgerDeclined,
          { ...core, reason: "insufficient_funds" },
          id,
          cause,
          "ledger",
        )
      ).eventId;
    return (await this.emit(EventTypes.LedgerPosted, { ...core, decision: "allow" }, id, cause, "ledger"))
      .eventId;
  }

  /** The payout stage's call to the bank (real HTTP) and its outcome on PAYOUTS; the ledger's reversal of a refusal. */
  async payout(
    t: { transferId: string; from: string; to: string; amountMinor: number; currency?: string },
    postedId: string,
  ) {
    const core = {
      transferId: t.transferId,
      from: t.from,
      to: t.to,
      amountMinor: t.amountMinor,
      currency: t.currency ?? "EUR",
    };
    const res = await payAtBank(this.#w.bank.url, core);
    if (res.status === 201 || res.status === 200) {
      await this.emit(
        EventTypes.PayoutCompleted,
        { ...core, bankReference: String(res.body.reference) },
        t.transferId,
        postedId,
        "payout",
      );
      return "paid";
    }
    const failed = await this.emit(
      EventTypes.PayoutFailed,
      { ...core, reason: "refused by bank", bankStatus: res.status },
      t.transferId,
      postedId,
      "payout",
    );
    await this.emit(
      EventTypes.LedgerReversed,
      { ...core, reason: "payout refused" },
      t.transferId,
      failed.eventId,
      "ledger",
    );
    return "refused";
  }
}

/** POST /v1/payouts as the payout stage sends it. */
export async function payAtBank(
  bankUrl: string,
  t: { transferId: string; to: string; amountMinor: number; currency: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${bankUrl}/v1/payouts`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `payout:${t.transferId}` },
    body: JSON.stringify({
      transferId: t.transferId,
      account: t.to,
      amountMinor: t.amountMinor,
      currency: t.currency,
    }),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Every finding event on RECONCILE, in order, read with the testkit's reader. */
export async function readFindings(
  w: Pick<World, "js" | "jsm">,
): Promise<(Finding & { seq: number; subject: string })[]> {
  const events = await readStoredEvents(
    w.js,
    StreamNames.Reconcile,
    await streamPosition(w.jsm, StreamNames.Reconcile),
    {
      decode: false,
    },
  );
  const out: (Finding & { seq: number; subject: string })[] = [];
  for (const e of events) {
    const m = await w.jsm.streams.getMessage(StreamNames.Reconcile, { seq: e.seq });
    if (m) out.push({ ...decodeFinding(m.data), seq: e.seq, subject: e.subject });
  }
  return out;
}

/** Waits until RECONCILE holds a finding event matching `pred`; returns it. */
export async function waitForFinding(
  w: Pick<World, "js" | "jsm">,
  what: string,
  pred: (f: Finding) => boolean,
  timeoutMs = 15_000,
): Promise<Finding & { seq: number; subject: string }> {
  let hit: (Finding & { seq: number; subject: string }) | undefined;
  await waitFor(
    async () => {
      hit = (await readFindings(w)).find(pred);
      return hit !== undefined;
    },
    { timeoutMs, what },
  );
  return hit as Finding & { seq: number; subject: string };
}
