import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Demo traffic over the gateway's real HTTP API: funding from `external`, then transfers
 * at a steady rate with a share of client retries (same Idempotency-Key, some sent
 * concurrently), invalid requests (400 expected), transfers the validator rejects,
 * risky amounts, and payouts to `bank:` accounts, some of which the bank refuses.
 */

/** What a transfer was meant to exercise. */
export type TransferKind = "funding" | "transfer" | "payout" | "refused-payout" | "rule-rejected" | "large";

/** A transfer the gateway accepted (202, or 200 replaying an earlier 202). */
export interface AcceptedRecord {
  readonly key: string;
  readonly transferId: string;
  readonly eventId: string;
  readonly kind: TransferKind;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  /** When the first request for the key was sent (ms since the epoch). */
  readonly sentAtMs: number;
  /** When the client received the first accepting answer. */
  readonly acceptedAtMs: number;
}

/** Options of {@link sendTraffic}. */
export interface TrafficOptions {
  readonly gatewayUrl: string;
  /**
   * API keys (MeshHandle.apiKeys): the operator funds from `external` and polls outcomes,
   * the customer (owner of the `acc-<n>` accounts) sends the transfers.
   */
  readonly apiKeys: { readonly operator: string; readonly customer: string };
  /** Transfers to send after funding (invalid requests included). */
  readonly transfers: number;
  /** Transfers started per second. */
  readonly rate: number;
  /** Customer accounts `acc-0…` (default 100). */
  readonly accounts?: number;
  /** Prefix of every Idempotency-Key; unique per run so reruns never collide. */
  readonly runId: string;
  /** Seed of every random choice (default: the run id). */
  readonly seed?: string;
  /** Bank accounts the bank refuses; payouts to them must end reversed. */
  readonly refusedBankAccounts: readonly string[];
  /** Bank accounts the bank pays. */
  readonly bankAccounts?: readonly string[];
  /** Shares of the traffic (0..1). */
  readonly shares?: Partial<TrafficShares>;
  /** Funding per account per currency, minor units (default 500 000). */
  readonly fundingMinor?: number;
  /**
   * Requests in flight at most (default 64). More only queues inside the gateway, where a
   * request that waits past the client timeout is retried and costs twice.
   */
  readonly maxInFlight?: number;
  /** How long funding may take to post (default 60 s). */
  readonly fundingTimeoutMs?: number;
  readonly onProgress?: (p: TrafficProgress) => void;
}

/** Shares of the traffic, each 0..1 of `transfers`. */
export interface TrafficShares {
  /** Sent twice with the same key. */
  readonly retry: number;
  /** Of the retries, the share sent concurrently with the first request. */
  readonly concurrentRetry: number;
  /** Structurally invalid requests (400 expected). */
  readonly invalid: number;
  /** Valid requests the validator rejects (unknown currency, from = to, amount 0). */
  readonly ruleRejected: number;
  /** Payouts to a bank the bank pays. */
  readonly payout: number;
  /** Payouts to a bank account the bank refuses. */
  readonly refusedPayout: number;
  /** Amounts that risk denies. */
  readonly large: number;
}

export const DEFAULT_SHARES: TrafficShares = {
  retry: 0.1,
  concurrentRetry: 0.5,
  invalid: 0.03,
  ruleRejected: 0.02,
  payout: 0.04,
  refusedPayout: 0.02,
  large: 0.01,
};

/** Progress of the traffic, for a progress bar. */
export interface TrafficProgress {
  readonly phase: "funding" | "transfers";
  readonly done: number;
  readonly total: number;
  readonly accepted: number;
  readonly retries: number;
  readonly ratePerSec: number;
}

