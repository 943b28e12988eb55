// The ledger stage under the real runtime (runStage) with real nats-server and
// redis-server: crashes are simulated in-process at the runtime's crash points (the
// message is abandoned as by a dead process, so JetStream redelivers it after AckWait).
import {
  type AnyEnvelope,
  EventTypes,
  makeEnvelope,
  outputEventId,
  type PayoutFailed,
  type TransferScored,
} from "@jetmesh/contracts";
import {
  type CrashPoint,
  CrashPoints,
  createRedis,
  runStage,
  SimulatedCrash,
  type StageHandle,
  stageSettings,
} from "@jetmesh/stage";
import { waitFor } from "@jetmesh/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerStage } from "./handler.ts";
import { readLog } from "./ledger-log.ts";
import { createProjector, type Projector } from "./projector.ts";
import { rebuild } from "./rebuild.ts";
import { createSnapshotStore, openSnapshotBucket } from "./snapshots.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys } from "./store.ts";
import { type Infra, publishEvent, startInfra } from "./test-support.ts";

let infra: Infra;
let redis: Redis;
let store: LedgerStore;
let projector: Projector;
let stage: StageHandle;
/** Crash points armed for the next time they are reached (each fires once). */
const armed: CrashPoint[] = [];
const crashed: CrashPoint[] = [];

beforeAll(async () => {
  infra = await startInfra();
  redis = createRedis({ url: infra.redisServer.url, name: "ledger-test" });
  store = createLedgerStore(redis);
  const bucket = await openSnapshotBucket(infra.js, "ledger-snapshots");
  projector = createProjector({
    js: infra.js,
    jsm: infra.jsm,
    store,
    snapshots: createSnapshotStore(bucket, { chunkBytes: 64 * 1024 }),
    logger: infra.logger,
    snapshotEvery: 5,
    epochCheckMs: 100,
  });
  await projector.start();
  stage = await runStage({
    definition: ledgerStage,
    deps: { store, onNotReady: (reason: string) => projector.requestRestore(reason) },
    nc: infra.nc,
    redis,
    logger: infra.logger,
    crashHook: (point) => {
      const i = armed.indexOf(point);
      if (i < 0) return;
      armed.splice(i, 1);
      crashed.push(point);
      throw new SimulatedCrash(point);
    },
    settings: stageSettings({
      ackWaitMs: 600,
      backoffMs: [400],
      maxDeliver: 20,
      retryBaseMs: 20,
      retryMaxMs: 200,
      publishTimeoutMs: 1000,
      publishRetryHorizonMs: 2000,
    }),
  });
}, 60_000);
afterAll(async () => {
  await stage?.stop();
  await projector?.stop();
  redis?.disconnect();
  await infra?.close();
});

let n = 0;
type Core = { transferId: string; from: string; to: string; amountMinor: number; currency: string };

function scoredEvent(core: Core, decision: TransferScored["decision"] = "allow") {
  return makeEnvelope(
    EventTypes.TransferScored,
    { ...core, score: 10, decision, factors: [] },
    {
      eventId: `sc-${core.transferId}-${++n}`,
      correlationId: core.transferId,
      causationId: `va-${core.transferId}`,
      producer: "risk",
    },
  ) as AnyEnvelope;
}

function failedEvent(core: Core) {
  const data: PayoutFailed = { ...core, reason: "account closed", bankStatus: 422 };
  return makeEnvelope(EventTypes.PayoutFailed, data, {
    eventId: `pf-${core.transferId}-${++n}`,
    correlationId: core.transferId,
    causationId: `po-${core.transferId}`,
    producer: "payout",
  }) as AnyEnvelope;
}

async function ledgerLog(): Promise<AnyEnvelope[]> {
  const info = await infra.jsm.streams.info("LEDGER");
  const out: AnyEnvelope[] = [];
  await readLog(infra.js, "LEDGER", 1, info.state.last_seq, (e) => {
    if (e.env) out.push(e.env);
  });
  return out;
}

const eventsOf = async (transferId: string) =>
  (await ledgerLog()).filter((e) => e.correlationId === transferId);

async function quiet(): Promise<void> {
  await waitFor(
    async () => {
      for (const s of ["RISK", "PAYOUTS"]) {
        const c = await infra.jsm.consumers.info(s, "ledger");
        if (c.num_pending !== 0 || c.num_ack_pending !== 0) return false;
      }
      const last = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
      return (await store.appliedSeq()) >= last;
    },
    { what: "ledger quiet", timeoutMs: 30_000, intervalMs: 50 },
  );
}

const bal = async (account: string) => BigInt((await redis.hget(LedgerKeys.balance(account), "EUR")) ?? "0");

async function fund(account: string, amountMinor: number): Promise<void> {
  await publishEvent(
    infra.js,
    scoredEvent({
      transferId: `fund-${account}-${++n}`,
      from: "external",
      to: account,
      amountMinor,
      currency: "EUR",
    }),
  );
}

