import { startNats, startNatsCluster, stopAllProcesses } from "@jetmesh/testkit";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installVirtualTime } from "../virtual-time.ts";
import { createSimNats } from "./index.ts";

// One list of scenarios, run against a real nats-server 2.9.10 (R1 streams), a real 3-node
// 2.9.10 cluster (R3 streams, as production runs; see TOPOLOGIES), both in real time, and
// against the simulator (virtual time), once per topology. Facts must be equal; timings (ms since a scenario's reference
// point) must agree within TOLERANCE_MS. The real server's timers fire within ~10 ms of their
// deadlines (SERVER-BEHAVIOUR.md); the simulator models the same deadlines exactly, so the
// tolerance only absorbs the real machine's scheduling jitter.
const TOLERANCE_MS = 150;
const NS = 1_000_000;

interface Ctx {
  /** Replicas of every stream the scenario makes (1: one server; 3: the cluster, as in production). */
  replicas: number;
  connect(name: string): Promise<NatsConnection>;
  sleep(ms: number): Promise<void>;
  /**
   * Restarts the server on the same store (real: kill and start, every node of a cluster at
   * once; simulated: `restart()`).
   */
  restart(): Promise<void>;
  /**
   * Kills the server with SIGKILL and starts it again on the same store (real: every node of
   * a cluster at once; simulated: `crash()`).
   */
  crash(): Promise<void>;
}
interface Observation {
  facts: unknown;
  timings: Record<string, number[]>;
}
type Scenario = (ctx: Ctx) => Promise<Observation>;

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const errOf = (e: unknown) => {
  const x = e as { code?: number; status?: number; message?: string };
  return { name: (e as Error).name, status: x.status, code: x.code, message: x.message };
};
const _withHeaders = (pairs: Record<string, string>) => {
  const h = headers();
  for (const [k, v] of Object.entries(pairs)) h.set(k, v);
  return h;
};
async function setup(ctx: Ctx, stream: Record<string, unknown>) {
  const nc = await ctx.connect("scenario");
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ ...stream, num_replicas: ctx.replicas } as never);
  return { nc, jsm, js: jetstream(nc) };
}
function consumerNumbers(ci: Awaited<ReturnType<JetStreamManager["consumers"]["info"]>>) {
  return {
    delivered: { consumer_seq: ci.delivered.consumer_seq, stream_seq: ci.delivered.stream_seq },
    ack_floor: { consumer_seq: ci.ack_floor.consumer_seq, stream_seq: ci.ack_floor.stream_seq },
    num_ack_pending: ci.num_ack_pending,
    num_redelivered: ci.num_redelivered,
    num_pending: ci.num_pending,
  };
}
/**
 * After a restart: publishes `msgID` again until the server answers (nats.js redials on its own
 * after its reconnect wait, 2 s; a publish sent before it is back fails as it would on the
 * wire), bounded; resolves with the PubAck, a duplicate when the dedupe state survived.
 */
async function republishAfterRestart(ctx: Ctx, js: JetStreamClient, subject: string, msgID: string) {
  let ack: unknown;
  for (let i = 0; i < 40 && ack === undefined; i++) {
    try {
      ack = await js.publish(subject, "again", { msgID, timeout: 500 });
    } catch {
      await ctx.sleep(250);
    }
  }
  return ack;
}

/**
 * After a restart: a JetStream request tried again, bounded (40 tries, 250 ms apart). On a
 * loaded cluster the stream's and the durable's groups elect their leaders one after the
 * other: a lookup or an info may time out, or answer "JetStream system temporarily
 * unavailable", for a moment after a publish went through.
 */
async function afterRestart<T>(ctx: Ctx, request: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await request();
    } catch (e) {
      if (i === 39) throw e;
      await ctx.sleep(250);
    }
  }
}

