import { setTimeout as sleep } from "node:timers/promises";
import { createPrng, type Prng } from "@jetmesh/testkit";
import { type Answer, accepting, type ClientCounts, GatewayClient, nowMs } from "./client.ts";
import { pool, waitForOutcomes } from "./outcomes.ts";
import {
  type CopyPattern,
  DEMO_MIX,
  type PlanContext,
  PLAIN_MIX,
  type Planned,
  planTransfer,
  STEADY_MIX,
  type TrafficMix,
  type TransferBody,
  type TransferKind,
} from "./plan.ts";

/**
 * The one client traffic of the tools, over the gateway's real HTTP API. Three modes:
 * - `demo` (`pnpm mesh`): every account funded first (and posted), then `transfers` at `rate`/s
 *   with every path of the pipeline and client retries; done when each has its final answer;
 * - `steady` (`pnpm chaos`): `rate`/s until stopped (or `transfers`), each account funded by its
 *   first transfer, fundings along the way, copies of some requests (all in a storm);
 * - `saturating` (`pnpm bench`): after the funding, `clients` clients send plain transfers
 *   back to back for `durationMs`.
 * Every choice is drawn from one PRNG when a transfer is created, in order, so a seed replays
 * the same requests; timing never draws from it. Open-loop pacing resumes its rate after a
 * stall (every slot taken during an outage) without a catch-up burst.
 */
export const TrafficModes = { Demo: "demo", Steady: "steady", Saturating: "saturating" } as const;
export type TrafficMode = (typeof TrafficModes)[keyof typeof TrafficModes];

/** A funding phase: every account gets `amountMinor` in each currency from `external`, posted before the traffic starts. */
export interface FundingPhase {
  readonly amountMinor: number;
  readonly currencies: readonly string[];
  /** How long the fundings may take to post (default 120 s). */
  readonly timeoutMs?: number;
}

/** Options of {@link startTraffic}. */
export interface TrafficOptions {
  readonly mode: TrafficMode;
  readonly gatewayUrl: string;
  /** API keys: fundings from `external` go as the operator (it also reads outcomes), the rest as the customer owning `acc-0…`. */
  readonly apiKeys: { readonly operator: string; readonly customer: string };
  /** Prefix of every Idempotency-Key; unique per run so reruns never collide. */
  readonly runId: string;
  /** Draws every choice (default: seeded with `runId`). */
  readonly prng?: Prng;
  /** demo, steady: new transfers per second. */
  readonly rate?: number;
  /** demo: how many to send (required); steady: at most this many (default: until stopped). */
  readonly transfers?: number;
  /** saturating: clients sending back to back (default 64). */
  readonly clients?: number;
  /** saturating: for how long (default: until stopped). */
  readonly durationMs?: number;
  /** Customer accounts `acc-0…` (default 100; steady 20). */
  readonly accounts?: number;
  readonly bankAccounts?: readonly string[];
  /** Bank accounts the bank refuses (payouts there end reversed); none: no refused payouts. */
  readonly refusedBankAccounts?: readonly string[];
  /** Changes to the mode's mix (DEMO_MIX, STEADY_MIX, PLAIN_MIX). */
  readonly mix?: Partial<TrafficMix>;
  /** The funding phase (demo: EUR and USD 500 000; saturating: EUR 10 000 000; steady: none, see its mix). */
  readonly funding?: FundingPhase | false;
  /** Transfers in progress at most; the pacing waits beyond (default 64; steady 512). */
  readonly maxInFlight?: number;
  /** HTTP requests open at once (default 64). */
  readonly maxRequests?: number;
  /** Client timeout of one request (default 30 s; steady 10 s). */
  readonly requestTimeoutMs?: number;
  /** How long one copy keeps retrying before the client gives up on it (default 90 s). */
  readonly retryDeadlineMs?: number;
  readonly onProgress?: (p: TrafficProgress) => void;
}

/** A transfer the gateway accepted (202, or 200 replaying an earlier 202). */
export interface AcceptedTransfer extends TransferBody {
  readonly key: string;
  readonly transferId: string;
  /** The event id of transfers.requested, as the answer named it ("" when it did not). */
  readonly eventId: string;
  readonly kind: TransferKind;
  /** When the first request for the key was sent (ms since the epoch, sub-ms resolution). */
  readonly sentAtMs: number;
  /** When the first accepting answer arrived. */
  readonly acceptedAtMs: number;
}

