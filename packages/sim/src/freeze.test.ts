import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterEach, expect, it } from "vitest";
import { createSimNats, type SimNats } from "./nats/index.ts";
import { createSimRedis } from "./redis/index.ts";

// A frozen process (the world's "frozen for" fault): its traffic is held both ways until it
// resumes, while the server and every other client go on. Real time: each check made while
// the freeze lasts has most of FREEZE_MS to spare, so that a loaded machine (a timer late by
// a second, as under the full suite) cannot end the freeze before the check is made.

const FREEZE_MS = 2000;
const sims: SimNats[] = [];
afterEach(() => {
  for (const s of sims.splice(0)) s.close();
});

function world(): SimNats {
  let s = 11;
  const sim = createSimNats({
    random: () => {
      s = (s * 16807) % 2147483647;
      return (s - 1) / 2147483646;
    },
  });
  sims.push(sim);
  return sim;
}

it("freeze - a frozen connection's frames, either way, arrive when the freeze ends; others flow on", async () => {
  const sim = world();
  const a = await sim.connect({ name: "a" });
  const b = await sim.connect({ name: "b" });
  const toA: number[] = [];
  const toB: number[] = [];
  a.subscribe("to.a", { callback: () => void toA.push(Date.now()) });
  b.subscribe("to.b", { callback: () => void toB.push(Date.now()) });
  await a.flush();
  await b.flush();

  const start = Date.now();
  sim.freeze("a", FREEZE_MS);
  a.publish("to.b", "from a, frozen");
  b.publish("to.a", "from b, to a frozen");
  b.publish("to.b", "from b, to itself");
  await new Promise((r) => setTimeout(r, FREEZE_MS / 10));
  // Early in the freeze: b heard itself, nothing of a; a heard nothing.
  expect(Date.now() - start).toBeLessThan(FREEZE_MS);
  expect(toB.length).toBe(1);
  expect(toA.length).toBe(0);

  // a's flush returns once its held frames reached the server (its PUB went before its PING);
  // b's flush after it then comes back behind what the server routed to b meanwhile. Order
  // holds per connection only, as on a real server: b's before a's raced a's message to b.
  await a.flush();
  await b.flush();
  expect(toA.length).toBe(1);
  expect(toB.length).toBe(2);
  expect((toA[0] as number) - start).toBeGreaterThanOrEqual(FREEZE_MS - 5);
  expect((toB[1] as number) - start).toBeGreaterThanOrEqual(FREEZE_MS - 5);
  await a.close();
  await b.close();
});

it("freeze - a delivery to a frozen consumer is redelivered to another after the ack wait; the late ack then lands", async () => {
  const sim = world();
  const ops = await sim.connect({ name: "ops" });
  const jsm = await jetstreamManager(ops);
  await jsm.streams.add({ name: "F", subjects: ["f.>"] });
  await jsm.consumers.add("F", { durable_name: "work", ack_policy: AckPolicy.Explicit, ack_wait: 300e6 });
  await jetstream(ops).publish("f.1", "one");

  const a = await sim.connect({ name: "a" });
  const b = await sim.connect({ name: "b" });
  const ca = await jetstream(a).consumers.get("F", "work");
  const first = await ca.next({ expires: 1000 });
  expect(first?.info.deliveryCount).toBe(1);
  const frozenAt = Date.now();
  sim.freeze("a", FREEZE_MS);
  first?.ack();

  // The ack is held: the server redelivers to b after its ack wait, while a is still frozen.
  const cb = await jetstream(b).consumers.get("F", "work");
  const again = await cb.next({ expires: 2000 });
  expect(again?.seq).toBe(first?.seq);
  expect(again?.info.deliveryCount).toBe(2);
  const stillFrozen = await jsm.consumers.info("F", "work");
  expect(Date.now() - frozenAt).toBeLessThan(FREEZE_MS);
  expect(stillFrozen.num_ack_pending).toBe(1);

  // Once a resumes, its (now stale) ack reaches the server and settles the message.
  await new Promise((r) => setTimeout(r, FREEZE_MS));
  await a.flush();
  const after = await jsm.consumers.info("F", "work");
  expect(after.num_ack_pending).toBe(0);
  expect(after.ack_floor.stream_seq).toBe(1);
  for (const nc of [ops, a, b]) await nc.close();
});

it("freeze - a frozen Redis client's commands reach the server when the freeze ends; its other clients go on", async () => {
  const one = createSimRedis();
  const other = one.duplicate();
  const start = Date.now();
  one.freeze(FREEZE_MS);
  const written = one.set("k", "v");
  expect(await other.get("k")).toBeNull();
  await other.set("j", "w");
  expect(Date.now() - start).toBeLessThan(FREEZE_MS / 2);
  expect(await written).toBe("OK");
  expect(Date.now() - start).toBeGreaterThanOrEqual(FREEZE_MS - 5);
  expect(await other.get("k")).toBe("v");
  other.disconnect();
  one.disconnect();
});
