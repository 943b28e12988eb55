import { createHash } from "node:crypto";
import { type Payout, type PayoutRequest, pickRequest, type Refusal } from "./records.ts";
import type { BankBehaviour } from "./settings.ts";

/** A key's stored decision: what a replay answers and what the status query reports. */
export interface Decision {
  readonly fingerprint: string;
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  /** How many times this key has been decided, this decision included (>1 after a forgetting). */
  readonly generation: number;
  readonly decidedAt: number;
  readonly payout?: Payout;
  readonly refusal?: Refusal;
}

function sha256(...parts: readonly (string | number)[]): string {
  return createHash("sha256").update(parts.join("\u001f")).digest("hex");
}

/**
 * A number in [0, 1) fixed by its parts. Draws hang off the idempotency key rather
 * than a shared sequence, so outcomes do not depend on the order concurrent requests
 * arrive in.
 */
export function draw(...parts: readonly (string | number)[]): number {
  return Number.parseInt(sha256(...parts).slice(0, 8), 16) / 2 ** 32;
}

/** What "the same body" means for an idempotency key. */
export function fingerprintOf(r: PayoutRequest): string {
  return sha256(JSON.stringify([r.transferId, r.account, r.amountMinor, r.currency]));
}

/** How long a new key stays processing: drawn per key in [processingMinMs, processingMaxMs]. */
export function processingMsOf(seed: string, key: string, b: BankBehaviour): number {
  return (
    b.processingMinMs +
    Math.floor(draw(seed, "processing", key) * (b.processingMaxMs - b.processingMinMs + 1))
  );
}

/** Whether the answer to this key's decision is held back slowMs. */
export function isSlow(seed: string, key: string, b: BankBehaviour): boolean {
  return draw(seed, "slow", key) < b.slowRate;
}

/** Refuses or pays: a pure function of the seed, the key, its generation, the request and the settings. */
export function decisionFor(
  seed: string,
  key: string,
  generation: number,
  request: PayoutRequest,
  b: BankBehaviour,
  now: number,
): Decision {
  const fingerprint = fingerprintOf(request);
  const at = new Date(now).toISOString();
  const reason = b.refuseAccounts.includes(request.account)
    ? "account refused"
    : draw(seed, "refuse", key) < b.refusalRate
      ? "refused by bank"
      : undefined;
  if (reason !== undefined) {
    return {
      fingerprint,
      status: 422,
      body: { error: "payout refused", reason, status: "refused" },
      generation,
      decidedAt: now,
      refusal: { idempotencyKey: key, transferId: request.transferId, reason, refusedAt: at },
    };
  }
  // A key paid again after being forgotten gets a new reference, as a real bank's would;
  // the first one keeps the reference the bank gave before retention existed.
  const reference = `bnk-${sha256(seed, "reference", key, ...(generation > 1 ? [generation] : [])).slice(0, 20)}`;
  return {
    fingerprint,
    status: 201,
    body: { reference },
    generation,
    decidedAt: now,
    payout: { ...pickRequest(request), idempotencyKey: key, reference, paidAt: at },
  };
}