/** Collects deliveries from a consume() until `until` returns true or `maxMs` passes. */
async function collect(
  ctx: Ctx,
  nc: NatsConnection,
  stream: string,
  durable: string,
  maxMs: number,
  onMsg: (m: JsMsg, t: number, seen: { seq: number; dc: number; t: number }[]) => void,
) {
  const js = jetstream(nc);
  const c = await js.consumers.get(stream, durable);
  const t0 = Date.now();
  const seen: { seq: number; dc: number; t: number }[] = [];
  const msgs = await c.consume({ max_messages: 10, expires: 5000 });
  const done = (async () => {
    for await (const m of msgs) {
      const t = Date.now() - t0;
      seen.push({ seq: m.seq, dc: m.info.deliveryCount, t });
      onMsg(m, t, seen);
    }
  })();
  await ctx.sleep(maxMs);
  await msgs.close();
  await done;
  return seen;
}

const scenarios: Record<string, Scenario> = {
  "restart - stored messages and the durable's state survive; un-acked deliveries come back": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "RESTART", subjects: ["restart.>"] });
    await jsm.consumers.add("RESTART", {
      durable_name: "d",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1000 * NS,
    } as never);
    for (let i = 1; i <= 4; i++) await js.publish(`restart.${i}`, String(i), { msgID: `r-${i}` });
    const c = await js.consumers.get("RESTART", "d");
    const first = await c.fetch({ max_messages: 2, expires: 1000 });
    const before: number[] = [];
    for await (const m of first) {
      before.push(m.seq);
      if (m.seq === 1) await m.ackAck();
    }
    await ctx.restart();
    const republished = await republishAfterRestart(ctx, js, "restart.1", "r-1");
    const seen: { seq: number; dc: number }[] = [];
    const c2 = await afterRestart(ctx, () => js.consumers.get("RESTART", "d"));
    const msgs = await c2.consume({ max_messages: 10, expires: 2000 });
    // One server: its file decides (SERVER-BEHAVIOUR.md §8), compared exactly. A cluster
    // stopped whole, even cleanly, may lose the ack of message 1, confirmed (ackAck) just before
    // the stop: measured once in five loaded runs, as a SIGKILL loses the acks of the last
    // 100 ms. There the scenario reads on to message 4, waits longer for the first delivery
    // (once none came for 6 s on a loaded machine), and compares: 1 comes back only as a
    // redelivery, 2 comes back, 3 and 4 arrive, nothing else differs. It reads on until both 2
    // and 4 came: a loaded cluster once delivered 3 and 4 first and 2 after its ack wait, and a
    // scenario that stopped at 4 missed it (ack pending 1 against the simulator's 0).
    const exact = ctx.replicas === 1;
    const enough = () =>
      exact ? seen.length >= 3 : seen.some((x) => x.seq === 4) && seen.some((x) => x.seq === 2);
    const done = (async () => {
      for await (const m of msgs) {
        seen.push({ seq: m.seq, dc: m.info.deliveryCount });
        m.ack();
        if (enough()) break;
      }
    })();
    for (let i = 0; i < (exact ? 60 : 200) && !enough(); i++) await ctx.sleep(100);
    await msgs.close();
    await done;
    await ctx.sleep(200);
    const si = await afterRestart(ctx, () => jsm.streams.info("RESTART"));
    const ci = await afterRestart(ctx, () => jsm.consumers.info("RESTART", "d"));
    await nc.close();
    seen.sort((a, b) => a.seq - b.seq);
    return {
      facts: {
        before,
        republished,
        seen: exact ? seen : seen.filter((x) => x.seq !== 1),
        ...(exact ? {} : { oneOnlyRedelivered: seen.filter((x) => x.seq === 1).every((x) => x.dc === 2) }),
        messages: si.state.messages,
        last_seq: si.state.last_seq,
        consumer: exact ? consumerNumbers(ci) : { pending: ci.num_pending, ackPending: ci.num_ack_pending },
      },
      timings: {},
    };
  },
  "crash - SIGKILL loses the acks of the last 100 ms: they are delivered again; an older ack stays": async (
    ctx,
  ) => {
    const { nc, js, jsm } = await setup(ctx, { name: "CRASH", subjects: ["crash.>"] });
    await jsm.consumers.add("CRASH", {
      durable_name: "d",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1000 * NS,
    } as never);
    for (let i = 1; i <= 6; i++) await js.publish(`crash.${i}`, String(i), { msgID: `c-${i}` });
    const c = await js.consumers.get("CRASH", "d");
    const delivered: JsMsg[] = [];
    for await (const m of await c.fetch({ max_messages: 6, expires: 2000 })) {
      delivered.push(m);
      if (delivered.length === 6) break;
    }
    // The consumer's state file is written at once after a quiet spell, then at most every
    // 100 ms (SERVER-BEHAVIOUR.md §8). Quiet, so the ack of 1 is written at once; the acks of
    // 2 and 3 wait for the write 100 ms after it, and the kill comes before that.
    await ctx.sleep(400);
    await (delivered[0] as JsMsg).ackAck();
    await ctx.sleep(20);
    await (delivered[1] as JsMsg).ackAck();
    await (delivered[2] as JsMsg).ackAck();
    await ctx.crash();
    const republished = await republishAfterRestart(ctx, js, "crash.1", "c-1");
    const c2 = await afterRestart(ctx, () => js.consumers.get("CRASH", "d"));
    const seen: { seq: number; dc: number }[] = [];
    const msgs = await c2.consume({ max_messages: 10, expires: 2000 });
    const done = (async () => {
      for await (const m of msgs) {
        seen.push({ seq: m.seq, dc: m.info.deliveryCount });
        m.ack();
        if (m.seq === 6) break;
      }
    })();
    // Redelivered once the restored deliveries' ack wait is over (the first check runs 0.5 to
    // 1.5 s after the start; the file keeps their times in whole seconds), in stream order,
    // all in one check: a lost ack of 2 or 3 comes back before 6. A cluster killed whole must
    // first elect the stream's and the consumer's leaders: in a loaded CI run nothing came
    // back within 8 s (ack pending 5, nothing seen), so there it waits up to 20 s, as the
    // restart scenario does.
    const waits = ctx.replicas === 1 ? 80 : 200;
    for (let i = 0; i < waits && !seen.some((x) => x.seq === 6); i++) await ctx.sleep(100);
    await msgs.close();
    await done;
    await ctx.sleep(300);
    const ci = await afterRestart(ctx, () => jsm.consumers.info("CRASH", "d"));
    const si = await afterRestart(ctx, () => jsm.streams.info("CRASH"));
    await nc.close();
    seen.sort((a, b) => a.seq - b.seq);
    const lost = seen.filter((x) => x.seq === 2 || x.seq === 3);
    // One server: its file decides, exactly as measured. A cluster comes back with the file
    // of the node that wins the election and what raft replays: of the acks of the last
    // 100 ms, none, some or all are lost (measured: 2 and 3, or only 3). Compared there: the
    // older ack stays, the unacked come back, and any ack lost is one of the last 100 ms.
    const exact = ctx.replicas === 1;
    return {
      facts: {
        republished,
        olderAckKept: !seen.some((x) => x.seq === 1),
        unacked: seen.filter((x) => x.seq >= 4),
        lostAcks: exact ? lost : lost.every((x) => x.dc === 2),
        messages: si.state.messages,
        consumer: exact ? consumerNumbers(ci) : ci.num_ack_pending,
      },
      timings: {},
    };
  },
  "publish - dedupe within the window, stream info": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, {
      name: "DEDUP",
      subjects: ["dedup.>"],
      duplicate_window: 60_000 * NS,
    });
    const acks = [];
    for (const [subj, id] of [
      ["dedup.a", "m-1"],
      ["dedup.b", "m-2"],
      ["dedup.a", "m-1"],
      ["dedup.c", undefined],
    ] as const)
      acks.push(await js.publish(subj, "x", id ? { msgID: id } : {}));
    const si = await jsm.streams.info("DEDUP");
    await nc.close();
    const { first_ts: _a, last_ts: _b, ...state } = si.state;
    return { facts: { acks, config: si.config, state }, timings: {} };
  },
  "publish - expectations refused in the server's order": async (ctx) => {
    const { nc, js } = await setup(ctx, { name: "EXPECT", subjects: ["expect.>"] });
    const out: unknown[] = [];
    const pub = async (subj: string, o: Record<string, unknown>) => {
      try {
        out.push(await js.publish(subj, "x", o));
      } catch (e) {
        out.push(errOf(e));
      }
    };
    await pub("expect.a", { msgID: "m-1", expect: { lastSequence: 0 } });
    await pub("expect.a", { msgID: "m-2", expect: { lastSequence: 1, lastMsgID: "m-1" } });
    await pub("expect.a", { msgID: "m-3", expect: { lastSequence: 1 } }); // stale seq
    await pub("expect.a", { msgID: "m-3", expect: { lastMsgID: "m-9" } }); // wrong id
    await pub("expect.a", { msgID: "m-1", expect: { lastSequence: 0 } }); // dup wins over stale seq
    await pub("expect.a", { msgID: "m-2", expect: { lastMsgID: "zz" } }); // dup wins over stale id
    await pub("expect.b", { msgID: "m-4", expect: { lastSubjectSequence: 0 } });
    await pub("expect.b", { msgID: "m-5", expect: { lastSubjectSequence: 1 } }); // wrong (b's last is 3)
    await pub("expect.a", { msgID: "m-1", expect: { streamName: "OTHER" } }); // wrong stream beats dup
    await pub("expect.c", {}); // no msg id
    await pub("expect.a", { msgID: "m-6", expect: { lastMsgID: "m-4" } }); // last stored had no id
    await nc.close();
    return { facts: out, timings: {} };
  },
  "publish - discard new at max_msgs and max_bytes, duplicates still acknowledged": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, {
      name: "FULLN",
      subjects: ["fulln.>"],
      max_msgs: 2,
      discard: "new",
    });
    await jsm.streams.add({
      name: "FULLB",
      subjects: ["fullb.>"],
      max_bytes: 400,
      discard: "new",
      num_replicas: ctx.replicas,
    } as never);
    const out: unknown[] = [];
    const pub = async (subj: string, id: string, body = "x") => {
      try {
        out.push(await js.publish(subj, body, { msgID: id }));
      } catch (e) {
        out.push(errOf(e));
      }
    };
    for (const id of ["n-1", "n-2", "n-3", "n-2"]) await pub("fulln.x", id);
    const body = "y".repeat(100);
    for (const id of ["b-1", "b-2", "b-3", "b-1"]) await pub("fullb.x", id, body);
    const b = (await jsm.streams.info("FULLB")).state;
    await nc.close();
    return { facts: { out, bytes: b.bytes, messages: b.messages }, timings: {} };
  },
  "pull - fetch, ack, double ack, consumer numbers, empty fetch": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "PULL", subjects: ["pull.>"] });
    for (let i = 0; i < 5; i++) await js.publish(`pull.${i}`, `m${i}`);
    const ci0 = await jsm.consumers.add("PULL", {
      durable_name: "p",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 10_000 * NS,
    });
    const c = await js.consumers.get("PULL", "p");
    const got: number[] = [];
    const batch = await c.fetch({ max_messages: 3, expires: 2000 });
    const ms: JsMsg[] = [];
    for await (const m of batch) {
      got.push(m.seq);
      ms.push(m);
    }
    const ackAck = await (ms[1] as JsMsg).ackAck();
    const info1 = consumerNumbers(await jsm.consumers.info("PULL", "p"));
    (ms[0] as JsMsg).ack();
    await (ms[2] as JsMsg).ackAck();
    const info2 = consumerNumbers(await jsm.consumers.info("PULL", "p"));
    const rest = await c.fetch({ max_messages: 10, expires: 1000 });
    const t0 = Date.now();
    for await (const m of rest) {
      got.push(m.seq);
      m.ack();
    }
    const restMs = Date.now() - t0;
    const nothing = await c.next({ expires: 1000 });
    const info3 = consumerNumbers(await jsm.consumers.info("PULL", "p"));
    await nc.close();
    return {
      facts: { got, ackAck, info1, info2, info3, nothing, config: ci0.config },
      timings: { restMs: [restMs] },
    };
  },
  "redelivery - ack_wait, max_deliver, MAX_DELIVERIES advisory": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "REDEL", subjects: ["redel.>"] });
    await jsm.consumers.add("REDEL", {
      durable_name: "r",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1000 * NS,
      max_deliver: 2,
    });
    const adv: { t: number; body: unknown }[] = [];
    const t0 = Date.now();
    nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.REDEL.r", {
      callback: (_e, m) => {
        const b = m.json<{ stream_seq: number; deliveries: number }>();
        adv.push({ t: Date.now() - t0, body: { stream_seq: b.stream_seq, deliveries: b.deliveries } });
      },
    });
    await js.publish("redel.a", "x");
    const seen = await collect(ctx, nc, "REDEL", "r", 2600, () => {});
    const info = consumerNumbers(await jsm.consumers.info("REDEL", "r"));
    const st = (await jsm.streams.info("REDEL")).state.messages;
    await nc.close();
    return {
      facts: { seen: seen.map((s) => [s.seq, s.dc]), advisories: adv.map((a) => a.body), info, messages: st },
      timings: {
        gaps: seen.slice(1).map((s, i) => s.t - (seen[i] as { t: number }).t),
        advisoryAfterLast: adv.map((a) => a.t - (seen[seen.length - 1]?.t ?? 0)),
      },
    };
  },
  "redelivery - nak with delay, plain nak, then ack": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "NAK", subjects: ["nak.>"] });
    await jsm.consumers.add("NAK", {
      durable_name: "n",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 3000 * NS,
    });
    await js.publish("nak.a", "x");
    const seen = await collect(ctx, nc, "NAK", "n", 1500, (m, _t, s) => {
      if (s.length === 1) m.nak(700);
      else if (s.length === 2) m.nak();
      else m.ack();
    });
    const info = consumerNumbers(await jsm.consumers.info("NAK", "n"));
    await nc.close();
    return {
      facts: { seen: seen.map((s) => [s.seq, s.dc]), info },
      timings: { gaps: seen.slice(1).map((s, i) => s.t - (seen[i] as { t: number }).t) },
    };
  },
  "redelivery - BackOff schedule and the max_deliver check": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "BOFF", subjects: ["boff.>"] });
    let refused: unknown;
    try {
      await jsm.consumers.add("BOFF", {
        durable_name: "bad",
        ack_policy: AckPolicy.Explicit,
        backoff: [500 * NS, 1000 * NS],
        max_deliver: 2,
      });
    } catch (e) {
      refused = errOf(e);
    }
    const ci = await jsm.consumers.add("BOFF", {
      durable_name: "b",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 30_000 * NS,
      backoff: [500 * NS, 1000 * NS],
      max_deliver: 3,
    });
    await js.publish("boff.a", "x");
    const seen = await collect(ctx, nc, "BOFF", "b", 1900, () => {});
    await nc.close();
    return {
      facts: {
        refused,
        ackWait: ci.config.ack_wait,
        maxDeliver: ci.config.max_deliver,
        seen: seen.map((s) => [s.seq, s.dc]),
      },
      timings: { gaps: seen.slice(1).map((s, i) => s.t - (seen[i] as { t: number }).t) },
    };
  },
  "redelivery - +WPI extends, +TERM stops, +TERM with a reason is ignored by 2.9": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "WPI", subjects: ["wpi.>"] });
    await jsm.consumers.add("WPI", {
      durable_name: "w",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1000 * NS,
    });
    await js.publish("wpi.a", "x");
    await js.publish("wpi.b", "y");
    await js.publish("wpi.c", "z");
    const seen = await collect(ctx, nc, "WPI", "w", 2400, (m, _t, s) => {
      if (m.seq === 1 && m.info.deliveryCount === 1) setTimeout(() => m.working(), 600);
      else if (m.seq === 1) m.ack();
      if (m.seq === 2) m.term();
      if (m.seq === 3 && m.info.deliveryCount === 1) m.term("bad input");
      else if (m.seq === 3) m.ack();
      void s;
    });
    const info = consumerNumbers(await jsm.consumers.info("WPI", "w"));
    await nc.close();
    const at = (seq: number, dc: number) => seen.find((s) => s.seq === seq && s.dc === dc)?.t ?? -1;
    return {
      facts: { seen: seen.map((s) => [s.seq, s.dc]), info },
      timings: { redeliveredAt: [at(1, 2), at(3, 2)] },
    };
  },
  "kv - put, get, overwrite with history 1, create, update, delete, keys": async (ctx) => {
    const nc = await ctx.connect("kv");
    const kv = await new Kvm(nc).create("CONF", { history: 1, replicas: ctx.replicas });
    const out: unknown[] = [];
    out.push(await kv.put("a.one", "1"));
    out.push(await kv.put("a.one", "2"));
    out.push(await kv.put("b", "3"));
    const e = await kv.get("a.one");
    out.push([e?.value && new TextDecoder().decode(e.value), e?.revision, e?.operation]);
    try {
      await kv.create("b", "x");
    } catch (err) {
      out.push(errOf(err));
    }
    out.push(await kv.update("b", "4", 3));
    try {
      await kv.update("b", "5", 3);
    } catch (err) {
      out.push(errOf(err));
    }
    await kv.delete("a.one");
    out.push((await kv.get("a.one"))?.operation);
    out.push(await kv.get("missing"));
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info("KV_CONF");
    await nc.close();
    const { first_ts: _a, last_ts: _b, ...state } = si.state;
    return { facts: { out, keys: keys.sort(), config: si.config, state }, timings: {} };
  },
  "stream - message delete and purge where allowed": async (ctx) => {
    const { nc, js, jsm } = await setup(ctx, { name: "DEL", subjects: ["del.>"], deny_purge: true });
    await jsm.streams.add({
      name: "NODEL",
      subjects: ["nodel.>"],
      deny_delete: true,
      num_replicas: ctx.replicas,
    } as never);
    for (let i = 0; i < 4; i++) await js.publish(`del.${i % 2}`, "x");
    for (let i = 0; i < 3; i++) await js.publish("nodel.a", "x");
    const out: unknown[] = [];
    const tryIt = async (f: () => Promise<unknown>) => {
      try {
        out.push(await f());
      } catch (e) {
        out.push(errOf(e));
      }
    };
    await tryIt(() => jsm.streams.deleteMessage("DEL", 2));
    await tryIt(() => jsm.streams.deleteMessage("DEL", 1));
    await tryIt(() => jsm.streams.deleteMessage("NODEL", 1));
    await tryIt(() => jsm.streams.purge("DEL"));
    await tryIt(async () => (await jsm.streams.purge("NODEL")).purged);
    const d = (await jsm.streams.info("DEL")).state;
    const n = (await jsm.streams.info("NODEL")).state;
    await tryIt(async () => (await jsm.streams.getMessage("DEL", { seq: 3 }))?.subject);
    await tryIt(async () => (await jsm.streams.getMessage("DEL", { seq: 2 })) ?? "none");
    await tryIt(async () => (await jsm.streams.getMessage("DEL", { last_by_subj: "del.0" }))?.seq);
    const names: string[] = [];
    for await (const s of jsm.streams.names()) names.push(s);
    await nc.close();
    const strip = ({ first_ts: _a, last_ts: _b, ...s }: typeof d) => s;
    return {
      facts: {
        out,
        del: strip(d),
        nodel: strip(n),
        names: names.filter((x) => x === "DEL" || x === "NODEL").sort(),
      },
      timings: {},
    };
  },
  "ordered consumer - reads a stream from the start": async (ctx) => {
    const { nc, js } = await setup(ctx, { name: "ORD", subjects: ["ord.>"] });
    for (let i = 0; i < 5; i++) await js.publish(`ord.${i}`, `m${i}`);
    const c = await js.consumers.get("ORD", { deliver_policy: DeliverPolicy.All });
    const msgs = await c.consume({ max_messages: 100 });
    const got: [number, string, number][] = [];
    for await (const m of msgs) {
      got.push([m.seq, m.subject, m.info.pending]);
      if (m.info.pending === 0) break;
    }
    await nc.close();
    return { facts: got, timings: {} };
  },
};

