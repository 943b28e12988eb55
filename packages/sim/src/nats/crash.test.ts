import { AckPolicy, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { expect, it } from "vitest";
import { installVirtualTime } from "../virtual-time.ts";
import { type CrashOutcome, createSimNats, type SimNats } from "./index.ts";

// A broker SIGKILL (`SimNats.crash`) against a clean restart, on virtual time so the 100 ms
// write window of the consumer's state file is exact. The real server's figures are in
// packages/stage/SERVER-BEHAVIOUR.md §8; conformance.test.ts compares one case with it.

const NS = 1_000_000;

/** Runs `body` against a fresh simulator, driving virtual time in 1 ms steps (bounded). */
async function onVirtualTime<T>(body: (sim: SimNats, sleep: (ms: number) => Promise<void>) => Promise<T>) {
  const vt = installVirtualTime();
  let s = 5;
  const sim = createSimNats({
    random: () => {
      s = (s * 16807) % 2147483647;
      return (s - 1) / 2147483646;
    },
  });
  try {
    let out: { ok: T } | { err: unknown } | undefined;
    void body(sim, (ms) => new Promise((r) => setTimeout(r, ms))).then(
      (ok) => (out = { ok }),
      (err: unknown) => (out = { err }),
    );
    for (let i = 0; i < 20_000 && out === undefined; i++) await vt.advance(1);
    if (out === undefined) throw new Error("did not finish within 20 virtual seconds");
    if ("err" in out) throw out.err;
    return out.ok;
  } finally {
    sim.close();
    vt.uninstall();
  }
}

/** Six messages on CRASH, all fetched by durable d (ack wait 1 s), then a 400 ms quiet spell. */
async function sixDelivered(sim: SimNats, sleep: (ms: number) => Promise<void>) {
  const nc = await sim.connect({ name: "t" });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: "CRASH", subjects: ["crash.>"] });
  await jsm.consumers.add("CRASH", {
    durable_name: "d",
    ack_policy: AckPolicy.Explicit,
    ack_wait: 1000 * NS,
  });
  for (let i = 1; i <= 6; i++) await js.publish(`crash.${i}`, String(i), { msgID: `c-${i}` });
  const c = await js.consumers.get("CRASH", "d");
  const got: JsMsg[] = [];
  for await (const m of await c.fetch({ max_messages: 6, expires: 2000 })) {
    got.push(m);
    if (got.length === 6) break;
  }
  await sleep(400);
  const info = async () => {
    for (let i = 0; i < 40; i++) {
      const ci = await jsm.consumers.info("CRASH", "d").catch(() => undefined);
      if (ci) return ci;
      await sleep(250);
    }
    throw new Error("no consumer info after the restart");
  };
  return { nc, got, info };
}

it("sim nats crash - a SIGKILL keeps the ack written before it, loses those of the last 100 ms; a restart keeps all", async () => {
  const run = (kill: boolean) =>
    onVirtualTime(async (sim, sleep) => {
      const { nc, got, info } = await sixDelivered(sim, sleep);
      await (got[0] as JsMsg).ackAck(); // after a quiet spell: written at once
      await sleep(20);
      await (got[1] as JsMsg).ackAck(); // waits for the write 100 ms after the last one
      await (got[2] as JsMsg).ackAck();
      let lost: CrashOutcome[] = [];
      if (kill) lost = await sim.crash();
      else await sim.restart();
      const ci = await info();
      await nc.close();
      return {
        lost,
        floor: ci.ack_floor.stream_seq,
        delivered: ci.delivered.stream_seq,
        pending: ci.num_ack_pending,
      };
    });
  const killed = await run(true);
  expect(killed.lost).toEqual([
    {
      consumer: "CRASH/d",
      torn: false,
      ackFloor: { before: [3, 3], after: [1, 1] },
      delivered: { before: [6, 6], after: [6, 6] },
    },
  ] satisfies CrashOutcome[]);
  expect(killed).toMatchObject({ floor: 1, delivered: 6, pending: 5 });
  expect(await run(false)).toMatchObject({ floor: 3, delivered: 6, pending: 3 });
});

it("sim nats crash - acks more than 100 ms old all survive a SIGKILL", async () => {
  const floor = await onVirtualTime(async (sim, sleep) => {
    const { nc, got, info } = await sixDelivered(sim, sleep);
    for (const m of got.slice(0, 4)) {
      await m.ackAck();
      await sleep(30);
    }
    await sleep(120);
    await sim.crash();
    const ci = await info();
    await nc.close();
    return ci.ack_floor.stream_seq;
  });
  expect(floor).toBe(4);
});

it("sim nats crash - a state file torn by the kill: the durable starts over and every message comes again as new; only durables with a file can be torn", async () => {
  const after = await onVirtualTime(async (sim, sleep) => {
    const { nc, got, info } = await sixDelivered(sim, sleep);
    await (got[0] as JsMsg).ackAck();
    // A durable that never delivered has no file to tear.
    await (await jetstreamManager(nc)).consumers.add("CRASH", {
      durable_name: "idle",
      ack_policy: AckPolicy.Explicit,
    });
    await sleep(300);
    const offered: string[] = [];
    const lost = await sim.crash({
      tear: (d) => {
        offered.push(...d);
        return "CRASH/d";
      },
    });
    const ci = await info();
    const js = jetstream(nc);
    const again: [number, number][] = [];
    const c = await js.consumers.get("CRASH", "d");
    for await (const m of await c.fetch({ max_messages: 6, expires: 2000 })) {
      again.push([m.seq, m.info.deliveryCount]);
      if (again.length === 6) break;
    }
    await nc.close();
    return { offered, lost, delivered: ci.delivered, floor: ci.ack_floor, numPending: ci.num_pending, again };
  });
  expect(after.offered).toEqual(["CRASH/d"]);
  expect(after.lost[0]).toMatchObject({ torn: true, ackFloor: { before: [1, 1], after: [0, 0] } });
  expect(after.delivered).toEqual({ consumer_seq: 0, stream_seq: 0 });
  expect(after.floor).toEqual({ consumer_seq: 0, stream_seq: 0 });
  expect(after.numPending).toBe(6);
  expect(after.again).toEqual([1, 2, 3, 4, 5, 6].map((seq) => [seq, 1]));
});
