import type { AnyEnvelope } from "@jetmesh/contracts";
import { waitFor } from "@jetmesh/testkit";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { FoldState } from "./fold.ts";
import { createProjector, type Projector } from "./projector.ts";
import { diffProjection, foldLedger, rebuild } from "./rebuild.ts";
import { createSnapshotStore, openSnapshotBucket, type SnapshotStore } from "./snapshots.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys } from "./store.ts";
import {
  addStream,
  declined,
  type Infra,
  posted,
  publishEvent,
  reversed,
  startInfra,
} from "./test-support.ts";

let infra: Infra;
let store: LedgerStore;
let snapshots: SnapshotStore;
let bucketNo = 0;
const running: Projector[] = [];

beforeAll(async () => {
  infra = await startInfra();
  store = createLedgerStore(infra.redis);
});
afterAll(() => infra?.close());
beforeEach(async () => {
  // a fresh LEDGER, snapshot bucket and Redis per test
  await infra.jsm.streams.delete("LEDGER").catch(() => false);
  await addStream(infra.jsm, "LEDGER");
  snapshots = createSnapshotStore(await openSnapshotBucket(infra.js, `ledger-snap-${++bucketNo}`), {
    chunkBytes: 4096,
  });
  await infra.redis.flushall();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

function projector(over: { snapshotEvery?: number; snapshots?: SnapshotStore } = {}): Projector {
  const p = createProjector({
    js: infra.js,
    jsm: infra.jsm,
    store,
    snapshots: over.snapshots ?? snapshots,
    logger: infra.logger,
    snapshotEvery: over.snapshotEvery ?? 1000,
    epochCheckMs: 50,
  });
  running.push(p);
  return p;
}

let transferNo = 0;
/** Publishes `n` transfers as the ledger would have logged them: fundings, payouts, declines, reversals. */
async function publishWorkload(n: number): Promise<AnyEnvelope[]> {
  const events: AnyEnvelope[] = [];
  for (let i = 0; i < n; i++) {
    const k = ++transferNo;
    const acc = `acc-${k % 5}`;
    const fund = { transferId: `f-${k}`, from: "external", to: acc, amountMinor: 1000, currency: "EUR" };
    const pay = {
      transferId: `p-${k}`,
      from: acc,
      to: `bank:${k % 3}`,
      amountMinor: 300 + (k % 7),
      currency: "EUR",
    };
    events.push(posted(fund), posted(pay, "review"));
    if (k % 4 === 0) events.push(reversed(pay));
    if (k % 5 === 0) events.push(declined({ ...pay, transferId: `d-${k}` }, "insufficient_funds"));
  }
  for (const e of events) await publishEvent(infra.js, e);
  return events;
}

async function expectProjectionEqualsFold(): Promise<FoldState> {
  const { state } = await foldLedger({ js: infra.js, jsm: infra.jsm });
  const view = await store.read();
  expect(diffProjection(state, view)).toEqual([]);
  expect(view.appliedSeq).toBe(state.seq);
  return state;
}

describe("ledger projector", () => {
  it("ledger - an empty Redis is restored from the log before the projection is ready", async () => {
    await publishWorkload(20);
    const p = projector();
    await p.start();
    expect(p.ready()).toBe(true);
    expect(p.status().restores).toBe(1);
    expect(await store.isReady()).toBe(true);
    await expectProjectionEqualsFold();
  });

  it("ledger - FLUSHALL while running: decisions refuse, then restore and replay equal the fold", async () => {
    await publishWorkload(10);
    const p = projector();
    await p.start();
    await publishWorkload(10);
    await waitFor(async () => (await store.appliedSeq()) === p.fold().seq && p.fold().seq > 0, {
      what: "applied",
    });
    await infra.redisServer.flushAll();
    const refused = await store.post({
      cause: "e-x",
      transferId: "x-1",
      from: "external",
      to: "acc-1",
      amountMinor: 1,
      currency: "EUR",
      decision: "allow",
    });
    expect(refused).toEqual({ kind: "not-ready" });
    await waitFor(() => store.isReady(), { what: "epoch after restore" });
    await waitFor(() => p.ready(), { what: "projector live" });
    expect(p.status().restores).toBe(2);
    await expectProjectionEqualsFold();
    // and it keeps following the log afterwards
    await publishWorkload(5);
    await waitFor(async () => (await store.appliedSeq()) === (await foldLedger(infra)).state.seq, {
      what: "tail",
    });
    await expectProjectionEqualsFold();
  });

  it("ledger - events published while Redis is wiped are in the restored projection", async () => {
    const p = projector();
    await p.start();
    await publishWorkload(5);
    await infra.redisServer.flushAll();
    await publishWorkload(5);
    await waitFor(
      async () => p.ready() && (await store.appliedSeq()) === (await foldLedger(infra)).state.seq,
      {
        what: "restored and caught up",
      },
    );
    await expectProjectionEqualsFold();
  });

  it("ledger - snapshots are written every N events and a restore starts from the latest", async () => {
    await publishWorkload(12); // 12 transfers → 24 postings + 3 reversals + 2 declines = 29 events
    const first = projector({ snapshotEvery: 10 });
    await first.start();
    await waitFor(async () => (await snapshots.pointer())?.seq === 20, { what: "snapshot at 20" });
    await first.stop();
    await infra.redis.flushall();
    const second = projector({ snapshotEvery: 10 });
    await second.start();
    expect(second.status().snapshotSeq).toBe(20);
    await expectProjectionEqualsFold();
  });

  it("ledger - a restore replays only the log after the snapshot (a doctored snapshot shows, and rebuild flags it)", async () => {
    await publishWorkload(6);
    const { state } = await foldLedger(infra);
    // the snapshot claims acc-doctored holds 42 at the log's seq; events up to it must not be replayed
    const doctored: FoldState = { ...state, balances: new Map(state.balances) };
    doctored.balances.set("acc-doctored", new Map([["EUR", 42n]]));
    const { created } = await infra.jsm.streams.info("LEDGER");
    await snapshots.write(doctored, created);
    await publishWorkload(2);
    const p = projector();
    await p.start();
    expect(await infra.redis.hget(LedgerKeys.balance("acc-doctored"), "EUR")).toBe("42");
    const tail = await foldLedger(infra);
    // the tail was applied on top of the snapshot: everything but the doctored account agrees
    const diffs = diffProjection(tail.state, await store.read());
    expect(diffs).toEqual([
      { kind: "balance", account: "acc-doctored", currency: "EUR", log: 0n, projection: 42n },
      { kind: "total", currency: "EUR", projection: 42n },
    ]);
    const report = await rebuild({ js: infra.js, jsm: infra.jsm, store, attempts: 1 });
    expect(report.differences).toHaveLength(2);
  });

  it("ledger - a snapshot of another stream instance is ignored and the log is folded from its first message", async () => {
    await publishWorkload(4);
    const { state } = await foldLedger(infra);
    const bogus: FoldState = { ...state, balances: new Map([["acc-bogus", new Map([["EUR", 7n]])]]) };
    await snapshots.write(bogus, "1999-01-01T00:00:00Z");
    const p = projector();
    await p.start();
    expect(p.status().snapshotSeq).toBe(0);
    await expectProjectionEqualsFold();
  });

  it("ledger - Redis behind the log at start catches up without a restore", async () => {
    const first = projector();
    await first.start();
    await publishWorkload(5);
    await waitFor(async () => (await store.appliedSeq()) === first.fold().seq && first.fold().seq > 0);
    await first.stop();
    // the ledger was down while these were logged (e.g. published by another instance)
    await publishWorkload(5);
    const second = projector();
    await second.start();
    expect(second.status().restores).toBe(0);
    await expectProjectionEqualsFold();
  });

  it("ledger - a projection ahead of the log (of an older stream) is replaced by the fold of this one", async () => {
    await publishWorkload(3);
    await infra.redis.set(LedgerKeys.epoch, "old");
    await infra.redis.set(LedgerKeys.appliedSeq, "999");
    await infra.redis.hset(LedgerKeys.balance("acc-ghost"), "EUR", "5");
    const p = projector();
    await p.start();
    expect(p.status().restores).toBe(1);
    expect(await infra.redis.exists(LedgerKeys.balance("acc-ghost"))).toBe(0);
    await expectProjectionEqualsFold();
  });

  it("ledger - two instances on one Redis: one restores, the other waits and follows", async () => {
    await publishWorkload(8);
    const a = projector();
    const b = projector();
    await Promise.all([a.start(), b.start()]);
    expect(a.status().restores + b.status().restores).toBe(1);
    await infra.redisServer.flushAll();
    await waitFor(async () => a.ready() && b.ready() && (await store.isReady()), { what: "both live again" });
    expect(a.status().restores + b.status().restores).toBe(2);
    await publishWorkload(3);
    await waitFor(async () => (await store.appliedSeq()) === (await foldLedger(infra)).state.seq, {
      what: "tail",
    });
    await expectProjectionEqualsFold();
  });
});
