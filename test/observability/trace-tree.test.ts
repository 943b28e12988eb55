// One transfer is one trace (BRIEF I5), checked the way an operator would see it: every
// service runs as its own process, exports OTLP/HTTP to a receiver in this test, and the
// test rebuilds the tree from what arrived.
import { EventTypes, makeEnvelope, StreamNames } from "@jetmesh/contracts";
import { startNats, startRedis, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  OtlpSpanKind,
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
} from "./support/otlp-receiver.ts";
import { type Pipeline, publishTraced, serviceEnv, startPipeline, startService } from "./support/pipeline.ts";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const TAG = Math.random().toString(36).slice(2, 8);
const SERVICE_VERSION = "0.1.0";

/** One hop of the expected tree: who consumes which event type from which stream. */
/** The hops every transfer that posts takes: validator, risk, then the ledger posts. */
const TO_LEDGER_POSTED: readonly Hop[] = [
  {
    stage: "validator",
    stream: StreamNames.Ingress,
    consumes: EventTypes.TransferRequested,
    emits: EventTypes.TransferValidated,
  },
  {
    stage: "risk",
    stream: StreamNames.Validation,
    consumes: EventTypes.TransferValidated,
    emits: EventTypes.TransferScored,
  },
  {
    stage: "ledger",
    stream: StreamNames.Risk,
    consumes: EventTypes.TransferScored,
    emits: EventTypes.LedgerPosted,
  },
];

interface Hop {
  readonly stage: string;
  readonly stream: string;
  readonly consumes: string;
  /** What the stage publishes in this transfer (undefined: the hop ends the flow). */
  readonly emits?: string;
}

const pretty = (spans: readonly ReceivedSpan[]) =>
  spans.map((s) => `${s.service} ${s.kind} ${s.name} ${s.spanId} <- ${s.parentSpanId ?? "root"}`).join("\n");

/**
 * Walks the chain from the gateway's SERVER span: PRODUCER under the previous span, then
 * the next stage's CONSUMER under that PRODUCER, each with the messaging attributes of
 * the OpenTelemetry conventions. Returns the spans of the chain in order.
 */
function expectChain(spans: readonly ReceivedSpan[], eventId: string, hops: readonly Hop[]): ReceivedSpan[] {
  const chain: ReceivedSpan[] = [];
  const server = spans.find((s) => s.kind === OtlpSpanKind.Server);
  expect(server, pretty(spans)).toBeDefined();
  chain.push(server!);
  const first = spans.find((s) => s.kind === OtlpSpanKind.Producer && s.parentSpanId === server!.spanId);
  expect(first, `gateway PRODUCER under the SERVER span\n${pretty(spans)}`).toBeDefined();
  expect(first).toMatchObject({ service: "gateway", name: `send ${EventTypes.TransferRequested}` });
  expect(first!.attributes["messaging.message.id"]).toBe(eventId);
  let producer = first!;
  for (const hop of hops) {
    expectProducer(producer, hop.consumes);
    chain.push(producer);
    const consumers = spans.filter(
      (s) =>
        s.kind === OtlpSpanKind.Consumer && s.service === hop.stage && s.parentSpanId === producer.spanId,
    );
    expect(consumers, `one ${hop.stage} CONSUMER under ${producer.name}\n${pretty(spans)}`).toHaveLength(1);
    const consumer = consumers[0]!;
    expect(consumer.name).toBe(`process ${producer.attributes["messaging.destination.name"]}`);
    expect(consumer.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.operation.type": "process",
      "messaging.destination.name": producer.attributes["messaging.destination.name"],
      "messaging.message.id": producer.attributes["messaging.message.id"],
      "messaging.message.conversation_id": producer.attributes["messaging.message.conversation_id"],
      "messaging.consumer.group.name": hop.stage,
      "messaging.nats.stream": hop.stream,
      "messaging.nats.stream_sequence": producer.attributes["messaging.nats.stream_sequence"],
      "messaging.nats.delivery_count": 1,
      "jetmesh.outcome": "acked",
    });
    chain.push(consumer);
    if (!hop.emits) {
      const children = spans.filter((s) => s.parentSpanId === consumer.spanId);
      expect(children, `${hop.stage} publishes nothing for this transfer`).toEqual([]);
      return chain;
    }
    const next = spans.filter((s) => s.kind === OtlpSpanKind.Producer && s.parentSpanId === consumer.spanId);
    expect(next, `one ${hop.stage} PRODUCER under its CONSUMER\n${pretty(spans)}`).toHaveLength(1);
    expect(next[0]).toMatchObject({ service: hop.stage, name: `send ${hop.emits}` });
    producer = next[0]!;
  }
  expectProducer(producer, hops.at(-1)?.emits ?? "");
  chain.push(producer);
  return chain;
}

