// Duplicate windows, idempotency keys, poison messages, settings refused at start,
// drift reports and the consume supervisor, against a real nats-server and redis-server.
import { dlqSubject, Headers, Streams, toStreamConfig } from "@jetmesh/contracts";
import { ConfigError, type StageSettings, startTelemetry } from "@jetmesh/stage";
import { ensureConsumer } from "@jetmesh/stage/internal";
import { waitFor } from "@jetmesh/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { echoHarness, logger } from "./support/echo-harness.ts";
import { publishEvent, readStream, requested } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-delivery-test" });
const fast: Partial<StageSettings> = {
  ackWaitMs: 1500,
  maxDeliver: 4,
  retryBaseMs: 50,
  retryMaxMs: 200,
  idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
  idempotencyHorizonMs: 600_000,
  publishTimeoutMs: 500,
  publishRetryHorizonMs: 0,
};

describe("runtime delivery", () => {
  const h = echoHarness(fast);
  const { start, quiet } = h;

  it("runtime - a redelivery after the duplicate window is dropped by the redis key", async () => {
    // Streams with a 1 s duplicate window, so the window can pass inside a test.
    for (const def of [Streams.INGRESS, Streams.VALIDATION, Streams.DLQ]) {
      await h.infra.jsm.streams.add({ ...toStreamConfig(def), duplicate_window: 1_000 * 1_000_000 } as never);
    }
    await start();
    const evt = requested(1);
    await publishEvent(h.infra.js, evt);
    await waitFor(async () => (await readStream(h.infra.jsm, "VALIDATION")).length === 1 || undefined, {
      what: "first output",
    });
    // Inside the window: the stream itself drops the copy.
    expect((await publishEvent(h.infra.js, evt)).duplicate).toBe(true);
    await new Promise((r) => setTimeout(r, 1_500));
    // Past the window: the stream stores the copy and delivers it again...
    expect((await publishEvent(h.infra.js, evt)).duplicate).toBe(false);
    await quiet();
    // ...and the done key drops it: still one output, one effect.
    expect(await readStream(h.infra.jsm, "VALIDATION")).toHaveLength(1);
    expect(await h.infra.redis.get("echo:effects:t-1")).toBe("1");
    expect(await h.infra.redis.get("echo:effect-calls:t-1")).toBe("1");
  });

  it("runtime - the same output published twice inside the window is stored once", async () => {
    await start();
    const evt = requested(2);
    await publishEvent(h.infra.js, evt);
    await quiet();
    const [out] = await readStream(h.infra.jsm, "VALIDATION");
    // Republish the stored output itself with its id, as a retry after a lost PubAck would.
    const hdrs = natsHeaders();
    for (const [k, v] of Object.entries(out!.headers)) hdrs.set(k, v);
    const ack = await h.infra.js.publish(out!.subject, out!.data, {
      msgID: out!.headers[Headers.MsgId],
      headers: hdrs,
    });
    expect(ack.duplicate).toBe(true);
    expect(await readStream(h.infra.jsm, "VALIDATION")).toHaveLength(1);
  });

  it("runtime - confirmed acks (double ack) process every message once", async () => {
    const stage = await start({}, { ackMode: "confirmed" });
    for (let i = 0; i < 30; i++) await publishEvent(h.infra.js, requested(i));
    const info = await quiet();
    const out = await readStream(h.infra.jsm, "VALIDATION");
    expect(out.map((o) => o.env!.correlationId).sort()).toEqual(
      Array.from({ length: 30 }, (_, i) => `t-${i}`).sort(),
    );
    // Each ack landed on the first delivery: nothing was redelivered, the ack floor is the last.
    expect(info.num_redelivered).toBe(0);
    expect(info.delivered.consumer_seq).toBe(30);
    expect(info.ack_floor.consumer_seq).toBe(30);
    expect(stage.ready()).toBe(true);
  });

  it("runtime - poison messages are parked with reasons and the messages behind them flow", async () => {
    await start({ failTimes: 100 }, {});
    // garbage bytes, a permanent handler error, then good messages
    await h.infra.js.publish("transfers.requested.00", new Uint8Array([0xc1, 0x00, 0xff]), {
      msgID: "garbage-1",
    });
    await publishEvent(h.infra.js, requested(1, { currency: "XXX" }));
    await quiet().catch(() => undefined);
    const dlq = await waitFor(
      async () => {
        const d = await readStream(h.infra.jsm, "DLQ");
        return d.length >= 2 ? d : undefined;
      },
      { what: "two parked messages" },
    );
    expect(dlq.map((d) => d.subject)).toEqual([dlqSubject("echo"), dlqSubject("echo")]);
    const reasons = dlq.map((d) => d.headers[Headers.DlqReason]);
    expect(reasons[0]).toMatch(/undecodable message/);
    expect(reasons[1]).toMatch(/currency XXX is poison/);
    expect(dlq[1]!.headers[Headers.CorrelationId]).toBe("t-1");
    expect(dlq[1]!.headers[Headers.DlqStream]).toBe("INGRESS");
    expect(Number(dlq[1]!.headers[Headers.DlqSequence])).toBeGreaterThan(0);
  });

  it("runtime - a message failing transiently is parked after max deliver while later ones pass", async () => {
    // echo fails transiently `failTimes` times per event: 100 means forever for t-0
    await start({ failTimes: 0 });
    await h.stopAll();
    const _failing = await start({ failTimes: 100 }, { maxDeliver: 3 });
    await publishEvent(h.infra.js, requested(0));
    await waitFor(
      async () => {
        const d = await readStream(h.infra.jsm, "DLQ");
        return d.length === 1 ? d : undefined;
      },
      { what: "parked after max deliver", timeoutMs: 30_000 },
    ).then((d) => {
      expect(d[0]!.headers[Headers.DlqReason]).toMatch(/gave up after 3 deliveries: planned failure 3/);
      expect(d[0]!.headers[Headers.DlqDeliveries]).toBe("3");
    });
    await h.stopAll();
    await start({ failTimes: 1 }); // fails once per event, then succeeds
    for (let i = 10; i < 30; i++) await publishEvent(h.infra.js, requested(i));
    await quiet();
    const outs = await readStream(h.infra.jsm, "VALIDATION");
    expect(outs.map((o) => o.env?.correlationId).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `t-${i + 10}`).sort(),
    );
  });

  it("runtime - settings that contradict exactly-once are refused with every reason", async () => {
    const err = await start(
      {},
      {
        idempotencyTtlMs: 2_000,
        ackWaitMs: 1_500,
        maxDeliver: 3,
      },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).problems.join("\n");
    expect(text).toMatch(
      /idempotency key ttl 2000 ms must outlive the idempotency horizon 600000 ms .* plus the redelivery horizon \d+ ms/,
    );
    expect(text).toMatch(
      /idempotency key ttl 2000 ms must outlive stream VALIDATION's duplicate window 900000 ms/,
    );
    // The retention plan: a key must outlive its input stream's age limit (3 days).
    expect(text).toMatch(/idempotency key ttl 2000 ms must outlive stream INGRESS's age limit 259200000 ms/);

    // A duplicate window shorter than the publish retry horizon, and a DLQ that cannot be peeked.
    await h.infra.jsm.streams.delete("VALIDATION");
    await h.infra.jsm.streams.add({
      ...toStreamConfig(Streams.VALIDATION),
      duplicate_window: 1_000 * 1_000_000,
    } as never);
    await h.infra.jsm.streams.delete("DLQ");
    await h.infra.jsm.streams.add({ ...toStreamConfig(Streams.DLQ), retention: "workqueue" } as never);
    const err2 = await start({}, { publishRetryHorizonMs: 5_000 }).catch((e) => e);
    expect((err2 as ConfigError).problems.join("\n")).toMatch(
      /VALIDATION duplicate window 1000 ms is shorter than the publish retry horizon 5500 ms/,
    );
    expect((err2 as ConfigError).problems.join("\n")).toMatch(/DLQ has workqueue retention; use limits/);
    // Production refuses single-replica critical streams.
    await h.infra.jsm.streams.delete("DLQ");
    await h.infra.jsm.streams.delete("VALIDATION");
    const err3 = await start({}, { production: true }).catch((e) => e);
    expect((err3 as ConfigError).problems.join("\n")).toMatch(
      /production: critical stream INGRESS has 1 replica\(s\); use 3/,
    );
  });

  it("runtime - a drifted consumer is reported, not changed", async () => {
    await start();
    await h.stopAll();
    await h.infra.jsm.consumers.update("INGRESS", "echo", { max_ack_pending: 7 });
    const report = await ensureConsumer(
      h.infra.jsm,
      {
        stream: "INGRESS",
        durable: "echo",
        ackWaitMs: 1500,
        maxAckPending: 1024,
      },
      logger,
    );
    expect(report.drift.join()).toMatch(/max_ack_pending: server 7, declared 1024/);
    expect((await h.infra.jsm.consumers.info("INGRESS", "echo")).config.max_ack_pending).toBe(7);
  });

  it("runtime - a deleted consumer is recreated by the supervisor and consumption resumes", async () => {
    const stage = await start();
    await publishEvent(h.infra.js, requested(1));
    await quiet();
    await h.infra.jsm.consumers.delete("INGRESS", "echo");
    await publishEvent(h.infra.js, requested(2));
    await waitFor(async () => (await readStream(h.infra.jsm, "VALIDATION")).length === 2 || undefined, {
      what: "consumption after the consumer was deleted",
      timeoutMs: 40_000,
    });
    expect(stage.ready()).toBe(true);
    const metrics = await (await import("@jetmesh/stage"))
      .metricsRegistry()
      .getSingleMetricAsString("jetmesh_consumer_restarts_total");
    expect(metrics).toMatch(/stage="echo"/);
  });
});
