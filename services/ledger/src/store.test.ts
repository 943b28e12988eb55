// The Redis read projection's scripts (lua.ts through store.ts) against a real redis-server:
// APPLY in sequence order, the gap a Redis that lost writes shows, and the fenced restore.
import type { AnyEnvelope } from "@jetmesh/contracts";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decidePosting, decideReversal, type LedgerView } from "./decide.ts";
import { applyLedgerEvent, cloneFold, emptyFold, type FoldState } from "./fold.ts";
import { DEFAULT_OUTCOME_TTL_MS } from "./outcome-ttl.ts";
import { diffProjection } from "./projection-check.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys } from "./store.ts";
import {
  type Core,
  declined,
  failedInput,
  type Infra,
  ledgerEvent,
  markReady,
  posted,
  reversed,
  scoredInput,
  startInfra,
} from "./test-support.ts";

let infra: Infra;
let store: LedgerStore;

beforeAll(async () => {
  infra = await startInfra({ nats: false });
  store = createLedgerStore(infra.redis);
});
afterAll(() => infra?.close());
beforeEach(async () => {
  await infra.redis.flushall();
  await markReady(infra.redis);
});

const bal = async (account: string, currency = "EUR") =>
  BigInt((await infra.redis.hget(LedgerKeys.balance(account), currency)) ?? "0");
const t = (transferId: string, from: string, to: string, amountMinor: number, currency = "EUR"): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency,
});

/** Applies `events` at sequences 1, 2, … and folds them, for comparison. */
async function applyAll(events: readonly AnyEnvelope[], from = 1): Promise<FoldState> {
  const fold = emptyFold();
  for (const [i, e] of events.entries()) {
    applyLedgerEvent(fold, from + i, e);
    expect((await store.apply(from + i, e)).kind).not.toBe("gap");
  }
  return fold;
}

