// `jetmesh dlq` as an operator runs it (a child process) against a real nats-server and
// redis-server, with messages parked by a real stage (runStage, a handler that throws a
// PermanentError), another consumer of the same stream, payouts parked by the real payout
// stage (its handler behind a gate that refuses poisoned transfers) and a real bank simulator
// that it pays and the CLI asks.
import {
  type AnyEnvelope,
  deriveId,
  encodeEvent,
  EventTypes,
  eventHeaders,
  Headers,
  makeEnvelope,
  replayDurable,
  replaySubject,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import { type BankSimHandle, POLITE_BEHAVIOUR, startBankSim } from "@jetmesh/bank-sim";
import { createBankClient } from "@jetmesh/payout/bank-client";
import { openPayoutRecords } from "@jetmesh/payout/records";
import { payoutStage } from "@jetmesh/payout/stage";
import {
  createLogger,
  createRedis,
  defineStage,
  emit,
  type Middleware,
  PermanentError,
  type Redis,
  runStage,
  type StageHandle,
  stageSettings,
} from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import {
  type NatsServerHandle,
  type RedisServerHandle,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent } from "./audit.ts";
import { replayParked, selectParked } from "./dlq-actions.ts";
import { jetmesh } from "./testing.ts";

const logger = createLogger({ service: "ops-dlq-test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const STAGE = "ops-echo";
const WATCHER = "ops-watch";

/** Reasons a transfer is poison for the stage, by transfer id: an operator "fixes" one by deleting it. */
const POISON = "ops:poison";
const runsKey = (stage: string, eventId: string) => `ops:runs:${stage}:${eventId}`;

/** The stage under test: validates requests, permanently refusing poisoned transfers; counts its effects. */
const echo = defineStage<"transfers.requested", { redis: Redis }>({
  name: STAGE,
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: async (evt, ctx) => {
    const d = evt.data;
    const poison = await ctx.deps.redis.hget(POISON, d.transferId);
    if (poison) throw new PermanentError(`poison: ${poison}`);
    return {
      effect: async () => {
        await ctx.deps.redis.incr(runsKey(STAGE, evt.eventId));
        const { transferId, from, to, amountMinor, currency } = d;
        return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
      },
    };
  },
});

/** Another consumer of INGRESS: a replay meant for ops-echo must leave it alone. */
const watcher = defineStage<"transfers.requested", { redis: Redis }>({
  name: WATCHER,
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [],
  handle: async (evt, ctx) => {
    await ctx.deps.redis.incr(runsKey(WATCHER, evt.eventId));
    return [];
  },
});

const request = (transferId: string) =>
  makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: "acc-alice",
      to: "acc-bob",
      amountMinor: 700,
      currency: "EUR",
      requestedAt: new Date().toISOString(),
    },
    {
      eventId: deriveId("ops-dlq-test", transferId),
      correlationId: transferId,
      causationId: `request:${transferId}`,
      producer: "gateway",
    },
  );

const posting = (transferId: string) =>
  makeEnvelope(
    EventTypes.LedgerPosted,
    {
      transferId,
      from: "acc-alice",
      to: "bank:de001",
      amountMinor: 900,
      currency: "EUR",
      decision: "allow",
    },
    {
      eventId: deriveId("ops-dlq-test-posted", transferId),
      correlationId: transferId,
      causationId: `scored:${transferId}`,
      producer: "ledger",
    },
  );

async function publish(js: JetStreamClient, env: AnyEnvelope, msgID = env.eventId) {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) if (k !== Headers.MsgId) h.set(k, v);
  return js.publish(subjectFor(env.type, (env.data as { from: string }).from), encodeEvent(env), {
    msgID,
    headers: h,
  });
}

/**
 * The payout stage as deployed, behind a gate: a transfer listed in POISON is refused
 * (PermanentError with the listed reason) before the handler runs, so it is parked by the
 * runtime as a payout whose outcome is unknown would be, without any call to the bank.
 */
const poisonGate =
  <Deps>(redis: () => Redis): Middleware<Deps> =>
  (next) =>
  async (evt, ctx) => {
    const why = await redis().hget(POISON, (evt.data as { transferId: string }).transferId);
    if (why) throw new PermanentError(why);
    return next(evt, ctx);
  };

