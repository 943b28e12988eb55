import { randomBytes } from "node:crypto";
import {
  type AnyEnvelope,
  encodeEvent,
  type EventDataMap,
  type EventType,
  eventHeaders,
  Headers,
  LedgerProjection,
  makeEnvelope,
  replaySubject,
  StreamNames,
  Streams,
  subjectFor,
  toStreamConfig,
} from "@jetmesh/contracts";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type Balances,
  type BalanceSource,
  checkInvariants,
  type NatsServerHandle,
  type RedisServerHandle,
  redisBalances,
  startNats,
  startRedis,
  stopAllProcesses,
} from "./index.ts";

/** Hand-made pipeline events: each helper publishes one event as its stage would. */
class Log {
  #n = 0;
  constructor(private readonly js: JetStreamClient) {}

  trace(): string {
    return randomBytes(16).toString("hex");
  }

  async put<T extends EventType>(
    type: T,
    data: EventDataMap[T],
    lineage: {
      causationId: string;
      traceId: string;
      eventId?: string;
      traceparent?: string | null;
      actor?: string;
    },
  ): Promise<AnyEnvelope> {
    const transferId = (data as { transferId: string }).transferId;
    const env = makeEnvelope(type, data, {
      eventId: lineage.eventId ?? `ev-${++this.#n}-${type}`,
      correlationId: transferId,
      causationId: lineage.causationId,
      producer: "test",
      ...(lineage.actor ? { actor: lineage.actor } : {}),
    }) as AnyEnvelope;
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    const tp =
      lineage.traceparent === undefined
        ? `00-${lineage.traceId}-${randomBytes(8).toString("hex")}-01`
        : lineage.traceparent;
    if (tp !== null) h.set(Headers.TraceParent, tp);
    await this.js.publish(subjectFor(type, (data as { from: string }).from), encodeEvent(env), {
      msgID: env.eventId,
      headers: h,
    });
    return env;
  }

  /** requested → validated → scored → posted (or declined), one trace. */
  async transfer(
    transferId: string,
    from: string,
    to: string,
    amountMinor: number,
    end: "posted" | "declined" | "rejected" | "scored" = "posted",
    actor = from === "external" ? "treasury" : "customer",
  ): Promise<{ traceId: string; scored?: AnyEnvelope; posted?: AnyEnvelope }> {
    const traceId = this.trace();
    const core = { transferId, from, to, amountMinor, currency: "EUR" };
    const req = await this.put(
      "transfers.requested",
      { ...core, requestedAt: new Date().toISOString() },
      { causationId: `idempotency-key:${transferId}`, traceId, actor },
    );
    if (end === "rejected") {
      await this.put(
        "transfers.rejected",
        { ...core, reasons: [{ field: "/to", rule: "must differ" }] },
        { causationId: req.eventId, traceId },
      );
      return { traceId };
    }
    const val = await this.put("transfers.validated", core, { causationId: req.eventId, traceId });
    const scored = await this.put(
      "transfers.scored",
      { ...core, score: 10, decision: end === "declined" ? "deny" : "allow", factors: [] },
      { causationId: val.eventId, traceId },
    );
    if (end === "scored") return { traceId, scored };
    if (end === "declined") {
      await this.put(
        "ledger.declined",
        { ...core, reason: "risk_denied" },
        { causationId: scored.eventId, traceId },
      );
      return { traceId, scored };
    }
    const posted = await this.put(
      "ledger.posted",
      { ...core, decision: "allow" },
      { causationId: scored.eventId, traceId },
    );
    return { traceId, scored, posted };
  }

  /** payouts.failed → ledger.reversed for a posting. */
  async reverse(posted: AnyEnvelope, traceId: string): Promise<void> {
    const d = posted.data as EventDataMap["ledger.posted"];
    const core = {
      transferId: d.transferId,
      from: d.from,
      to: d.to,
      amountMinor: d.amountMinor,
      currency: d.currency,
    };
    const failed = await this.put(
      "payouts.failed",
      { ...core, reason: "refused", bankStatus: 422 },
      { causationId: posted.eventId, traceId },
    );
    await this.put(
      "ledger.reversed",
      { ...core, reason: "refused" },
      { causationId: failed.eventId, traceId },
    );
  }
}

/** Live balances held in a map: what a test says the projection holds. */
function fixedBalances(entries: Record<string, Record<string, number>>): BalanceSource {
  const b: Balances = new Map(
    Object.entries(entries).map(([acc, m]) => [
      acc,
      new Map(Object.entries(m).map(([c, v]) => [c, BigInt(v)])),
    ]),
  );
  return {
    name: "fixed",
    async fetch(accounts) {
      return new Map(accounts.map((a) => [a, b.get(a) ?? new Map()]));
    },
    async listAccounts() {
      return [...b.keys()];
    },
  };
}

