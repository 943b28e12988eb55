import type { Prng } from "@jetmesh/testkit";
import {
  AnswerBodies,
  type Bank,
  type BankBehaviour,
  createBank,
  parsePayoutRequest,
} from "@jetmesh/bank-sim";

/** The host the payout stage calls in a simulated world; any other URL is refused. */
export const SIM_BANK_URL = "http://bank.sim";

/** A simulated bank behind a `fetch` that the payout's real bank client calls. */
export interface SimBank {
  /** bank-sim's own model: idempotency keys, 409 while processing, slow answers, forgotten keys. */
  readonly bank: Bank;
  /** A drop-in for the global fetch, answering {@link SIM_BANK_URL} on virtual time. */
  readonly fetch: typeof globalThis.fetch;
  /** Cancels the bank's timers. */
  close(): void;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** Rejects like fetch does when the caller's signal aborts (timeout or the runtime's abort). */
function whenAborted(signal: AbortSignal | null | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return;
    const fail = () => reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}

/**
 * bank-sim's bank (the same decisions, key states and behaviours as the HTTP simulator the
 * mesh runs) answering `POST /v1/payouts` and `GET /v1/payouts/{key}` through a fetch shim:
 * each request pays a network delay drawn from `prng` each way, the bank decides on virtual
 * time, and a caller whose signal aborts first gets fetch's rejection while the bank goes on
 * (the ambiguous outcome an idempotency key exists for).
 */
export function createSimBank(o: {
  prng: Prng;
  behaviour: Partial<BankBehaviour>;
  /** One-way network delay in ms; default 0 to 5. */
  networkMs?: () => number;
  /**
   * Share of requests held on their way in for 1.6 to 3 s: past the payout's timeout, so the
   * retry's status query finds no key yet and the retry meets the late first request (409).
   */
  lateRate?: number;
  /**
   * How long a key that started processing stays invisible to the status query (404), as an
   * eventually consistent read side would: a retry that asked and was told "unknown" sends
   * the payout again and meets 409 "in use". Default 0.
   */
  statusLagMs?: number;
}): SimBank {
  const bank = createBank({ seed: o.prng.seed, behaviour: o.behaviour });
  const network = o.networkMs ?? (() => o.prng.int(0, 5));
  const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  /** When each key was first received, for the status query's lag. */
  const firstSeen = new Map<string, number>();

  async function serve(url: URL, init: RequestInit | undefined): Promise<Response> {
    const method = init?.method ?? "GET";
    const status = /^\/v1\/payouts\/([^/]+)$/.exec(url.pathname)?.[1];
    if (method === "GET" && status !== undefined) {
      bank.count("statusQueries");
      if (bank.outage().active) return json(503, AnswerBodies.unavailable);
      const key = decodeURIComponent(status);
      const s = bank.status(key);
      const hidden =
        s?.status === "processing" && Date.now() - (firstSeen.get(key) ?? 0) < (o.statusLagMs ?? 0);
      return s === undefined || hidden ? json(404, { error: "unknown idempotency key" }) : json(200, s);
    }
    if (method !== "POST" || url.pathname !== "/v1/payouts")
      return json(404, { error: `no route ${url.pathname}` });
    bank.count("requests");
    if (bank.outage().active) {
      bank.count("outageRejections");
      return json(503, AnswerBodies.unavailable);
    }
    const key = new Headers(init?.headers).get("idempotency-key");
    if (!key)
      return json(400, {
        error: "invalid request",
        issues: [{ field: "Idempotency-Key", rule: "header required" }],
      });
    const { request, issues } = parsePayoutRequest(JSON.parse(String(init?.body ?? "null")));
    if (!request) return json(400, { error: "invalid request", issues });
    if (!firstSeen.has(key)) firstSeen.set(key, Date.now());
    const answer = await bank.answer(key, request);
    const { latencyMs, slowMs } = bank.behaviour();
    const delayMs = latencyMs + (answer.slow ? slowMs : 0);
    if (delayMs > 0) await wait(delayMs);
    return json(answer.status, answer.body, answer.replayed ? { "idempotent-replayed": "true" } : {});
  }

  const shim = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.origin !== SIM_BANK_URL)
      throw new TypeError(`fetch failed: ${url.origin} is not in the simulated world`);
    const signal = init?.signal;
    const late = o.lateRate !== undefined && o.prng.chance(o.lateRate);
    const call = (async () => {
      await wait(late ? o.prng.int(1600, 3000) : network());
      const res = await serve(url, init);
      await wait(network());
      return res;
    })();
    const answered = await Promise.race([call, whenAborted(signal)]).catch((err: unknown) => {
      // The bank still decides (and may pay); only the caller stopped listening.
      void call.then(() => bank.count("answersAfterClientLeft")).catch(() => {});
      throw err;
    });
    return answered;
  }) as typeof globalThis.fetch;

  return { bank, fetch: shim, close: () => bank.close() };
}
