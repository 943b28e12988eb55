import { Headers } from "@jetmesh/contracts";
import { startTelemetry, type Telemetry } from "@jetmesh/stage";
import { stopAllProcesses } from "@jetmesh/testkit";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Infra,
  postTransfer,
  provisionIngress,
  type RunningGateway,
  readStream,
  serveGateway,
  startInfra,
  transfer,
} from "./test-support.ts";

// Its own file: the SDK registers global providers for the whole test process.
const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);

describe("gateway tracing", () => {
  let telemetry: Telemetry;
  let infra: Infra;
  let gw: RunningGateway;
  beforeAll(async () => {
    telemetry = startTelemetry({ serviceName: "gateway-test", spanProcessors: [processor] });
    infra = await startInfra();
    await provisionIngress(infra);
    gw = await serveGateway(infra);
  });
  afterAll(async () => {
    await gw?.close();
    await infra?.close();
    await telemetry?.shutdown();
    await stopAllProcesses();
  });

  it("gateway - the HTTP SERVER span parents the publish: one transfer is one trace", async () => {
    exporter.reset();
    const res = await postTransfer(gw.url, transfer, { key: "k-trace" });
    expect(res.status).toBe(202);
    const { traceId, eventId } = (await res.json()) as { traceId: string; eventId: string };
    await processor.forceFlush();
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER && s.name === "POST /v1/transfers");
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER);
    expect(server?.spanContext().traceId).toBe(traceId);
    expect(server?.attributes).toMatchObject({
      "http.route": "/v1/transfers",
      "http.response.status_code": 202,
    });
    expect(producer?.spanContext().traceId).toBe(traceId);
    expect(producer?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(producer?.attributes["messaging.message.id"]).toBe(eventId);
    const [stored] = (await readStream(infra)).filter((m) => m.env.eventId === eventId);
    expect(stored?.headers[Headers.TraceParent]).toBe(
      `00-${traceId}-${producer?.spanContext().spanId}-0${producer?.spanContext().traceFlags}`,
    );
  });

  it("gateway - a caller's traceparent makes the request part of the caller's trace", async () => {
    const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await postTransfer(gw.url, transfer, {
      key: "k-trace-caller",
      headers: { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` },
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { traceId: string }).traceId).toBe(callerTrace);
  });
});
