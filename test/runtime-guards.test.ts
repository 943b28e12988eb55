// Guards that must outlive what can bring a message back, and leases that must be fenced:
// a consumer lost long after its keys expired, an attempt that lost its lease, a handler
// that runs longer than its ack wait. Real nats-server and redis-server.
import { EventTypes, makeEnvelope, outputEventId, Streams, toStreamConfig } from "@jetmesh/contracts";
import { metricsRegistry, type StageSettings, startTelemetry } from "@jetmesh/stage";
import { createIdempotencyStore } from "@jetmesh/stage/internal";
import { describe, expect, it } from "vitest";
import { echoHarness } from "./support/echo-harness.ts";
import { publishEvent, readStream, requested } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-guards-test" });
const fast: Partial<StageSettings> = {
  ackWaitMs: 1000,
  maxDeliver: 6,
  retryBaseMs: 50,
  retryMaxMs: 200,
  idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
  idempotencyHorizonMs: 600_000,
  publishTimeoutMs: 500,
  publishRetryHorizonMs: 0,
};

describe("runtime guards", () => {
  const h = echoHarness(fast);
  const { start, quiet } = h;
  const effectCalls = async (n: number) =>
    Promise.all(Array.from({ length: n }, (_, i) => h.redis.get(`echo:effect-calls:t-${i}`)));

  it("runtime - a consumer lost after its keys expired resumes from its recorded position, not the stream's start", async () => {
    let _stage = await start();
    for (let i = 0; i < 10; i++) await publishEvent(h.infra.js, requested(i));
    await quiet();
    expect(await effectCalls(10)).toEqual(Array(10).fill("1"));
    await h.stopAll();
    // Days later: every guard expired, and someone deleted the durable consumer.
    for (const k of await h.redis.keys("echo:*")) await h.redis.del(k);
    await h.infra.jsm.consumers.delete(Streams.INGRESS.name, "echo");

    _stage = await start();
    await publishEvent(h.infra.js, requested(10));
    await quiet();
    // Only the new message ran: the ten old ones were not replayed from the start.
    expect(await effectCalls(11)).toEqual([...Array(10).fill(null), "1"]);
    const info = await h.infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
    expect(info.config.deliver_policy).toBe("by_start_sequence");
    expect(info.config.opt_start_seq).toBe(11);
  });

  it("runtime - a lost consumer with no recorded position is not replayed from the start: refused unless told where to start", async () => {
    await h.infra.jsm.streams.add(toStreamConfig(Streams.INGRESS) as never);
    for (let i = 0; i < 3; i++) await publishEvent(h.infra.js, requested(i));
    // The stream holds messages and the stage has never consumed it: no position to resume from.
    const err = await start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/JETMESH_CONSUMER_START/);
    expect((err as Error).message).toMatch(/INGRESS/);
    await expect(h.infra.jsm.consumers.info(Streams.INGRESS.name, "echo")).rejects.toThrow();
    // Told to take only new messages, it does.
    await start({}, { consumerStart: "new" });
    await publishEvent(h.infra.js, requested(3));
    await quiet();
    expect(await effectCalls(4)).toEqual([null, null, null, "1"]);
  });

  it("runtime - a redelivery that decides differently from its stored output keeps the stored one, loudly", async () => {
    await start();
    const evt = requested(7);
    // An earlier attempt's output, decided on state that was lost since: another amount.
    const earlier = makeEnvelope(
      EventTypes.TransferValidated,
      { transferId: "t-7", from: evt.data.from, to: evt.data.to, amountMinor: 1, currency: "EUR" },
      {
        eventId: outputEventId("echo", evt.eventId, EventTypes.TransferValidated),
        correlationId: "t-7",
        causationId: evt.eventId,
        producer: "echo",
        occurredAt: evt.occurredAt,
      },
    );
    await h.infra.jsm.streams.add(toStreamConfig(Streams.VALIDATION) as never).catch(() => undefined);
    await publishEvent(h.infra.js, earlier);
    await publishEvent(h.infra.js, evt);
    await quiet();
    const outs = await readStream(h.infra.jsm, Streams.VALIDATION.name);
    expect(outs.map((o) => o.env?.data)).toEqual([earlier.data]);
    expect((await readStream(h.infra.jsm, Streams.DLQ.name)).length).toBe(0);
    expect(await metricsRegistry().getSingleMetricAsString("jetmesh_divergent_replays_total")).toMatch(
      /jetmesh_divergent_replays_total\{stage="echo"\} 1/,
    );
  });

  it("runtime - an attempt that lost its lease can neither mark the key done nor release it", async () => {
    const store = createIdempotencyStore(h.redis);
    const key = "guards:e-1";
    expect(await store.claim(key, "attempt-a", 200, "tp-a")).toEqual({ state: "claimed" });
    await new Promise((r) => setTimeout(r, 300));
    // A paused process: its lease ran out and another attempt took the message.
    expect(await store.claim(key, "attempt-b", 5_000, "tp-b")).toEqual({ state: "claimed" });
    expect(await store.extend(key, "attempt-a", 5_000)).toBe(false);
    expect(await store.markDone(key, "attempt-a", "out-a", 60_000)).toBe(false);
    expect(await store.release(key, "attempt-a", "tp-a", 60_000)).toBe(false);
    expect(await h.redis.get(key)).toMatch(/^L\|attempt-b\|/);
    expect(await store.extend(key, "attempt-b", 5_000)).toBe(true);
    expect(await store.markDone(key, "attempt-b", "out-b", 60_000)).toBe(true);
    expect(await store.claim(key, "attempt-c", 5_000, "tp-c")).toEqual({ state: "done", result: "out-b" });
  });

  it("runtime - the idempotency store's calls of one turn leave in one socket write at the turn's end, not through auto-pipelining", async () => {
    // h.redis comes from createRedis, which auto-pipelines: a store call through it would be
    // written a setImmediate later, after an ioredis Pipeline of its own (bench/NOTES.md).
    const store = createIdempotencyStore(h.redis);
    await store.claim("guards:w-0", "attempt-a", 5_000, "tp-a");
    const socket = h.redis.stream as unknown as {
      _write: (...a: unknown[]) => void;
      _writev: (...a: unknown[]) => void;
    };
    const [write, writev] = [socket._write, socket._writev];
    let writes = 0;
    socket._write = (...a) => {
      writes++;
      write.apply(socket, a);
    };
    socket._writev = (...a) => {
      writes++;
      writev.apply(socket, a);
    };
    try {
      const answers = Promise.all([
        store.claim("guards:w-1", "attempt-a", 5_000, "tp-a"),
        store.markDone("guards:w-0", "attempt-a", "out", 60_000),
        store.extend("guards:w-2", "attempt-a", 5_000),
      ]);
      // The store flushes at the end of the turn (process.nextTick), before any setImmediate.
      await new Promise((r) => process.nextTick(r));
      expect(writes).toBe(1);
      expect(await answers).toEqual([{ state: "claimed" }, true, false]);
      expect(writes).toBe(1);
    } finally {
      socket._write = write;
      socket._writev = writev;
    }
  });

  it("runtime - a handler that runs past its ack wait keeps its message and its lease, and runs once", async () => {
    // 2.5 ack waits of work: without working() and a renewed lease the message would be
    // redelivered and run again while the first attempt still runs.
    await start({ delayMs: 2_500 }, { ackWaitMs: 1000, leaseMs: 1000, handlerTimeoutMs: 6_000 });
    await publishEvent(h.infra.js, requested(0));
    const info = await quiet();
    expect(info.num_redelivered).toBe(0);
    expect(await effectCalls(1)).toEqual(["1"]);
    expect(await readStream(h.infra.jsm, Streams.VALIDATION.name)).toHaveLength(1);
  });
});
