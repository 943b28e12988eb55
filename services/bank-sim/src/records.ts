import type { Issue } from "./settings.ts";

/** The body of POST /v1/payouts. */
export interface PayoutRequest {
  readonly transferId: string;
  readonly account: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/**
 * A payout the bank made. One per decision: a key forgotten after its retention and
 * sent again is paid again, and both payouts stay in the record.
 */
export interface Payout extends PayoutRequest {
  readonly idempotencyKey: string;
  readonly reference: string;
  readonly paidAt: string;
}

/** A payout the bank refused (422), one per decision. */
export interface Refusal {
  readonly idempotencyKey: string;
  readonly transferId: string;
  readonly reason: string;
  readonly refusedAt: string;
}

export function pickRequest(r: PayoutRequest): PayoutRequest {
  return { transferId: r.transferId, account: r.account, amountMinor: r.amountMinor, currency: r.currency };
}

/** Checks a payout request body; returns the request or every issue found. */
export function parsePayoutRequest(value: unknown): { request?: PayoutRequest; issues: Issue[] } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { issues: [{ field: "/", rule: "must be a json object" }] };
  }
  const v = value as Record<string, unknown>;
  const issues: Issue[] = [];
  for (const field of ["transferId", "account"] as const) {
    const s = v[field];
    if (typeof s !== "string" || s.length === 0 || s.length > 128) {
      issues.push({ field, rule: "must be a string of 1 to 128 characters" });
    }
  }
  if (!Number.isSafeInteger(v.amountMinor) || (v.amountMinor as number) <= 0) {
    issues.push({ field: "amountMinor", rule: "must be a positive integer" });
  }
  if (typeof v.currency !== "string" || !/^[A-Z]{3}$/.test(v.currency)) {
    issues.push({ field: "currency", rule: "must be three capital letters" });
  }
  if (issues.length) return { issues };
  return { request: pickRequest(v as unknown as PayoutRequest), issues };
}