describe("ledger projection: APPLY", () => {
  it("ledger - applies posted, declined and reversed events in sequence order and records applied-seq and applied-id", async () => {
    const fund = posted(t("t-fund", "external", "acc-a", 1000));
    const pay = posted(t("t-pay", "acc-a", "bank:x", 400), "review");
    const poor = declined(t("t-poor", "acc-b", "bank:x", 5), "insufficient_funds");
    const back = reversed(t("t-pay", "acc-a", "bank:x", 400), "bank refused");
    expect(await store.apply(1, fund)).toEqual({ kind: "applied" });
    expect(await store.apply(2, pay)).toEqual({ kind: "applied" });
    expect(await store.apply(3, poor)).toEqual({ kind: "applied" });
    expect(await store.apply(4, back)).toEqual({ kind: "applied" });
    expect(await bal("external")).toBe(-1000n);
    expect(await bal("acc-a")).toBe(1000n);
    expect(await bal("bank:x")).toBe(0n);
    expect(await bal("acc-b")).toBe(0n);
    expect(await store.marks()).toEqual({ appliedSeq: 4, appliedId: back.eventId, epoch: "test" });
    const view = await store.read();
    expect(view.outcomes.get("t-pay")).toEqual({
      transferId: "t-pay",
      status: "posted",
      detail: "review",
      cause: "sc-t-pay",
      from: "acc-a",
      to: "bank:x",
      amountMinor: 400,
      currency: "EUR",
      reversal: { reason: "bank refused", cause: "pf-t-pay" },
    });
    expect(view.outcomes.get("t-poor")).toMatchObject({ status: "declined", detail: "insufficient_funds" });
    expect(new Set(await infra.redis.smembers(LedgerKeys.accounts))).toEqual(
      new Set(["external", "acc-a", "bank:x"]),
    );
    const fold = emptyFold();
    for (const [i, e] of [fund, pay, poor, back].entries()) applyLedgerEvent(fold, i + 1, e);
    expect(diffProjection(fold, view)).toEqual([]);
  });

  it("ledger - an already applied sequence is a duplicate and changes nothing", async () => {
    const a = posted(t("t-a", "external", "acc-a", 50));
    const b = posted(t("t-b", "external", "acc-b", 70));
    await applyAll([a, b]);
    expect(await store.apply(1, posted(t("t-other", "external", "acc-c", 9)))).toEqual({ kind: "duplicate" });
    expect(await store.apply(2, b)).toEqual({ kind: "duplicate" });
    expect(await bal("acc-c")).toBe(0n);
    expect(await bal("acc-b")).toBe(70n);
    expect(await store.marks()).toMatchObject({ appliedSeq: 2, appliedId: b.eventId });
  });

  it("ledger - a skipped sequence is a gap naming Redis's applied-seq, and nothing is written", async () => {
    await applyAll([posted(t("t-a", "external", "acc-a", 50))]);
    expect(await store.apply(3, posted(t("t-c", "external", "acc-c", 9)))).toEqual({
      kind: "gap",
      appliedSeq: 1,
    });
    expect(await bal("acc-c")).toBe(0n);
    expect(await infra.redis.exists(LedgerKeys.outcome("t-c"))).toBe(0);
    expect(await store.appliedSeq()).toBe(1);
  });

  it("ledger - after Redis lost writes (rolled back) the next apply finds the gap, and re-applying from Redis's applied-seq repairs it", async () => {
    const log = [
      posted(t("t-1", "external", "acc-a", 500)),
      posted(t("t-2", "acc-a", "bank:x", 200)),
      posted(t("t-3", "acc-a", "acc-b", 300)),
      reversed(t("t-2", "acc-a", "bank:x", 200)),
      declined(t("t-5", "acc-b", "bank:x", 900), "insufficient_funds"),
    ];
    await applyAll(log.slice(0, 2));
    const backup = await infra.redisServer.snapshot();
    await applyAll(log.slice(2, 4), 3);
    expect(await bal("acc-a")).toBe(200n);
    await infra.redisServer.rollbackTo(backup);
    await waitForPing(infra.redis);
    // Redis forgot seqs 3 and 4: balances as of seq 2, and the apply of seq 5 must not land on them
    expect(await bal("acc-a")).toBe(300n);
    expect(await store.apply(5, log[4]!)).toEqual({ kind: "gap", appliedSeq: 2 });
    expect(await store.appliedSeq()).toBe(2);
    for (let seq = 3; seq <= 5; seq++) expect((await store.apply(seq, log[seq - 1]!)).kind).toBe("applied");
    const fold = emptyFold();
    for (const [i, e] of log.entries()) applyLedgerEvent(fold, i + 1, e);
    expect(diffProjection(fold, await store.read())).toEqual([]);
    expect(await store.marks()).toMatchObject({ appliedSeq: 5, appliedId: log[4]!.eventId });
  });

  it("ledger - without the epoch key APPLY refuses (not-ready) and writes nothing", async () => {
    await infra.redis.flushall();
    expect(await store.isReady()).toBe(false);
    expect(await store.apply(1, posted(t("t-1", "external", "acc-a", 5)))).toEqual({ kind: "not-ready" });
    expect(await store.apply(1, undefined)).toEqual({ kind: "not-ready" });
    expect(await infra.redis.keys("ledger:*")).toEqual([]);
  });

  it("ledger - APPLY is idempotent by transfer: a second outcome or reversal of one transfer changes nothing", async () => {
    const core = t("t-1", "external", "acc-a", 50);
    expect(await store.apply(1, posted(core))).toEqual({ kind: "applied" });
    expect(await store.apply(2, posted(core, "review", "sc-other"))).toEqual({ kind: "duplicate" });
    expect(await store.apply(3, declined(core, "insufficient_funds"))).toEqual({ kind: "duplicate" });
    expect(await store.apply(4, reversed(core))).toEqual({ kind: "applied" });
    expect(await store.apply(5, reversed(core, "again", "pf-other"))).toEqual({ kind: "duplicate" });
    expect(await store.apply(6, reversed({ ...core, transferId: "t-unknown" }))).toEqual({ kind: "ignored" });
    const d = t("t-declined", "acc-a", "bank:x", 10);
    expect(await store.apply(7, declined(d, "risk_denied"))).toEqual({ kind: "applied" });
    expect(await store.apply(8, reversed(d))).toEqual({ kind: "ignored" });
    expect(await store.appliedSeq()).toBe(8);
    expect(await bal("acc-a")).toBe(0n);
    expect(await bal("external")).toBe(0n);
    expect((await store.read()).outcomes.get("t-1")).toMatchObject({
      detail: "allow",
      cause: "sc-t-1",
      reversal: { reason: "bank refused", cause: "pf-t-1" },
    });
  });

  it("ledger - a reversal event naming other accounts reverses the stored posting, as the fold does", async () => {
    const core = t("t-1", "external", "acc-a", 80);
    const odd = reversed({ ...core, from: "acc-zz", to: "acc-yy" });
    const fold = await applyAll([posted(core), odd]);
    expect(await bal("acc-a")).toBe(0n);
    expect(await bal("acc-zz")).toBe(0n);
    expect(diffProjection(fold, await store.read())).toEqual([]);
  });

  it("ledger - an undecodable message (no envelope) only advances applied-seq", async () => {
    const a = posted(t("t-a", "external", "acc-a", 50));
    await applyAll([a]);
    const before = await store.read();
    expect(await store.apply(2, undefined)).toEqual({ kind: "ignored" });
    const after = await store.read();
    expect(after.appliedSeq).toBe(2);
    expect(after.appliedId).toBeNull();
    expect(after.balances).toEqual(before.balances);
    expect(after.outcomes).toEqual(before.outcomes);
    expect(await infra.redis.exists(LedgerKeys.outcome("-"))).toBe(0);
    expect(await store.apply(3, posted(t("t-c", "external", "acc-c", 1)))).toEqual({ kind: "applied" });
  });

  it("ledger - amounts near 2^53 stay exact, and sums beyond it too", async () => {
    const big = Number.MAX_SAFE_INTEGER;
    const fold = await applyAll([
      posted(t("t-1", "external", "acc-a", big)),
      posted(t("t-2", "external", "acc-b", big)),
      posted(t("t-3", "acc-a", "acc-b", big - 1)),
      reversed(t("t-3", "acc-a", "acc-b", big - 1)),
      posted(t("t-4", "acc-b", "bank:x", big)),
    ]);
    expect(await bal("external")).toBe(-2n * BigInt(big));
    expect(await bal("acc-a")).toBe(BigInt(big));
    expect(await bal("acc-b")).toBe(0n);
    expect(await bal("bank:x")).toBe(BigInt(big));
    expect(await infra.redis.hget(LedgerKeys.balance("external"), "EUR")).toBe("-18014398509481982");
    expect(diffProjection(fold, await store.read())).toEqual([]);
  });
});

