import { createPrng } from "@jetmesh/testkit";
import { type AcceptedTransfer, DEMO_MIX, startTraffic, type TrafficProgress } from "@jetmesh/tools";

/**
 * Demo traffic over the gateway's real HTTP API: the tools' traffic in its demo mode
 * (@jetmesh/tools). Funding from `external`, then transfers at a steady rate with a share of
 * client retries (same Idempotency-Key, some sent concurrently), invalid requests (400
 * expected), transfers the validator rejects, risky amounts, and payouts to `bank:`
 * accounts, some of which the bank refuses.
 */

/** What a transfer was meant to exercise. */
export type TransferKind = AcceptedTransfer["kind"];

/** A transfer the gateway accepted (202, or 200 replaying an earlier 202). */
export type AcceptedRecord = AcceptedTransfer;

/** Progress of the traffic, for a progress bar. */
export type { TrafficProgress } from "@jetmesh/tools";

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
  retry: DEMO_MIX.duplicate,
  concurrentRetry: DEMO_MIX.concurrent,
  invalid: DEMO_MIX.invalid,
  ruleRejected: DEMO_MIX.ruleRejected,
  payout: DEMO_MIX.payout,
  refusedPayout: DEMO_MIX.refusedPayout,
  large: DEMO_MIX.large,
};

/** What the client saw. */
export interface TrafficResult {
  readonly accepted: readonly AcceptedRecord[];
  /** Funding transfers (also in `accepted`). */
  readonly funding: number;
  readonly accounts: readonly string[];
  /** Requests sent, by HTTP status (`error` for a network error or client timeout). */
  readonly statuses: Readonly<Record<string, number>>;
  /** The `error` requests by kind (`TimeoutError`, `ECONNRESET`, …). */
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

/**
 * Funds every account from `external`, waits until the funding is posted (read back
 * through `GET /v1/transfers/:id`), then sends `transfers` requests at `rate` per second.
 * Resolves when every request has its final answer.
 */
export async function sendTraffic(o: TrafficOptions): Promise<TrafficResult> {
  const shares = { ...DEFAULT_SHARES, ...o.shares };
  const accounts = o.accounts ?? 100;
  const traffic = startTraffic({
    mode: "demo",
    gatewayUrl: o.gatewayUrl,
    apiKeys: o.apiKeys,
    runId: o.runId,
    prng: createPrng(o.seed ?? o.runId),
    rate: o.rate,
    transfers: o.transfers,
    accounts,
    refusedBankAccounts: o.refusedBankAccounts,
    ...(o.bankAccounts ? { bankAccounts: o.bankAccounts } : {}),
    mix: {
      duplicate: shares.retry,
      concurrent: shares.concurrentRetry,
      invalid: shares.invalid,
      ruleRejected: shares.ruleRejected,
      payout: shares.payout,
      refusedPayout: shares.refusedPayout,
      large: shares.large,
    },
    funding: {
      amountMinor: o.fundingMinor ?? 500_000,
      currencies: ["EUR", "USD"],
      timeoutMs: o.fundingTimeoutMs ?? 60_000,
    },
    ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const s = await traffic.done();
  return {
    accepted: traffic.accepted(),
    funding: s.funding,
    accounts: Array.from({ length: accounts }, (_, i) => `acc-${i}`),
    statuses: s.byStatus,
    errors: s.errors,
    requests: s.requests,
    invalid: s.invalid,
    retries: {
      duplicates: s.copies.sequential + s.copies.concurrent,
      concurrent: s.copies.concurrent,
      afterFailure: s.retries,
      mismatched: s.mismatched,
    },
    failed: [...s.givenUp, ...s.unexpected],
    startedAtMs: s.startedAtMs,
    finishedAtMs: s.finishedAtMs,
  };
}