function expectProducer(span: ReceivedSpan, type: string): void {
  expect(span.name).toBe(`send ${type}`);
  expect(span.attributes).toMatchObject({
    "messaging.system": "nats",
    "messaging.operation.type": "send",
  });
  // `<domain>.<event>.<partition>`: the partition comes from the source account.
  expect(span.attributes["messaging.destination.name"]).toMatch(
    new RegExp(`^${type.replace(".", "\\.")}\\.\\d{2}$`),
  );
  expect(span.attributes["messaging.message.id"]).toEqual(expect.any(String));
  expect(span.attributes["messaging.message.conversation_id"]).toEqual(expect.any(String));
  expect(span.attributes["messaging.nats.stream_sequence"]).toEqual(expect.any(Number));
}

/** Every span but the root has its parent in the trace; exactly one root, the gateway's SERVER span. */
function expectOneTree(spans: readonly ReceivedSpan[]): void {
  const ids = new Set(spans.map((s) => s.spanId));
  const roots = spans.filter((s) => !s.parentSpanId);
  expect(roots, pretty(spans)).toHaveLength(1);
  expect(roots[0]).toMatchObject({
    service: "gateway",
    kind: OtlpSpanKind.Server,
    name: "POST /v1/transfers",
  });
  expect(roots[0]!.attributes).toMatchObject({
    "http.request.method": "POST",
    "http.route": "/v1/transfers",
    "http.response.status_code": 202,
  });
  const orphans = spans.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId));
  expect(orphans, pretty(spans)).toEqual([]);
  for (const s of spans) expect(s.serviceVersion, `${s.service} service.version`).toBe(SERVICE_VERSION);
  // One process per service here: each has one instance id, and no two share one.
  const instances = new Map<string, Set<string | undefined>>();
  for (const s of spans)
    instances.set(s.service, (instances.get(s.service) ?? new Set()).add(s.serviceInstance));
  for (const [service, ids] of instances) {
    expect(ids.size, `${service} instances`).toBe(1);
    expect([...ids][0], `${service} service.instance.id`).toMatch(/^[0-9a-f-]{36}$/);
  }
  expect(new Set([...instances.values()].flatMap((ids) => [...ids])).size).toBe(instances.size);
}