const names = Object.keys(scenarios);
type Result = Observation | { failed: string };

/**
 * Where the suite runs: one nats-server with R1 streams, and a 3-node cluster with R3 streams
 * and consumers, as production runs. The simulator has no cluster: it runs every scenario
 * once per topology, with the same stream configs (so `num_replicas` is compared too).
 */
const TOPOLOGIES = {
  single: { label: "one nats-server 2.9.10, R1", replicas: 1 },
  cluster: { label: "a 3-node nats-server 2.9.10 cluster, R3", replicas: 3 },
} as const;
type Topology = keyof typeof TOPOLOGIES;
const real: Record<Topology, Record<string, Result>> = { single: {}, cluster: {} };
const sim: Record<Topology, Record<string, Result>> = { single: {}, cluster: {} };

async function runAll(label: string, ctx: Ctx, into: Record<string, Result>) {
  for (const name of names) {
    const t0 = performance.now();
    try {
      into[name] = await (scenarios[name] as Scenario)(ctx);
    } catch (e) {
      into[name] = { failed: String((e as Error).stack ?? e) };
    }
    if (process.env.SIM_DEBUG) console.log(label, name, Math.round(performance.now() - t0));
  }
}

async function runReal() {
  const server = await startNats();
  await runAll(
    "real single",
    {
      replicas: TOPOLOGIES.single.replicas,
      connect: (name) => connect({ servers: server.url, name }),
      sleep: sleepReal,
      restart: () => server.restart(),
      crash: async () => {
        await server.kill("SIGKILL");
        await server.restart();
      },
    },
    real.single,
  );
  await server.stop();

  const cluster = await startNatsCluster({ size: 3 });
  await runAll(
    "real cluster",
    {
      replicas: TOPOLOGIES.cluster.replicas,
      connect: (name) => connect({ servers: cluster.urls, name }),
      sleep: sleepReal,
      // Every node at once, each stopped as the single server is (SIGTERM, then started).
      restart: async () => {
        await Promise.all(cluster.nodes.map((n) => n.restart()));
        await cluster.waitForJetStream();
      },
      crash: async () => {
        await Promise.all(cluster.nodes.map((n) => n.kill("SIGKILL")));
        await Promise.all(cluster.nodes.map((n) => n.restart()));
        await cluster.waitForJetStream();
      },
    },
    real.cluster,
  );
  await cluster.stop();
}