/** A fold with `n` postings, every third reversed, in two currencies. */
function foldOf(n: number): FoldState {
  const f = emptyFold();
  let seq = 0;
  for (let i = 0; i < n; i++) {
    const core = t(`t-${i}`, "external", `acc-${i % 9}`, 100 + i, i % 2 ? "EUR" : "USD");
    applyLedgerEvent(f, ++seq, posted(core));
    if (i % 3 === 0) applyLedgerEvent(f, ++seq, reversed(core));
  }
  return f;
}

/** Every keyspace event on ledger keys, in the order Redis made them. */
async function recordKeyEvents(redis: Redis): Promise<{ events: string[]; stop(): void }> {
  await redis.config("SET", "notify-keyspace-events", "KA");
  const sub = redis.duplicate();
  const events: string[] = [];
  await sub.psubscribe("__keyspace@0__:ledger:*");
  sub.on("pmessage", (_p, channel: string, op: string) => {
    events.push(`${op} ${channel.slice("__keyspace@0__:".length)}`);
  });
  return { events, stop: () => sub.disconnect() };
}

describe("ledger projection: restore", () => {
  it("ledger - writeRestore needs the restore lock: without it, or with another owner's, it writes nothing", async () => {
    const state = foldOf(10);
    expect(await store.writeRestore("me", state, "epoch-1")).toBe(false);
    expect(await store.epoch()).toBe("test");
    expect(await store.acquireRestoreLock("other", 10_000)).toBe(true);
    expect(await store.acquireRestoreLock("me", 10_000)).toBe(false);
    expect(await store.restoreLockHeld()).toBe(true);
    expect(await store.writeRestore("me", state, "epoch-1")).toBe(false);
    expect(await store.epoch()).toBe("test");
    expect(await infra.redis.keys(LedgerKeys.balancePattern)).toEqual([]);
    expect(await store.renewRestoreLock("me", 10_000)).toBe(false);
    await store.releaseRestoreLock("me");
    expect(await store.restoreLockHeld()).toBe(true);
    await store.releaseRestoreLock("other");
    expect(await store.restoreLockHeld()).toBe(false);
  });

  it("ledger - writeRestore deletes the epoch first, replaces every ledger key, and sets applied-seq, applied-id and the epoch last", async () => {
    // leftovers of a Redis that lost writes: a stale balance, a stale outcome, stale marks
    await applyAll([posted(t("t-stale", "external", "acc-stale", 7))]);
    const state = foldOf(700);
    expect(await store.acquireRestoreLock("me", 10_000)).toBe(true);
    const rec = await recordKeyEvents(infra.redis);
    try {
      expect(await store.writeRestore("me", cloneFold(state), "epoch-2")).toBe(true);
      await infra.redis.ping();
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      rec.stop();
    }
    // the lock and the batch counter are the restore's bookkeeping, not the projection
    const ev = rec.events.filter(
      (e) => !e.endsWith(LedgerKeys.restoreLock) && !e.endsWith(LedgerKeys.restoreBatches),
    );
    expect(ev[0]).toBe(`del ${LedgerKeys.epoch}`);
    const marks = [`set ${LedgerKeys.appliedSeq}`, `set ${LedgerKeys.epoch}`, `set ${LedgerKeys.appliedId}`];
    expect(ev.slice(-3)).toEqual(marks);
    expect(ev.filter((e) => marks.includes(e))).toEqual(marks);
    const view = await store.read();
    expect(diffProjection(state, view)).toEqual([]);
    expect(view.outcomes.has("t-stale")).toBe(false);
    expect(view.balances.has("acc-stale")).toBe(false);
    expect(await store.marks()).toEqual({
      appliedSeq: state.seq,
      appliedId: state.lastEventId,
      epoch: "epoch-2",
    });
    expect(await store.restoreLockHeld()).toBe(false);
    // and the projection goes on from there
    const next = posted(t("t-next", "external", "acc-0", 1));
    expect(await store.apply(state.seq + 1, next)).toEqual({ kind: "applied" });
  });

  it("ledger - a restore that loses its lock half-way stops writing, and leaves no epoch and not its applied-seq", async () => {
    await applyAll([posted(t("t-old", "external", "acc-old", 7))]);
    const state = foldOf(6000);
    expect(await store.acquireRestoreLock("me", 10_000)).toBe(true);
    // another process takes the lock as soon as the restore has deleted the epoch
    await infra.redis.config("SET", "notify-keyspace-events", "KA");
    const thief = infra.redis.duplicate();
    const sub = infra.redis.duplicate();
    await sub.subscribe(`__keyspace@0__:${LedgerKeys.epoch}`);
    sub.on("message", (_c, op: string) => {
      if (op === "del") void thief.set(LedgerKeys.restoreLock, "thief");
    });
    try {
      expect(await store.writeRestore("me", state, "epoch-3")).toBe(false);
    } finally {
      sub.disconnect();
      thief.disconnect();
    }
    expect(await store.epoch()).toBeNull();
    expect(await store.isReady()).toBe(false);
    expect(await store.appliedSeq()).not.toBe(state.seq);
    expect(await infra.redis.get(LedgerKeys.restoreLock)).toBe("thief");
    // only part of the state was written: nothing reads it while the epoch is missing
    expect((await infra.redis.keys(LedgerKeys.outcomePattern)).length).toBeLessThan(state.outcomes.size);
    expect(await store.apply(1, posted(t("t-x", "external", "acc-x", 1)))).toEqual({ kind: "not-ready" });
  });

  it("ledger - in a namespace (a client with a key prefix) restore and read stay within its keys: another namespace's and production's are neither read nor wiped", async () => {
    // Production's projection, already there, must survive a namespace's restore.
    await applyAll([posted(t("t-prod", "external", "acc-prod", 5))]);
    const client = (prefix: string) => {
      const c = infra.redis.duplicate({ keyPrefix: prefix });
      c.on("error", () => {});
      return c;
    };
    const [ra, rb] = [client("a:"), client("b:")];
    try {
      const [a, b] = [createLedgerStore(ra), createLedgerStore(rb)];
      const [sa, sb] = [foldOf(30), foldOf(12)];
      for (const [s, st, epoch] of [
        [a, sa, "epoch-a"],
        [b, sb, "epoch-b"],
      ] as const) {
        expect(await s.acquireRestoreLock("me", 10_000)).toBe(true);
        expect(await s.writeRestore("me", cloneFold(st), epoch)).toBe(true);
      }
      // A's second restore wipes what it wrote (SCAN under its prefix), not B's.
      expect(await a.acquireRestoreLock("me", 10_000)).toBe(true);
      expect(await a.writeRestore("me", cloneFold(sa), "epoch-a2")).toBe(true);
      expect(diffProjection(sa, await a.read())).toEqual([]);
      expect(diffProjection(sb, await b.read())).toEqual([]);
      expect((await a.read()).balances.has("acc-prod")).toBe(false);
      expect(await bal("acc-prod")).toBe(5n);
      // Every key either namespace wrote carries its prefix.
      const keys = await infra.redis.keys("*");
      expect(keys.filter((k) => k.includes(":bal:acc-0"))).toEqual(
        expect.arrayContaining([`a:${LedgerKeys.balance("acc-0")}`, `b:${LedgerKeys.balance("acc-0")}`]),
      );
      expect(keys).not.toContain(LedgerKeys.balance("acc-0"));
    } finally {
      ra.disconnect();
      rb.disconnect();
    }
  });
});

