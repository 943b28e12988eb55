import {
  type Context,
  context,
  injectContext,
  PermanentError,
  SpanKind,
  type Span,
  SpanStatusCode,
  TransientError,
  trace,
  tracer,
} from "@jetmesh/stage";

/** What the payout stage asks the bank to pay. */
export interface PayoutOrder {
  readonly transferId: string;
  /** The destination account as jetmesh names it (`bank:…`). */
  readonly account: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/** The bank's final word on an order: paid, or refused for good. */
export type BankOutcome =
  | { readonly paid: true; readonly reference: string }
  | { readonly paid: false; readonly status: number; readonly reason: string };

/** The external bank's payout API. */
export interface BankClient {
  /**
   * `POST /v1/payouts` with `Idempotency-Key: idempotencyKey`: the bank pays a key at
   * most once and answers a repeated key with its first answer, so calling this again
   * after a crash or a timeout is safe.
   * @throws TransientError on a timeout, a network error, a 5xx, 408 or 429: nothing
   *   final is known and the same call may be retried.
   */
  pay(order: PayoutOrder, idempotencyKey: string, opts?: PayOptions): Promise<BankOutcome>;
}

/** How one call is bounded and traced. */
export interface PayOptions {
  /** Aborts the call (the runtime's handler signal). */
  readonly signal?: AbortSignal;
  /**
   * Parent of the call's CLIENT span (the consumer span's context, `ctx.traceContext`);
   * the span's context also goes to the bank as `traceparent`.
   */
  readonly parent?: Context;
}

export interface BankClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:9090`. */
  readonly url: string;
  /** Bound of one call, answer body included. */
  readonly timeoutMs: number;
}

/** A bank client over Node's global fetch. */
export function createBankClient(opts: BankClientOptions): BankClient {
  const url = new URL("/v1/payouts", opts.url);
  const endpoint = url.toString();
  return {
    async pay(order, idempotencyKey, { signal, parent } = {}) {
      const span = tracer.startSpan(
        "POST",
        {
          kind: SpanKind.CLIENT,
          attributes: {
            "http.request.method": "POST",
            "url.full": endpoint,
            "server.address": url.hostname,
            "server.port": Number(url.port || (url.protocol === "https:" ? 443 : 80)),
          },
        },
        parent,
      );
      try {
        const outcome = await call(order, idempotencyKey, signal, span, parent ?? context.active());
        if (!outcome.paid) span.setAttribute("jetmesh.bank.refused", outcome.reason);
        return outcome;
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  };

  async function call(
    order: PayoutOrder,
    idempotencyKey: string,
    signal: AbortSignal | undefined,
    span: Span,
    parent: Context,
  ): Promise<BankOutcome> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const bound = signal ? AbortSignal.any([timeout, signal]) : timeout;
    let status: number;
    let text: string;
    const headers = new Headers({ "content-type": "application/json", "idempotency-key": idempotencyKey });
    injectContext(trace.setSpan(parent, span), headers);
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers,
        body: JSON.stringify({
          transferId: order.transferId,
          account: order.account,
          amountMinor: order.amountMinor,
          currency: order.currency,
        }),
        signal: bound,
      });
      status = res.status;
      span.setAttribute("http.response.status_code", status);
      text = await res.text();
    } catch (err) {
      const why = timeout.aborted
        ? `timed out after ${opts.timeoutMs} ms`
        : signal?.aborted
          ? "call aborted by the runtime"
          : "unreachable";
      throw new TransientError(`bank ${why}`, { cause: err });
    }
    // 408 and 429 say "not now", not "no": retry them like a 5xx.
    if (status >= 500 || status === 408 || status === 429) {
      throw new TransientError(`bank answered ${status}`);
    }
    const body = parseObject(text);
    if (status >= 200 && status < 300) {
      if (typeof body.reference !== "string" || body.reference.length === 0) {
        // The bank broke its contract and a retry gets the same stored answer: park it
        // for an operator instead of retrying.
        throw new PermanentError(`bank answered ${status} without a reference`);
      }
      return { paid: true, reference: body.reference };
    }
    const said = [body.error, body.reason].filter((s): s is string => typeof s === "string" && s.length > 0);
    return { paid: false, status, reason: said.length ? said.join(": ") : `bank answered ${status}` };
  }
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
