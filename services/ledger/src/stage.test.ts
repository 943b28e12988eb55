// The ledger stage under the real runtime (runStage) with its real follower, writer and Redis
// projection, wired as main.ts wires them, against real nats-server and redis-server. Crashes
// are simulated in-process at the runtime's crash points: the message is abandoned as by a
// dead process (no ack, no nak, no lease release), so JetStream redelivers it after AckWait.
import { outputEventId } from "@jetmesh/contracts";
import { createRedis, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { type CrashPoint, CrashPoints, SimulatedCrash } from "@jetmesh/stage/internal";
import { overdrafts, waitFor } from "@jetmesh/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerStage } from "./handler.ts";
import { rebuild } from "./projection-check.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys } from "./store.ts";
import {
  type Core,
  failedInput,
  type Infra,
  type LedgerParts,
  provision,
  publishEvent,
  readLedger,
  scoredInput,
  startInfra,
  eur,
  ledgerQuiet,
  parkedReasons,
  startLedgerParts,
} from "./test-support.ts";

let infra: Infra;
let redis: Redis;
let store: LedgerStore;
let ledger: LedgerParts;
let stage: StageHandle;
/** Crash points armed for the next time they are reached (each fires once). */
const armed: CrashPoint[] = [];
const crashed: CrashPoint[] = [];

beforeAll(async () => {
  infra = await startInfra();
  // the deploy step creates the streams, LEDGER included
  await provision(infra.jsm, infra.logger);
  redis = createRedis({ url: infra.redisServer.url, name: "ledger-test" });
  store = createLedgerStore(redis);
  ledger = await startLedgerParts({ nc: infra.nc, logger: infra.logger, store, snapshotEvery: 5 });
  stage = await runStage({
    definition: ledgerStage,
    deps: { writer: ledger.writer },
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
      ackWaitMs: 800,
      maxDeliver: 20,
      retryBaseMs: 20,
      retryMaxMs: 200,
      publishTimeoutMs: 1000,
      publishRetryHorizonMs: 2000,
      idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
      idempotencyHorizonMs: 600_000,
    }),
  });
}, 60_000);
afterAll(async () => {
  await stage?.stop();
  await ledger?.stop();
  redis?.disconnect();
  await infra?.close();
});

let n = 0;
const core = eur;
const scored = (c: Core, decision: "allow" | "deny" = "allow") =>
  scoredInput(c, decision, `sc-${c.transferId}-${++n}`);
const refusal = (c: Core) => failedInput(c, `pf-${c.transferId}-${++n}`);

/** LEDGER's events of one transfer, as stored. */
const eventsOf = async (transferId: string) =>
  (await readLedger(infra.js, infra.jsm)).flatMap((e) =>
    e.env?.correlationId === transferId ? [e.env] : [],
  );

const quiet = () => ledgerQuiet(infra, ledger, store);

const bal = async (account: string) => BigInt((await redis.hget(LedgerKeys.balance(account), "EUR")) ?? "0");

async function fund(account: string, amountMinor: number): Promise<void> {
  await publishEvent(infra.js, scored(core(`fund-${account}-${++n}`, "external", account, amountMinor)));
}

const parked = () => parkedReasons(infra);