async function runSim() {
  const vt = installVirtualTime();
  let s = 0x9e3779b9;
  const random = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  try {
    for (const topology of Object.keys(TOPOLOGIES) as Topology[]) {
      for (const name of names) {
        const world = createSimNats({ random });
        const into = sim[topology];
        let done = false;
        const _run = (scenarios[name] as Scenario)({
          replicas: TOPOLOGIES[topology].replicas,
          connect: (n) => world.connect({ name: n }),
          sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
          restart: () => world.restart(),
          crash: async () => {
            await world.crash();
          },
        })
          .then((o) => (into[name] = o))
          .catch((e) => (into[name] = { failed: String((e as Error).stack ?? e) }))
          .finally(() => {
            done = true;
          });
        // Drive virtual time in 1 ms steps while the scenario runs (bounded: 20 virtual s).
        for (let i = 0; i < 20_000 && !done; i++) await vt.advance(1);
        if (!done) into[name] = { failed: "did not finish within 20 virtual seconds" };
        world.close();
      }
    }
  } finally {
    vt.uninstall();
  }
}

beforeAll(async () => {
  await runReal();
  await runSim();
  if (process.env.SIM_DEBUG) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(process.env.SIM_DEBUG, JSON.stringify({ real, sim }, null, 1));
  }
}, 240_000);

afterAll(async () => {
  await stopAllProcesses();
});

for (const topology of Object.keys(TOPOLOGIES) as Topology[]) {
  describe(`sim nats - conformance with ${TOPOLOGIES[topology].label}`, () => {
    for (const name of names) {
      it(`sim nats - ${topology} - ${name}`, () => {
        const r = real[topology][name] as Observation;
        const m = sim[topology][name] as Observation;
        expect("failed" in r ? r.failed : undefined, "real server run failed").toBeUndefined();
        expect(m).toEqual(expect.objectContaining({ facts: r.facts }));
        for (const [k, rv] of Object.entries(r.timings)) {
          const mv = m.timings[k] ?? [];
          expect(mv.length, `${k}: ${JSON.stringify(mv)} vs real ${JSON.stringify(rv)}`).toBe(rv.length);
          rv.forEach((v, i) => {
            expect(
              Math.abs((mv[i] as number) - v),
              `${k}[${i}]: sim ${mv[i]} vs real ${v}`,
            ).toBeLessThanOrEqual(TOLERANCE_MS);
          });
        }
      });
    }
  });
}
