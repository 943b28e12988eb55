import {
  type Context,
  context,
  injectContext,
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

/** The bank's final word on an order: paid, or positively refused. */
export type BankOutcome =
  | { readonly paid: true; readonly reference: string }
  | { readonly paid: false; readonly status: number; readonly reason: string };

/** What the bank says of a key when asked (`GET /v1/payouts/{key}`). */
export type BankStatus =
  | { readonly state: "decided"; readonly outcome: BankOutcome }
  | { readonly state: "processing" }
  /** Never received, or forgotten after the bank's retention: nothing tells which. */
  | { readonly state: "unknown" };

/** The name breakers and metrics know the bank by (TransientError.dependency). */
export const BANK = "bank";

/**
 * The external bank's payout API, as the worst real payment APIs behave: a key is paid at
 * most once while the bank remembers it; a request for a key still being processed answers
 * 409; an answer may arrive after the client gave up (the bank acted all the same).
 */
export interface BankClient {
  /**
   * `POST /v1/payouts` with `Idempotency-Key: key`. Resolves only with a final answer: 2xx
   * with a reference (paid) or 422 (a refusal).
   * @throws TransientError for everything else, which never means "refused": 409 (the key
   *   is in flight, or was used with another body), other 4xx, a 2xx without a reference
   *   (retried, then parked), and, with `dependency: "bank"` for the stage's circuit
   *   breaker, 5xx, 408, 429, a timeout or an unreachable bank.
   */
  pay(order: PayoutOrder, key: string, opts?: CallOptions): Promise<BankOutcome>;
  /** `GET /v1/payouts/{key}`. @throws TransientError (dependency bank) when the bank does not answer. */
  status(key: string, opts?: CallOptions): Promise<BankStatus>;
  /** Resolves when the bank answers at all (any status below 500): the circuit breaker's probe. */
  probe(): Promise<void>;
}

/** How one call is bounded and traced. */
export interface CallOptions {
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

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** A bank client over Node's global fetch. */
export function createBankClient(opts: BankClientOptions): BankClient {
  const base = new URL("/v1/payouts", opts.url).toString();

  async function call(
    method: "GET" | "POST",
    url: string,
    init: { key?: string; body?: string },
    { signal, parent }: CallOptions,
  ): Promise<Answer> {
    const target = new URL(url);
    const span: Span = tracer.startSpan(
      method,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "http.request.method": method,
          "url.full": url,
          "server.address": target.hostname,
          "server.port": Number(target.port || (target.protocol === "https:" ? 443 : 80)),
        },
      },
      parent,
    );
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const bound = signal ? AbortSignal.any([timeout, signal]) : timeout;
    const headers = new Headers({ "content-type": "application/json" });
    if (init.key) headers.set("idempotency-key", init.key);
    injectContext(trace.setSpan(parent ?? context.active(), span), headers);
    try {
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, { method, headers, ...(init.body ? { body: init.body } : {}), signal: bound });
        text = await res.text();
      } catch (err) {
        const why = timeout.aborted
          ? `timed out after ${opts.timeoutMs} ms`
          : signal?.aborted
            ? "call aborted by the runtime"
            : "unreachable";
        throw new TransientError(`bank ${why}`, { cause: err, dependency: BANK });
      }
      span.setAttribute("http.response.status_code", res.status);
      // 408 and 429 say "not now", 5xx "not working": the bank as a dependency is down.
      if (res.status >= 500 || res.status === 408 || res.status === 429)
        throw new TransientError(`bank answered ${res.status}`, { dependency: BANK });
      return { status: res.status, body: parseObject(text) };
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  }

  return {
    async pay(order, key, o = {}) {
      const a = await call(
        "POST",
        base,
        {
          key,
          body: JSON.stringify({
            transferId: order.transferId,
            account: order.account,
            amountMinor: order.amountMinor,
            currency: order.currency,
          }),
        },
        o,
      );
      const outcome = outcomeOf(a);
      if (outcome) return outcome;
      if (a.status === 409)
        throw new TransientError(
          `bank answered 409 (${describe(a) || "key in flight"}): payout in progress`,
          {
            retryAfterMs: 250,
          },
        );
      throw new TransientError(
        `bank answered ${a.status}${describe(a) ? ` (${describe(a)})` : ""}: not a final answer; retrying`,
      );
    },

    async status(key, o = {}) {
      const a = await call("GET", `${base}/${encodeURIComponent(key)}`, {}, o);
      if (a.status === 404) return { state: "unknown" };
      if (a.status === 200 && a.body.status === "processing") return { state: "processing" };
      if (a.status === 200 && a.body.status === "paid" && typeof a.body.reference === "string")
        return { state: "decided", outcome: { paid: true, reference: a.body.reference } };
      if (a.status === 200 && a.body.status === "refused")
        return {
          state: "decided",
          outcome: { paid: false, status: 422, reason: refusalReason(a.body) },
        };
      throw new TransientError(`bank status of ${key} answered ${a.status}: not understood; retrying`);
    },

    async probe() {
      await call("GET", `${base}/jetmesh-probe`, {}, {});
    },
  };
}

/** A final answer, or undefined: 2xx with a reference (paid), 422 (refused). */
function outcomeOf(a: Answer): BankOutcome | undefined {
  if (
    a.status >= 200 &&
    a.status < 300 &&
    typeof a.body.reference === "string" &&
    a.body.reference.length > 0
  )
    return { paid: true, reference: a.body.reference };
  if (a.status === 422) return { paid: false, status: 422, reason: refusalReason(a.body) };
  return undefined;
}

function refusalReason(body: Record<string, unknown>): string {
  const said = [body.error, body.reason].filter((s): s is string => typeof s === "string" && s.length > 0);
  return said.length ? said.join(": ") : "refused by the bank";
}

function describe(a: Answer): string {
  return [a.body.code, a.body.error].filter((s) => typeof s === "string" && s.length > 0).join(": ");
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