describe("ledger stage (runtime)", () => {
  it("ledger - a redelivered transfers.scored moves money once and logs one posting with the derived id", async () => {
    await fund("acc-r1", 1000);
    await quiet();
    const replaysBefore = ledger.writer.status().replays;
    const input = scored(core("t-redeliver", "acc-r1", "bank:r1", 400));
    // dies after the effect (the decision is appended, the key not done), then after the publish
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
    expect(events[0]?.eventId).toBe(outputEventId("ledger", input.eventId, "ledger.posted"));
    expect(events[0]?.causationId).toBe(input.eventId);
    expect(events[0]?.occurredAt).toBe(input.occurredAt);
    // each later attempt found the decision in the log: a replay, not an append
    expect(ledger.writer.status().replays - replaysBefore).toBeGreaterThanOrEqual(2);
  });

  it("ledger - a declined transfer moves nothing and logs ledger.declined", async () => {
    const poor = core("t-poor", "acc-nobody", "bank:x", 5);
    const denied = core("t-denied", "external", "acc-x", 5);
    await publishEvent(infra.js, scored(poor));
    await publishEvent(infra.js, scored(denied, "deny"));
    await quiet();
    const reasons = async (id: string) =>
      (await eventsOf(id)).map((e) => [e.type, (e.data as { reason?: string }).reason]);
    expect(await reasons("t-poor")).toEqual([["ledger.declined", "insufficient_funds"]]);
    expect(await reasons("t-denied")).toEqual([["ledger.declined", "risk_denied"]]);
    expect(await bal("acc-x")).toBe(0n);
    expect(await bal("acc-nobody")).toBe(0n);
    expect((await store.read()).outcomes.get("t-poor")).toMatchObject({ status: "declined" });
  });

  it("ledger - a refusal redelivered reverses once; another refusal of the same transfer appends nothing", async () => {
    await fund("acc-f1", 900);
    const c = core("t-refused", "acc-f1", "bank:f1", 700);
    await publishEvent(infra.js, scored(c));
    await quiet();
    expect(await bal("acc-f1")).toBe(200n);
    const first = refusal(c);
    armed.push(CrashPoints.AfterEffect);
    await publishEvent(infra.js, first);
    await publishEvent(infra.js, first, `${first.eventId}-again`);
    await quiet();
    expect(crashed.at(-1)).toBe(CrashPoints.AfterEffect);
    const lastBefore = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
    await publishEvent(infra.js, refusal(c));
    await quiet();
    expect((await infra.jsm.streams.info("LEDGER")).state.last_seq).toBe(lastBefore);
    expect(await bal("acc-f1")).toBe(900n);
    expect(await bal("bank:f1")).toBe(0n);
    const events = await eventsOf("t-refused");
    expect(events.map((e) => e.type)).toEqual(["ledger.posted", "ledger.reversed"]);
    expect(events[1]?.eventId).toBe(outputEventId("ledger", first.eventId, "ledger.reversed"));
  });

  it("ledger - a refusal of a transfer never posted, and a malformed transfer, are parked in the DLQ and append nothing", async () => {
    await publishEvent(infra.js, refusal(core("t-never", "acc-f1", "bank:f1", 1)));
    await publishEvent(infra.js, scored(core("t-loop", "acc-f1", "acc-f1", 1)));
    await quiet();
    await waitFor(async () => (await parked()).length >= 2, { what: "two parked inputs" });
    const reasons = await parked();
    expect(reasons.some((r) => /no posting of transfer t-never in LEDGER to reverse/.test(r))).toBe(true);
    expect(reasons.some((r) => /t-loop refused: source and destination are the same account/.test(r))).toBe(
      true,
    );
    expect(await eventsOf("t-never")).toEqual([]);
    expect(await eventsOf("t-loop")).toEqual([]);
  });

  it("ledger - Redis wiped mid-way changes no decision and the projection restores itself", async () => {
    const accounts = ["acc-w1", "acc-w2", "acc-w3"];
    for (const a of accounts) await fund(a, 500);
    await quiet();
    const restores = ledger.projection!.status().restores;
    // the log says each holds 500: per account, a first 300 posts and a second 300 is declined
    const sent = [];
    for (let i = 0; i < 12; i++) {
      const input = scored(core(`t-wipe-${i}`, accounts[i % 3]!, `bank:w${i}`, 300));
      sent.push(input);
      await publishEvent(infra.js, input);
      if (i === 4) await infra.redisServer.flushAll();
    }
    await quiet();
    // the stage's idempotency keys went with the wipe: inputs decided before it, republished,
    // find no done key, run again, and find their decisions in the log
    const last = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
    for (const input of sent.slice(0, 4)) await publishEvent(infra.js, input, `${input.eventId}-after-wipe`);
    await quiet();
    expect((await infra.jsm.streams.info("LEDGER")).state.last_seq).toBe(last);
    // in whatever order the inputs reached the writer: one posting per account, the rest declined
    const types = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => (await eventsOf(`t-wipe-${i}`)).map((e) => e.type)),
    );
    for (const [k] of accounts.entries()) {
      const mine = types.filter((_, i) => i % 3 === k);
      expect(mine.every((t) => t.length === 1)).toBe(true);
      expect(mine.flat().sort()).toEqual([
        "ledger.declined",
        "ledger.declined",
        "ledger.declined",
        "ledger.posted",
      ]);
    }
    for (const a of accounts) expect(await bal(a)).toBe(200n);
    expect(ledger.projection!.status().restores).toBeGreaterThan(restores);
    expect(ledger.projection!.ready()).toBe(true);
  });

  it("ledger - Redis rolled back to an older dataset changes no decision, and the projection re-applies the log", async () => {
    await fund("acc-k1", 500);
    await quiet();
    const repairs = ledger.projection!.status().repairs;
    const backup = await infra.redisServer.snapshot();
    await publishEvent(infra.js, scored(core("t-rb-1", "acc-k1", "bank:k1", 500)));
    await quiet();
    expect(await bal("acc-k1")).toBe(0n);
    // a failover to a replica that had not seen t-rb-1: Redis says acc-k1 still holds 500
    await infra.redisServer.rollbackTo(backup);
    await waitFor(async () => (await redis.ping().catch(() => "")) === "PONG", { what: "redis back" });
    await publishEvent(infra.js, scored(core("t-rb-2", "acc-k1", "bank:k2", 500)));
    await quiet();
    expect((await eventsOf("t-rb-1")).map((e) => e.type)).toEqual(["ledger.posted"]);
    expect((await eventsOf("t-rb-2")).map((e) => e.type)).toEqual(["ledger.declined"]);
    expect(await bal("acc-k1")).toBe(0n);
    expect(await bal("bank:k1")).toBe(500n);
    expect(ledger.projection!.status().repairs).toBeGreaterThan(repairs);
  });

  it("ledger - after everything, the fold of LEDGER equals the projection and its prefixes are solvent", async () => {
    await quiet();
    const report = await rebuild({ js: infra.js, jsm: infra.jsm, store, attempts: 3, settleMs: 200 });
    expect(report.differences).toEqual([]);
    expect(report.fold.skipped).toEqual([]);
    expect(report.fold.state.outcomes.size).toBeGreaterThan(15);
    expect(ledger.follower.fold().balances).toEqual(report.fold.state.balances);
    expect(ledger.follower.fold().outcomes).toEqual(report.fold.state.outcomes);
    expect(overdrafts(await readLedger(infra.js, infra.jsm))).toEqual([]);
    // one decision per transfer, whatever was redelivered or republished
    const perTransfer = new Map<string, number>();
    for (const e of await readLedger(infra.js, infra.jsm)) {
      if (e.env?.type === "ledger.posted" || e.env?.type === "ledger.declined")
        perTransfer.set(e.env.correlationId, (perTransfer.get(e.env.correlationId) ?? 0) + 1);
    }
    expect([...perTransfer.values()].every((c) => c === 1)).toBe(true);
  });
});