/** A view over a fold: what the writer hands decide.ts with nothing in flight. */
const viewOf = (f: FoldState): LedgerView => ({
  balance: (a, c) => f.balances.get(a)?.get(c) ?? 0n,
  outcome: (id) => f.outcomes.get(id),
});

const ACCOUNTS = ["external", "acc-a", "acc-b", "acc-c"];
const stepArb = fc.oneof(
  fc.record({
    kind: fc.constant("score" as const),
    from: fc.constantFrom(...ACCOUNTS),
    to: fc.constantFrom("acc-a", "acc-b", "acc-c", "bank:x"),
    amount: fc.oneof(fc.integer({ min: 1, max: 500 }), fc.constant(Number.MAX_SAFE_INTEGER)),
    decision: fc.constantFrom("allow" as const, "deny" as const),
  }),
  fc.record({ kind: fc.constant("refuse" as const), pick: fc.nat() }),
);

describe("ledger projection: outcome lifetimes", () => {
  const DAY = 24 * 3600_000;
  const pttl = (id: string) => infra.redis.pttl(LedgerKeys.outcome(id));

  it("ledger - every outcome lives LEDGER_OUTCOME_TTL_MS (14 days by default) from its last write, a bank posting too; its reversal renews it", async () => {
    expect(store.outcomeTtlMs).toBe(14 * DAY);
    const pay = t("t-pay", "acc-a", "bank:x", 40);
    await applyAll([
      posted(t("t-fund", "external", "acc-a", 100)),
      declined(t("t-no", "acc-a", "acc-b", 500), "insufficient_funds"),
      posted(pay),
      posted(t("t-kept", "acc-a", "bank:y", 10)),
    ]);
    for (const id of ["t-fund", "t-no", "t-pay", "t-kept"]) {
      expect(await pttl(id), id).toBeGreaterThan(14 * DAY - 60_000);
      expect(await pttl(id), id).toBeLessThanOrEqual(14 * DAY);
    }
    // a reversal (decided before 3/4 of the TTL, outcome-ttl.ts) finds the posting and renews it
    await infra.redis.pexpire(LedgerKeys.outcome("t-pay"), 7 * DAY);
    expect(await store.apply(5, reversed(pay))).toEqual({ kind: "applied" });
    expect(await pttl("t-pay")).toBeGreaterThan(14 * DAY - 60_000);
    // 100 funded, 40 and 10 paid out, the 40 reversed
    expect(await bal("acc-a")).toBe(90n);
  });

  it("ledger - a restore gives an expiring outcome what is left of its lifetime and skips one past it; the check counts only an outcome missing before its time", async () => {
    const ttl = 10 * DAY;
    const short = createLedgerStore(infra.redis, { outcomeTtlMs: ttl });
    const now = Date.parse("2026-06-30T00:00:00Z");
    const at = (daysAgo: number) => new Date(now - daysAgo * DAY).toISOString();
    const old = { ...posted(t("t-old", "external", "acc-a", 5)), occurredAt: at(12) };
    const young = { ...posted(t("t-young", "external", "acc-a", 7)), occurredAt: at(4) };
    const bank = { ...posted(t("t-bank", "acc-a", "bank:x", 3)), occurredAt: at(40) };
    const fold = emptyFold();
    for (const [i, e] of [old, young, bank].entries()) applyLedgerEvent(fold, i + 1, e);
    expect(await short.acquireRestoreLock("r", 10_000)).toBe(true);
    expect(await short.writeRestore("r", fold, "epoch-t", now)).toBe(true);
    expect(await infra.redis.exists(LedgerKeys.outcome("t-old"))).toBe(0);
    const left = await pttl("t-young");
    expect(left).toBeGreaterThan(6 * DAY - 60_000);
    expect(left).toBeLessThanOrEqual(6 * DAY);
    // a bank posting past its lifetime too (nothing keeps a hash for ever)
    expect(await infra.redis.exists(LedgerKeys.outcome("t-bank"))).toBe(0);
    expect(await bal("acc-a")).toBe(9n);

    const view = await short.read();
    // past its lifetime, t-old's absence is no difference; t-young's would be
    expect(diffProjection(fold, view, { outcomeTtlMs: ttl, now })).toEqual([]);
    expect(diffProjection(fold, view).map((d) => d.kind === "outcome" && d.transferId)).toEqual([
      "t-bank",
      "t-old",
    ]);
    await infra.redis.del(LedgerKeys.outcome("t-young"));
    expect(
      diffProjection(fold, await short.read(), { outcomeTtlMs: ttl, now }).map(
        (d) => d.kind === "outcome" && d.transferId,
      ),
    ).toEqual(["t-young"]);
    // the snapshot's copy keeps the times
    expect(cloneFold(fold).outcomeTimes?.get("t-old")).toBe(now - 12 * DAY);
    expect(DEFAULT_OUTCOME_TTL_MS).toBe(14 * DAY);
  });
});

