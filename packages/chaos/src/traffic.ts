import { setTimeout as sleep } from "node:timers/promises";
import type { Prng } from "@jetmesh/testkit";

/**
 * Steady client traffic for a chaos run: a new transfer every 1/rate s over the gateway's
 * real HTTP API, each one retried with its Idempotency-Key (and the same body) until the
 * answer is final, as the gateway's contract says a client may always do. Every choice
 * (accounts, amounts, kinds, which requests are sent more than once and how) is drawn from
 * the scenario's PRNG when the transfer is created, in order, so a seed replays the same
 * requests; timing (backoffs) never draws from it.
 *
 * Unlike the mesh's demo traffic (fixed count, funding phase first) this one runs until
 * told to stop, sends up to three copies of a request, and keeps the answers a chaos
 * report needs: 503s with Retry-After (load shed or outage), keys given up on, and when
 * each 202 arrived.
 */

/** What one transfer was meant to exercise. */
export type ChaosTransferKind =
  | "funding"
  | "transfer"
  | "payout"
  | "refused-payout"
  | "rule-rejected"
  | "large"
  | "invalid";

/** A transfer the gateway accepted (202, or 200 replaying an earlier 202). */
export interface ChaosAccepted {
  readonly key: string;
  readonly transferId: string;
  readonly kind: ChaosTransferKind;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly acceptedAtMs: number;
}

/** Options of {@link startTraffic}. */
export interface ChaosTrafficOptions {
  readonly gatewayUrl: string;
  /** API keys (MeshHandle.apiKeys): fundings from `external` go as the operator, the rest as the customer. */
  readonly apiKeys: { readonly operator: string; readonly customer: string };
  /** Draws every choice; fork one for the traffic. */
  readonly prng: Prng;
  /** New transfers per second. */
  readonly rate: number;
  /** Prefix of every Idempotency-Key. */
  readonly runId: string;
  /** Customer accounts `acc-0…` (default 20); each is funded first. */
  readonly accounts?: number;
  readonly refusedBankAccounts: readonly string[];
  readonly bankAccounts?: readonly string[];
  /** Every request sent three times, some copies concurrently (the duplicate storm). */
  readonly storm?: boolean;
  /** Outside a storm, share of requests sent twice with the same key (default 0.05). */
  readonly duplicateShare?: number;
  /** Share of transfers paid out to a `bank:` account the bank pays (default 0.05). */
  readonly payoutShare?: number;
  /** Share paid out to an account the bank refuses (default 0.03; the ledger reverses them). */
  readonly refusedShare?: number;
  /** Transfers in progress (sending or waiting to retry) at most; the pacing waits beyond (default 512). */
  readonly maxInFlight?: number;
  /** HTTP requests open at once (default 64): more would only queue inside the gateway and time out. */
  readonly maxRequests?: number;
  /** How long one copy keeps retrying before the client gives up on it (default 90 s). */
  readonly retryDeadlineMs?: number;
}

/** How the copies of one request were sent. */
export type CopyPattern = "single" | "sequential" | "concurrent" | "pair-then-one";

/** The client's view of a run. */
export interface TrafficStats {
  /** Transfers created (each may be sent several times). */
  readonly transfers: number;
  /** HTTP requests made, retries and copies included. */
  readonly requests: number;
  /** Requests by answer: status code, or `error` (network error or client timeout). */
  readonly byStatus: Readonly<Record<string, number>>;
  /** The `error` answers by cause (`ECONNREFUSED`, `TimeoutError`, …). */
  readonly errors: Readonly<Record<string, number>>;
  /** 503 answers carrying Retry-After (shed load or an outage the gateway noticed). */
  readonly retryAfter503: number;
  /** 503 answers whose body says the gateway shed load (`overloaded`). */
  readonly shed: number;
  /** Of those, answers without Retry-After (the contract promises one). */
  readonly shedWithoutRetryAfter: number;
  /** Resends after 503, 409 in progress or a network error. */
  readonly retries: number;
  /** Extra copies sent on purpose (same key, same body), by how. */
  readonly copies: Readonly<Record<CopyPattern, number>>;
  /** Transfers accepted (202/200), by kind. */
  readonly acceptedByKind: Readonly<Record<string, number>>;
  readonly invalid: { readonly sent: number; readonly answered400: number };
  /** Keys whose accepting answers named different transfers: the gateway broke idempotency. */
  readonly mismatched: readonly string[];
  /** Keys without an accepting answer after every retry, with the last answers. */
  readonly givenUp: readonly string[];
  /** Final answers nobody expects (409 conflict on the same body, 5xx other than 503, 400 on a valid body). */
  readonly unexpected: readonly string[];
}

