/**
 * The external bank's own record, as its admin API answers it (`GET /admin/payouts` and
 * `GET /admin/refusals`): one entry per decision, oldest first, so a key the bank forgot and
 * was sent again appears twice. The reconciler and the invariant checker compare LEDGER and
 * PAYOUTS with it. Our side's reading of a system we do not own: services/bank-sim, standing
 * for that system, imports no jetmesh package and keeps its own copy of the shape.
 */

/** A payout the bank made. */
export interface BankPayout {
  readonly idempotencyKey: string;
  readonly reference: string;
  readonly transferId: string;
  readonly account: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly paidAt: string;
}

/** A payout the bank refused (422). */
export interface BankRefusal {
  readonly idempotencyKey: string;
  readonly transferId: string;
  readonly reason: string;
  readonly refusedAt: string;
}

/** Everything the bank ever decided. */
export interface BankRecord {
  readonly payouts: readonly BankPayout[];
  readonly refusals: readonly BankRefusal[];
}