describe("invariant checker", () => {
  let nats: NatsServerHandle;
  let redisServer: RedisServerHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let log: Log;

  beforeAll(async () => {
    [nats, redisServer] = await Promise.all([startNats(), startRedis()]);
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await stopAllProcesses();
  });
  beforeEach(async () => {
    // Fresh streams per case: the pipeline's stream names are fixed.
    for (const def of Object.values(Streams)) {
      await jsm.streams.delete(def.name).catch(() => {});
      await jsm.streams.add(toStreamConfig(def) as never);
    }
    log = new Log(jetstream(nc));
  });

  /** Four transfers, one of each healthy outcome; balances as the ledger would hold them. */
  async function healthy() {
    const funding = await log.transfer("t-fund", "external", "acc-a", 10_000);
    await log.transfer("t-pay", "acc-a", "acc-b", 1_500);
    await log.transfer("t-rej", "acc-a", "acc-a", 1, "rejected");
    await log.transfer("t-deny", "acc-a", "acc-b", 99, "declined");
    const out = await log.transfer("t-out", "acc-a", "bank:acme", 700);
    await log.reverse(out.posted!, out.traceId);
    return { funding };
  }
  const healthyBalances = {
    external: { EUR: -10_000 },
    "acc-a": { EUR: 8_500 },
    "acc-b": { EUR: 1_500 },
    "bank:acme": { EUR: 0 },
  };
  const accepted = ["t-fund", "t-pay", "t-rej", "t-deny", "t-out"].map((transferId) => ({ transferId }));

  it("invariants - a healthy log and matching balances pass every invariant", async () => {
    await healthy();
    const r = await checkInvariants({ nc, accepted, balances: fixedBalances(healthyBalances) });
    expect(r.violations).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1"]);
    expect(r.counts).toMatchObject({
      accepted: 5,
      posted: 2,
      rejected: 1,
      declined: 1,
      reversed: 1,
      lost: 0,
    });
    expect(r.totals).toEqual({ EUR: "0" });
    expect(r.transfers.get("t-out")?.reversal?.stream).toBe("LEDGER");
  });

  it("invariants - a replay on REPLAY and an AUDIT event are not facts: a replayed posting is no second posting", async () => {
    const { funding } = await healthy();
    const posted = funding.posted!;
    const js = jetstream(nc);
    // What `jetmesh dlq replay` stores for a parked posting (payout's input), and its audit.
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(posted))) if (k !== Headers.MsgId) h.set(k, v);
    h.set(Headers.ReplayOf, "1");
    h.set(Headers.ReplayStream, StreamNames.Ledger);
    h.set(Headers.ReplaySubject, subjectFor(posted.type, "external"));
    h.set(Headers.ReplaySequence, "4");
    await js.publish(replaySubject("payout"), encodeEvent(posted), { msgID: "replay:DLQ:1", headers: h });
    await js.publish("audit.replay", JSON.stringify({ action: "replay", seqs: [1] }), { msgID: "audit:1" });
    const r = await checkInvariants({ nc, accepted, balances: fixedBalances(healthyBalances) });
    expect(r.violations).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.counts).toMatchObject({ posted: 2, multiple: 0 });
    expect(Object.keys(r.counts.events).sort()).toEqual(
      ["DLQ", "INGRESS", "LEDGER", "PAYOUTS", "RISK", "VALIDATION"].sort(),
    );
    // The same copy stored in LEDGER would be a fact, and a second posting of the transfer.
    await js.publish(subjectFor(posted.type, "external"), encodeEvent(posted), {
      msgID: "replay-into-ledger",
      headers: h,
    });
    const wrong = await checkInvariants({ nc, accepted, only: ["I1", "I2"] });
    expect(wrong.ok).toBe(false);
    expect(wrong.violations.map((v) => `${v.invariant} ${v.transferId}`)).toEqual(
      expect.arrayContaining(["I2 t-fund"]),
    );
  });

  it("invariants - a lost transfer is reported with the events it reached", async () => {
    await healthy();
    await log.transfer("t-lost", "acc-a", "acc-b", 5, "scored");
    const r = await checkInvariants({
      natsUrl: nats.url,
      accepted: [...accepted, { transferId: "t-lost" }, { transferId: "t-never" }],
      balances: fixedBalances(healthyBalances),
    });
    expect(r.ok).toBe(false);
    expect(r.counts.lost).toBe(2);
    const lost = r.violations.filter((v) => v.invariant === "I1");
    expect(lost.map((v) => v.transferId).sort()).toEqual(["t-lost", "t-never"]);
    const one = lost.find((v) => v.transferId === "t-lost")!;
    expect(one.message).toMatch(/last event transfers\.scored \(RISK seq \d+\)/);
    expect(one.events.map((e) => e.type)).toEqual([
      "transfers.requested",
      "transfers.validated",
      "transfers.scored",
    ]);
    expect(one.events[0]).toMatchObject({
      stream: "INGRESS",
      seq: expect.any(Number),
      eventId: expect.any(String),
    });
    expect(lost.find((v) => v.transferId === "t-never")!.message).toMatch(
      /no transfers\.requested is stored in INGRESS/,
    );
  });

  it("invariants - streams that dropped old messages by age: older transfers are checked against LEDGER, newer ones whole", async () => {
    // The retention plan: event streams drop messages by age, LEDGER keeps everything.
    for (const name of ["INGRESS", "VALIDATION", "RISK", "PAYOUTS"] as const) {
      await jsm.streams.delete(name);
      await jsm.streams.add({
        ...toStreamConfig(Streams[name]),
        max_age: 1_500 * 1_000_000,
        duplicate_window: 1_000 * 1_000_000,
      } as never);
    }
    await healthy();
    const aged = ["INGRESS", "VALIDATION", "RISK", "PAYOUTS"] as const;
    const held = async () => {
      let n = 0;
      for (const name of aged) n += (await jsm.streams.info(name)).state.messages;
      return n;
    };
    for (let i = 0; i < 100 && (await held()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await held()).toBe(0);
    // The old messages are gone; the new ones must stay until the check has read them, however
    // slow the machine (a loaded CI once took over 1.5 s from here to the read). The streams
    // keep what they dropped as their first sequence, which is what the checker reads.
    for (const name of aged) {
      const info = await jsm.streams.info(name);
      await jsm.streams.update(name, { ...info.config, max_age: 3_600 * 1_000_000_000 } as never);
    }
    await log.transfer("t-new", "acc-a", "acc-b", 200);
    await log.transfer("t-new-lost", "acc-a", "acc-b", 5, "scored");
    const r = await checkInvariants({
      natsUrl: nats.url,
      accepted: [...accepted, { transferId: "t-new" }, { transferId: "t-new-lost" }],
      balances: fixedBalances({ ...healthyBalances, "acc-a": { EUR: 8_300 }, "acc-b": { EUR: 1_700 } }),
      minters: ["treasury"],
    });
    expect(r.counts.agedBeforeMs).toBeGreaterThan(0);
    // The rejection left with VALIDATION's old messages: not known, not lost. Whatever reached
    // LEDGER is still judged; the new transfer that stopped at RISK is lost.
    expect(r.counts).toMatchObject({ aged: 1, lost: 1, posted: 3, declined: 1, reversed: 1 });
    expect(r.transfers.get("t-rej")?.outcome).toBe("aged");
    expect(r.violations.map((v) => `${v.invariant} ${v.transferId}`)).toEqual(["I1 t-new-lost"]);
  });

  it("invariants - a doubled posting is reported under I1, I2 and I4", async () => {
    await healthy();
    const { scored, traceId } = await log.transfer("t-dup", "acc-a", "acc-b", 300);
    // A second posting of the same transfer with another event id: the stream keeps both.
    const d = scored!.data as EventDataMap["transfers.scored"];
    await log.put(
      "ledger.posted",
      {
        transferId: d.transferId,
        from: d.from,
        to: d.to,
        amountMinor: d.amountMinor,
        currency: "EUR",
        decision: "allow",
      },
      { causationId: scored!.eventId, traceId, eventId: "ev-second-posting" },
    );
    // The projection moved the money once.
    const balances = fixedBalances({ ...healthyBalances, "acc-a": { EUR: 8_200 }, "acc-b": { EUR: 1_800 } });
    const r = await checkInvariants({ nc, accepted: [...accepted, { transferId: "t-dup" }], balances });
    expect(r.ok).toBe(false);
    expect(r.counts.multiple).toBe(1);
    const i2 = r.violations.filter((v) => v.invariant === "I2");
    expect(i2).toHaveLength(1);
    expect(i2[0]).toMatchObject({ transferId: "t-dup" });
    expect(i2[0]!.message).toMatch(/posted 2 times \(2 distinct event ids\)/);
    expect(i2[0]!.events.map((e) => e.eventId)).toContain("ev-second-posting");
    expect(r.violations.some((v) => v.invariant === "I1" && v.transferId === "t-dup")).toBe(true);
    const i4 = r.violations.filter((v) => v.invariant === "I4").map((v) => v.message);
    expect(i4).toEqual([
      "account acc-a EUR: live 8200, fold of LEDGER 7900 (difference 300)",
      "account acc-b EUR: live 1800, fold of LEDGER 2100 (difference -300)",
    ]);
    expect(r.violations.some((v) => v.invariant === "I3")).toBe(false);
  });

  it("invariants - broken conservation in the Redis projection is reported under I3 and I4", async () => {
    await healthy();
    const redis = new Redis(redisServer.url);
    try {
      await redis.flushall();
      for (const [acc, m] of Object.entries(healthyBalances)) {
        await redis.hset(LedgerProjection.balanceKey(acc), m);
        await redis.sadd(LedgerProjection.accountsKey, acc);
      }
      expect((await checkInvariants({ nc, accepted, balances: redisBalances(redis) })).ok).toBe(true);
      // Money appears from nowhere in an account the log never names.
      await redis.hset(LedgerProjection.balanceKey("acc-ghost"), "EUR", "250");
      await redis.sadd(LedgerProjection.accountsKey, "acc-ghost");
      const r = await checkInvariants({ nc, accepted, balances: redisBalances(redisServer.url) });
      expect(r.ok).toBe(false);
      expect(r.totals).toEqual({ EUR: "250" });
      const i3 = r.violations.filter((v) => v.invariant === "I3");
      expect(i3).toHaveLength(1);
      expect(i3[0]!.message).toMatch(/^EUR balances sum to 250 over 5 accounts/);
      expect(r.violations.filter((v) => v.invariant === "I4").map((v) => v.message)).toEqual([
        "account acc-ghost EUR: live 250, fold of LEDGER 0 (difference 250)",
      ]);
    } finally {
      redis.disconnect();
    }
  });

  it("invariants - broken lineage and a DLQ message without a reason are reported under I5 and I6", async () => {
    await healthy();
    const traceId = log.trace();
    const core = { transferId: "t-lin", from: "acc-a", to: "acc-b", amountMinor: 5, currency: "EUR" };
    const req = await log.put(
      "transfers.requested",
      { ...core, requestedAt: new Date().toISOString() },
      { causationId: "idempotency-key:t-lin", traceId },
    );
    const val = await log.put("transfers.validated", core, {
      causationId: req.eventId,
      traceId: log.trace(),
    });
    const scored = await log.put(
      "transfers.scored",
      { ...core, score: 1, decision: "allow", factors: [] },
      { causationId: "no-such-event", traceId, traceparent: null },
    );
    await log.put("ledger.posted", { ...core, decision: "allow" }, { causationId: val.eventId, traceId });
    const js = jetstream(nc);
    const h = natsHeaders();
    h.set(Headers.DlqStage, "risk");
    await js.publish("dlq.risk", new Uint8Array([1, 2, 3]), { headers: h });
    const r = await checkInvariants({
      nc,
      accepted: [...accepted, { transferId: "t-lin" }],
      only: ["I5", "I6"],
    });
    expect(r.checked).toEqual(["I5", "I6"]);
    const i5 = r.violations.filter((v) => v.invariant === "I5").map((v) => v.message);
    expect(i5).toEqual(
      expect.arrayContaining([
        `transfers.scored ${scored.eventId}: causationId no-such-event names no stored transfers.validated`,
        `transfers.scored ${scored.eventId}: no traceparent header`,
        expect.stringMatching(/^ledger\.posted .*: causationId .* names no stored transfers\.scored$/),
        expect.stringMatching(/^transfer t-lin spans 2 traces/),
      ]),
    );
    expect(i5).toHaveLength(4);
    const i6 = r.violations.filter((v) => v.invariant === "I6");
    expect(i6).toHaveLength(1);
    expect(i6[0]!.message).toMatch(/DLQ seq 1 \(dlq\.risk\) has no Jetmesh-Dlq-Reason header/);
    expect(r.counts.dlq).toBe(1);
  });

  it("invariants - a stream nobody declared is read from the server and its events checked under I5", async () => {
    await healthy();
    await jsm.streams.add({ name: "NOTICES", subjects: ["notices.>"] });
    try {
      await jetstream(nc).publish("notices.sent.00", new TextEncoder().encode("not an event"));
      const r = await checkInvariants({ nc, accepted, balances: fixedBalances(healthyBalances) });
      expect(r.counts.events.NOTICES).toBe(1);
      expect(r.violations.map((v) => [v.invariant, v.message])).toEqual([
        ["I5", expect.stringMatching(/^NOTICES seq 1 is not a valid event and was not parked/)],
      ]);
    } finally {
      await jsm.streams.delete("NOTICES");
    }
  });

  it("invariants - a stream the contracts declare as records (RECONCILE's findings) is no event stream: not read under I5", async () => {
    await healthy();
    // healthy() provisioned every stream of the contracts, RECONCILE included.
    expect((await jsm.streams.info(Streams.RECONCILE.name)).config.subjects).toEqual([
      ...Streams.RECONCILE.subjects,
    ]);
    await jetstream(nc).publish(
      "reconcile.stuck_transfer.x",
      new TextEncoder().encode("a finding, not an envelope"),
    );
    const r = await checkInvariants({ nc, accepted, balances: fixedBalances(healthyBalances) });
    expect(r.counts.events.RECONCILE).toBeUndefined();
    expect(r.violations).toEqual([]);
  });

  it("invariants - without a balance source I3 and I4 are skipped, not passed silently", async () => {
    await healthy();
    const r = await checkInvariants({ nc, accepted });
    expect(r.ok).toBe(true);
    expect(r.checked).toEqual(["I1", "I2", "I5", "I6", "S1"]);
    expect(r.skipped.map((s) => s.invariant)).toEqual(["I3", "I4", "M1"]);
  });

  it("invariants - a posting decided on balances the log did not have breaks S1 at its sequence", async () => {
    await healthy();
    // acc-b holds 1,500; a posting of 2,000 from it is an overdraft written into the log,
    // although the live balances agree with the fold (the projection moved the same money).
    const { posted } = await log.transfer("t-over", "acc-b", "acc-c", 2_000);
    const balances = fixedBalances({ ...healthyBalances, "acc-b": { EUR: -500 }, "acc-c": { EUR: 2_000 } });
    const r = await checkInvariants({ nc, accepted: [...accepted, { transferId: "t-over" }], balances });
    expect(r.ok).toBe(false);
    const s1 = r.violations.filter((v) => v.invariant === "S1");
    expect(s1).toHaveLength(1);
    expect(s1[0]).toMatchObject({ transferId: "t-over" });
    expect(s1[0]!.message).toMatch(/^account acc-b EUR is -500 after LEDGER seq \d+/);
    expect(s1[0]!.events.map((e) => e.eventId)).toEqual([posted!.eventId]);
    // external may go negative (minting), and I3/I4 hold: only S1 catches this.
    expect(r.violations.every((v) => v.invariant === "S1")).toBe(true);
  });

  it("invariants - money created outside an authorised mint breaks M1: no request, a client that may not mint, another amount", async () => {
    await healthy();
    const minters = ["treasury"];
    const clean = await checkInvariants({ nc, accepted, balances: fixedBalances(healthyBalances), minters });
    expect(clean.checked).toContain("M1");
    expect(clean.violations).toEqual([]);

    // A client that is no minter asked for money from external, and it was posted.
    await log.transfer("t-mallory", "external", "acc-m", 5_000, "posted", "mallory");
    // A posting forged straight onto the pipeline, with no request behind it.
    const traceId = log.trace();
    await log.put(
      "ledger.posted",
      {
        transferId: "t-forged",
        from: "external",
        to: "acc-f",
        amountMinor: 999,
        currency: "EUR",
        decision: "allow",
      },
      { causationId: "nothing", traceId },
    );
    // A minter's request for 100 posted as 100,000.
    const asked = await log.put(
      "transfers.requested",
      {
        transferId: "t-inflated",
        from: "external",
        to: "acc-i",
        amountMinor: 100,
        currency: "EUR",
        requestedAt: new Date().toISOString(),
      },
      { causationId: "idempotency-key:t-inflated", traceId, actor: "treasury" },
    );
    await log.put(
      "ledger.posted",
      {
        transferId: "t-inflated",
        from: "external",
        to: "acc-i",
        amountMinor: 100_000,
        currency: "EUR",
        decision: "allow",
      },
      { causationId: asked.eventId, traceId },
    );
    const r = await checkInvariants({ nc, minters, only: ["M1"] });
    expect(r.ok).toBe(false);
    const m1 = new Map(r.violations.map((v) => [v.transferId, v.message]));
    expect(m1.get("t-mallory")).toMatch(/came from client mallory, not an authorised minter/);
    expect(m1.get("t-forged")).toMatch(/no transfers.requested in INGRESS asked for it/);
    expect(m1.get("t-inflated")).toMatch(/moved 100000 EUR to acc-i; the request asked 100 EUR to acc-i/);
    expect(r.violations).toHaveLength(3);
  });
});
