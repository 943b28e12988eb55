import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Context,
  isSpanContextValid,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { extractContext, type Logger } from "@jetmesh/stage";
import type { HttpMetrics } from "./metrics.ts";
import { HttpError, json, type Reply } from "./reply.ts";
import { createRouter, type Route } from "./router.ts";

const tracer = trace.getTracer("@jetmesh/gateway");

/** Route label of requests that matched no route (one bounded label for all of them). */
export const UNMATCHED_ROUTE = "unmatched";

export interface RequestListenerOptions {
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly metrics: HttpMetrics;
}

/**
 * The node:http request listener: match, open a SERVER span (a child of the caller's
 * `traceparent` when it sends one), run the route inside the span's context so that
 * what the route publishes joins the same trace, write the reply, count it.
 */
export function createRequestListener(
  opts: RequestListenerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const match = createRouter(opts.routes);
  return (req, res) => {
    const started = performance.now();
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://gateway.invalid");
    const m = match(method, url.pathname);
    const route = m.kind === "none" ? UNMATCHED_ROUTE : m.kind === "found" ? m.route.template : m.template;
    // The W3C extractor works whether or not an SDK registered a global propagator.
    const parent = extractContext({
      get: (k) => {
        const v = req.headers[k];
        return Array.isArray(v) ? v[0] : v;
      },
      set: () => {},
    });
    const span = serverSpan(`${method} ${route}`, route, method, parent);
    const ctx = trace.setSpan(parent, span);

    const run = async (): Promise<Reply> => {
      if (m.kind === "none") return json(404, { error: "not found" });
      if (m.kind === "method") {
        return json(405, { error: "method not allowed" }, { Allow: m.allow.join(", ") });
      }
      return m.route.handle({ req, url, params: m.params, span, context: ctx });
    };
    // The span's context reaches routes explicitly (RouteRequest.context): running each
    // request inside `context.with` would turn on AsyncLocalStorage's promise hooks, a
    // cost on every promise of the process (bench/NOTES.md).
    run()
      .catch((err: unknown) => {
        if (err instanceof HttpError) return err.reply;
        span.recordException(err as Error);
        opts.logger.error({ err, route, method }, "request failed");
        return json(500, { error: "internal error" });
      })
      .then((reply) => {
        write(res, method, reply);
        span.setAttribute("http.response.status_code", reply.status);
        if (reply.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        opts.metrics.observe(route, method, reply.status, (performance.now() - started) / 1000);
        if (reply.status >= 500)
          opts.logger.warn({ route, method, status: reply.status }, "request not served");
        else opts.logger.debug({ route, method, status: reply.status }, "request served");
      })
      .catch((err: unknown) => {
        // Writing failed (the client went away): nothing left to answer.
        opts.logger.debug({ err, route, method }, "response not written");
        res.destroy();
      });
  };
}

function serverSpan(name: string, route: string, method: string, parent: Context): Span {
  const span = tracer.startSpan(
    name,
    { kind: SpanKind.SERVER, attributes: { "http.request.method": method, "http.route": route } },
    parent,
  );
  if (isSpanContextValid(span.spanContext())) return span;
  // No tracing SDK is registered (telemetry off): the no-op span has an all-zero trace
  // id. Invent a valid context so the traceparent sent downstream and the traceId
  // returned to the client still tie one transfer's events together.
  return trace.wrapSpanContext({
    traceId: randomBytes(16).toString("hex"),
    spanId: randomBytes(8).toString("hex"),
    traceFlags: TraceFlags.SAMPLED,
  });
}

function write(res: ServerResponse, method: string, reply: Reply): void {
  const payload = reply.text
    ? reply.text.content
    : reply.body === undefined
      ? ""
      : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    "Content-Type": reply.text ? reply.text.contentType : "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(payload),
    "Cache-Control": "no-store",
    ...reply.headers,
  });
  res.end(method === "HEAD" ? undefined : payload);
}