describe("tracing across the pipeline", { timeout: 120_000 }, () => {
  let receiver: OtlpReceiver;
  let pipeline: Pipeline;
  const alice = `acc-${TAG}a`;
  const setBank = async (change: Record<string, unknown>) => {
    const res = await fetch(`${pipeline.bank.url}/admin/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(change),
    });
    expect(res.status).toBe(200);
  };
  /** Submits a transfer and returns its trace once `done` holds for the spans received so far. */
  const traced = async (
    body: { from: string; to: string; amountMinor: number },
    key: string,
    done: (spans: readonly ReceivedSpan[]) => boolean,
  ) => {
    const res = await pipeline.submit({ ...body, currency: "EUR" }, key);
    expect(res.status).toBe(202);
    const { traceId, eventId, transferId } = res.body;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    // Services export in batches, each on its own clock: wait for the last span of the flow
    // and for every span's parent, so that no part of the tree is still on its way.
    const complete = (spans: readonly ReceivedSpan[]) => {
      const ids = new Set(spans.map((s) => s.spanId));
      return done(spans) && spans.every((s) => !s.parentSpanId || ids.has(s.parentSpanId));
    };
    const spans = await waitFor(
      () => (complete(receiver.trace(traceId)) ? receiver.trace(traceId) : undefined),
      {
        what: `spans of transfer ${key}`,
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${pretty(receiver.trace(traceId))}`);
    });
    return { traceId, eventId, transferId, spans };
  };
  const has = (service: string, kind: number, name: string) => (spans: readonly ReceivedSpan[]) =>
    spans.some((s) => s.service === service && s.kind === kind && s.name.startsWith(name));

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    pipeline = await startPipeline({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    // Money in from the boundary account, so that alice can pay out.
    await traced(
      { from: "external", to: alice, amountMinor: 100_000 },
      `fund-${TAG}`,
      has("payout", OtlpSpanKind.Consumer, "process ledger.posted"),
    );
  }, 300_000);
  afterAll(async () => {
    await pipeline?.close();
    await receiver?.close();
    await stopAllProcesses();
  }, 60_000);

  it("tracing - one transfer is one trace: gateway SERVER root, a PRODUCER per publish, a CONSUMER per hop through validator, risk, ledger and payout", async () => {
    const t = await traced(
      { from: alice, to: `bank:${TAG}-acme`, amountMinor: 1_000 },
      `payout-${TAG}`,
      has("payout", OtlpSpanKind.Producer, `send ${EventTypes.PayoutCompleted}`),
    );
    expectOneTree(t.spans);
    const chain = expectChain(t.spans, t.eventId, [
      ...TO_LEDGER_POSTED,
      {
        stage: "payout",
        stream: StreamNames.Ledger,
        consumes: EventTypes.LedgerPosted,
        emits: EventTypes.PayoutCompleted,
      },
    ]);
    // SERVER, then PRODUCER and CONSUMER for each of four hops, then payout's PRODUCER.
    expect(chain.map((s) => `${s.service}:${s.kind}`)).toEqual([
      "gateway:2",
      "gateway:4",
      "validator:5",
      "validator:4",
      "risk:5",
      "risk:4",
      "ledger:5",
      "ledger:4",
      "payout:5",
      "payout:4",
    ]);
    // The bank call is payout's CLIENT span, a child of its CONSUMER span.
    const calls = t.spans.filter((s) => s.service === "payout" && s.kind === OtlpSpanKind.Client);
    expect(calls, pretty(t.spans)).toHaveLength(1);
    expect(calls[0]).toMatchObject({ name: "POST", parentSpanId: chain[8]!.spanId });
    expect(calls[0]!.attributes).toMatchObject({
      "http.request.method": "POST",
      "url.full": `${pipeline.bank.url}/v1/payouts`,
      "http.response.status_code": 201,
    });
    // Every span of the transfer names it: the correlation id is the transferId.
    for (const s of t.spans.filter(
      (x) => x.kind === OtlpSpanKind.Producer || x.kind === OtlpSpanKind.Consumer,
    )) {
      expect(s.attributes["messaging.message.conversation_id"]).toBe(t.transferId);
    }
    expect(receiver.refused).toEqual([]);
  });

  it("tracing - a transfer between customers ends at payout's CONSUMER, which publishes nothing", async () => {
    const t = await traced(
      { from: alice, to: `acc-${TAG}b`, amountMinor: 500 },
      `internal-${TAG}`,
      has("payout", OtlpSpanKind.Consumer, "process ledger.posted"),
    );
    expectOneTree(t.spans);
    expectChain(t.spans, t.eventId, [
      ...TO_LEDGER_POSTED,
      { stage: "payout", stream: StreamNames.Ledger, consumes: EventTypes.LedgerPosted },
    ]);
  });

  it("tracing - a refused payout's compensation (payouts.failed, ledger.reversed) stays in the transfer's trace", async () => {
    const refused = `bank:${TAG}-refused`;
    await setBank({ refuseAccounts: [refused] });
    const t = await traced(
      { from: alice, to: refused, amountMinor: 700 },
      `refused-${TAG}`,
      has("ledger", OtlpSpanKind.Producer, `send ${EventTypes.LedgerReversed}`),
    );
    expectOneTree(t.spans);
    expectChain(t.spans, t.eventId, [
      ...TO_LEDGER_POSTED,
      {
        stage: "payout",
        stream: StreamNames.Ledger,
        consumes: EventTypes.LedgerPosted,
        emits: EventTypes.PayoutFailed,
      },
      {
        stage: "ledger",
        stream: StreamNames.Payouts,
        consumes: EventTypes.PayoutFailed,
        emits: EventTypes.LedgerReversed,
      },
    ]);
  });

  it("tracing - a redelivered message's CONSUMER span links to the attempt before it, in the same trace", async () => {
    await setBank({ errorRate: 1 });
    const res = await pipeline.submit(
      { from: alice, to: `bank:${TAG}-flaky`, amountMinor: 300, currency: "EUR" },
      `flaky-${TAG}`,
    );
    expect(res.status).toBe(202);
    const { traceId } = res.body;
    const payoutAttempts = () =>
      receiver
        .trace(traceId)
        .filter((s) => s.service === "payout" && s.kind === OtlpSpanKind.Consumer)
        .sort(
          (a, b) =>
            Number(a.attributes["messaging.nats.delivery_count"]) -
            Number(b.attributes["messaging.nats.delivery_count"]),
        );
    await waitFor(() => payoutAttempts().some((s) => s.attributes["jetmesh.outcome"] === "retried"), {
      what: "a failed payout attempt",
      timeoutMs: 30_000,
    });
    await setBank({ errorRate: 0 });
    const attempts = await waitFor(
      () => {
        const a = payoutAttempts();
        return a.at(-1)?.attributes["jetmesh.outcome"] === "acked" ? a : undefined;
      },
      { what: "the payout to succeed on a redelivery", timeoutMs: 30_000 },
    );
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    const first = attempts[0]!;
    expect(first.attributes["messaging.nats.delivery_count"]).toBe(1);
    expect(first.links).toEqual([]);
    expect(first.statusCode).toBe(2); // STATUS_CODE_ERROR
    for (let i = 1; i < attempts.length; i++) {
      const prev = attempts[i - 1]!;
      const cur = attempts[i]!;
      expect(cur.attributes["messaging.nats.delivery_count"]).toBe(i + 1);
      expect(cur.attributes["messaging.message.id"]).toBe(first.attributes["messaging.message.id"]);
      // Same parent (the ledger's PRODUCER), so every attempt sits in the transfer's tree...
      expect(cur.parentSpanId).toBe(first.parentSpanId);
      // ...and names the attempt it retries.
      expect(cur.links).toEqual([
        { traceId, spanId: prev.spanId, attributes: { "jetmesh.link": "previous_attempt" } },
      ]);
    }
    expect(attempts.at(-1)!.statusCode).not.toBe(2);
    const whole = await waitFor(
      () => {
        const spans = receiver.trace(traceId);
        const ids = new Set(spans.map((s) => s.spanId));
        return spans.every((s) => !s.parentSpanId || ids.has(s.parentSpanId)) ? spans : undefined;
      },
      { what: "every parent of the retried transfer's spans" },
    );
    expectOneTree(whole);
  });
});