/** Progress, for a progress bar. */
export interface TrafficProgress {
  readonly phase: "funding" | "transfers";
  readonly done: number;
  /** Transfers to send (0 when the mode runs until stopped). */
  readonly total: number;
  readonly accepted: number;
  readonly retries: number;
  readonly ratePerSec: number;
}

/** The client's view of a run. */
export interface TrafficStats extends ClientCounts {
  /** Transfers created after the funding phase (each may be sent several times). */
  readonly transfers: number;
  /** Transfers of the funding phase. */
  readonly funding: number;
  /** Extra copies sent on purpose (same key, same body), by how. */
  readonly copies: Readonly<Record<CopyPattern, number>>;
  /** Transfers accepted, by kind. */
  readonly acceptedByKind: Readonly<Record<string, number>>;
  /** Invalid requests; `unexpected`: those not answered 400. */
  readonly invalid: {
    readonly sent: number;
    readonly answered400: number;
    readonly unexpected: readonly string[];
  };
  /** Keys whose accepting answers named different transfers: the gateway broke idempotency. */
  readonly mismatched: readonly string[];
  /** Keys without an accepting answer after every retry, with the last answers. */
  readonly givenUp: readonly string[];
  /** Final answers nobody expects to a valid request (409 conflict on the same body, 5xx other than 503, 400). */
  readonly unexpected: readonly string[];
  /** First send and last answer of the traffic after the funding phase (ms since the epoch). */
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
}

/** A running traffic. */
export interface Traffic {
  /** Accepted transfers so far, funding included. */
  accepted(): readonly AcceptedTransfer[];
  /** Time of the last accepting answer (0 before any). */
  lastAcceptMs(): number;
  stats(): TrafficStats;
  /**
   * Resolves once the traffic has ended by itself (demo, steady with `transfers`: all sent;
   * saturating: `durationMs` passed) and settled (see {@link stop}); never, for a traffic
   * without an end, before `stop()`.
   * @throws when the funding phase fails.
   */
  done(): Promise<TrafficStats>;
  /**
   * Stops creating transfers, lets every request in flight reach its final answer (each
   * bounded by its retry deadline), then retries once more every key given up on, so the
   * client knows for certain what was accepted. Resolves with the final stats.
   */
  stop(): Promise<TrafficStats>;
}

const MIXES: Readonly<Record<TrafficMode, TrafficMix>> = {
  demo: DEMO_MIX,
  steady: STEADY_MIX,
  saturating: PLAIN_MIX,
};
const FUNDING: Readonly<Record<TrafficMode, FundingPhase | false>> = {
  demo: { amountMinor: 500_000, currencies: ["EUR", "USD"] },
  steady: false,
  saturating: { amountMinor: 10_000_000, currencies: ["EUR"] },
};

/** Starts sending at once (the funding phase first); see {@link Traffic}. */
export function startTraffic(o: TrafficOptions): Traffic {
  return new TrafficRun(o);
}

class TrafficRun implements Traffic {
  readonly #o: TrafficOptions;
  readonly #prng: Prng;
  readonly #client: GatewayClient;
  readonly #plan: PlanContext;
  readonly #accepted = new Map<string, AcceptedTransfer>();
  readonly #running = new Set<Promise<void>>();
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
  readonly #invalid = { sent: 0, answered400: 0, unexpected: [] as string[] };
  readonly #wake = new AbortController();
  readonly #ended: Promise<void>;
  #settled: Promise<TrafficStats> | undefined;
  #stopping = false;
  #created = 0;
  #answered = 0;
  #funding = 0;
  #startedAt = 0;
  #finishedAt = 0;