describe("ledger projection (property)", () => {
  it("ledger - any decided log applied to Redis, or restored from a prefix's fold and applied on, equals its fold", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), fc.nat(), async (steps, cutAt) => {
        // a log as the ledger decides it
        const fold = emptyFold();
        const log: AnyEnvelope[] = [];
        const scored: Core[] = [];
        for (const [i, s] of steps.entries()) {
          const core =
            s.kind === "score"
              ? t(`t-${i}`, s.from, s.to, s.amount)
              : scored[s.pick % Math.max(1, scored.length)];
          if (!core) continue;
          const d =
            s.kind === "score"
              ? decidePosting(viewOf(fold), scoredInput(core, s.decision).data)
              : decideReversal(viewOf(fold), failedInput(core, `pf-${i}`).data);
          if (s.kind === "score") scored.push(core);
          if (d.kind !== "append") continue;
          const cause = s.kind === "score" ? `sc-${core.transferId}` : `pf-${i}`;
          const env = ledgerEvent(d.emission.type as "ledger.posted", d.emission.data as never, cause);
          applyLedgerEvent(fold, log.length + 1, env);
          log.push(env);
        }
        // applied one by one, with a redelivered prefix in between
        await infra.redis.flushall();
        await markReady(infra.redis);
        for (const [i, e] of log.entries()) {
          expect(await store.apply(i + 1, e)).not.toMatchObject({ kind: "gap" });
          if (i === 2) for (let j = 1; j <= 3; j++) await store.apply(j, log[j - 1]!);
        }
        expect(diffProjection(fold, await store.read())).toEqual([]);
        // restored from the fold of a prefix, then applied on
        const cut = log.length ? cutAt % (log.length + 1) : 0;
        const prefix = emptyFold();
        for (const [i, e] of log.slice(0, cut).entries()) applyLedgerEvent(prefix, i + 1, e);
        await infra.redis.flushall();
        expect(await store.acquireRestoreLock("p", 10_000)).toBe(true);
        expect(await store.writeRestore("p", prefix, "epoch")).toBe(true);
        for (let seq = cut + 1; seq <= log.length; seq++)
          expect((await store.apply(seq, log[seq - 1]!)).kind).not.toBe("gap");
        expect(diffProjection(fold, await store.read())).toEqual([]);
      }),
      { numRuns: 40 },
    );
  });
});

