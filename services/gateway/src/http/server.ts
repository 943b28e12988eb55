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
import { ClientAbortError } from "./body.ts";
import type { HttpMetrics } from "./metrics.ts";
import { HttpError, json, type Reply } from "./reply.ts";
import { createRouter, type Route } from "./router.ts";
import type { Principal } from "../auth/clients.ts";

const tracer = trace.getTracer("@jetmesh/gateway");

/** Route label of requests that matched no route (one bounded label for all of them). */
export const UNMATCHED_ROUTE = "unmatched";

/**
 * Status counted (never sent) for a request whose client went away before it was read: the
 * nginx convention, so client aborts are neither 2xx nor 5xx on dashboards.
 */
export const CLIENT_CLOSED = 499;

/** Decides whether a request may reach a non-public route, and with which client. */
export type RequestGuard = (
  req: IncomingMessage,
) => Promise<
  | { readonly ok: true; readonly principal: Principal; readonly headers?: Record<string, string> }
  | { readonly ok: false; readonly reply: Reply }
>;

export interface RequestListenerOptions {
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly metrics: HttpMetrics;
  /** Authenticates (and rate-limits) requests to non-public routes; without it they get 401. */
  readonly guard?: RequestGuard;
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

    let extraHeaders: Record<string, string> | undefined;
    const run = async (): Promise<Reply> => {
      if (m.kind === "none") return json(404, { error: "not found" });
      if (m.kind === "method") {
        return json(405, { error: "method not allowed" }, { Allow: m.allow.join(", ") });
      }
      if (m.route.public) return m.route.handle({ req, url, params: m.params, span, context: ctx });
      if (!opts.guard) return json(401, { error: "unauthorized", detail: "no client may call this port" });
      const admitted = await opts.guard(req);
      if (!admitted.ok) return admitted.reply;
      extraHeaders = admitted.headers;
      span.setAttribute("jetmesh.client_id", admitted.principal.clientId);
      return m.route.handle({
        req,
        url,
        params: m.params,
        span,
        context: ctx,
        principal: admitted.principal,
      });
    };
    // The span's context reaches routes explicitly (RouteRequest.context): running each
    // request inside `context.with` would turn on AsyncLocalStorage's promise hooks, a
    // cost on every promise of the process (bench/NOTES.md).
    run()
      .catch((err: unknown) => {
        if (err instanceof HttpError) return err.reply;
        if (err instanceof ClientAbortError) return { status: CLIENT_CLOSED } satisfies Reply;
        span.recordException(err as Error);
        opts.logger.error({ err, route, method }, "request failed");
        return json(500, { error: "internal error" });
      })
      .then((reply) => {
        if (reply.status === CLIENT_CLOSED) {
          // Nobody to answer: count it, say so once, close what is left of the socket.
          span.setAttribute("http.response.status_code", CLIENT_CLOSED);
          span.end();
          opts.metrics.observe(route, method, CLIENT_CLOSED, (performance.now() - started) / 1000);
          opts.logger.info({ route, method }, "client aborted the request");
          res.destroy();
          return;
        }
        write(
          res,
          method,
          extraHeaders ? { ...reply, headers: { ...extraHeaders, ...reply.headers } } : reply,
        );
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