describe("tracing configuration", () => {
  it("tracing - OTEL_TRACES_SAMPLER_ARG=0 samples no new trace but follows a sampled caller (parent-based)", async () => {
    const receiver = await startOtlpReceiver();
    const [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const nc = await connect({ servers: nats.url });
    try {
      const validator = await startService(
        "validator",
        serviceEnv(
          { natsUrl: nats.url, redisUrl: redis.url },
          { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER_ARG: "0" },
        ),
      );
      const js = jetstream(nc);
      const event = (i: number, traceparent?: string) => {
        const env = makeEnvelope(
          EventTypes.TransferRequested,
          {
            transferId: `${TAG}-s${i}`,
            from: "external",
            to: `acc-${TAG}s`,
            amountMinor: 100,
            currency: "EUR",
            requestedAt: new Date().toISOString(),
          },
          {
            eventId: `${TAG}-e${i}`,
            correlationId: `${TAG}-s${i}`,
            causationId: `test:${i}`,
            producer: "test",
          },
        );
        return { env, traceparent };
      };
      const sampledTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
      const unsampledTrace = "0af7651916cd43dd8448eb211c80319c";
      const inputs = [
        event(1),
        event(2, `00-${sampledTrace}-00f067aa0ba902b7-01`),
        event(3, `00-${unsampledTrace}-00f067aa0ba902b7-00`),
      ];
      for (const { env, traceparent } of inputs) await publishTraced(js, env, traceparent);
      await waitFor(() => receiver.trace(sampledTrace).some((s) => s.kind === OtlpSpanKind.Producer), {
        what: "the sampled caller's spans",
        timeoutMs: 20_000,
      });
      // Let a batch or two go by: anything else that was exported would be here by now.
      await new Promise((r) => setTimeout(r, 1000));
      expect(receiver.trace(unsampledTrace)).toEqual([]);
      expect(new Set(receiver.spans().map((s) => s.traceId))).toEqual(new Set([sampledTrace]));
      expect(receiver.spans().every((s) => s.service === "validator")).toBe(true);
      const exit = await validator.child.stop(15_000);
      expect(exit).toEqual({ code: 0, signal: null });
    } finally {
      await nc.close();
      await Promise.all([nats.stop(), redis.stop(), receiver.close()]);
    }
  }, 180_000);
});
