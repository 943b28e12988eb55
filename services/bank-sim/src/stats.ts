/** The counters of GET /admin/stats, in the order they are listed. They start at zero on every start. */
export const StatNames = [
  /** POST /v1/payouts received, whatever the answer (outage rejections and 400s included). */
  "requests",
  /** Payouts made: decisions that paid (a forgotten key paid again counts again). */
  "paid",
  /** Decisions that refused (422). */
  "refused",
  /** Stored answers returned again for a repeated key and body. */
  "replayed",
  /** 409 idempotency_key_in_use: the key was still processing. */
  "conflictsInProgress",
  /** 409 idempotency_key_reused: the key came with another body. */
  "conflictsReused",
  /** 503 from the error switch (errorRate), before deciding. */
  "unavailable503",
  /** 503 from an outage, on any /v1 request. */
  "outageRejections",
  /** Payout answers that were due after their client had closed the connection. */
  "answersAfterClientLeft",
  /** Decisions whose answer was held back slowMs. */
  "slowAnswers",
  /** Decided keys dropped after retentionMs. */
  "forgottenKeys",
  /** Payout requests for a key that had been forgotten (treated as new). */
  "requestsForForgottenKeys",
  /** GET /v1/payouts/{idempotencyKey} received. */
  "statusQueries",
] as const;
export type StatName = (typeof StatNames)[number];
export type BankStats = { readonly [K in StatName]: number };

export function zeroStats(): { [K in StatName]: number } {
  return Object.fromEntries(StatNames.map((n) => [n, 0])) as { [K in StatName]: number };
}