/** What the client saw. */
export interface TrafficResult {
  readonly accepted: readonly AcceptedRecord[];
  /** Funding transfers (also in `accepted`). */
  readonly funding: number;
  readonly accounts: readonly string[];
  /** Requests sent, by HTTP status (`error` for a network error or client timeout). */
  readonly statuses: Readonly<Record<string, number>>;
  /** The `error` requests by kind (`timeout after 30000 ms`, `ECONNRESET`, …). */
  readonly errors: Readonly<Record<string, number>>;
  readonly requests: number;
  readonly invalid: {
    readonly sent: number;
    readonly answered400: number;
    readonly unexpected: readonly string[];
  };
  readonly retries: {
    /** Deliberate duplicates sent (same key, same body). */
    readonly duplicates: number;
    readonly concurrent: number;
    /** Resends after 503, 409 in progress or a network error. */
    readonly afterFailure: number;
    /** Keys whose answers named different transfers: the gateway broke idempotency. */
    readonly mismatched: readonly string[];
  };
  /** Keys given up on (no accepting answer after every retry), with the last status. */
  readonly failed: readonly string[];
  /** Main phase: first send and last answer (ms since the epoch). */
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
}

/** A small deterministic PRNG (mulberry32) seeded from a string. */
function prng(seed: string): () => number {
  let a = createHash("sha256").update(seed).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Answer {
  readonly status: number | "error";
  readonly transferId?: string;
  readonly eventId?: string;
  readonly retryAfterMs?: number;
  readonly error?: string;
}

const MAX_ATTEMPTS = 30;
const CLIENT_TIMEOUT_MS = 30_000;

/** A short name for a failed request: the cause's code (ECONNRESET…) or the error's name. */
function errorKind(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  if (e?.name === "TimeoutError") return `timeout after ${CLIENT_TIMEOUT_MS} ms`;
  return e?.cause?.code ?? e?.code ?? e?.name ?? "error";
}

class Client {
  readonly statuses: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  requests = 0;
  afterFailure = 0;
  inFlight = 0;

  constructor(
    private readonly base: string,
    private readonly apiKey: string,
  ) {}

  async post(key: string | undefined, body: unknown): Promise<Answer> {
    this.requests++;
    this.inFlight++;
    try {
      const res = await fetch(`${this.base}/v1/transfers`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${this.apiKey}`,
          ...(key !== undefined ? { "idempotency-key": key } : {}),
        },
        body: typeof body === "string" ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      });
      const text = await res.text();
      this.statuses[res.status] = (this.statuses[res.status] ?? 0) + 1;
      let parsed: { transferId?: unknown; eventId?: unknown } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        // an answer without JSON carries no ids
      }
      const ra = Number(res.headers.get("retry-after"));
      return {
        status: res.status,
        ...(typeof parsed.transferId === "string" ? { transferId: parsed.transferId } : {}),
        ...(typeof parsed.eventId === "string" ? { eventId: parsed.eventId } : {}),
        ...(Number.isFinite(ra) && ra > 0 ? { retryAfterMs: Math.min(ra * 1000, 5000) } : {}),
      };
    } catch (err) {
      this.statuses.error = (this.statuses.error ?? 0) + 1;
      const why = errorKind(err);
      this.errors[why] = (this.errors[why] ?? 0) + 1;
      return { status: "error", error: err instanceof Error ? err.message : String(err) };
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Posts until an answer is final: 503, 409 "in progress" and network errors are retried
   * with the same key, as the gateway's contract says a client may always do.
   */
  async postUntilFinal(key: string | undefined, body: unknown): Promise<Answer> {
    let a: Answer = { status: "error" };
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      a = await this.post(key, body);
      const retryable =
        a.status === "error" || a.status === 503 || (a.status === 409 && a.retryAfterMs !== undefined);
      if (!retryable) return a;
      this.afterFailure++;
      await sleep(a.retryAfterMs ?? Math.min(2000, 50 * 2 ** attempt));
    }
    return a;
  }
}

const accepting = (a: Answer) => (a.status === 202 || a.status === 200) && a.transferId !== undefined;

/**
 * Funds every account from `external`, waits until the funding is posted (read back
 * through `GET /v1/transfers/:id`), then sends `transfers` requests at `rate` per second.
 * Resolves when every request has its final answer.
 */
export async function sendTraffic(o: TrafficOptions): Promise<TrafficResult> {
  const shares = { ...DEFAULT_SHARES, ...o.shares };
  const rand = prng(o.seed ?? o.runId);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const accounts = Array.from({ length: o.accounts ?? 100 }, (_, i) => `acc-${i}`);
  const banks = o.bankAccounts ?? ["bank:acme-1", "bank:acme-2", "bank:acme-3"];
  const base = o.gatewayUrl.replace(/\/$/, "");
  const client = new Client(base, o.apiKeys.customer);
  const treasury = new Client(base, o.apiKeys.operator);
  const accepted = new Map<string, AcceptedRecord>();
  const failed: string[] = [];
  const mismatched: string[] = [];
  const invalid = { sent: 0, answered400: 0, unexpected: [] as string[] };
  let duplicates = 0;
  let concurrent = 0;
  const maxInFlight = o.maxInFlight ?? 64;

  const record = (
    key: string,
    kind: TransferKind,
    body: { from: string; to: string; amountMinor: number; currency: string },
    sentAtMs: number,
    answers: readonly Answer[],
  ) => {
    const ok = answers.filter(accepting);
    if (ok.length === 0) {
      failed.push(`${key} (${answers.map((a) => a.status).join(", ")})`);
      return;
    }
    const first = ok[0] as Answer;
    if (ok.some((a) => a.transferId !== first.transferId)) {
      mismatched.push(`${key}: ${ok.map((a) => a.transferId).join(" ≠ ")}`);
    }
    accepted.set(key, {
      key,
      transferId: first.transferId as string,
      eventId: first.eventId ?? "",
      kind,
      ...body,
      sentAtMs,
      acceptedAtMs: Date.now(),
    });
  };

  // ---- funding: every account gets EUR and USD from the boundary account ----
  const fundingAmount = o.fundingMinor ?? 500_000;
  const funding = accounts.flatMap((acc) =>
    ["EUR", "USD"].map((currency) => ({
      key: `${o.runId}-fund-${acc}-${currency}`,
      body: { from: "external", to: acc, amountMinor: fundingAmount, currency },
    })),
  );
  let fundDone = 0;
  await pool(funding, 32, async (f) => {
    const sent = Date.now();
    const a = await treasury.postUntilFinal(f.key, f.body);
    record(f.key, "funding", f.body, sent, [a]);
    fundDone++;
    o.onProgress?.({
      phase: "funding",
      done: fundDone,
      total: funding.length,
      accepted: accepted.size,
      retries: 0,
      ratePerSec: 0,
    });
  });
  await waitForOutcomes(
    base,
    o.apiKeys.operator,
    [...accepted.values()].map((r) => r.transferId),
    o.fundingTimeoutMs ?? 60_000,
  );

  // ---- the transfers, at a steady rate ----
  // One draw picks the kind: consecutive slices of [0, 1) per share, the rest plain transfers.
  const slices: [number, TransferKind | "invalid"][] = [];
  let edge = 0;
  for (const [share, kind] of [
    [shares.invalid, "invalid"],
    [shares.ruleRejected, "rule-rejected"],
    [shares.payout, "payout"],
    [shares.refusedPayout, "refused-payout"],
    [shares.large, "large"],
  ] as const) {
    edge += share;
    slices.push([edge, kind]);
  }
  const kindOf = (r: number): TransferKind | "invalid" => slices.find(([e]) => r < e)?.[1] ?? "transfer";
  const startedAtMs = Date.now();
  let done = 0;
  const running = new Set<Promise<void>>();
  const one = async (i: number) => {
    const r = rand();
    const key = `${o.runId}-${i}`;
    const share = kindOf(r);
    if (share === "invalid") {
      invalid.sent++;
      const bad = pick<[string | undefined, unknown]>([
        [key, { from: "acc-1", to: "acc-2", currency: "EUR" }],
        [key, { from: "acc-1", to: "acc-2", amountMinor: "12.50", currency: "EUR" }],
        [key, { from: "acc-1", to: "acc-2", amountMinor: 100, currency: "EUR", note: "extra field" }],
        [key, { from: 7, to: "", amountMinor: 1.5, currency: "EURO" }],
        [undefined, { from: "acc-1", to: "acc-2", amountMinor: 100, currency: "EUR" }],
      ]);
      const a = await client.postUntilFinal(bad[0], bad[1]);
      if (a.status === 400) invalid.answered400++;
      else invalid.unexpected.push(`${key}: ${a.status}${a.error ? ` ${a.error}` : ""}`);
      return;
    }
    let kind: TransferKind = "transfer";
    const from = pick(accounts);
    let to = pick(accounts.filter((a) => a !== from));
    let amountMinor = 100 + Math.floor(rand() * 49_900);
    let currency = rand() < 0.85 ? "EUR" : "USD";
    if (share === "rule-rejected") {
      kind = "rule-rejected";
      const how = Math.floor(rand() * 3);
      if (how === 0) currency = "XXX";
      else if (how === 1) to = from;
      else amountMinor = 0;
    } else if (share === "payout") {
      kind = "payout";
      to = pick(banks);
      amountMinor = 100 + Math.floor(rand() * 19_900);
    } else if (share === "refused-payout" && o.refusedBankAccounts.length) {
      kind = "refused-payout";
      to = pick(o.refusedBankAccounts);
      amountMinor = 100 + Math.floor(rand() * 19_900);
    } else if (share === "large") {
      kind = "large";
      amountMinor = 6_000_000;
    }
    const body = { from, to, amountMinor, currency };
    const sent = Date.now();
    const retry = rand() < shares.retry;
    const together = retry && rand() < shares.concurrentRetry;
    if (retry) duplicates++;
    if (together) concurrent++;
    const answers = together
      ? await Promise.all([client.postUntilFinal(key, body), client.postUntilFinal(key, body)])
      : [await client.postUntilFinal(key, body)];
    if (retry && !together) answers.push(await client.postUntilFinal(key, body));
    record(key, kind, body, sent, answers);
  };
  for (let i = 0; i < o.transfers; i++) {
    const due = startedAtMs + (i * 1000) / o.rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    while (running.size >= maxInFlight) await Promise.race(running);
    const p = one(i).finally(() => {
      running.delete(p);
      done++;
      o.onProgress?.({
        phase: "transfers",
        done,
        total: o.transfers,
        accepted: accepted.size - funding.length,
        retries: duplicates + client.afterFailure,
        ratePerSec: (done * 1000) / Math.max(1, Date.now() - startedAtMs),
      });
    });
    running.add(p);
  }
  await Promise.all(running);
  return {
    accepted: [...accepted.values()],
    funding: funding.length,
    accounts,
    statuses: merged(client.statuses, treasury.statuses),
    errors: merged(client.errors, treasury.errors),
    requests: client.requests + treasury.requests,
    invalid,
    retries: {
      duplicates,
      concurrent,
      afterFailure: client.afterFailure + treasury.afterFailure,
      mismatched,
    },
    failed,
    startedAtMs,
    finishedAtMs: Date.now(),
  };
}

function merged(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

async function pool<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** Polls `GET /v1/transfers/:id` until every transfer has left the pipeline's middle. */
async function waitForOutcomes(
  base: string,
  apiKey: string,
  ids: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const final = new Set(["posted", "declined", "rejected", "paid", "payout_failed", "reversed"]);
  let open = [...ids];
  const deadline = Date.now() + timeoutMs;
  const seen = new Map<string, string>();
  while (open.length) {
    const still: string[] = [];
    await pool(open, 16, async (id) => {
      const res = await fetch(`${base}/v1/transfers/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      }).catch(() => undefined);
      const body = res ? ((await res.json().catch(() => ({}))) as { status?: string }) : {};
      seen.set(id, body.status ?? `HTTP ${res?.status ?? "error"}`);
      if (!body.status || !final.has(body.status)) still.push(id);
    });
    open = still;
    if (!open.length) return;
    if (Date.now() > deadline) {
      const states = new Map<string, number>();
      for (const id of open) states.set(seen.get(id) ?? "?", (states.get(seen.get(id) ?? "?") ?? 0) + 1);
      throw new Error(
        `funding not done within ${timeoutMs} ms: ${open.length} open (${[...states].map(([s, n]) => `${s}: ${n}`).join(", ")}), e.g. ${open[0]}`,
      );
    }
    await sleep(200);
  }
}
