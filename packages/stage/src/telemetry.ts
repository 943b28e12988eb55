import { randomUUID } from "node:crypto";
import {
  type Context,
  context,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import {
  BatchSpanProcessor,
  NoopSpanProcessor,
  ParentBasedSampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";

/** Anything that carries headers: nats MsgHdrs, a plain record. */
export interface HeaderCarrier {
  get(key: string): string | undefined | null;
  set(key: string, value: string): void;
}

const getter: TextMapGetter<HeaderCarrier> = {
  keys: () => ["traceparent", "tracestate"],
  get: (c, k) => c.get(k) || undefined,
};
const setter: TextMapSetter<HeaderCarrier> = { set: (c, k, v) => c.set(k, v) };
// W3C trace context is the wire format whatever global propagator is registered.
const w3c = new W3CTraceContextPropagator();

/** The context carried by `traceparent`/`tracestate` headers (root context if none). */
export function extractContext(headers: HeaderCarrier | undefined): Context {
  return headers ? w3c.extract(context.active(), headers, getter) : context.active();
}

/** Writes the context's span as `traceparent`/`tracestate` headers. */
export function injectContext(ctx: Context, headers: HeaderCarrier): void {
  w3c.inject(ctx, headers, setter);
}

/** The `traceparent` value of a span (for idempotency records and links). */
export function traceparentOf(span: Span): string {
  const sc = span.spanContext();
  return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags.toString(16)}`;
}

/** A link to the span named by a traceparent, or undefined when it does not parse. */
export function linkTo(traceparent: string | undefined, attributes?: Link["attributes"]): Link | undefined {
  if (!traceparent) return undefined;
  const ctx = w3c.extract(context.active(), { get: () => traceparent, set: () => {} }, getter);
  const sc = trace.getSpanContext(ctx);
  return sc ? { context: sc, ...(attributes ? { attributes } : {}) } : undefined;
}

/** The tracer of the runtime; spans follow the OpenTelemetry messaging conventions. */
export const tracer = trace.getTracer("@jetmesh/stage");
export { SpanKind, SpanStatusCode, context, trace };
export type { Context, Link, Span };

/** Options of {@link startTelemetry}; services pass their parsed OTEL_* config. */
export interface TelemetryOptions {
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /**
   * OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); spans go to `<url>/v1/traces` as
   * OTLP JSON whatever OTEL_EXPORTER_OTLP_PROTOCOL says. No exporter when absent.
   */
  readonly otlpEndpoint?: string;
  /** Share of new traces sampled, 0..1 (parent-based: a sampled parent is always followed). */
  readonly sampleRatio?: number;
  readonly disabled?: boolean;
  /** Extra processors, e.g. an in-memory exporter in tests. */
  readonly spanProcessors?: readonly SpanProcessor[];
}

/** A started SDK; `shutdown` flushes pending spans. */
export interface Telemetry {
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK for traces only (metrics are Prometheus text on
 * /metrics; logs are pino), with W3C propagation and a parent-based sampler: a sampled
 * caller is always followed, so one transfer's trace is never cut between stages. The
 * resource names the service, its version and this process (`service.instance.id`, a
 * UUID per start), so that spans of scaled-out instances of one stage stay apart.
 * Call once per process, first; `shutdown` on SIGTERM flushes what is still batched.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  if (opts.disabled) return { shutdown: async () => {} };
  const processors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  if (opts.otlpEndpoint) {
    const url = `${opts.otlpEndpoint.replace(/\/$/, "")}/v1/traces`;
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
  }
  // NodeSDK registers no tracer provider without a processor, and then every trace id
  // is zero: with no exporter, spans still exist so that context propagates (I5).
  if (processors.length === 0) processors.push(new NoopSpanProcessor());
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    resource: resourceFromAttributes({
      "service.name": opts.serviceName,
      "service.instance.id": randomUUID(),
      ...(opts.serviceVersion ? { "service.version": opts.serviceVersion } : {}),
    }),
    autoDetectResources: false,
    spanProcessors: processors,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    textMapPropagator: w3c,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(opts.sampleRatio ?? 1) }),
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}