describe("ledger stage (runtime)", () => {
  it("ledger - a redelivered transfers.scored moves money once and logs one posting with the derived id", async () => {
    await fund("acc-r1", 1000);
    await quiet();
    const core = {
      transferId: "t-redeliver",
      from: "acc-r1",
      to: "bank:r1",
      amountMinor: 400,
      currency: "EUR",
    };
    const input = scoredEvent(core);
    // dies after the effect (money moved, nothing published), then after the publish
    armed.push(CrashPoints.AfterEffect, CrashPoints.AfterPublish);
    await publishEvent(infra.js, input);
    // and the same input republished past the duplicate window (another Nats-Msg-Id)
    await publishEvent(infra.js, input, `${input.eventId}-again`);
    await quiet();
    expect(crashed).toEqual([CrashPoints.AfterEffect, CrashPoints.AfterPublish]);
    expect(await bal("acc-r1")).toBe(600n);
    expect(await bal("bank:r1")).toBe(400n);
    const events = await eventsOf("t-redeliver");
    expect(events.map((e) => e.type)).toEqual(["ledger.posted"]);
    expect(events[0]?.eventId).toBe(outputEventId("ledger", input.eventId, 0));
    expect(events[0]?.causationId).toBe(input.eventId);
  });

  it("ledger - a declined transfer moves nothing and logs ledger.declined", async () => {
    const poor = { transferId: "t-poor", from: "acc-nobody", to: "bank:x", amountMinor: 5, currency: "EUR" };
    const denied = { transferId: "t-denied", from: "external", to: "acc-x", amountMinor: 5, currency: "EUR" };
    await publishEvent(infra.js, scoredEvent(poor));
    await publishEvent(infra.js, scoredEvent(denied, "deny"));
    await quiet();
    expect((await eventsOf("t-poor")).map((e) => [e.type, (e.data as { reason?: string }).reason])).toEqual([
      ["ledger.declined", "insufficient_funds"],
    ]);
    expect((await eventsOf("t-denied")).map((e) => [e.type, (e.data as { reason?: string }).reason])).toEqual(
      [["ledger.declined", "risk_denied"]],
    );
    expect(await bal("acc-x")).toBe(0n);
  });

  it("ledger - a refusal redelivered reverses once; another refusal of the same transfer changes nothing", async () => {
    await fund("acc-f1", 900);
    const core = {
      transferId: "t-refused",
      from: "acc-f1",
      to: "bank:f1",
      amountMinor: 700,
      currency: "EUR",
    };
    await publishEvent(infra.js, scoredEvent(core));
    await quiet();
    expect(await bal("acc-f1")).toBe(200n);
    const refusal = failedEvent(core);
    armed.push(CrashPoints.AfterEffect);
    await publishEvent(infra.js, refusal);
    await publishEvent(infra.js, refusal, `${refusal.eventId}-again`);
    await publishEvent(infra.js, failedEvent(core));
    await quiet();
    expect(crashed.at(-1)).toBe(CrashPoints.AfterEffect);
    expect(await bal("acc-f1")).toBe(900n);
    expect(await bal("bank:f1")).toBe(0n);
    const events = await eventsOf("t-refused");
    expect(events.map((e) => e.type)).toEqual(["ledger.posted", "ledger.reversed"]);
    expect(events[1]?.eventId).toBe(outputEventId("ledger", refusal.eventId, 0));
  });

  it("ledger - transfers arriving while Redis is wiped wait for the restore, then post on whole balances", async () => {
    await fund("acc-w1", 500);
    await quiet();
    await infra.redisServer.flushAll();
    // acc-w1 has 500 in the log: 300 must post, a second 300 must be declined
    const a = { transferId: "t-wipe-a", from: "acc-w1", to: "bank:w1", amountMinor: 300, currency: "EUR" };
    const b = { ...a, transferId: "t-wipe-b" };
    await publishEvent(infra.js, scoredEvent(a));
    await quiet();
    await publishEvent(infra.js, scoredEvent(b));
    await quiet();
    expect((await eventsOf("t-wipe-a")).map((e) => e.type)).toEqual(["ledger.posted"]);
    expect((await eventsOf("t-wipe-b")).map((e) => e.type)).toEqual(["ledger.declined"]);
    expect(await bal("acc-w1")).toBe(200n);
  });

  it("ledger - after everything, folding LEDGER from its first message equals the live balances", async () => {
    await quiet();
    const report = await rebuild({ js: infra.js, jsm: infra.jsm, store, attempts: 3, settleMs: 200 });
    expect(report.differences).toEqual([]);
    expect(report.fold.skipped).toEqual([]);
    expect(report.fold.state.outcomes.size).toBeGreaterThan(5);
  });
});
