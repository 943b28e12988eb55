import { AccountPatterns, type AnyEnvelope, EventTypes, LedgerProjection } from "@jetmesh/contracts";

/** Balances of one account: currency → minor units. */
export type Balance = ReadonlyMap<string, bigint>;

/** What LEDGER says about one transfer that moved money. */
export interface Posting {
  readonly transferId: string;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly seq: number;
  /** Store time of the posting, ms. */
  readonly at: number;
  reversedAt?: number;
  reversedSeq?: number;
}

/** An account below zero after an event: a prefix of LEDGER that is not solvent. */
export interface Overdraft {
  readonly account: string;
  readonly currency: string;
  readonly balance: bigint;
  readonly seq: number;
  readonly eventId: string;
  readonly transferId: string;
}

interface History {
  /** Balances after each change, oldest first; at most {@link HISTORY} entries. */
  readonly entries: { seq: number; balance: Map<string, bigint> }[];
  /** True once older entries were dropped: before the first, the balance is unknown. */
  truncated: boolean;
}

/** Changes kept per account: a projection that lags more than this many changes of an account is not judged. */
const HISTORY = 16;

/**
 * The reconciler's own fold of LEDGER (no code shared with the ledger, so a bug there cannot
 * hide itself here): the balances, each account's recent balances by sequence (to compare a
 * Redis projection that applied up to an older sequence), the postings, and every overdraft
 * (a prefix of LEDGER that is not solvent). Idempotent by transferId as the ledger's fold is:
 * a second outcome of a transfer changes nothing; a reversal applies once, to a posting.
 */
export class LedgerFold {
  seq = 0;
  readonly #balances = new Map<string, Map<string, bigint>>();
  readonly #history = new Map<string, History>();
  readonly #decided = new Set<string>();
  readonly #postings = new Map<string, Posting>();

  /** Folds the event stored at `seq`; returns the accounts it moved and any overdraft it left. */
  apply(seq: number, env: AnyEnvelope, at: number): { moved: string[]; overdrafts: Overdraft[] } {
    if (seq <= this.seq) return { moved: [], overdrafts: [] };
    this.seq = seq;
    switch (env.type) {
      case EventTypes.LedgerPosted:
      case EventTypes.LedgerDeclined: {
        const d = env.data;
        if (this.#decided.has(d.transferId)) break;
        this.#decided.add(d.transferId);
        if (env.type !== EventTypes.LedgerPosted) break;
        if (AccountPatterns.bank.test(d.to))
          this.#postings.set(d.transferId, {
            transferId: d.transferId,
            from: d.from,
            to: d.to,
            amountMinor: d.amountMinor,
            currency: d.currency,
            seq,
            at,
          });
        return this.#move(seq, env.eventId, d.transferId, d.from, d.to, d.currency, BigInt(d.amountMinor));
      }
      case EventTypes.LedgerReversed: {
        const p = this.#postings.get(env.data.transferId);
        // Only bank postings are ever reversed (a refused payout); the ledger parks any other.
        if (!p || p.reversedSeq !== undefined) break;
        p.reversedSeq = seq;
        p.reversedAt = at;
        return this.#move(seq, env.eventId, p.transferId, p.to, p.from, p.currency, BigInt(p.amountMinor));
      }
    }
    return { moved: [], overdrafts: [] };
  }

  #move(
    seq: number,
    eventId: string,
    transferId: string,
    from: string,
    to: string,
    currency: string,
    amount: bigint,
  ) {
    const overdrafts: Overdraft[] = [];
    for (const [account, delta] of [
      [from, -amount],
      [to, amount],
    ] as const) {
      let b = this.#balances.get(account);
      if (!b) {
        b = new Map();
        this.#balances.set(account, b);
      }
      const v = (b.get(currency) ?? 0n) + delta;
      b.set(currency, v);
      let h = this.#history.get(account);
      if (!h) {
        h = { entries: [], truncated: false };
        this.#history.set(account, h);
      }
      h.entries.push({ seq, balance: new Map(b) });
      if (h.entries.length > HISTORY) {
        h.entries.shift();
        h.truncated = true;
      }
      if (v < 0n && account !== LedgerProjection.externalAccount)
        overdrafts.push({ account, currency, balance: v, seq, eventId, transferId });
    }
    return { moved: [from, to], overdrafts };
  }

  /** A sequence that holds no event the fold can read: nothing moves, the fold stands past it. */
  skip(seq: number): void {
    if (seq > this.seq) this.seq = seq;
  }

  balance(account: string): Balance {
    return this.#balances.get(account) ?? new Map();
  }

  /** The account's balance right after sequence `seq` was folded; undefined when no longer known. */
  balanceAt(account: string, seq: number): Balance | undefined {
    if (seq > this.seq) return undefined;
    const h = this.#history.get(account);
    if (!h) return new Map();
    for (let i = h.entries.length - 1; i >= 0; i--) {
      const e = h.entries[i] as { seq: number; balance: Map<string, bigint> };
      if (e.seq <= seq) return e.balance;
    }
    return h.truncated ? undefined : new Map();
  }

  accounts(): IterableIterator<string> {
    return this.#balances.keys();
  }

  get accountCount(): number {
    return this.#balances.size;
  }

  /** Postings to bank accounts, with their reversal if any. */
  postings(): IterableIterator<Posting> {
    return this.#postings.values();
  }

  posting(transferId: string): Posting | undefined {
    return this.#postings.get(transferId);
  }

  /** True once LEDGER holds an outcome (posted or declined) of the transfer. */
  decided(transferId: string): boolean {
    return this.#decided.has(transferId);
  }
}