  constructor(o: TrafficOptions) {
    if (o.mode !== "saturating" && !((o.rate ?? 0) > 0))
      throw new RangeError(`rate must be positive, got ${o.rate}`);
    if (o.mode === "demo" && o.transfers === undefined) throw new RangeError("demo traffic needs transfers");
    this.#o = o;
    this.#prng = o.prng ?? createPrng(o.runId);
    const steady = o.mode === "steady";
    this.#client = new GatewayClient({
      gatewayUrl: o.gatewayUrl,
      maxRequests: o.maxRequests ?? 64,
      requestTimeoutMs: o.requestTimeoutMs ?? (steady ? 10_000 : 30_000),
      retryDeadlineMs: o.retryDeadlineMs ?? 90_000,
    });
    const mix = { ...MIXES[o.mode], ...o.mix };
    if (mix.invalid + mix.funding + mix.ruleRejected + mix.payout + mix.refusedPayout + mix.large > 1)
      throw new RangeError("the shares of the mix add up to more than 1");
    this.#plan = {
      runId: o.runId,
      mix,
      accounts: Array.from({ length: o.accounts ?? (steady ? 20 : 100) }, (_, i) => `acc-${i}`),
      banks: o.bankAccounts ?? ["bank:acme-1", "bank:acme-2", "bank:acme-3"],
      refusedBanks: o.refusedBankAccounts ?? [],
      fundFirst: steady,
      fundFirstMinor: 1_000_000,
    };
    this.#ended = this.#run();
    // done() and stop() report a failed run; until then, keep it from being unhandled.
    this.#ended.catch(() => {});
  }

  accepted(): readonly AcceptedTransfer[] {
    return [...this.#accepted.values()];
  }

  lastAcceptMs(): number {
    return this.#client.lastAcceptMs();
  }

  stats(): TrafficStats {
    return {
      ...this.#client.counts(),
      transfers: this.#created,
      funding: this.#funding,
      copies: { ...this.#copies },
      acceptedByKind: { ...this.#acceptedByKind },
      invalid: { ...this.#invalid, unexpected: [...this.#invalid.unexpected] },
      mismatched: [...this.#mismatched],
      givenUp: [...this.#givenUp].map(([k, v]) => `${k} (${v.last})`),
      unexpected: [...this.#unexpected],
      startedAtMs: this.#startedAt,
      finishedAtMs: this.#finishedAt || nowMs(),
    };
  }

  done(): Promise<TrafficStats> {
    return this.#ended.then(() => this.#settle());
  }

  async stop(): Promise<TrafficStats> {
    this.#stopping = true;
    this.#wake.abort();
    await this.#ended;
    return this.#settle();
  }

  #settle(): Promise<TrafficStats> {
    this.#settled ??= (async () => {
      await Promise.all([...this.#running]);
      // The client makes sure: a key given up on during an outage may still have been
      // stored (a 503 after a publish timeout); retrying it now settles its fate.
      const open = [...this.#givenUp.values()];
      this.#givenUp.clear();
      await Promise.all(open.map(({ plan }) => this.#sendCopies(plan, "single", 1)));
      this.#finishedAt = nowMs();
      return this.stats();
    })();
    return this.#settled;
  }

  async #run(): Promise<void> {
    const funding = this.#o.funding ?? FUNDING[this.#o.mode];
    if (funding) await this.#fund(funding);
    this.#startedAt = nowMs();
    if (this.#o.mode === "saturating") await this.#saturate();
    else await this.#pace();
  }

  /** Funds every account in each currency, then waits until the fundings are posted. */
  async #fund(f: FundingPhase): Promise<void> {
    const plans: Planned[] = this.#plan.accounts.flatMap((to) =>
      f.currencies.map((currency) => ({
        key: `${this.#o.runId}-fund-${to}-${currency}`,
        kind: "funding" as const,
        body: { from: "external", to, amountMinor: f.amountMinor, currency },
        pattern: "single" as const,
        copies: 1,
      })),
    );
    this.#funding = plans.length;
    let done = 0;
    await pool(plans, 32, async (plan) => {
      await this.#sendCopies(plan, "single", 1);
      this.#progress("funding", ++done, plans.length);
    });
    const ids = [...this.#accepted.values()].map((a) => a.transferId);
    await waitForOutcomes(this.#o.gatewayUrl, this.#o.apiKeys.operator, ids, f.timeoutMs ?? 120_000);
  }

  /** Open loop: a transfer every 1/rate s; never more than maxInFlight in progress. */
  async #pace(): Promise<void> {
    const maxInFlight = this.#o.maxInFlight ?? (this.#o.mode === "steady" ? 512 : 64);
    const gapMs = 1000 / (this.#o.rate as number);
    const limit = this.#o.transfers ?? Number.POSITIVE_INFINITY;
    let due = Date.now() - gapMs;
    for (let i = 0; !this.#stopping && i < limit; i++) {
      due = Math.max(due + gapMs, Date.now() - 1000);
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal: this.#wake.signal }).catch(() => {});
      while (!this.#stopping && this.#running.size >= maxInFlight) await Promise.race(this.#running);
      if (this.#stopping) break;
      const p = this.#send(this.#next(i)).finally(() => this.#running.delete(p));
      this.#running.add(p);
    }
  }

  /** Closed loop: each client sends its next transfer when the last one is answered. */
  async #saturate(): Promise<void> {
    const until = this.#startedAt + (this.#o.durationMs ?? Number.POSITIVE_INFINITY);
    let i = 0;
    await Promise.all(
      Array.from({ length: this.#o.clients ?? 64 }, async () => {
        while (!this.#stopping && nowMs() < until) await this.#send(this.#next(i++));
      }),
    );
  }

  #next(i: number): Planned {
    this.#created++;
    return planTransfer(i, this.#prng, this.#plan);
  }

  async #send(plan: Planned): Promise<void> {
    try {
      if (plan.kind !== "invalid") return await this.#sendCopies(plan, plan.pattern, plan.copies);
      this.#invalid.sent++;
      const a = await this.#post(plan);
      if (a.status === 400) this.#invalid.answered400++;
      else this.#invalid.unexpected.push(`${plan.key} (invalid body): ${a.status}`);
    } finally {
      this.#answered++;
      const total = this.#o.mode === "demo" ? (this.#o.transfers as number) : (this.#o.transfers ?? 0);
      this.#progress("transfers", this.#answered, total);
    }
  }

  #post(plan: Planned): Promise<Answer & { atMs: number }> {
    const external = (plan.body as { from?: unknown }).from === "external";
    const apiKey = external ? this.#o.apiKeys.operator : this.#o.apiKeys.customer;
    return this.#client
      .postUntilFinal(apiKey, plan.keyless ? undefined : plan.key, plan.body)
      .then((a) => ({ ...a, atMs: nowMs() }));
  }

  async #sendCopies(plan: Planned, pattern: CopyPattern, copies: number): Promise<void> {
    if (copies > 1) this.#copies[pattern] += copies - 1;
    const sentAtMs = nowMs();
    const one = () => this.#post(plan);
    let answers: (Answer & { atMs: number })[];
    if (pattern === "concurrent") answers = await Promise.all(Array.from({ length: copies }, one));
    else if (pattern === "pair-then-one") answers = [...(await Promise.all([one(), one()])), await one()];
    else {
      answers = [];
      for (let c = 0; c < copies; c++) answers.push(await one());
    }
    this.#record(plan, sentAtMs, answers);
  }

  #record(plan: Planned, sentAtMs: number, answers: readonly (Answer & { atMs: number })[]): void {
    const ok = answers.filter(accepting);
    if (ok.length === 0) {
      const last = answers.map((a) => a.status).join("/");
      const finalOther = answers.find((a) => a.status !== 503 && a.status !== "error" && a.status !== 409);
      if (finalOther) this.#unexpected.push(`${plan.key}: ${last}`);
      else this.#givenUp.set(plan.key, { plan, last });
      return;
    }
    const first = ok.reduce((a, b) => (b.atMs < a.atMs ? b : a));
    if (ok.some((a) => a.transferId !== first.transferId))
      this.#mismatched.push(`${plan.key}: ${ok.map((a) => a.transferId).join(" ≠ ")}`);
    if (this.#accepted.has(plan.key)) return;
    const body = plan.body as TransferBody;
    this.#accepted.set(plan.key, {
      key: plan.key,
      transferId: first.transferId as string,
      eventId: first.eventId ?? "",
      kind: plan.kind,
      from: body.from,
      to: body.to,
      amountMinor: body.amountMinor,
      currency: body.currency,
      sentAtMs,
      acceptedAtMs: first.atMs,
    });
    this.#acceptedByKind[plan.kind] = (this.#acceptedByKind[plan.kind] ?? 0) + 1;
  }

  #progress(phase: TrafficProgress["phase"], done: number, total: number): void {
    if (!this.#o.onProgress) return;
    const fundingPhase = phase === "funding";
    this.#o.onProgress({
      phase,
      done,
      total,
      accepted: fundingPhase ? this.#accepted.size : this.#accepted.size - this.#funding,
      retries: Object.values(this.#copies).reduce((a, b) => a + b, 0) + this.#client.counts().retries,
      ratePerSec: fundingPhase ? 0 : (done * 1000) / Math.max(1, nowMs() - this.#startedAt),
    });
  }
}