/** A running traffic generator. */
export interface Traffic {
  /** Accepted transfers so far. */
  accepted(): readonly ChaosAccepted[];
  /** Time of the last 202/200, ms since the epoch (0 before any). */
  lastAcceptMs(): number;
  stats(): TrafficStats;
  /**
   * Stops creating transfers, lets every request in flight reach its final answer (each
   * bounded by its retry deadline), then retries once more every key given up on, so the
   * client knows for certain what was accepted. Resolves with the final stats.
   */
  stop(): Promise<TrafficStats>;
}

interface Answer {
  readonly status: number | "error";
  readonly transferId?: string;
  readonly retryAfterMs?: number;
  readonly shed?: boolean;
}

interface Planned {
  readonly key: string;
  readonly kind: ChaosTransferKind;
  readonly body: unknown;
  readonly pattern: CopyPattern;
  readonly copies: number;
}

const accepting = (a: Answer): boolean =>
  (a.status === 202 || a.status === 200) && a.transferId !== undefined;

/** Starts sending at once; see {@link Traffic.stop}. */
export function startTraffic(o: ChaosTrafficOptions): Traffic {
  return new TrafficGenerator(o);
}

class TrafficGenerator implements Traffic {
  readonly #o: ChaosTrafficOptions;
  readonly #base: string;
  readonly #accounts: string[];
  readonly #banks: readonly string[];
  readonly #payoutUpTo: number;
  readonly #refusedUpTo: number;
  readonly #accepted = new Map<string, ChaosAccepted>();
  readonly #running = new Set<Promise<void>>();
  readonly #byStatus: Record<string, number> = {};
  readonly #errors: Record<string, number> = {};
  readonly #copies: Record<CopyPattern, number> = {
    single: 0,
    sequential: 0,
    concurrent: 0,
    "pair-then-one": 0,
  };
  readonly #acceptedByKind: Record<string, number> = {};
  readonly #mismatched: string[] = [];
  readonly #givenUp = new Map<string, { plan: Planned; last: string }>();
  readonly #unexpected: string[] = [];
  readonly #invalid = { sent: 0, answered400: 0 };
  #requests = 0;
  #retries = 0;
  #retryAfter503 = 0;
  #shed = 0;
  #shedBare = 0;
  #created = 0;
  #lastAccept = 0;
  #stopping = false;
  #open = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #loop: Promise<void>;
  readonly #wake = new AbortController();

  constructor(o: ChaosTrafficOptions) {
    if (!(o.rate > 0)) throw new RangeError(`rate must be positive, got ${o.rate}`);
    this.#o = o;
    this.#base = o.gatewayUrl.replace(/\/$/, "");
    this.#accounts = Array.from({ length: o.accounts ?? 20 }, (_, i) => `acc-${i}`);
    this.#banks = o.bankAccounts ?? ["bank:acme-1", "bank:acme-2", "bank:acme-3"];
    // The kinds' bands on one draw in [0, 1): the defaults keep every seed's traffic as it was.
    this.#payoutUpTo = 0.1 + (o.payoutShare ?? 0.05);
    this.#refusedUpTo = this.#payoutUpTo + (o.refusedShare ?? 0.03);
    if (this.#refusedUpTo + 0.01 > 1) throw new RangeError("payoutShare + refusedShare must stay under 0.89");
    this.#loop = this.#pace();
  }

  accepted(): readonly ChaosAccepted[] {
    return [...this.#accepted.values()];
  }

  lastAcceptMs(): number {
    return this.#lastAccept;
  }

  stats(): TrafficStats {
    return {
      transfers: this.#created,
      requests: this.#requests,
      byStatus: { ...this.#byStatus },
      errors: { ...this.#errors },
      retryAfter503: this.#retryAfter503,
      shed: this.#shed,
      shedWithoutRetryAfter: this.#shedBare,
      retries: this.#retries,
      copies: { ...this.#copies },
      acceptedByKind: { ...this.#acceptedByKind },
      invalid: { ...this.#invalid },
      mismatched: [...this.#mismatched],
      givenUp: [...this.#givenUp].map(([k, v]) => `${k} (${v.last})`),
      unexpected: [...this.#unexpected],
    };
  }

  async stop(): Promise<TrafficStats> {
    this.#stopping = true;
    this.#wake.abort();
    await this.#loop;
    await Promise.all([...this.#running]);
    // The client makes sure: a key given up on during an outage may still have been
    // stored (a 503 after a publish timeout); retrying it now settles its fate.
    const open = [...this.#givenUp.values()];
    this.#givenUp.clear();
    await Promise.all(open.map(({ plan }) => this.#sendCopies(plan, "single", 1)));
    return this.stats();
  }

  /** Creates a transfer every 1/rate s; never more than maxInFlight transfers in progress. */
  async #pace(): Promise<void> {
    const maxInFlight = this.#o.maxInFlight ?? 512;
    const gapMs = 1000 / this.#o.rate;
    let due = Date.now();
    for (let i = 0; !this.#stopping; i++) {
      // After a stall (every slot taken during an outage) the rate resumes; no catch-up burst.
      due = Math.max(due + gapMs, Date.now() - 1000);
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal: this.#wake.signal }).catch(() => {});
      // Bounded: waits for a slot instead of queueing requests in memory.
      while (!this.#stopping && this.#running.size >= maxInFlight) await Promise.race(this.#running);
      if (this.#stopping) break;
      const plan = this.#plan(i);
      this.#created++;
      const p = this.#send(plan).finally(() => this.#running.delete(p));
      this.#running.add(p);
    }
  }

  /** Every random draw of transfer i, in a fixed order. */
  #plan(i: number): Planned {
    const r = this.#o.prng;
    const key = `${this.#o.runId}-${i}`;
    // Storm: three copies; otherwise a few requests twice.
    let pattern: CopyPattern = "single";
    let copies = 1;
    if (this.#o.storm) {
      copies = 3;
      pattern = r.pick<CopyPattern>(["sequential", "concurrent", "pair-then-one"]);
    } else if (r.chance(this.#o.duplicateShare ?? 0.05)) {
      copies = 2;
      pattern = r.chance(0.5) ? "concurrent" : "sequential";
    }
    // Each account is funded first, so most transfers have money to move.
    if (i < this.#accounts.length) {
      const to = this.#accounts[i] as string;
      return {
        key,
        kind: "funding",
        pattern,
        copies,
        body: { from: "external", to, amountMinor: 1_000_000, currency: "EUR" },
      };
    }
    const x = r.next();
    const from = r.pick(this.#accounts);
    let to = r.pick(this.#accounts.filter((a) => a !== from));
    let amountMinor = r.int(100, 50_000);
    let currency = "EUR";
    let kind: ChaosTransferKind = "transfer";
    if (x < 0.01) {
      kind = "invalid";
      return { key, kind, pattern, copies, body: { from, to, amountMinor: "12.50", currency } };
    }
    if (x < 0.08) {
      kind = "funding";
      return {
        key,
        kind,
        pattern,
        copies,
        body: { from: "external", to: from, amountMinor: r.int(10_000, 500_000), currency },
      };
    }
    if (x < 0.1) {
      kind = "rule-rejected";
      const how = r.int(0, 2);
      if (how === 0) currency = "XXX";
      else if (how === 1) to = from;
      else amountMinor = 0;
    } else if (x < this.#payoutUpTo) {
      kind = "payout";
      to = r.pick(this.#banks);
      amountMinor = r.int(100, 20_000);
    } else if (x < this.#refusedUpTo && this.#o.refusedBankAccounts.length > 0) {
      kind = "refused-payout";
      to = r.pick(this.#o.refusedBankAccounts);
      amountMinor = r.int(100, 20_000);
    } else if (x < this.#refusedUpTo + 0.01) {
      kind = "large";
      amountMinor = 6_000_000;
    }
    return { key, kind, pattern, copies, body: { from, to, amountMinor, currency } };
  }

  async #send(plan: Planned): Promise<void> {
    if (plan.kind === "invalid") {
      this.#invalid.sent++;
      const a = await this.#postUntilFinal(plan.key, plan.body);
      if (a.status === 400) this.#invalid.answered400++;
      else this.#unexpected.push(`${plan.key} (invalid body): ${a.status}`);
      return;
    }
    await this.#sendCopies(plan, plan.pattern, plan.copies);
  }

  async #sendCopies(plan: Planned, pattern: CopyPattern, copies: number): Promise<void> {
    if (copies > 1) this.#copies[pattern] += copies - 1;
    const one = () => this.#postUntilFinal(plan.key, plan.body);
    let answers: Answer[];
    if (pattern === "concurrent") answers = await Promise.all(Array.from({ length: copies }, one));
    else if (pattern === "pair-then-one") answers = [...(await Promise.all([one(), one()])), await one()];
    else {
      answers = [];
      for (let c = 0; c < copies; c++) answers.push(await one());
    }
    this.#record(plan, answers);
  }

  #record(plan: Planned, answers: readonly Answer[]): void {
    const ok = answers.filter(accepting);
    if (ok.length === 0) {
      const last = answers.map((a) => a.status).join("/");
      const finalOther = answers.find((a) => a.status !== 503 && a.status !== "error" && a.status !== 409);
      if (finalOther) this.#unexpected.push(`${plan.key}: ${last}`);
      else this.#givenUp.set(plan.key, { plan, last });
      return;
    }
    const first = ok[0] as Answer;
    if (ok.some((a) => a.transferId !== first.transferId))
      this.#mismatched.push(`${plan.key}: ${ok.map((a) => a.transferId).join(" ≠ ")}`);
    if (this.#accepted.has(plan.key)) return;
    const body = plan.body as { from: string; to: string; amountMinor: number; currency: string };
    this.#accepted.set(plan.key, {
      key: plan.key,
      transferId: first.transferId as string,
      kind: plan.kind,
      from: body.from,
      to: body.to,
      amountMinor: body.amountMinor,
      currency: body.currency,
      acceptedAtMs: Date.now(),
    });
    this.#acceptedByKind[plan.kind] = (this.#acceptedByKind[plan.kind] ?? 0) + 1;
  }

  /** Retries 503, 409 "in progress" and network errors with the same key until final or the deadline. */
  async #postUntilFinal(key: string, body: unknown): Promise<Answer> {
    const deadline = Date.now() + (this.#o.retryDeadlineMs ?? 90_000);
    let a: Answer = { status: "error" };
    for (let attempt = 1; ; attempt++) {
      a = await this.#post(key, body);
      const retryable =
        a.status === "error" || a.status === 503 || (a.status === 409 && a.retryAfterMs !== undefined);
      if (!retryable || Date.now() >= deadline) return a;
      this.#retries++;
      // Retry-After when given (capped), else exponential; deterministic, no PRNG draw.
      const wait = a.retryAfterMs ?? Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }

  /** One request at a time per slot; a slot is handed straight to the next waiter. */
  async #post(key: string, body: unknown): Promise<Answer> {
    if (this.#open >= (this.#o.maxRequests ?? 64)) await new Promise<void>((r) => this.#waiting.push(r));
    else this.#open++;
    try {
      return await this.#request(key, body);
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#open--;
    }
  }

  async #request(key: string, body: unknown): Promise<Answer> {
    this.#requests++;
    try {
      const res = await fetch(`${this.#base}/v1/transfers`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "idempotency-key": key,
          authorization: `Bearer ${(body as { from?: unknown }).from === "external" ? this.#o.apiKeys.operator : this.#o.apiKeys.customer}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      this.#byStatus[res.status] = (this.#byStatus[res.status] ?? 0) + 1;
      let parsed: { transferId?: unknown; error?: unknown; detail?: unknown } = {};
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
      if ((res.status === 202 || res.status === 200) && transferId) this.#lastAccept = Date.now();
      return {
        status: res.status,
        ...(transferId ? { transferId } : {}),
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