describe("jetmesh dlq against real servers and a real stage", () => {
  let nats: NatsServerHandle;
  let redisServer: RedisServerHandle;
  let bank: BankSimHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let redis: Redis;
  const stages: StageHandle[] = [];
  const seqOf: Record<string, number> = {};
  const ingressSeq: Record<string, number> = {};
  const ledgerSeq: Record<string, number> = {};
  const reqs = {
    a: request("tr-a"),
    b: request("tr-b"),
    c: request("tr-c"),
  };
  let s: string;
  const cli = (args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
    jetmesh([...args, "--server", s], { ...o, env: { USER: "test-operator", ...o.env } });
  const dlqInfo = async () => (await jsm.streams.info(StreamNames.Dlq)).state;
  const validated = async (transferId: string) => {
    const out: number[] = [];
    const info = await jsm.streams.info(StreamNames.Validation);
    for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
      const m = await jsm.streams.getMessage(StreamNames.Validation, { seq: q });
      if (m?.header?.get(Headers.CorrelationId) === transferId) out.push(q);
    }
    return out;
  };
  const quiet = () =>
    waitFor(
      async () => {
        for (const name of [STAGE, WATCHER]) {
          const c = await jsm.consumers.info(StreamNames.Ingress, name);
          if (c.num_pending > 0 || c.num_ack_pending > 0) return undefined;
        }
        return true;
      },
      { what: "both consumers of INGRESS quiet", timeoutMs: 20_000 },
    );
  const quietOn = (stream: string, durable: string) =>
    waitFor(
      async () => {
        const c = await jsm.consumers.info(stream, durable);
        return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
      },
      { what: `${durable} on ${stream} quiet`, timeoutMs: 20_000 },
    );
  /** The payouts stored for a transfer, by type. */
  const payoutsOf = async (transferId: string) => {
    const out: string[] = [];
    const info = await jsm.streams.info(StreamNames.Payouts);
    for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
      const m = await jsm.streams.getMessage(StreamNames.Payouts, { seq: q });
      if (m?.header?.get(Headers.CorrelationId) === transferId) out.push(m.header.get(Headers.EventType));
    }
    return out;
  };
  const audits = async (): Promise<Array<{ subject: string; event: AuditEvent }>> => {
    const info = await jsm.streams.info(StreamNames.Audit);
    const out: Array<{ subject: string; event: AuditEvent }> = [];
    for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
      const m = await jsm.streams.getMessage(StreamNames.Audit, { seq: q });
      if (m) out.push({ subject: m.subject, event: m.json<AuditEvent>() });
    }
    return out;
  };

  beforeAll(async () => {
    [nats, redisServer, bank] = await Promise.all([
      startNats(),
      startRedis({ persistence: false }),
      startBankSim({ behaviour: { ...POLITE_BEHAVIOUR, refusalRate: 0 } }),
    ]);
    s = nats.url;
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await provisionStreams(jsm, { replicas: 1, logger });
    redis = createRedis({ url: redisServer.url, name: "ops-dlq-test" });
    const settings = stageSettings({
      ackWaitMs: 2000,
      maxDeliver: 3,
      retryBaseMs: 50,
      retryMaxMs: 200,
      idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
      idempotencyHorizonMs: 600_000,
    });
    for (const definition of [echo, watcher])
      stages.push(await runStage({ definition, deps: { redis }, nc, redis, logger, settings }));
    stages.push(
      await runStage({
        definition: { ...payoutStage, middleware: [poisonGate(() => redis)] },
        deps: {
          bank: createBankClient({ url: bank.url, timeoutMs: 2000 }),
          records: await openPayoutRecords(js, { bucket: "ops-dlq-payout-records", replicas: 1 }),
          bankRetentionMs: 86_400_000,
        },
        nc,
        redis,
        logger,
        settings,
      }),
    );

    await redis.hset(POISON, "tr-a", "blocked account", "tr-b", "blocked account", "tr-c", "currency frozen");
    for (const [k, env] of Object.entries(reqs)) ingressSeq[k] = (await publish(js, env)).seq;
    const parked = await waitFor(
      async () => {
        const all = await Promise.all(
          [1, 2, 3].map((seq) => jsm.streams.getMessage(StreamNames.Dlq, { seq }).catch(() => null)),
        );
        return all.every(Boolean) ? all : undefined;
      },
      { what: "three messages parked by the stage", timeoutMs: 20_000 },
    );
    for (const m of parked) seqOf[m!.header.get(Headers.CorrelationId)] = m!.seq;
    await quiet();

    // Two payouts the payout stage parked: the bank paid one of them (its answer was lost),
    // and never heard of the other. The test plays the ledger, which posted them.
    for (const t of ["tr-paid", "tr-unknown"]) {
      await redis.hset(
        POISON,
        t,
        `payout outcome unknown: an attempt for payout:${t} may have reached the bank`,
      );
      const env = posting(t);
      const h = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
      ledgerSeq[t] = (
        await js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
          msgID: env.eventId,
          headers: h,
        })
      ).seq;
      const m = await waitFor(
        async () => {
          const last = await jsm.streams
            .getMessage(StreamNames.Dlq, { last_by_subj: "dlq.payout" })
            .catch(() => null);
          return last?.header.get(Headers.CorrelationId) === t ? last : undefined;
        },
        { what: `${t} parked by the payout stage`, timeoutMs: 20_000 },
      );
      seqOf[t] = m.seq;
    }
    await quietOn(StreamNames.Ledger, "payout");
    const paid = await fetch(`${bank.url}/v1/payouts`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "payout:tr-paid" },
      body: JSON.stringify({
        transferId: "tr-paid",
        account: "bank:de001",
        amountMinor: 900,
        currency: "EUR",
      }),
    });
    expect(paid.ok, await paid.text()).toBe(true);
  }, 60_000);

  afterAll(async () => {
    for (const st of stages) await st.stop().catch(() => {});
    redis?.disconnect();
    await nc?.close().catch(() => {});
    await bank?.close();
    await stopAllProcesses();
    await Promise.all([nats?.stop(), redisServer?.stop()]);
  });

  it("ops - dlq ls lists parked messages with their origin, ids, reason, deliveries and age, and counts them", async () => {
    const r = await cli(["dlq", "ls", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const l = JSON.parse(r.stdout);
    expect(l.total).toBe(5);
    expect(l.byStage).toEqual({ [STAGE]: 3, payout: 2 });
    expect(l.byReason).toEqual({
      "poison: blocked account": 2,
      "poison: currency frozen": 1,
      "payout outcome unknown: an attempt for payout:tr-paid may have reached the bank": 1,
      "payout outcome unknown: an attempt for payout:tr-unknown may have reached the bank": 1,
    });
    const a = l.entries.find((e: { transferId: string }) => e.transferId === "tr-a");
    expect(a).toMatchObject({
      dlqSeq: seqOf["tr-a"],
      subject: `dlq.${STAGE}`,
      stage: STAGE,
      originStream: "INGRESS",
      originSubject: subjectFor(EventTypes.TransferRequested, "acc-alice"),
      originSeq: ingressSeq.a,
      type: "transfers.requested",
      eventId: reqs.a.eventId,
      reason: "poison: blocked account",
      errorClass: "PermanentError",
      deliveries: 1,
    });
    expect(a.ageMs).toBeGreaterThanOrEqual(0);
    expect(a.ageMs).toBeLessThan(120_000);

    const byStage = JSON.parse((await cli(["dlq", "ls", "--json", "--stage", "payout"])).stdout);
    expect(byStage.entries.map((e: { transferId: string }) => e.transferId)).toEqual([
      "tr-paid",
      "tr-unknown",
    ]);
    const byReason = JSON.parse((await cli(["dlq", "ls", "--json", "--reason", "BLOCKED"])).stdout);
    expect(byReason.entries.map((e: { transferId: string }) => e.transferId)).toEqual(["tr-a", "tr-b"]);

    const text = await cli(["dlq", "ls"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^DLQ_SEQ\s+STAGE\s+ORIGIN\s+TYPE\s+EVENT_ID\s+TRANSFER_ID\s+ERROR\s+DELIVERIES\s+AGE\s+REASON/,
    );
    expect(text.stdout).toMatch(
      new RegExp(`\\n${seqOf["tr-a"]}\\s+${STAGE}\\s+INGRESS#${ingressSeq.a}\\s+transfers\\.requested`),
    );
    expect(text.stdout).toContain(`by stage: 3 ${STAGE}, 2 payout`);
    expect(text.stdout).toContain("by reason: 2 poison: blocked account, 1 ");
  });

  it("ops - dlq show prints one parked message decoded, headers and body", async () => {
    const r = await cli(["dlq", "show", String(seqOf["tr-c"])]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`[DLQ #${seqOf["tr-c"]}] dlq.${STAGE}`);
    expect(r.stdout).toContain(`${Headers.DlqReason}: poison: currency frozen`);
    expect(r.stdout).toContain(`${Headers.DlqSequence}: ${ingressSeq.c}`);
    expect(r.stdout).toContain('"transferId": "tr-c"');
    const j = JSON.parse((await cli(["dlq", "show", String(seqOf["tr-c"]), "--json"])).stdout);
    expect(j.event).toEqual(reqs.c);
    expect(j.headers[Headers.DlqStage]).toEqual([STAGE]);
  });

  it("ops - dlq replay --dry-run changes nothing and is audited as a dry run", async () => {
    const before = {
      dlq: await dlqInfo(),
      ingress: (await jsm.streams.info(StreamNames.Ingress)).state,
      replay: (await jsm.streams.info(StreamNames.Replay)).state,
    };
    const r = await cli(["dlq", "replay", "--stage", STAGE, "--dry-run"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
    expect(r.stdout).toContain(
      `#${seqOf["tr-a"]} ${STAGE} INGRESS#${ingressSeq.a} tr-a: would-replay: would send to replay.${STAGE} on REPLAY for stage ${STAGE} (as INGRESS #${ingressSeq.a})`,
    );
    const after = {
      dlq: await dlqInfo(),
      ingress: (await jsm.streams.info(StreamNames.Ingress)).state,
      replay: (await jsm.streams.info(StreamNames.Replay)).state,
    };
    expect(after.replay.last_seq).toBe(before.replay.last_seq);
    expect(after.dlq.messages).toBe(before.dlq.messages);
    expect(after.dlq.last_seq).toBe(before.dlq.last_seq);
    expect(after.ingress.last_seq).toBe(before.ingress.last_seq);
    expect(await redis.get(runsKey(STAGE, reqs.a.eventId))).toBeNull();
    const [last] = (await audits()).slice(-1);
    expect(last?.subject).toBe("audit.replay");
    expect(last?.event).toMatchObject({
      action: "replay",
      actor: "test-operator",
      dryRun: true,
      selection: { stage: STAGE },
      seqs: [seqOf["tr-a"], seqOf["tr-b"], seqOf["tr-c"]],
    });
  });

  it("ops - dlq replay sends a parked message back to its stage alone, which processes it once; replayed twice, once", async () => {
    await redis.hdel(POISON, "tr-a"); // the operator fixed the cause
    const ingressBefore = (await jsm.streams.info(StreamNames.Ingress)).state.last_seq;
    // Days later: the other consumer's guard for the event has expired.
    expect(await redis.del(`${WATCHER}:${reqs.a.eventId}`)).toBe(1);
    const [snapshot] = await selectParked(js, jsm, { seqs: [seqOf["tr-a"]!] });
    const r = await cli(["dlq", "replay", String(seqOf["tr-a"]), "--actor", "alice", "--yes"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^#${seqOf["tr-a"]} ${STAGE} INGRESS#${ingressSeq.a} tr-a: replayed: sent to replay\\.${STAGE} on REPLAY for stage ${STAGE} \\(as INGRESS #${ingressSeq.a}\\) as REPLAY #\\d+; removed from the DLQ\n$`,
      ),
    );
    await waitFor(async () => (await redis.get(runsKey(STAGE, reqs.a.eventId))) === "1" || undefined, {
      what: "the stage processed the replay",
    });
    await quiet();
    await quietOn(StreamNames.Replay, replayDurable(STAGE));
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-a"]! })).toBeNull();

    // The same entry again: it is gone from the DLQ...
    const again = await cli(["dlq", "replay", String(seqOf["tr-a"]), "--yes"]);
    expect([again.code, again.stderr]).toEqual([
      1,
      `jetmesh: no DLQ entry #${seqOf["tr-a"]} (never parked, or replayed or dropped since)\n`,
    ]);
    // ...and a replay cut off between its publish and the removal, run again, is a duplicate
    // the stream drops (the Msg-Id comes from the DLQ seq)...
    const [twice] = await replayParked(js, jsm, [snapshot!], { dryRun: false });
    expect(twice).toMatchObject({ outcome: "replayed", replay: { stream: "REPLAY", duplicate: true } });
    // ...and past the duplicate window (another Msg-Id), the stage's done key absorbs it.
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(reqs.a))) if (k !== Headers.MsgId) h.set(k, v);
    h.set(Headers.ReplayOf, String(seqOf["tr-a"]));
    h.set(Headers.ReplayStream, StreamNames.Ingress);
    h.set(Headers.ReplaySubject, subjectFor(reqs.a.type, reqs.a.data.from));
    h.set(Headers.ReplaySequence, String(ingressSeq.a));
    const late = await js.publish(replaySubject(STAGE), encodeEvent(reqs.a), {
      msgID: "replay:after-the-window",
      headers: h,
    });
    expect(late.duplicate).toBe(false);
    await quietOn(StreamNames.Replay, replayDurable(STAGE));
    await quiet();
    expect(await redis.get(runsKey(STAGE, reqs.a.eventId))).toBe("1");
    expect(await validated("tr-a")).toHaveLength(1);
    expect((await dlqInfo()).messages).toBe(4);
    // No replay went into INGRESS: the other consumer of INGRESS ran the original once and saw
    // none of the replays, with its guard for the event gone (as it is days later).
    expect((await jsm.streams.info(StreamNames.Ingress)).state.last_seq).toBe(ingressBefore);
    expect(await redis.get(runsKey(WATCHER, reqs.a.eventId))).toBe("1");
  });

  it("ops - dlq replay by reason runs a still-poisoned message again, which parks again", async () => {
    const r = await cli(["dlq", "replay", "--reason", "currency frozen", "--yes"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`#${seqOf["tr-c"]} ${STAGE} INGRESS#${ingressSeq.c} tr-c: replayed:`);
    // Still poison: the stage ran it (its key was released when it parked) and parked it again.
    const reparked = await waitFor(
      async () => {
        const m = await jsm.streams.getMessage(StreamNames.Dlq, { last_by_subj: `dlq.${STAGE}` });
        return m && m.seq > seqOf["tr-c"]! ? m : undefined;
      },
      { what: "the replay parked again" },
    );
    expect(reparked.header.get(Headers.CorrelationId)).toBe("tr-c");
    expect(reparked.header.get(Headers.ReplayOf)).toBe(String(seqOf["tr-c"]));
    expect(reparked.header.get(Headers.DlqStream)).toBe("INGRESS");
    // The new entry names the original (never a copy in INGRESS), so it can be replayed again.
    expect(reparked.header.get(Headers.DlqSequence)).toBe(String(ingressSeq.c));
    seqOf["tr-c"] = reparked.seq;
    await quiet();
    expect(await redis.get(runsKey(STAGE, reqs.c.eventId))).toBeNull();
    expect(await redis.get(runsKey(WATCHER, reqs.c.eventId))).toBe("1");
  });

  it("ops - a parked payout is replayed only after asking the bank: executed is held, unknown is replayed to the payout stage, paid once, LEDGER unchanged", async () => {
    const noBank = await cli(["dlq", "replay", "--stage", "payout"]);
    expect(noBank.code).toBe(2);
    expect(noBank.stderr).toMatch(
      /^jetmesh: replaying a payout needs the bank's word on its key first: give --bank-url/,
    );
    const ledgerBefore = (await jsm.streams.info(StreamNames.Ledger)).state;
    const requestsBefore = bank.bank.stats().requests;
    await redis.hdel(POISON, "tr-unknown"); // the operator reconciled it with the bank

    const r = await cli(["dlq", "replay", "--stage", "payout", "--yes"], {
      env: { PAYOUT_BANK_URL: bank.url },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`jetmesh: 1 of 2 parked messages not replayed: #${seqOf["tr-paid"]} held\n`);
    const [paidLine, unknownLine] = r.stdout.trim().split("\n");
    expect(paidLine).toMatch(
      new RegExp(
        `^#${seqOf["tr-paid"]} payout LEDGER#${ledgerSeq["tr-paid"]} tr-paid: held: bank says payout:tr-paid was executed \\(paid, reference \\S+\\): not replayed`,
      ),
    );
    expect(unknownLine).toMatch(
      new RegExp(
        `^#${seqOf["tr-unknown"]} payout LEDGER#${ledgerSeq["tr-unknown"]} tr-unknown: replayed: sent to replay\\.payout on REPLAY for stage payout \\(as LEDGER #${ledgerSeq["tr-unknown"]}\\) as REPLAY #\\d+`,
      ),
    );
    expect(unknownLine).toContain("bank does not know payout:tr-unknown");
    // The held one stays parked; the other's replay is on REPLAY, for the payout stage alone.
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-paid"]! })).not.toBeNull();
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-unknown"]! })).toBeNull();
    const replay = await jsm.streams.getMessage(StreamNames.Replay, { last_by_subj: "replay.payout" });
    expect(replay?.header.get(Headers.ReplayOf)).toBe(String(seqOf["tr-unknown"]));
    expect(replay?.header.get(Headers.ReplayStream)).toBe(StreamNames.Ledger);
    expect(replay?.header.get(Headers.ReplaySequence)).toBe(String(ledgerSeq["tr-unknown"]));
    expect(replay?.header.get(Headers.ReplaySubject)).toBe(subjectFor(EventTypes.LedgerPosted, "acc-alice"));
    expect(replay?.header.get(Headers.EventId)).toBe(posting("tr-unknown").eventId);
    expect(replay?.header.get(Headers.DlqReason)).toBe("");
    expect(replay?.header.get(Headers.MsgId)).toBe(
      `replay:DLQ:${seqOf["tr-unknown"]}:payout:LEDGER:${ledgerSeq["tr-unknown"]}`,
    );
    // The payout stage pays it once: one request to the bank, one payouts.completed.
    await waitFor(async () => ((await payoutsOf("tr-unknown")).length > 0 ? true : undefined), {
      what: "the payout stage processed the replay",
    });
    await quietOn(StreamNames.Replay, replayDurable("payout"));
    expect(await payoutsOf("tr-unknown")).toEqual([EventTypes.PayoutCompleted]);
    expect(bank.bank.stats().requests).toBe(requestsBefore + 1);

    // Sent again past REPLAY's duplicate window (another Msg-Id): the done key absorbs it.
    const h = natsHeaders();
    for (const k of replay!.header.keys())
      if (!k.toLowerCase().startsWith("nats-")) h.set(k, replay!.header.get(k));
    const again = await js.publish(replaySubject("payout"), replay!.data, {
      msgID: "replay:payout-again",
      headers: h,
    });
    expect(again.duplicate).toBe(false);
    await quietOn(StreamNames.Replay, replayDurable("payout"));
    expect(await payoutsOf("tr-unknown")).toEqual([EventTypes.PayoutCompleted]);
    expect(bank.bank.stats().requests).toBe(requestsBefore + 1);
    // LEDGER, the source of truth, holds only what the ledger wrote: the same last seq.
    const ledgerAfter = (await jsm.streams.info(StreamNames.Ledger)).state;
    expect([ledgerAfter.last_seq, ledgerAfter.messages]).toEqual([
      ledgerBefore.last_seq,
      ledgerBefore.messages,
    ]);
  });

  it("ops - dlq replay and drop ask for confirmation on stdin unless --yes", async () => {
    const seq = String(seqOf["tr-paid"]);
    // an unreachable bank: a replay answered "no" must stop before it asks the bank anything
    const notReplayed = await cli(["dlq", "replay", seq], {
      input: "n\n",
      env: { PAYOUT_BANK_URL: "http://127.0.0.1:9" },
    });
    expect(notReplayed.code).toBe(1);
    expect(notReplayed.stderr).toContain(`replay 1 parked message (#${seq}) to their stage? [y/N]`);
    expect(notReplayed.stderr).toMatch(/jetmesh: not confirmed; nothing replayed\n$/);
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-paid"]! })).not.toBeNull();
    const no = await cli(["dlq", "drop", seq], { input: "n\n" });
    expect(no.code).toBe(1);
    expect(no.stderr).toContain(`drop 1 parked message (#${seq}) for good? [y/N]`);
    expect(no.stderr).toMatch(/jetmesh: not confirmed; nothing dropped\n$/);
    const silent = await cli(["dlq", "drop", seq]);
    expect(silent.code).toBe(1);
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-paid"]! })).not.toBeNull();

    const yes = await cli(["dlq", "drop", seq], { input: "y\n" });
    expect(yes.code).toBe(0);
    expect(yes.stdout).toMatch(
      new RegExp(`^#${seq} payout LEDGER#\\d+ tr-paid: dropped: deleted from the DLQ`),
    );
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: seqOf["tr-paid"]! })).toBeNull();

    const all = await cli(["dlq", "drop", "--all", "--yes"]);
    expect(all.stderr).toBe("");
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split("\n")).toHaveLength(2); // tr-b and the re-parked tr-c
    expect((await dlqInfo()).messages).toBe(0);
    const none = await cli(["dlq", "ls", "--json"]);
    expect(JSON.parse(none.stdout)).toEqual({ total: 0, entries: [], byStage: {}, byReason: {} });
  });

  it("ops - every replay and drop is an event on AUDIT: who, what, which seqs, when, dry run or not", async () => {
    const events = await audits();
    expect(events.map((e) => `${e.subject} ${e.event.actor} ${e.event.dryRun}`)).toEqual([
      "audit.replay test-operator true",
      "audit.replay alice false",
      "audit.replay test-operator false",
      "audit.replay test-operator false",
      "audit.drop test-operator false",
      "audit.drop test-operator false",
    ]);
    const [, replayA, , payout, dropPaid, dropAll] = events.map((e) => e.event);
    expect(replayA).toMatchObject({
      action: "replay",
      selection: { seqs: [seqOf["tr-a"]] },
      seqs: [seqOf["tr-a"]],
      entries: [
        { transferId: "tr-a", eventId: reqs.a.eventId, outcome: "replayed", originStream: "INGRESS" },
      ],
    });
    expect(Date.parse(replayA!.at)).toBeGreaterThan(Date.now() - 300_000);
    expect(payout?.entries.map((e) => `${e.transferId} ${e.outcome}`)).toEqual([
      "tr-paid held",
      "tr-unknown replayed",
    ]);
    expect(dropPaid).toMatchObject({
      action: "drop",
      seqs: [seqOf["tr-paid"]],
      entries: [{ outcome: "dropped" }],
    });
    expect(dropAll?.selection).toEqual({ all: true });
    expect(new Set(events.map((e) => e.event.id)).size).toBe(events.length);

    // `jetmesh audit` lists the same actions from the stream, filtered by action and time.
    const listed = await cli(["audit", "--json"]);
    expect([listed.code, listed.stderr]).toEqual([0, ""]);
    const rows = JSON.parse(listed.stdout).rows as { seq: number; event: { id: string } }[];
    expect(rows.map((r) => r.event.id)).toEqual(events.map((e) => e.event.id));
    const drops = await cli(["audit", "--action", "drop", "--json"]);
    expect(JSON.parse(drops.stdout).rows).toHaveLength(2);
    const table = await cli(["audit", "--action", "replay"]);
    expect(table.stdout).toMatch(/^seq +at +actor +action +dry run +what/);
    expect(table.stdout).toContain("alice");
    expect(table.stdout.trim().split("\n").at(-1)).toBe("4 action(s)");
    const future = await cli(["audit", "--since", "2999-01-01T00:00:00Z"]);
    expect(future.stdout).toBe("no operator actions recorded\n");
    const bad = await cli(["audit", "--action", "purge"]);
    expect(bad.code).toBe(2);
  });

  it("ops - dlq bad input is one line on stderr with exit 2; an unknown seq exit 1; nothing is done", async () => {
    const before = await audits();
    const cases: Array<{ args: string[]; code: number; line: RegExp }> = [
      {
        args: ["dlq", "replay"],
        code: 2,
        line: /^jetmesh: say which parked messages: DLQ sequences, --stage, --reason or --all$/,
      },
      {
        args: ["dlq", "replay", "1", "--all"],
        code: 2,
        line: /^jetmesh: choose by DLQ sequences, by --stage\/--reason, or --all: not several$/,
      },
      { args: ["dlq", "drop", "--stage", "payout", "--all", "--yes"], code: 2, line: /^jetmesh: choose by/ },
      { args: ["dlq", "replay", "abc"], code: 2, line: /^error: .*<dlqSeq> must be a positive integer/ },
      { args: ["dlq", "drop", "0", "--yes"], code: 2, line: /^error: .*<dlqSeq> must be a positive integer/ },
      { args: ["dlq", "show", "x"], code: 2, line: /^error: .*<dlqSeq> must be a positive integer/ },
      {
        args: ["dlq", "ls", "--stage", "Not A Stage"],
        code: 2,
        line: /^error: .*--stage must be a stage name/,
      },
      { args: ["dlq", "replay", "--reason", " "], code: 2, line: /^error: .*--reason must not be empty/ },
      {
        args: ["dlq", "replay", "1", "--bank-url", "ftp://bank"],
        code: 2,
        line: /^error: .*--bank-url must be an http\(s\) URL/,
      },
      { args: ["dlq", "ls", "--bogus"], code: 2, line: /^error: unknown option '--bogus'/ },
      { args: ["dlq", "nonsense"], code: 2, line: /^error: unknown command 'nonsense'/ },
      { args: ["dlq", "show", "9999"], code: 1, line: /^jetmesh: no DLQ entry #9999 / },
      { args: ["dlq", "replay", "9999"], code: 1, line: /^jetmesh: no DLQ entry #9999 / },
      { args: ["dlq", "drop", "9999", "--yes"], code: 1, line: /^jetmesh: no DLQ entry #9999 / },
    ];
    for (const c of cases) {
      const r = await cli(c.args);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, `${c.args.join(" ")}: ${r.stderr}`).toHaveLength(1);
      expect(lines[0], c.args.join(" ")).toMatch(c.line);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code, c.args.join(" ")).toBe(c.code);
      expect(r.stdout).toBe("");
    }
    expect(await audits()).toHaveLength(before.length);
  });

  it("ops - a poison message parked, its cause fixed: `dlq replay --all --yes` has the stage process it once and empties the DLQ", async () => {
    const env = request("tr-e");
    await redis.hset(POISON, "tr-e", "blocked account");
    await publish(js, env);
    await waitFor(async () => ((await dlqInfo()).messages > 0 ? true : undefined), { what: "tr-e parked" });
    expect((await dlqInfo()).messages).toBe(1);
    await redis.hdel(POISON, "tr-e"); // the operator fixed the cause
    const r = await cli(["dlq", "replay", "--all", "--yes"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(new RegExp(`^#\\d+ ${STAGE} INGRESS#\\d+ tr-e: replayed: `));
    await waitFor(async () => (await redis.get(runsKey(STAGE, env.eventId))) === "1" || undefined, {
      what: "the stage processed the replay",
    });
    await quietOn(StreamNames.Replay, replayDurable(STAGE));
    await quiet();
    expect(await redis.get(runsKey(STAGE, env.eventId))).toBe("1");
    expect(await validated("tr-e")).toHaveLength(1);
    expect((await dlqInfo()).messages).toBe(0);
  });

  it("ops - dlq replay without a REPLAY stream replays nothing, keeps the entry and says how to create it", async () => {
    const env = request("tr-d");
    await redis.hset(POISON, "tr-d", "blocked account");
    await publish(js, env);
    const parked = await waitFor(
      async () => {
        const m = await jsm.streams
          .getMessage(StreamNames.Dlq, { last_by_subj: `dlq.${STAGE}` })
          .catch(() => null);
        return m?.header.get(Headers.CorrelationId) === "tr-d" ? m : undefined;
      },
      { what: "tr-d parked" },
    );
    const audited = (await audits()).length;
    await jsm.streams.delete(StreamNames.Replay);
    const r = await cli(["dlq", "replay", String(parked.seq), "--yes"]);
    expect([r.code, r.stdout]).toEqual([1, ""]);
    expect(r.stderr).toBe(
      "jetmesh: no REPLAY stream to send replays on: create it with `nats stream add --config deploy/streams/REPLAY.json`; nothing replayed\n",
    );
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: parked.seq })).not.toBeNull();
    expect(await audits()).toHaveLength(audited);
  });
});
