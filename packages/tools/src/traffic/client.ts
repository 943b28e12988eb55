import { setTimeout as sleep } from "node:timers/promises";

/** The clock of every traffic timestamp: ms since the epoch, with sub-ms resolution. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** One answer of the gateway, as the traffic keeps it. */
export interface Answer {
  readonly status: number | "error";
  readonly transferId?: string;
  readonly eventId?: string;
  readonly retryAfterMs?: number;
  readonly shed?: boolean;
}

/** An answer that accepted the transfer: 202, or 200 replaying an earlier 202. */
export const accepting = (a: Answer): boolean =>
  (a.status === 202 || a.status === 200) && a.transferId !== undefined;

/**
 * Answers a client may always send again with the same key and body: a network error or
 * client timeout, 503 (shed load, an outage), 408 (the request was too slow) and 409 with
 * Retry-After (the same key still in flight).
 */
export const retryable = (a: Answer): boolean =>
  a.status === "error" ||
  a.status === 503 ||
  a.status === 408 ||
  (a.status === 409 && a.retryAfterMs !== undefined);

/** What every request counted. */
export interface ClientCounts {
  readonly requests: number;
  /** Requests by answer: status code, or `error` (network error or client timeout). */
  readonly byStatus: Readonly<Record<string, number>>;
  /** The `error` answers by cause (`ECONNREFUSED`, `TimeoutError`, …). */
  readonly errors: Readonly<Record<string, number>>;
  /** Resends after a retryable answer. */
  readonly retries: number;
  /** 503 answers carrying Retry-After (shed load or an outage the gateway noticed). */
  readonly retryAfter503: number;
  /** 503 answers whose body says the gateway shed load (`overloaded`). */
  readonly shed: number;
  /** Of those, answers without Retry-After (the contract promises one). */
  readonly shedWithoutRetryAfter: number;
}

/** Options of {@link GatewayClient}. */
export interface GatewayClientOptions {
  readonly gatewayUrl: string;
  /** HTTP requests open at once; more wait for a slot (more would only queue inside the gateway). */
  readonly maxRequests: number;
  /** Client timeout of one request. */
  readonly requestTimeoutMs: number;
  /** How long one request keeps being retried before the client gives up on it. */
  readonly retryDeadlineMs: number;
}

/**
 * `POST /v1/transfers` as a well-behaved client sends it: bounded requests in flight,
 * retries with the same Idempotency-Key and body on a retryable answer (Retry-After when
 * given, capped at 5 s, else exponential up to 2 s; no random draw, so a seeded run's
 * choices do not depend on timing), every answer counted.
 */
export class GatewayClient {
  readonly #o: GatewayClientOptions;
  readonly #url: string;
  readonly #byStatus: Record<string, number> = {};
  readonly #errors: Record<string, number> = {};
  readonly #waiting: (() => void)[] = [];
  #open = 0;
  #requests = 0;
  #retries = 0;
  #retryAfter503 = 0;
  #shed = 0;
  #shedBare = 0;
  #lastAccept = 0;

  constructor(o: GatewayClientOptions) {
    this.#o = o;
    this.#url = `${o.gatewayUrl.replace(/\/$/, "")}/v1/transfers`;
  }

  counts(): ClientCounts {
    return {
      requests: this.#requests,
      byStatus: { ...this.#byStatus },
      errors: { ...this.#errors },
      retries: this.#retries,
      retryAfter503: this.#retryAfter503,
      shed: this.#shed,
      shedWithoutRetryAfter: this.#shedBare,
    };
  }

  /** Time of the last accepting answer (0 before any). */
  lastAcceptMs(): number {
    return this.#lastAccept;
  }

  /** Posts until the answer is final or the retry deadline passes; the last answer. */
  async postUntilFinal(apiKey: string, key: string | undefined, body: unknown): Promise<Answer> {
    const deadline = Date.now() + this.#o.retryDeadlineMs;
    for (let attempt = 1; ; attempt++) {
      const a = await this.#post(apiKey, key, body);
      if (!retryable(a) || Date.now() >= deadline) return a;
      this.#retries++;
      const wait = a.retryAfterMs ?? Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }

  /** One request per slot; a freed slot goes straight to the next waiter. */
  async #post(apiKey: string, key: string | undefined, body: unknown): Promise<Answer> {
    if (this.#open >= this.#o.maxRequests) await new Promise<void>((r) => this.#waiting.push(r));
    else this.#open++;
    try {
      return await this.#request(apiKey, key, body);
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#open--;
    }
  }

  async #request(apiKey: string, key: string | undefined, body: unknown): Promise<Answer> {
    this.#requests++;
    try {
      const res = await fetch(this.#url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${apiKey}`,
          ...(key !== undefined ? { "idempotency-key": key } : {}),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
      });
      const text = await res.text();
      this.#byStatus[res.status] = (this.#byStatus[res.status] ?? 0) + 1;
      let parsed: { transferId?: unknown; eventId?: unknown; error?: unknown; detail?: unknown } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        // an answer without JSON carries no ids
      }
      const ra = Number(res.headers.get("retry-after"));
      const retryAfterMs = Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 5000) : undefined;
      const shed = res.status === 503 && /overload/i.test(`${parsed.error ?? ""} ${parsed.detail ?? ""}`);
      if (res.status === 503 && retryAfterMs !== undefined) this.#retryAfter503++;
      if (shed) this.#shed++;
      if (shed && retryAfterMs === undefined) this.#shedBare++;
      const transferId = typeof parsed.transferId === "string" ? parsed.transferId : undefined;
      if ((res.status === 202 || res.status === 200) && transferId) this.#lastAccept = nowMs();
      return {
        status: res.status,
        ...(transferId ? { transferId } : {}),
        ...(typeof parsed.eventId === "string" ? { eventId: parsed.eventId } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        ...(shed ? { shed } : {}),
      };
    } catch (err) {
      this.#byStatus.error = (this.#byStatus.error ?? 0) + 1;
      const cause = errorCause(err);
      this.#errors[cause] = (this.#errors[cause] ?? 0) + 1;
      return { status: "error" };
    }
  }
}

/** A short name for why a request failed: the system error code, or the error's name. */
function errorCause(err: unknown): string {
  // A timeout is a DOMException (name TimeoutError, numeric code 23); fetch wraps socket
  // errors in a TypeError whose cause carries the system code (ECONNREFUSED, …).
  const e = err as { name?: string; code?: unknown; cause?: { code?: unknown; name?: string } };
  const code = [e.cause?.code, e.code].find((c) => typeof c === "string") as string | undefined;
  return code ?? (e.name === "TypeError" ? e.cause?.name : e.name) ?? "error";
}
