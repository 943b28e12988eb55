// The reconciler against real servers: a nats-server and a redis-server from the testkit and
// the bank simulator over real HTTP. Each case plants one kind of discrepancy, waits for the
// exact finding on RECONCILE, checks it is there once, repairs, and waits for its closing.
import { FindingKinds, Headers, LedgerProjection, StreamNames } from "@jetmesh/contracts";
import { POLITE_BEHAVIOUR, startBankSim } from "@jetmesh/bank-sim";
import { consumerConfig, openPositions } from "@jetmesh/stage/internal";
import { stopAllProcesses } from "@jetmesh/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DeclaredConsumers, specOf } from "./catalog.ts";
import {
  Pipeline,
  payAtBank,
  REFUSED,
  readFindings,
  reconcilerIn,
  startWorld,
  testSettings,
  type World,
  waitForFinding,
} from "./test-support.ts";
import type { Reconciler } from "./reconciler.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** The bank simulator's own server function, over real HTTP: decides at once, refuses REFUSED. */
const bankSim = () => startBankSim({ behaviour: { ...POLITE_BEHAVIOUR, refuseAccounts: [REFUSED] } });

describe("reconciler", () => {
  let w: World | undefined;
  const running: Reconciler[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    await w?.close();
    w = undefined;
  });
  afterAll(() => stopAllProcesses());

  async function start(world: World, over: Parameters<typeof testSettings>[1] = {}, instance = "test-1") {
    const r = reconcilerIn(world, testSettings(world, over), instance);
    running.push(r.reconciler);
    await r.reconciler.ready;
    return r;
  }

  it("reconciler - a clean pipeline gives no finding", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-fund", from: "external", to: "acc-a", amountMinor: 10_000 }, "posted");
    await p.transfer({ transferId: "t-pay", from: "acc-a", to: "acc-b", amountMinor: 1_500 }, "posted");
    await p.transfer({ transferId: "t-rej", from: "acc-a", to: "acc-a", amountMinor: 1 }, "rejected");
    await p.transfer({ transferId: "t-dec", from: "acc-b", to: "acc-a", amountMinor: 99_999 }, "declined");
    const out = { transferId: "t-out", from: "acc-a", to: "bank:acme", amountMinor: 700 };
    expect(await p.payout(out, await p.transfer(out, "posted"))).toBe("paid");
    const ref = { transferId: "t-ref", from: "acc-a", to: REFUSED, amountMinor: 300 };
    expect(await p.payout(ref, await p.transfer(ref, "posted"))).toBe("refused");
    // every declared consumer, as the stages create them
    for (const c of DeclaredConsumers)
      await w.jsm.consumers.add(
        c.stream,
        consumerConfig(specOf(c, { ackWaitMs: 30_000, maxAckPending: 1024 })),
      );

    const { reconciler, registry } = await start(w, { consumers: DeclaredConsumers, dlqMaxAgeMs: 500 });
    // past every deadline, and every check run at least twice
    await sleep(1500);
    for (const c of ["deadlines", "projection_full", "bank", "dlq", "settings"] as const)
      await reconciler.runCheck(c);
    expect(await readFindings(w)).toEqual([]);
    expect(reconciler.openFindings()).toEqual([]);
    expect(reconciler.health()).toMatchObject({ ok: true, open_findings: 0 });
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/jetmesh_reconcile_open_findings\{kind="stuck_transfer"\} 0/);
    expect(metrics).toMatch(/jetmesh_reconcile_lag_messages\{stream="LEDGER"\} 0/);
    expect(metrics).toMatch(/jetmesh_reconcile_checks_total\{check="event"\} (\d+)/);
    expect(
      Number(/jetmesh_reconcile_checks_total\{check="event"\} (\d+)/.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(20);
  });

  it("reconciler - a transfer stuck past its step's deadline is reported once by two instances, and closed by its late outcome", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    const t = { transferId: "t-stuck", from: "external", to: "acc-s", amountMinor: 500 };
    const validated = await p.transfer(t, "validated");
    const a = await start(
      w,
      { deadlines: { validate: 60_000, score: 1000, decide: 60_000, payout: 60_000, reverse: 60_000 } },
      "a",
    );
    await start(
      w,
      { deadlines: { validate: 60_000, score: 1000, decide: 60_000, payout: 60_000, reverse: 60_000 } },
      "b",
    );

    const opened = await waitForFinding(w, "the stuck finding", (f) => f.kind === FindingKinds.StuckTransfer);
    expect(opened).toMatchObject({
      kind: "stuck_transfer",
      state: "opened",
      key: "t-stuck@score",
      transferId: "t-stuck",
      command: "pnpm jetmesh trace t-stuck",
      evidence: { step: "score", waitingFor: "risk", stream: "RISK", deadlineMs: 1000 },
    });
    const lineage = opened.evidence.lineage as { type: string; stream: string; eventId: string }[];
    expect(lineage.map((e) => `${e.type}@${e.stream}`)).toEqual([
      "transfers.requested@INGRESS",
      "transfers.validated@VALIDATION",
    ]);
    expect(lineage[1]?.eventId).toBe(validated);
    expect(await a.registry.metrics()).toMatch(/jetmesh_reconcile_open_findings\{kind="stuck_transfer"\} 1/);

    // the late outcome: risk scores, the ledger posts
    const scored = await p.emit(
      "transfers.scored",
      { ...t, currency: "EUR", score: 1, decision: "allow", factors: [] },
      t.transferId,
      validated,
      "risk",
    );
    await p.emit(
      "ledger.posted",
      { ...t, currency: "EUR", decision: "allow" },
      t.transferId,
      scored.eventId,
      "ledger",
    );
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ kind: "stuck_transfer", key: "t-stuck@score", openedAt: opened.openedAt });
    expect(closed.evidence.resolvedBy).toMatchObject({
      type: "transfers.scored",
      stream: "RISK",
      seq: scored.seq,
    });
    await sleep(1500);
    // two instances, one opened and one closed, on the finding's own subject
    const all = await readFindings(w);
    expect(all.map((f) => `${f.key} ${f.state}`)).toEqual(["t-stuck@score opened", "t-stuck@score closed"]);
    expect(new Set(all.map((f) => f.subject)).size).toBe(1);
    expect(all[0]?.subject).toBe(`reconcile.stuck_transfer.${opened.findingId}`);
  });

  it("reconciler - a transfer whose message was parked is reported stuck with its DLQ message in the evidence", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-parked", from: "acc-1", to: "acc-2", amountMinor: 5 }, "requested");
    const h = natsHeaders();
    h.set(Headers.CorrelationId, "t-parked");
    h.set(Headers.DlqReason, "invalid transfers.requested: /data/currency must be a string");
    h.set(Headers.DlqErrorClass, "ContractError");
    h.set(Headers.DlqStage, "validator");
    const parked = await w.js.publish("dlq.validator", new Uint8Array([0xc1]), { headers: h });
    await start(w, {
      deadlines: { validate: 500, score: 60_000, decide: 60_000, payout: 60_000, reverse: 60_000 },
    });
    const f = await waitForFinding(w, "the stuck finding", (x) => x.kind === FindingKinds.StuckTransfer);
    expect(f.key).toBe("t-parked@validate");
    expect(f.summary).toMatch(/parked in the DLQ by validator$/);
    expect(f.evidence.dlq).toEqual([
      {
        seq: parked.seq,
        stage: "validator",
        errorClass: "ContractError",
        reason: "invalid transfers.requested: /data/currency must be a string",
      },
    ]);
  });

  it("reconciler - a stuck finding opened by an instance that stopped is closed by another one", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    const t = { transferId: "t-orphan", from: "external", to: "acc-o", amountMinor: 500 };
    const scored = await p.transfer(t, "scored");
    const long = { validate: 600_000, score: 600_000, decide: 600_000, payout: 600_000, reverse: 600_000 };
    const a = await start(w, { deadlines: { ...long, decide: 500 } }, "a");
    // b's own deadline is far away: it never finds the transfer stuck by itself
    await start(w, { deadlines: long }, "b");
    await waitForFinding(w, "the stuck finding", (f) => f.kind === FindingKinds.StuckTransfer);
    await a.reconciler.stop();
    await p.emit(
      "ledger.posted",
      { ...t, currency: "EUR", decision: "allow" },
      t.transferId,
      scored,
      "ledger",
    );
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ key: "t-orphan@decide", instance: "b" });
    expect(closed.evidence.resolvedBy).toMatchObject({ type: "ledger.posted", stream: "LEDGER" });
  });

  it("reconciler - a balance altered in Redis is reported with the fold's value, and closed once repaired", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-f1", from: "external", to: "acc-x", amountMinor: 1000 }, "posted");
    await p.transfer({ transferId: "t-f2", from: "acc-x", to: "acc-y", amountMinor: 250 }, "posted");
    const { registry } = await start(w);
    await sleep(700);
    expect(await readFindings(w)).toEqual([]);

    await w.redis.hset(LedgerProjection.balanceKey("acc-x"), "EUR", "999");
    const opened = await waitForFinding(
      w,
      "the projection finding",
      (f) => f.kind === FindingKinds.ProjectionMismatch,
    );
    expect(opened).toMatchObject({
      state: "opened",
      key: "acc-x/EUR",
      account: "acc-x",
      command: "pnpm jetmesh rebuild --check",
      evidence: { currency: "EUR", served: "999", fold: "750", appliedSeq: 2, redisKey: "ledger:bal:acc-x" },
    });
    expect(await registry.metrics()).toMatch(
      /jetmesh_reconcile_open_findings\{kind="projection_mismatch"\} 1/,
    );
    await sleep(1000);
    expect((await readFindings(w)).length).toBe(1);

    await w.redis.hset(LedgerProjection.balanceKey("acc-x"), "EUR", "750");
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({
      kind: "projection_mismatch",
      key: "acc-x/EUR",
      evidence: { appliedSeq: 2 },
    });
    await sleep(700);
    expect((await readFindings(w)).map((f) => f.state)).toEqual(["opened", "closed"]);
    expect(await registry.metrics()).toMatch(
      /jetmesh_reconcile_open_findings\{kind="projection_mismatch"\} 0/,
    );
  });

  it("reconciler - a projection that only lags behind the log is no finding", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-l1", from: "external", to: "acc-l", amountMinor: 1000 }, "posted");
    await p.transfer({ transferId: "t-l2", from: "acc-l", to: "acc-m", amountMinor: 400 }, "posted");
    // Redis rolled back to the state after the first posting (applied-seq and balances together)
    await w.redis.set(LedgerProjection.appliedSeqKey, "1");
    await w.redis.hset(LedgerProjection.balanceKey("acc-l"), "EUR", "1000");
    await w.redis.hset(LedgerProjection.balanceKey("acc-m"), "EUR", "0");
    const { reconciler } = await start(w);
    await reconciler.runCheck("projection_full");
    await sleep(700);
    expect(await readFindings(w)).toEqual([]);
  });

  it("reconciler - a bank record that disagrees with LEDGER is reported, and closed once the bank's record agrees", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-fund", from: "external", to: "acc-p", amountMinor: 5000 }, "posted");
    const t = { transferId: "t-nopay", from: "acc-p", to: "bank:acme", amountMinor: 1200, currency: "EUR" };
    const posted = await p.transfer(t, "posted");
    // PAYOUTS says paid, the bank never saw the key
    await p.emit("payouts.completed", { ...t, bankReference: "ref-forged" }, t.transferId, posted, "payout");
    await start(w);

    const opened = await waitForFinding(w, "the bank finding", (f) => f.kind === FindingKinds.BankMismatch);
    expect(opened).toMatchObject({
      state: "opened",
      key: "t-nopay:no_record",
      transferId: "t-nopay",
      account: "bank:acme",
      command: "pnpm jetmesh trace t-nopay",
      evidence: {
        check: "no_record",
        bankKey: "payout:t-nopay",
        bankStatus: 404,
        payouts: { type: "payouts.completed" },
      },
    });
    await sleep(1200);
    expect((await readFindings(w)).length).toBe(1);

    // the bank's record is repaired: the payout is made under the transfer's key
    expect((await payAtBank(w.bank.url, t)).status).toBe(201);
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ kind: "bank_mismatch", key: "t-nopay:no_record" });
    expect((closed.evidence.payouts as unknown[]).length).toBe(1);
    await sleep(1200);
    expect((await readFindings(w)).map((f) => `${f.key} ${f.state}`)).toEqual([
      "t-nopay:no_record opened",
      "t-nopay:no_record closed",
    ]);
  });

  it("reconciler - a payout the bank made and LEDGER reversed is reported", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-fund", from: "external", to: "acc-q", amountMinor: 5000 }, "posted");
    const t = { transferId: "t-both", from: "acc-q", to: "bank:acme", amountMinor: 800, currency: "EUR" };
    const posted = await p.transfer(t, "posted");
    expect((await payAtBank(w.bank.url, t)).status).toBe(201);
    const failed = await p.emit(
      "payouts.failed",
      { ...t, reason: "timeout", bankStatus: 504 },
      t.transferId,
      posted,
      "payout",
    );
    await p.emit(
      "ledger.reversed",
      { ...t, reason: "payout failed" },
      t.transferId,
      failed.eventId,
      "ledger",
    );
    await start(w);
    const found = await waitForFinding(w, "the bank finding", (f) => f.kind === FindingKinds.BankMismatch);
    expect(found.transferId).toBe("t-both");
    await sleep(1200);
    expect((await readFindings(w)).map((f) => f.key).sort()).toEqual([
      "t-both:paid_but_failed",
      "t-both:paid_but_reversed",
    ]);
  });

  it("reconciler - a DLQ message older than the allowed age is reported with its reason, and closed once removed", async () => {
    w = await startWorld(bankSim);
    const h = natsHeaders();
    h.set(Headers.CorrelationId, "t-poison");
    h.set(Headers.EventType, "ledger.posted");
    h.set(Headers.DlqReason, "bank said 422: account closed");
    h.set(Headers.DlqErrorClass, "PermanentError");
    h.set(Headers.DlqStage, "payout");
    h.set(Headers.DlqStream, "LEDGER");
    h.set(Headers.DlqSubject, "ledger.posted.03");
    h.set(Headers.DlqSequence, "7");
    h.set(Headers.DlqDeliveries, "1");
    const ack = await w.js.publish("dlq.payout", new Uint8Array([1, 2, 3]), {
      headers: h,
      msgID: "dlq:payout:LEDGER:7",
    });
    const { registry } = await start(w, { dlqMaxAgeMs: 1000 });

    const opened = await waitForFinding(w, "the DLQ finding", (f) => f.kind === FindingKinds.DlqAged);
    expect(opened).toMatchObject({
      state: "opened",
      key: `DLQ#${ack.seq}`,
      transferId: "t-poison",
      command: `pnpm jetmesh dlq show ${ack.seq}`,
      evidence: {
        seq: ack.seq,
        stage: "payout",
        errorClass: "PermanentError",
        reason: "bank said 422: account closed",
        originStream: "LEDGER",
        originSeq: "7",
        maxAgeMs: 1000,
      },
    });
    expect(opened.evidence.ageMs as number).toBeGreaterThan(1000);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/jetmesh_reconcile_dlq_messages\{stage="payout",error="PermanentError"\} 1/);
    expect(
      Number(/^jetmesh_reconcile_dlq_oldest_message_age_seconds (\S+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThan(1);
    await sleep(1000);
    expect((await readFindings(w)).length).toBe(1);

    await w.jsm.streams.deleteMessage(StreamNames.Dlq, ack.seq);
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ kind: "dlq_aged", key: `DLQ#${ack.seq}` });
    await sleep(700);
    expect((await readFindings(w)).map((f) => f.state)).toEqual(["opened", "closed"]);
    expect(await registry.metrics()).toMatch(/^jetmesh_reconcile_dlq_oldest_message_age_seconds 0$/m);
  });

  it("reconciler - a restart becomes ready after the DLQ's newest entries were removed (replayed or dropped by an operator)", async () => {
    w = await startWorld(bankSim);
    const park = async (n: number) => {
      const h = natsHeaders();
      h.set(Headers.DlqStage, "validator");
      h.set(Headers.DlqReason, "undecodable message");
      return (
        (await w?.js.publish("dlq.validator", new Uint8Array([n]), { headers: h, msgID: `dlq:test:${n}` }))
          ?.seq ?? 0
      );
    };
    const [a, b, c] = [await park(1), await park(2), await park(3)];
    // The newest entry gone, an older one kept: the stream's last_seq is a deleted message.
    await w.jsm.streams.deleteMessage(StreamNames.Dlq, c);
    await w.jsm.streams.deleteMessage(StreamNames.Dlq, b);
    const r = reconcilerIn(w, testSettings(w), "test-tail");
    running.push(r.reconciler);
    const ready = await Promise.race([r.reconciler.ready.then(() => true), sleep(10_000).then(() => false)]);
    expect(ready, "ready within 10 s").toBe(true);
    // Every entry gone: an empty DLQ whose last_seq is past every message.
    await w.jsm.streams.deleteMessage(StreamNames.Dlq, a);
    const again = reconcilerIn(w, testSettings(w), "test-empty");
    running.push(again.reconciler);
    expect(
      await Promise.race([again.reconciler.ready.then(() => true), sleep(10_000).then(() => false)]),
    ).toBe(true);
  });

  it("reconciler - a consumer whose settings were changed by hand is reported, and closed once set back", async () => {
    w = await startWorld(bankSim);
    const declared = DeclaredConsumers.find((c) => c.stream === "RISK" && c.durable === "ledger");
    if (!declared) throw new Error("no declared consumer ledger on RISK");
    const want = consumerConfig(specOf(declared, { ackWaitMs: 30_000, maxAckPending: 1024 }));
    await w.jsm.consumers.add("RISK", want);
    await start(w, { consumers: [declared] });
    await sleep(1000);
    expect(await readFindings(w)).toEqual([]);

    await w.jsm.consumers.update("RISK", "ledger", { max_ack_pending: 5 });
    const opened = await waitForFinding(w, "the drift finding", (f) => f.kind === FindingKinds.SettingsDrift);
    expect(opened).toMatchObject({
      state: "opened",
      key: "consumer:RISK/ledger",
      command: "nats consumer info RISK ledger",
      evidence: { stream: "RISK", consumer: "ledger", drift: ["max_ack_pending: server 5, declared 1024"] },
    });
    await sleep(1000);
    expect((await readFindings(w)).length).toBe(1);

    await w.jsm.consumers.update("RISK", "ledger", { max_ack_pending: 1024 });
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ kind: "settings_drift", key: "consumer:RISK/ledger" });
  });

  it("reconciler - a declared consumer missing for less than the grace (a deploy in progress) is no finding; missing past it is one, closed once created", async () => {
    w = await startWorld(bankSim);
    const declared = DeclaredConsumers.find((c) => c.stream === "RISK" && c.durable === "ledger");
    if (!declared) throw new Error("no declared consumer ledger on RISK");
    await start(w, { consumers: [declared], missingGraceMs: 2500 });
    // Several checks (every 500 ms) see it missing; none reports it within the grace.
    await sleep(1500);
    expect(await readFindings(w)).toEqual([]);
    const opened = await waitForFinding(
      w,
      "the missing finding",
      (f) => f.kind === FindingKinds.SettingsDrift,
    );
    expect(opened).toMatchObject({
      state: "opened",
      key: "consumer:RISK/ledger",
      evidence: { stream: "RISK", consumer: "ledger", missing: true },
    });
    await w.jsm.consumers.add(
      "RISK",
      consumerConfig(specOf(declared, { ackWaitMs: 30_000, maxAckPending: 1024 })),
    );
    const closed = await waitForFinding(w, "the closing", (f) => f.state === "closed");
    expect(closed).toMatchObject({ kind: "settings_drift", key: "consumer:RISK/ledger" });
  });

  it("reconciler - a consumer is judged by what its own stage declares (recorded next to its position), not by the reconciler's settings", async () => {
    w = await startWorld(bankSim);
    const declared = DeclaredConsumers.find((c) => c.stream === "RISK" && c.durable === "ledger");
    if (!declared) throw new Error("no declared consumer ledger on RISK");
    // The ledger runs its consumer with a 1.5 s ack wait and 64 in flight; the reconciler's own
    // settings say 30 s and 1024.
    const own = { ackWaitMs: 1500, maxAckPending: 64 };
    await w.jsm.consumers.add("RISK", consumerConfig(specOf(declared, own)));
    const positions = await openPositions(w.js, 1);
    const spec = specOf(declared, own);
    await positions.declare("RISK", "ledger", 0, {
      ...(spec.filterSubject ? { filterSubject: spec.filterSubject } : {}),
      ...own,
    });
    await start(w, { consumers: [declared] });
    await sleep(1500);
    expect(await readFindings(w)).toEqual([]);
    // Changed by hand away from what the stage declares: reported against the declaration.
    await w.jsm.consumers.update("RISK", "ledger", { max_ack_pending: 5 });
    const opened = await waitForFinding(w, "the drift finding", (f) => f.kind === FindingKinds.SettingsDrift);
    expect(opened).toMatchObject({
      key: "consumer:RISK/ledger",
      evidence: { drift: ["max_ack_pending: server 5, declared 64"] },
    });
  });

  it("reconciler - exports each declared consumer's lag from the JetStream API, so a stage that stopped still shows it", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-1", from: "external", to: "acc-a", amountMinor: 100 }, "posted");
    await p.transfer({ transferId: "t-2", from: "external", to: "acc-b", amountMinor: 100 }, "posted");
    const declared = DeclaredConsumers.filter(
      (c) =>
        (c.stream === "INGRESS" && c.durable === "validator") ||
        (c.stream === "RISK" && c.durable === "ledger"),
    );
    // No stage runs: nothing consumes, so each consumer's lag is its whole stream.
    for (const c of declared)
      await w.jsm.consumers.add(
        c.stream,
        consumerConfig(specOf(c, { ackWaitMs: 30_000, maxAckPending: 1024 })),
      );
    const ingress = (await w.jsm.streams.info("INGRESS")).state.messages;
    expect(ingress).toBeGreaterThan(0);
    const { registry } = await start(w, { consumers: declared });
    const pending = async (stage: string, stream: string) =>
      new RegExp(`jetmesh_consumer_pending_messages\\{stage="${stage}",stream="${stream}"\\} (\\d+)`).exec(
        await registry.metrics(),
      )?.[1];
    for (let i = 0; i < 50 && (await pending("validator", "INGRESS")) === undefined; i++) await sleep(100);
    expect(await pending("validator", "INGRESS")).toBe(String(ingress));
    expect(await pending("ledger", "RISK")).toBe(
      String((await w.jsm.consumers.info("RISK", "ledger")).num_pending),
    );
    expect(await registry.metrics()).toMatch(
      /jetmesh_consumer_ack_pending_messages\{stage="validator",stream="INGRESS"\} 0/,
    );
    // nothing was ever delivered: no activity to age, and nothing redelivered
    expect(await registry.metrics()).toMatch(
      /jetmesh_consumer_redelivered_messages\{stage="validator",stream="INGRESS"\} 0/,
    );
    expect(await registry.metrics()).not.toMatch(
      /jetmesh_consumer_last_delivery_age_seconds\{stage="validator"/,
    );
    // one delivered and not acked (then delivered again): its last activity ages, its ack floor has none
    const msg = await (await w.js.consumers.get("INGRESS", "validator")).next({ expires: 2000 });
    expect(msg).not.toBeNull();
    msg?.nak();
    const again = await (await w.js.consumers.get("INGRESS", "validator")).next({ expires: 2000 });
    expect(again?.redelivered).toBe(true);
    const metric = async (name: string) =>
      new RegExp(`${name}\\{stage="validator",stream="INGRESS"\\} ([\\d.e+-]+)`).exec(
        await registry.metrics(),
      )?.[1];
    for (let i = 0; i < 50 && (await metric("jetmesh_consumer_redelivered_messages")) !== "1"; i++)
      await sleep(100);
    expect(await metric("jetmesh_consumer_redelivered_messages")).toBe("1");
    const age = Number(await metric("jetmesh_consumer_last_delivery_age_seconds"));
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(30);
    expect(await metric("jetmesh_consumer_last_ack_age_seconds")).toBeUndefined();
    again?.ack();
    for (let i = 0; i < 50 && (await metric("jetmesh_consumer_last_ack_age_seconds")) === undefined; i++)
      await sleep(100);
    expect(Number(await metric("jetmesh_consumer_last_ack_age_seconds"))).toBeLessThan(30);

    // A consumer that is gone has no lag to report (the settings check reports it missing).
    await w.jsm.consumers.delete("RISK", "ledger");
    for (let i = 0; i < 50 && (await pending("ledger", "RISK")) !== undefined; i++) await sleep(100);
    expect(await pending("ledger", "RISK")).toBeUndefined();
    // the validator's consumer still reports, one message fewer (taken and acked above)
    expect(await pending("validator", "INGRESS")).toBe(String(ingress - 1));
  });

  it("reconciler - a prefix of LEDGER that overdraws an account is reported once", async () => {
    w = await startWorld(bankSim);
    const p = new Pipeline(w);
    await p.transfer({ transferId: "t-over", from: "acc-empty", to: "acc-z", amountMinor: 300 }, "posted");
    await start(w);
    const f = await waitForFinding(w, "the solvency finding", (x) => x.kind === FindingKinds.InsolventPrefix);
    expect(f).toMatchObject({
      key: "LEDGER#1/acc-empty/EUR",
      account: "acc-empty",
      transferId: "t-over",
      evidence: { balance: "-300" },
    });
    await sleep(700);
    expect((await readFindings(w)).length).toBe(1);
  });
});
