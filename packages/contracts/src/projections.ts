/**
 * Redis key layout of the ledger's balance projection. The ledger is its only
 * writer; readers (the gateway's account endpoint, the invariant checker) use
 * these names so that no service imports another.
 */
export const LedgerProjection = {
  /** Hash: currency → balance in minor units (decimal string). */
  balanceKey: (account: string) => `ledger:bal:${account}`,
  /** Set of every account id that has a balance hash. */
  accountsKey: "ledger:accounts",
  /** String: the LEDGER stream sequence the projection has applied up to. */
  appliedSeqKey: "ledger:applied-seq",
  /**
   * String: present while the projection is whole (JSON naming the LEDGER it was built from);
   * absent while the ledger restores it, when no reader should judge it.
   */
  epochKey: "ledger:epoch",
  /** The boundary account: money enters and leaves the system through it; it may go negative. */
  externalAccount: "external",
} as const;

/** Accounts in the demo pipeline: `acc-…` customers, `bank:…` payout destinations, `external`. */
export const AccountPatterns = {
  customer: /^acc-[a-z0-9]{1,32}$/,
  bank: /^bank:[a-z0-9-]{1,32}$/,
} as const;
