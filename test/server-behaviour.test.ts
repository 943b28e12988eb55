// What THIS nats-server (Debian's v2.9.10) does with redelivery timing, advisories and publish
// expectations, measured rather than read from the docs. packages/stage/SERVER-BEHAVIOUR.md
// explains every figure from the server source (consumer.go, stream.go, jetstream_cluster.go,
// filestore.go).
// Timings are asserted with ±400 ms: the server's timers are exact to a few ms, the slack is
// for a loaded 2-core machine running the other tests of this file at the same time.
import {
  type ConsumerConfig,
  DiscardPolicy,
  type JetStreamClient,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
  type PubAck,
  AckPolicy,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import {
  type NatsServerHandle,
  startNats,
  startNatsCluster,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, it } from "vitest";

const NS = 1_000_000;
const SLACK_MS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const round = (ms: number) => Math.round(ms);

interface Delivery {
  readonly at: number;
  readonly dc: number;
  readonly seq: number;
}

/**
 * Pulls from a durable with a standing pull (consume) and hands each delivery to `act`.
 * Resolves with every delivery once `done` holds or after `timeoutMs`, then stops pulling.
 */
async function record(
  js: JetStreamClient,
  stream: string,
  durable: string,
  act: (m: JsMsg, d: Delivery, all: Delivery[]) => void,
  opts: { done?: (all: Delivery[]) => boolean; timeoutMs: number },
): Promise<Delivery[]> {
  const all: Delivery[] = [];
  const consumer = await js.consumers.get(stream, durable);
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const msgs = await consumer.consume({
    max_messages: 10,
    callback: (m) => {
      const d = { at: now(), dc: m.info.deliveryCount, seq: m.seq };
      all.push(d);
      act(m, d, all);
      if (opts.done?.(all)) finish();
    },
  });
  const timer = setTimeout(finish, opts.timeoutMs);
  await finished;
  clearTimeout(timer);
  await msgs.close().catch(() => {});
  return all;
}

/** Time between consecutive deliveries, in ms. */
const gaps = (all: readonly Delivery[]) => all.slice(1).map((d, i) => round(d.at - all[i]!.at));

/** The JetStream API error a publish or management call was refused with. */
async function refusal(p: Promise<unknown>): Promise<{ code: number; status: number; text: string }> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r.v)}`);
  if (!(r.e instanceof JetStreamApiError)) throw r.e;
  return { code: r.e.code, status: r.e.status, text: r.e.message };
}

type Settled = { ok: true; ack: PubAck } | { ok: false; code: number; status: number; text: string };
const settle = (p: Promise<PubAck>): Promise<Settled> =>
  p.then(
    (ack) => ({ ok: true as const, ack }),
    (e: unknown) => {
      if (e instanceof JetStreamApiError)
        return { ok: false as const, code: e.code, status: e.status, text: e.message };
      throw e;
    },
  );

const explicit = (durable: string, cfg: Partial<ConsumerConfig>): Partial<ConsumerConfig> => ({
  durable_name: durable,
  ack_policy: AckPolicy.Explicit,
  ...cfg,
});

/** A server of the test's own (it restarts or kills it), with a client that redials at once; stopped after `body`. */
async function withOwnServer(
  body: (o: {
    own: NatsServerHandle;
    onc: NatsConnection;
    ojs: JetStreamClient;
    ojsm: JetStreamManager;
  }) => Promise<void>,
): Promise<void> {
  const own = await startNats();
  const onc = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  try {
    await body({ own, onc, ojs: jetstream(onc), ojsm: await jetstreamManager(onc) });
  } finally {
    await onc.close().catch(() => {});
    await own.stop();
  }
}

describe.concurrent("nats-server 2.9.10 behaviour", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close().catch(() => {});
    await stopAllProcesses();
  });

  /** A stream with one subject `<name>.x` and one message on it, plus a consumer. */
  async function single(name: string, cfg: Partial<ConsumerConfig>): Promise<void> {
    await jsm.streams.add({ name, subjects: [`${name}.>`] });
    await jsm.consumers.add(name, explicit("c", cfg));
    await js.publish(`${name}.x`, "payload");
  }

  it("server - is the v2.9.10 these figures describe", ({ expect }) => {
    console.log(`nats-server ${nc.info?.version}`);
    expect(nc.info?.version).toBe("2.9.10");
  });

  // --- redelivery timing (longest tests first: concurrency is capped at 5) -------------------

  it("server - nak(delay) with BackOff redelivers after delay + backoff[n-1] - backoff[0]", async ({
    expect,
  }) => {
    // backoff [1s, 2s, 3s] makes ack_wait 1s; every delivery naks 1500 ms.
    await single("NAKBO", { backoff: [1000, 2000, 3000].map((ms) => ms * NS), max_deliver: 10 });
    const all = await record(js, "NAKBO", "c", (m, d) => (d.dc < 5 ? m.nak(1500) : m.ack()), {
      done: (a) => a.length >= 5,
      timeoutMs: 20_000,
    });
    console.log("nak(1500) with backoff [1s,2s,3s], gaps after deliveries 1..4:", gaps(all));
    expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4, 5]);
    const expected = [1500, 2500, 3500, 3500]; // 1500 + backoff[min(n-1, 2)] - 1000
    for (const [i, g] of gaps(all).entries()) expect(Math.abs(g - expected[i]!)).toBeLessThan(SLACK_MS);
  });

  it("server - ack timeout with BackOff waits backoff[n-1] after delivery n", async ({ expect }) => {
    await single("ACKBO", { backoff: [1000, 2000, 3000].map((ms) => ms * NS), max_deliver: 10 });
    const all = await record(js, "ACKBO", "c", (m, d) => d.dc === 4 && m.ack(), {
      done: (a) => a.length >= 4,
      timeoutMs: 15_000,
    });
    console.log("ack timeout with backoff [1s,2s,3s], gaps after deliveries 1..3:", gaps(all));
    expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4]);
    const expected = [1000, 2000, 3000];
    for (const [i, g] of gaps(all).entries()) expect(Math.abs(g - expected[i]!)).toBeLessThan(SLACK_MS);
  });

  it("server - nak(delay) without BackOff redelivers after exactly the delay", async ({ expect }) => {
    await single("NAKAW", { ack_wait: 1000 * NS, max_deliver: 10 });
    const all = await record(js, "NAKAW", "c", (m, d) => (d.dc < 5 ? m.nak(1500) : m.ack()), {
      done: (a) => a.length >= 5,
      timeoutMs: 15_000,
    });
    console.log("nak(1500) with ack_wait 1s and no backoff, gaps after deliveries 1..4:", gaps(all));
    expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4, 5]);
    for (const g of gaps(all)) expect(Math.abs(g - 1500)).toBeLessThan(SLACK_MS);
  });

  it("server - nak(delay - (backoff[n-1] - backoff[0])) gives the plain delay with BackOff set", async ({
    expect,
  }) => {
    // The compensation goes negative from delivery 3 on (1500 - 2000); the server takes it.
    const backoff = [1000, 2000, 3000];
    await single("NAKCOMP", { backoff: backoff.map((ms) => ms * NS), max_deliver: 10 });
    const all = await record(
      js,
      "NAKCOMP",
      "c",
      (m, d) => {
        if (d.dc >= 5) return m.ack();
        const step = backoff[Math.min(d.dc - 1, backoff.length - 1)]!;
        m.nak(1500 - (step - backoff[0]!));
      },
      { done: (a) => a.length >= 5, timeoutMs: 15_000 },
    );
    console.log("compensated nak (target 1500) with backoff [1s,2s,3s], gaps:", gaps(all));
    expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4, 5]);
    for (const g of gaps(all)) expect(Math.abs(g - 1500)).toBeLessThan(SLACK_MS);
  });

  it("server - working() restarts the current step's timer and does not count a delivery", async ({
    expect,
  }) => {
    // Without BackOff: ack_wait 1s, four +WPI 500 ms apart hold the message for ~3 s.
    await single("WPI", { ack_wait: 1000 * NS, max_deliver: 5 });
    let lastWpi = 0;
    const plain = await record(
      js,
      "WPI",
      "c",
      (m, d) => {
        if (d.dc > 1) return m.ack();
        for (let i = 1; i <= 4; i++)
          setTimeout(() => {
            m.working();
            lastWpi = now();
          }, i * 500);
      },
      { done: (a) => a.length >= 2, timeoutMs: 8_000 },
    );
    const afterWpi = round(plain[1]!.at - lastWpi);
    console.log(`working() without backoff: redelivered ${afterWpi} ms after the last +WPI`, {
      dcs: plain.map((d) => d.dc),
      held_ms: gaps(plain)[0],
    });
    expect(plain.map((d) => d.dc)).toEqual([1, 2]);
    expect(Math.abs(afterWpi - 1000)).toBeLessThan(SLACK_MS);

    // With BackOff [500 ms, 2 s]: delivery 2 gets one +WPI after 1 s. Timer back to ack_wait
    // would redeliver at +1.5 s, no effect at +2 s, a restart of backoff[1] at +3 s.
    await single("WPIBO", { backoff: [500, 2000].map((ms) => ms * NS), max_deliver: 5 });
    const stepped = await record(
      js,
      "WPIBO",
      "c",
      (m, d) => {
        if (d.dc === 2) setTimeout(() => m.working(), 1000);
        if (d.dc === 3) m.ack();
      },
      { done: (a) => a.length >= 3, timeoutMs: 8_000 },
    );
    console.log("working() at +1 s of delivery 2 with backoff [500ms,2s], gaps:", gaps(stepped));
    expect(stepped.map((d) => d.dc)).toEqual([1, 2, 3]);
    expect(Math.abs(gaps(stepped)[1]! - 3000)).toBeLessThan(SLACK_MS);
  });

  it("server - ack timeout redelivers every ack_wait without BackOff", async ({ expect }) => {
    await single("ACKAW", { ack_wait: 1000 * NS, max_deliver: 10 });
    const all = await record(js, "ACKAW", "c", (m, d) => d.dc === 4 && m.ack(), {
      done: (a) => a.length >= 4,
      timeoutMs: 10_000,
    });
    console.log("ack timeout with ack_wait 1s, gaps after deliveries 1..3:", gaps(all));
    expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4]);
    for (const g of gaps(all)) expect(Math.abs(g - 1000)).toBeLessThan(SLACK_MS);
  });

  it("server - +TERM with a reason is ignored (redelivered after ack_wait), plain +TERM stops it", async ({
    expect,
  }) => {
    await single("TERM", { ack_wait: 1000 * NS, max_deliver: 5 });
    const terminated: unknown[] = [];
    const sub = nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.TERM.c", {
      callback: (_e, msg) => {
        terminated.push(msg.json());
      },
    });
    const all = await record(js, "TERM", "c", (m, d) => (d.dc === 1 ? m.term("bad input") : m.term()), {
      timeoutMs: 4_000,
    });
    sub.unsubscribe();
    console.log("term('bad input') then term():", { dcs: all.map((d) => d.dc), gaps: gaps(all), terminated });
    expect(all.map((d) => d.dc)).toEqual([1, 2]);
    expect(Math.abs(gaps(all)[0]! - 1000)).toBeLessThan(SLACK_MS);
    expect(terminated).toHaveLength(1);
    expect(terminated[0]).toMatchObject({ stream: "TERM", consumer: "c", deliveries: 2 });
  });

  it("server - nak() without delay redelivers at once, with or without BackOff", async ({ expect }) => {
    await single("NAKNOW", { ack_wait: 1000 * NS, max_deliver: 10 });
    await jsm.consumers.add(
      "NAKNOW",
      explicit("bo", { backoff: [2000, 4000].map((ms) => ms * NS), max_deliver: 10 }),
    );
    const act = (m: JsMsg, d: Delivery) => (d.dc < 4 ? m.nak() : m.ack());
    const opts = { done: (a: Delivery[]) => a.length >= 4, timeoutMs: 5_000 };
    const [plain, stepped] = await Promise.all([
      record(js, "NAKNOW", "c", act, opts),
      record(js, "NAKNOW", "bo", act, opts),
    ]);
    console.log("nak() gaps, no backoff:", gaps(plain), "backoff [2s,4s]:", gaps(stepped));
    for (const all of [plain, stepped]) {
      expect(all.map((d) => d.dc)).toEqual([1, 2, 3, 4]);
      for (const g of gaps(all)) expect(g).toBeLessThan(SLACK_MS);
    }
  });

  // --- consumer settings ---------------------------------------------------------------------

  it("server - max_deliver -1 (or unset) with BackOff is refused (10116); ack_wait becomes backoff[0]", async ({
    expect,
  }) => {
    await jsm.streams.add({ name: "CFG", subjects: ["CFG.>"] });
    const backoff = [1000, 2000].map((ms) => ms * NS);
    const unlimited = await refusal(jsm.consumers.add("CFG", explicit("a", { backoff, max_deliver: -1 })));
    const unset = await refusal(jsm.consumers.add("CFG", explicit("b", { backoff })));
    const equal = await refusal(jsm.consumers.add("CFG", explicit("c", { backoff, max_deliver: 2 })));
    const ok = await jsm.consumers.add(
      "CFG",
      explicit("d", { backoff, max_deliver: 3, ack_wait: 30_000 * NS }),
    );
    const noBackoff = await jsm.consumers.add("CFG", explicit("e", { max_deliver: -1 }));
    console.log("max_deliver vs backoff:", { unlimited, unset, equal });
    console.log("accepted max_deliver 3 with ack_wait 30s:", {
      ack_wait_ms: (ok.config.ack_wait ?? 0) / NS,
      max_deliver: ok.config.max_deliver,
      unset_max_deliver_without_backoff: noBackoff.config.max_deliver,
    });
    for (const r of [unlimited, unset, equal]) {
      expect(r.code).toBe(10116);
      expect(r.text).toBe("max deliver is required to be > length of backoff values");
    }
    expect(ok.config.ack_wait).toBe(1000 * NS);
    expect(noBackoff.config.max_deliver).toBe(-1);
  });

  // --- publish expectations ------------------------------------------------------------------

  it("server - 100 pipelined Expected-Last-Sequence publishes all land; a stale one and all after it get 10071", async ({
    expect,
  }) => {
    await jsm.streams.add({ name: "ELS", subjects: ["ELS.>"] });
    const first = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        settle(js.publish("ELS.x", `${i}`, { expect: { lastSequence: i } })),
      ),
    );
    expect(first.every((r) => r.ok)).toBe(true);
    expect(first.map((r) => (r.ok ? r.ack.seq : 0))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));

    // 20 more in flight, the 5th carries a stale expectation: 1..4 land, 5..20 are refused.
    const second = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        settle(js.publish("ELS.x", "y", { expect: { lastSequence: i === 4 ? 50 : 100 + i } })),
      ),
    );
    const refused = second.filter((r) => !r.ok);
    console.log("pipelined expected-last-sequence:", {
      first_100_ok: first.filter((r) => r.ok).length,
      second_ok: second.filter((r) => r.ok).length,
      refused: refused.length,
      first_refusal: refused[0],
    });
    expect(second.map((r) => r.ok)).toEqual(Array.from({ length: 20 }, (_, i) => i < 4));
    expect(refused[0]).toEqual({ ok: false, code: 10071, status: 400, text: "wrong last sequence: 104" });
    expect((await jsm.streams.info("ELS")).state.messages).toBe(104);

    // Expected-Last-Subject-Sequence pipelines the same way on a single server.
    const subj = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        settle(js.publish("ELS.s", `${i}`, { expect: { lastSubjectSequence: i === 0 ? 0 : 104 + i } })),
      ),
    );
    console.log(
      "pipelined expected-last-subject-sequence (single server):",
      subj.filter((r) => r.ok).length,
      "of 50",
    );
    expect(subj.every((r) => r.ok)).toBe(true);
  });

  it("server - Expected-Last-Msg-Id failures chain: after publish k is refused, k+1 expecting k's id gets 10070", async ({
    expect,
  }) => {
    await jsm.streams.add({ name: "ELM", subjects: ["ELM.>"] });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const k = i + 1;
        const expectation = {
          ...(k > 1 ? { lastMsgID: `m-${k - 1}` } : {}),
          ...(k === 10 ? { lastSequence: 0 } : {}), // publish 10 fails on a stale sequence
        };
        return settle(js.publish("ELM.x", `${k}`, { msgID: `m-${k}`, expect: expectation }));
      }),
    );
    console.log(
      "msg-id chain:",
      results.map((r, i) => `${i + 1}:${r.ok ? "ok" : r.code}`),
      results[10],
    );
    expect(results.map((r) => r.ok)).toEqual(Array.from({ length: 20 }, (_, i) => i < 9));
    expect(results[9]).toMatchObject({ ok: false, code: 10071 });
    for (const r of results.slice(10))
      expect(r).toEqual({ ok: false, code: 10070, status: 400, text: "wrong last msg ID: m-9" });

    // A publish without Nats-Msg-Id makes the last msg id empty.
    await js.publish("ELM.x", "no id", { expect: { lastMsgID: "m-9" } });
    const afterAnonymous = await refusal(
      js.publish("ELM.x", "z", { msgID: "m-z", expect: { lastMsgID: "m-9" } }),
    );
    console.log("after a publish without msg id:", afterAnonymous);
    expect(afterAnonymous).toEqual({ code: 10070, status: 400, text: "wrong last msg ID: " });
  });

  it("server - a repeated Msg-Id gets a duplicate PubAck before any expectation except Expected-Stream", async ({
    expect,
  }) => {
    await jsm.streams.add({ name: "DUP", subjects: ["DUP.>"] });
    await js.publish("DUP.x", "1", { msgID: "d-1" });
    await js.publish("DUP.x", "2", { msgID: "d-2" });
    const staleSeq = await js.publish("DUP.x", "1", { msgID: "d-1", expect: { lastSequence: 0 } });
    const staleId = await js.publish("DUP.x", "1", { msgID: "d-1", expect: { lastMsgID: "nope" } });
    const staleSubj = await js.publish("DUP.x", "1", { msgID: "d-1", expect: { lastSubjectSequence: 99 } });
    const wrongStream = await refusal(
      js.publish("DUP.x", "1", { msgID: "d-1", expect: { streamName: "OTHER" } }),
    );
    const fresh = await refusal(js.publish("DUP.x", "3", { msgID: "d-3", expect: { lastSequence: 0 } }));
    console.log("repeated msg id:", { staleSeq, staleId, staleSubj, wrongStream, fresh });
    for (const ack of [staleSeq, staleId, staleSubj]) expect(ack).toMatchObject({ duplicate: true, seq: 1 });
    expect(wrongStream).toEqual({ code: 10060, status: 400, text: "expected stream does not match" });
    expect(fresh).toEqual({ code: 10071, status: 400, text: "wrong last sequence: 2" });
    expect((await jsm.streams.info("DUP")).state.messages).toBe(2);
  });

  it("server - discard new at max_bytes / max_msgs refuses with 10077; a repeated Msg-Id still gets a duplicate PubAck", async ({
    expect,
  }) => {
    await jsm.streams.add({ name: "DNB", subjects: ["DNB.>"], max_bytes: 400, discard: DiscardPolicy.New });
    await jsm.streams.add({ name: "DNM", subjects: ["DNM.>"], max_msgs: 2, discard: DiscardPolicy.New });
    const payload = "x".repeat(100);
    let stored = 0;
    let full: Awaited<ReturnType<typeof refusal>> | undefined;
    for (let i = 1; i <= 20 && full === undefined; i++) {
      const r = await settle(js.publish("DNB.x", payload, { msgID: `b-${i}` }));
      if (r.ok) stored++;
      else full = { code: r.code, status: r.status, text: r.text };
    }
    const bytes = (await jsm.streams.info("DNB")).state.bytes;
    const dupAtLimit = await js.publish("DNB.x", payload, { msgID: "b-1" });
    const again = await refusal(js.publish("DNB.x", payload, { msgID: "b-new" }));
    await js.publish("DNM.x", "1", { msgID: "n-1" });
    await js.publish("DNM.x", "2", { msgID: "n-2" });
    const msgsFull = await refusal(js.publish("DNM.x", "3", { msgID: "n-3" }));
    const msgsDup = await js.publish("DNM.x", "2", { msgID: "n-2" });
    console.log("discard new:", { stored, bytes, full, dupAtLimit, again, msgsFull, msgsDup });
    expect(stored).toBeGreaterThan(0);
    expect(full).toEqual({ code: 10077, status: 503, text: "maximum bytes exceeded" });
    expect(again).toEqual({ code: 10077, status: 503, text: "maximum bytes exceeded" });
    expect(dupAtLimit).toMatchObject({ duplicate: true, seq: 1 });
    expect(msgsFull).toEqual({ code: 10077, status: 503, text: "maximum messages exceeded" });
    expect(msgsDup).toMatchObject({ duplicate: true, seq: 2 });
  });

  // --- own servers: restarts --------------------------------------------------------------

  it("server - MAX_DELIVERIES advisory comes when delivery max_deliver+1 is due and a pull waits; the message stays", async ({
    expect,
  }) => {
    await withOwnServer(async ({ own, onc, ojs, ojsm }) => {
      // A stream may capture the advisories themselves (only $JS.API.> is refused).
      await ojsm.streams.add({ name: "ADV", subjects: ["$JS.EVENT.ADVISORY.>"] });
      await ojsm.streams.add({ name: "P", subjects: ["p.>"] });
      const md = { ack_wait: 1000 * NS, max_deliver: 2 };
      await ojsm.consumers.add("P", explicit("timeout", { ...md, filter_subject: "p.t" }));
      await ojsm.consumers.add("P", explicit("naked", { ...md, filter_subject: "p.n" }));
      await ojsm.consumers.add("P", explicit("idle", { ...md, max_deliver: 1, filter_subject: "p.i" }));
      const advisories: { at: number; consumer: string; stream_seq: number; deliveries: number }[] = [];
      onc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.P.*", {
        callback: (_e, msg) => {
          advisories.push({
            at: now(),
            ...msg.json<{ consumer: string; stream_seq: number; deliveries: number }>(),
          });
        },
      });
      await onc.flush();
      await ojs.publish("p.t", "t");
      await ojs.publish("p.n", "n");
      await ojs.publish("p.i", "i");
      const adv = (consumer: string) => advisories.filter((a) => a.consumer === consumer);

      // "idle": one delivery by a one-shot fetch, then no pull request for 3 s.
      const idleStart = now();
      const firstFetch: JsMsg[] = [];
      for await (const m of await (await ojs.consumers.get("P", "idle")).fetch({
        max_messages: 1,
        expires: 1000,
      }))
        firstFetch.push(m);

      const [timedOut, naked] = await Promise.all([
        record(ojs, "P", "timeout", () => {}, { timeoutMs: 4_500 }),
        record(ojs, "P", "naked", (m) => m.nak(), { timeoutMs: 4_500 }),
      ]);
      const idleBeforePull = adv("idle").length;
      const pullAt = now();
      const secondFetch: JsMsg[] = [];
      for await (const m of await (await ojs.consumers.get("P", "idle")).fetch({
        max_messages: 1,
        expires: 1500,
      }))
        secondFetch.push(m);
      await sleep(100);

      const t = adv("timeout")[0]!;
      const n = adv("naked")[0]!;
      const i = adv("idle")[0]!;
      const infos = await Promise.all(["timeout", "naked", "idle"].map((c) => ojsm.consumers.info("P", c)));
      const advStream = await ojsm.streams.info("ADV", {
        subjects_filter: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>",
      });
      console.log("max deliveries advisory:", {
        timeout_deliveries: timedOut.map((d) => d.dc),
        timeout_advisory_after_last_delivery_ms: round(t.at - timedOut[1]!.at),
        naked_deliveries: naked.map((d) => d.dc),
        naked_advisory_after_last_delivery_ms: round(n.at - naked[1]!.at),
        idle_waited_ms: round(pullAt - idleStart),
        idle_advisories_before_pull: idleBeforePull,
        idle_advisory_after_pull_ms: round(i.at - pullAt),
        idle_second_fetch: secondFetch.length,
        advisories: advisories.map(({ at: _, ...a }) => a),
        consumer_infos: infos.map((c) => ({
          name: c.name,
          num_ack_pending: c.num_ack_pending,
          num_redelivered: c.num_redelivered,
          num_pending: c.num_pending,
          ack_floor: c.ack_floor.stream_seq,
        })),
        captured_by_stream: advStream.state.subjects,
        p_messages: (await ojsm.streams.info("P")).state.messages,
      });
      expect(timedOut.map((d) => d.dc)).toEqual([1, 2]);
      expect(naked.map((d) => d.dc)).toEqual([1, 2]);
      expect(t).toMatchObject({ stream_seq: 1, deliveries: 2 });
      expect(Math.abs(t.at - timedOut[1]!.at - 1000)).toBeLessThan(SLACK_MS);
      expect(n).toMatchObject({ stream_seq: 2, deliveries: 2 });
      expect(n.at - naked[1]!.at).toBeLessThan(SLACK_MS);
      expect(firstFetch).toHaveLength(1);
      expect(idleBeforePull).toBe(0);
      expect(secondFetch).toHaveLength(0);
      expect(i).toMatchObject({ stream_seq: 3, deliveries: 1 });
      expect(i.at - pullAt).toBeLessThan(SLACK_MS);
      expect(advisories).toHaveLength(3);
      for (const c of infos) expect(c.num_ack_pending).toBe(0);
      expect(Object.values(advStream.state.subjects ?? {}).reduce((a, b) => a + b, 0)).toBe(3);
      expect((await ojsm.streams.info("P")).state.messages).toBe(3);

      // After a restart the consumer store still lists the messages as pending: the next pull
      // announces each one again and still delivers nothing.
      await own.restart();
      await waitFor(
        () =>
          ojsm.streams.info("P").then(
            () => true,
            () => undefined,
          ),
        { what: "reconnected" },
      );
      const before = advisories.length;
      const afterRestart = await Promise.all(
        ["timeout", "naked", "idle"].map(async (c) => {
          const got: JsMsg[] = [];
          for await (const m of await (await ojs.consumers.get("P", c)).fetch({
            max_messages: 1,
            expires: 3000,
          }))
            got.push(m);
          return got.length;
        }),
      );
      await sleep(200);
      const again = advisories.slice(before).map(({ at: _, ...a }) => a);
      console.log("after restart:", { delivered: afterRestart, advisories: again });
      expect(afterRestart).toEqual([0, 0, 0]);
      expect(again.map((a) => a.consumer).sort()).toEqual(["idle", "naked", "timeout"]);
    });
  });

  it("server - Expected-Last-Msg-Id after a restart: kept inside the duplicate window, lost past it", async ({
    expect,
  }) => {
    await withOwnServer(async ({ own, ojs, ojsm }) => {
      await ojsm.streams.add({ name: "LA", subjects: ["la"] }); // default window: 2 min
      await ojsm.streams.add({ name: "LW", subjects: ["lw"], duplicate_window: 1000 * NS });
      await ojs.publish("la", "1", { msgID: "a-1" });
      await ojs.publish("lw", "1", { msgID: "w-1" });
      await sleep(1300);
      // Without a restart the last msg id outlives the window (it is a field, not the dedupe map).
      const pastWindow = await ojs.publish("lw", "2", { msgID: "w-2", expect: { lastMsgID: "w-1" } });
      await own.restart();
      await waitFor(
        () =>
          ojsm.streams.info("LA").then(
            () => true,
            () => undefined,
          ),
        { what: "reconnected" },
      );
      await sleep(1300);
      const inside = await ojs.publish("la", "2", { msgID: "a-2", expect: { lastMsgID: "a-1" } });
      const lost = await refusal(ojs.publish("lw", "3", { msgID: "w-3", expect: { lastMsgID: "w-2" } }));
      console.log("expected-last-msg-id across a restart:", { pastWindow, inside, lost });
      expect(pastWindow.seq).toBe(2);
      expect(inside).toMatchObject({ seq: 2, duplicate: false });
      expect(lost).toEqual({ code: 10070, status: 400, text: "wrong last msg ID: " });
    });
  });

  it("server - SIGKILL: a consumer's state file holds the acks written at once after a quiet spell, not those of the next 100 ms; stored messages all survive", async ({
    expect,
  }) => {
    await withOwnServer(async ({ own, ojs, ojsm }) => {
      await ojsm.streams.add({ name: "SK", subjects: ["sk.>"] });
      await ojsm.consumers.add("SK", explicit("c", { ack_wait: 30_000 * NS }));
      for (let i = 1; i <= 6; i++) await ojs.publish(`sk.${i}`, String(i), { msgID: `k-${i}` });
      const c = await ojs.consumers.get("SK", "c");
      const got: JsMsg[] = [];
      for await (const m of await c.fetch({ max_messages: 6, expires: 2000 })) {
        got.push(m);
        if (got.length === 6) break;
      }
      await sleep(400);
      await got[0]!.ackAck(); // the file is 400 ms old: written at once
      await sleep(20);
      await got[1]!.ackAck(); // waits for the write 100 ms after the last one
      const acked = await Promise.all([7, 8, 9, 10].map((i) => ojs.publish(`sk.${i}`, String(i))));
      await own.kill("SIGKILL");
      await own.restart();
      const ci = await waitFor(() => ojsm.consumers.info("SK", "c").catch(() => undefined), {
        what: "the durable after the restart",
      });
      const si = await ojsm.streams.info("SK");
      console.log("after SIGKILL:", {
        ack_floor: ci.ack_floor,
        delivered: ci.delivered,
        messages: si.state.messages,
      });
      expect(acked.map((a) => a.seq)).toEqual([7, 8, 9, 10]);
      expect(si.state.messages).toBe(10);
      expect(ci.ack_floor).toMatchObject({ consumer_seq: 1, stream_seq: 1 });
      expect(ci.delivered).toMatchObject({ consumer_seq: 6, stream_seq: 6 });
      expect(ci.num_ack_pending).toBe(5);
    });
  });

  it("server - R3 cluster: pipelined Expected-Last-Sequence all land; Expected-Last-Subject-Sequence is prechecked (in flight and before dedupe)", async ({
    expect,
  }) => {
    const cluster = await startNatsCluster({ size: 3 });
    const cnc = await connect({ servers: cluster.urls });
    const cjs = jetstream(cnc);
    const cjsm = await jetstreamManager(cnc);
    try {
      await cjsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 });
      await waitFor(
        () =>
          cjs.publish("r3.warm", "0").then(
            () => true,
            () => undefined,
          ),
        {
          what: "R3 leader",
          timeoutMs: 15_000,
        },
      );
      const start = (await cjsm.streams.info("R3")).state.last_seq;
      const started = now();
      const seqs = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          settle(cjs.publish("r3.x", `${i}`, { expect: { lastSequence: start + i } })),
        ),
      );
      const tookMs = round(now() - started);
      const dup = await cjs.publish("r3.x", "0", { msgID: "r-1" });
      const dupStale = await cjs.publish("r3.x", "0", { msgID: "r-1", expect: { lastSequence: 0 } });
      // The leader prechecks a subject sequence > 0 before proposing, so before dedupe runs.
      const dupStaleSubject = await settle(
        cjs.publish("r3.x", "0", { msgID: "r-1", expect: { lastSubjectSequence: 1 } }),
      );
      const base = (await cjsm.streams.info("R3")).state.last_seq;
      const subj = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          settle(cjs.publish("r3.s", `${i}`, { expect: { lastSubjectSequence: i === 0 ? 0 : base + i } })),
        ),
      );
      const subjRefused = subj.filter((r) => !r.ok);
      console.log("R3 pipelined:", {
        last_sequence_ok: seqs.filter((r) => r.ok).length,
        took_ms: tookMs,
        dup_with_stale_sequence: dupStale,
        dup_with_stale_subject_sequence: dupStaleSubject,
        subject_sequence_ok: subj.length - subjRefused.length,
        subject_sequence_refused: subjRefused.length,
        first_subject_refusal: subjRefused[0],
      });
      expect(seqs.every((r) => r.ok)).toBe(true);
      expect(seqs.map((r) => (r.ok ? r.ack.seq : 0))).toEqual(
        Array.from({ length: 100 }, (_, i) => start + i + 1),
      );
      expect(dupStale).toMatchObject({ duplicate: true, seq: dup.seq });
      expect(dupStaleSubject).toEqual({
        ok: false,
        code: 10071,
        status: 400,
        text: `wrong last sequence: ${dup.seq}`,
      });
      expect(subj[0]!.ok).toBe(true);
      expect(subjRefused.length).toBeGreaterThan(0);
      expect(subjRefused[0]).toMatchObject({ code: 10071 });
    } finally {
      await cnc.close().catch(() => {});
      await cluster.stop();
    }
  });
});