async function waitForPing(redis: Redis): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await redis.ping()) === "PONG") return;
    } catch {
      // reconnecting
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("redis did not come back");
}

describe("ledger projection: a restore under a Redis that loses writes", () => {
  /** A fold of `n` postings: several restore batches (256 keys each). */
  const bigFold = (n: number): FoldState => {
    const fold = emptyFold();
    applyLedgerEvent(fold, 1, posted(t("t-fund", "external", "acc-a", 10 * n)));
    for (let i = 0; i < n; i++)
      applyLedgerEvent(fold, i + 2, posted(t(`t-${i}`, "acc-a", `acc-${i % 50}`, 1)));
    return fold;
  };

  it("ledger - a batch Redis lost in the middle of a restore (its counter behind) stops the restore before the commit: no epoch, and the next restore completes", async () => {
    const fold = bigFold(600);
    const redis = infra.redis as Redis & { ledgerFencedWrite(...a: unknown[]): Promise<number> };
    const original = redis.ledgerFencedWrite;
    let batches = 0;
    // After the third batch, Redis "loses" it: its counter goes back to 2, as a failover to a
    // replica that had not received that batch would leave it.
    redis.ledgerFencedWrite = async function (this: unknown, ...a: unknown[]) {
      const r = await original.apply(redis, a);
      if (++batches === 3) await infra.redis.set(LedgerKeys.restoreBatches, "2");
      return r;
    };
    try {
      expect(await store.acquireRestoreLock("r-1", 10_000)).toBe(true);
      await expect(store.writeRestore("r-1", fold, "epoch-1")).rejects.toThrow(
        /Redis lost writes of this restore/,
      );
    } finally {
      redis.ledgerFencedWrite = original;
    }
    expect(batches).toBeGreaterThan(3);
    expect(await store.isReady()).toBe(false);
    expect(await store.appliedSeq()).toBe(0);
    // started over, it completes
    expect(await store.writeRestore("r-1", fold, "epoch-2")).toBe(true);
    expect(await store.isReady()).toBe(true);
    expect(await store.appliedSeq()).toBe(fold.seq);
    expect(await bal("acc-a")).toBe(6000n - 600n);
    expect(await infra.redis.exists(LedgerKeys.restoreBatches)).toBe(0);
  });

  it("ledger - the last batch lost (only the commit can tell) is not committed either", async () => {
    const fold = bigFold(300);
    const redis = infra.redis as Redis & { ledgerCommitRestore(...a: unknown[]): Promise<number> };
    const original = redis.ledgerCommitRestore;
    redis.ledgerCommitRestore = async function (this: unknown, ...a: unknown[]) {
      await infra.redis.decr(LedgerKeys.restoreBatches);
      return original.apply(redis, a);
    };
    try {
      expect(await store.acquireRestoreLock("r-2", 10_000)).toBe(true);
      await expect(store.writeRestore("r-2", fold, "epoch-1")).rejects.toThrow(/Redis lost writes/);
    } finally {
      redis.ledgerCommitRestore = original;
    }
    expect(await store.isReady()).toBe(false);
  });

  it("ledger - a restore lock is taken over only from the owner named, and only while that owner holds it", async () => {
    expect(await store.acquireRestoreLock("inst-a:1", 10_000)).toBe(true);
    expect(await store.restoreLockOwner()).toBe("inst-a:1");
    expect(await store.takeOverRestoreLock("inst-b:1", "inst-a:2", 10_000)).toBe(false);
    expect(await store.takeOverRestoreLock("inst-a:1", "inst-a:2", 10_000)).toBe(true);
    expect(await store.restoreLockOwner()).toBe("inst-a:2");
    expect(await infra.redis.pttl(LedgerKeys.restoreLock)).toBeGreaterThan(9000);
    expect(await store.takeOverRestoreLock("inst-a:1", "inst-a:3", 10_000)).toBe(false);
  });
});
