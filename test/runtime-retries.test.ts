// Retry timing as the server really does it, a DLQ that cannot lose a message, and a
// dependency outage longer than every retry: real nats-server and redis-server.
import { Headers, Streams, toStreamConfig } from "@jetmesh/contracts";
import { metricsRegistry, type StageSettings, stageSettings, startTelemetry } from "@jetmesh/stage";
import { redeliveryHorizonMs } from "@jetmesh/stage";
import { waitFor } from "@jetmesh/testkit";
import { describe, expect, it } from "vitest";
import { echoHarness } from "./support/echo-harness.ts";
import { ECHO_DEPENDENCY_DOWN } from "./fixtures/echo-stage.ts";
import { publishEvent, readStream, requested } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-retries-test" });
const fast: Partial<StageSettings> = {
  ackWaitMs: 1000,
  maxDeliver: 5,
  retryBaseMs: 200,
  retryMaxMs: 800,
  idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
  idempotencyHorizonMs: 600_000,
  handlerTimeoutMs: 800,
  publishTimeoutMs: 500,
  publishRetryHorizonMs: 0,
};

describe("runtime retries", () => {
  const h = echoHarness(fast);
  const { start } = h;
  const consumer = () => h.infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
  const deliveries = async (eventId: string) =>
    (await h.redis.lrange(`echo:deliveries:${eventId}`, 0, -1)).map(Number);

  it("runtime - nak delays are what the retry policy asks on the real server, and the message is parked within the computed horizon", async () => {
    const settings = stageSettings({ ...fast });
    await start({ failTimes: 1_000 });
    const evt = requested(1);
    const sentAt = Date.now();
    await publishEvent(h.infra.js, evt);
    await waitFor(async () => (await readStream(h.infra.jsm, Streams.DLQ.name)).length === 1, {
      what: "the failing message parked",
      timeoutMs: 20_000,
    });
    const parkedAt = Date.now();
    const at = await deliveries(evt.eventId);
    expect(at).toHaveLength(settings.maxDeliver);
    // Delivery n failed and was nak'd with min(max, base·2^(n−1)), half of it jittered.
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    for (const [i, gap] of gaps.entries()) {
      const exp = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** i);
      expect(gap, `gap after delivery ${i + 1}: ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(exp / 2 - 20);
      expect(gap, `gap after delivery ${i + 1}: ${gaps.join(", ")} ms`).toBeLessThanOrEqual(exp + 300);
    }
    console.log(`runtime nak gaps (ms): ${gaps.join(", ")}; first delivery to park ${parkedAt - sentAt} ms`);
    expect(parkedAt - sentAt).toBeLessThanOrEqual(redeliveryHorizonMs(settings) + 1000);
    const [parked] = await readStream(h.infra.jsm, Streams.DLQ.name);
    expect(parked!.headers[Headers.DlqReason]).toMatch(/gave up after 5 deliveries: planned failure 5/);
    expect((await consumer()).num_ack_pending).toBe(0);
  });

  it("runtime - a full DLQ loses nothing: the refused message stays in its stream and is parked once there is room", async () => {
    await h.infra.jsm.streams.add({ ...toStreamConfig(Streams.DLQ), max_msgs: 1 } as never);
    await start();
    await publishEvent(h.infra.js, requested(1, { currency: "XXX" }));
    await waitFor(async () => (await readStream(h.infra.jsm, Streams.DLQ.name)).length === 1, {
      what: "the first poison message parked",
    });
    // The DLQ is full: the second poison message cannot be parked...
    await publishEvent(h.infra.js, requested(2, { currency: "XXX" }));
    await publishEvent(h.infra.js, requested(3));
    await waitFor(async () => (await readStream(h.infra.jsm, Streams.VALIDATION.name)).length === 1, {
      what: "the healthy message behind it",
    });
    await waitFor(async () => (await deliveries(requested(2).eventId)).length >= 2, {
      what: "the park retried",
      timeoutMs: 15_000,
    });
    // ...so it was neither termed nor acked: it is still owed to the stage.
    const stuck = await consumer();
    expect(stuck.num_ack_pending + stuck.num_pending).toBe(1);
    expect(await metricsRegistry().getSingleMetricAsString("jetmesh_dlq_park_failures_total")).toMatch(
      /jetmesh_dlq_park_failures_total\{stage="echo"\} [1-9]/,
    );
    // Room again: the next delivery parks it, once.
    await h.infra.jsm.streams.update(Streams.DLQ.name, {
      ...toStreamConfig(Streams.DLQ),
      max_msgs: 10,
    } as never);
    await waitFor(async () => (await readStream(h.infra.jsm, Streams.DLQ.name)).length === 2, {
      what: "the second poison message parked",
      timeoutMs: 20_000,
    });
    await waitFor(async () => {
      const c = await consumer();
      return c.num_pending === 0 && c.num_ack_pending === 0;
    });
    const dlq = await readStream(h.infra.jsm, Streams.DLQ.name);
    expect(dlq.map((d) => d.headers[Headers.CorrelationId])).toEqual(["t-1", "t-2"]);
    expect(dlq.every((d) => /poison/.test(d.headers[Headers.DlqReason] ?? ""))).toBe(true);
  }, 60_000);

  it("runtime - a dependency down longer than every retry: the stage stops pulling, parks nothing, and finishes every message once", async () => {
    const settings = stageSettings({ ...fast, maxDeliver: 4 });
    const stage = await start({}, { maxDeliver: 4 });
    await h.redis.set(ECHO_DEPENDENCY_DOWN, "1");
    for (let i = 0; i < 20; i++) await publishEvent(h.infra.js, requested(i));
    await waitFor(() => (stage.health().dependencies_down as string[] | undefined)?.includes("echo-dep"), {
      what: "the circuit to open",
    });
    expect(stage.ready()).toBe(false);
    // Down for more than twice the whole redelivery horizon.
    const outageMs = Math.max(8_000, 2 * redeliveryHorizonMs(settings));
    await new Promise((r) => setTimeout(r, outageMs));
    expect((await readStream(h.infra.jsm, Streams.DLQ.name)).length).toBe(0);
    expect((await consumer()).num_pending).toBeGreaterThan(0);
    await h.redis.del(ECHO_DEPENDENCY_DOWN);
    await waitFor(async () => (await readStream(h.infra.jsm, Streams.VALIDATION.name)).length === 20, {
      what: "every message after the outage",
      timeoutMs: 60_000,
    });
    expect(stage.ready()).toBe(true);
    expect((await readStream(h.infra.jsm, Streams.DLQ.name)).length).toBe(0);
    const calls = await Promise.all(Array.from({ length: 20 }, (_, i) => h.redis.get(`echo:effects:t-${i}`)));
    expect(calls).toEqual(Array(20).fill("1"));
    const most = Math.max(
      ...(await Promise.all(Array.from({ length: 20 }, (_, i) => deliveries(requested(i).eventId)))).map(
        (d) => d.length,
      ),
    );
    expect(most).toBeLessThan(4);
  }, 90_000);
});
