import { type BankPayout, type BankRefusal, EventTypes, FindingKinds } from "@jetmesh/contracts";
import type { Discrepancy } from "./book.ts";
import type { Posting } from "./fold.ts";

/** What PAYOUTS says about a transfer. */
export interface PayoutOutcome {
  readonly type: typeof EventTypes.PayoutCompleted | typeof EventTypes.PayoutFailed;
  readonly seq: number;
  readonly eventId?: string;
  readonly at: number;
}

/** The bank's idempotency key of a transfer (the payout stage's `bankKeyOf`). */
export const bankKeyOf = (transferId: string) => `payout:${transferId}`;

/** The bank's HTTP API, as the reconciler reads it. */
export interface BankReader {
  /** The whole record: every payout and refusal. */
  list(): Promise<{ payouts: BankPayout[]; refusals: BankRefusal[] }>;
  /** The status of one key: `unknown` for a 404 (never received, or forgotten). */
  status(
    key: string,
  ): Promise<{ status: "paid" | "refused" | "processing" | "unknown"; [k: string]: unknown }>;
}

export function createBankReader(o: { url: string; timeoutMs: number }): BankReader {
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${o.url}${path}`, { signal: AbortSignal.timeout(o.timeoutMs) });
    const body = await res.json().catch(() => undefined);
    return { status: res.status, body };
  };
  const ok = (r: { status: number; body: unknown }, what: string) => {
    if (r.status !== 200 || typeof r.body !== "object" || r.body === null)
      throw new Error(`bank ${what} answered ${r.status}`);
    return r.body as Record<string, unknown>;
  };
  return {
    async list() {
      const [p, r] = await Promise.all([get("/admin/payouts"), get("/admin/refusals")]);
      const payouts = ok(p, "payout list").payouts;
      const refusals = ok(r, "refusal list").refusals;
      if (!Array.isArray(payouts) || !Array.isArray(refusals)) throw new Error("bank lists are not arrays");
      return { payouts: payouts as BankPayout[], refusals: refusals as BankRefusal[] };
    },
    async status(key) {
      const r = await get(`/v1/payouts/${encodeURIComponent(key)}`);
      if (r.status === 404) return { status: "unknown" };
      const body = ok(r, `status of ${key}`);
      return body as { status: "paid" | "refused" | "processing" };
    },
  };
}

/** What the comparison of LEDGER and PAYOUTS with the bank's list found. */
export interface BankComparison {
  /** Discrepancies found, keyed by finding key. */
  readonly found: Map<string, Discrepancy>;
  /** Transfers PAYOUTS has an outcome for and the list does not name: ask the status endpoint. */
  readonly confirm: string[];
  /** Transfers judged this round (findings of others stay as they are). */
  readonly judged: Set<string>;
}

const trace = (id: string) => `pnpm jetmesh trace ${id}`;

/**
 * Compares every bank posting of LEDGER (with its reversal) and PAYOUTS' outcome with the
 * bank's own record: a posting is paid once as posted and not reversed, or refused and
 * reversed; the bank pays nothing LEDGER did not post. Only what happened before `horizon`
 * (every follower has read that far, and the bank's decisions are older than the grace) is
 * judged. Pure.
 */
export function compareWithBank(input: {
  readonly postings: Iterable<Posting>;
  readonly outcomes: ReadonlyMap<string, PayoutOutcome>;
  readonly payouts: readonly BankPayout[];
  readonly refusals: readonly BankRefusal[];
  readonly horizon: number;
  readonly graceMs: number;
  readonly isPosted: (transferId: string) => boolean;
}): BankComparison {
  const paid = new Map<string, BankPayout[]>();
  for (const p of input.payouts) paid.set(p.transferId, [...(paid.get(p.transferId) ?? []), p]);
  const refused = new Map<string, BankRefusal[]>();
  for (const r of input.refusals) refused.set(r.transferId, [...(refused.get(r.transferId) ?? []), r]);
  const found = new Map<string, Discrepancy>();
  const confirm: string[] = [];
  const judged = new Set<string>();
  const due = input.horizon - input.graceMs;
  const add = (
    tid: string,
    code: string,
    summary: string,
    evidence: Record<string, unknown>,
    account?: string,
  ) => {
    found.set(`${tid}:${code}`, {
      kind: FindingKinds.BankMismatch,
      key: `${tid}:${code}`,
      transferId: tid,
      ...(account ? { account } : {}),
      summary,
      evidence: { check: code, bankKey: bankKeyOf(tid), ...evidence },
      command: trace(tid),
    });
  };
  for (const p of input.postings) {
    if (p.at > due) continue;
    const tid = p.transferId;
    judged.add(tid);
    const bankPaid = paid.get(tid) ?? [];
    const bankRefused = refused.get(tid) ?? [];
    const outcome = input.outcomes.get(tid);
    const ledger = {
      posted: { seq: p.seq, from: p.from, to: p.to, amountMinor: p.amountMinor, currency: p.currency },
      ...(p.reversedSeq !== undefined ? { reversedSeq: p.reversedSeq } : {}),
      ...(outcome ? { payouts: { type: outcome.type, seq: outcome.seq, eventId: outcome.eventId } } : {}),
    };
    if (bankPaid.length > 1)
      add(
        tid,
        "paid_twice",
        `the bank paid transfer ${tid} ${bankPaid.length} times`,
        { ledger, bank: bankPaid },
        p.to,
      );
    const one = bankPaid[0];
    if (one) {
      if (one.account !== p.to || one.amountMinor !== p.amountMinor || one.currency !== p.currency)
        add(
          tid,
          "paid_differs",
          `the bank paid ${one.amountMinor} ${one.currency} to ${one.account}, LEDGER posted ${p.amountMinor} ${p.currency} to ${p.to}`,
          { ledger, bank: one },
          p.to,
        );
      if (p.reversedSeq !== undefined)
        add(
          tid,
          "paid_but_reversed",
          `the bank paid transfer ${tid} and LEDGER reversed it`,
          { ledger, bank: one },
          p.to,
        );
      if (outcome?.type === EventTypes.PayoutFailed)
        add(
          tid,
          "paid_but_failed",
          `the bank paid transfer ${tid}, PAYOUTS says it failed`,
          { ledger, bank: one },
          p.to,
        );
      continue;
    }
    const refusal = bankRefused[0];
    if (refusal) {
      if (outcome?.type === EventTypes.PayoutCompleted)
        add(
          tid,
          "refused_but_completed",
          `the bank refused transfer ${tid}, PAYOUTS says it was paid`,
          { ledger, bank: refusal },
          p.to,
        );
      else if (p.reversedSeq === undefined && Date.parse(refusal.refusedAt) <= due)
        add(
          tid,
          "refused_not_reversed",
          `the bank refused transfer ${tid} and LEDGER has not reversed it`,
          { ledger, bank: refusal },
          p.to,
        );
      continue;
    }
    // Neither in the list: with an outcome in PAYOUTS, the bank must know the key.
    if (outcome) confirm.push(tid);
  }
  for (const [tid, list] of paid) {
    const first = list[0] as BankPayout;
    if (Date.parse(first.paidAt) > due || input.isPosted(tid)) continue;
    judged.add(tid);
    add(tid, "paid_unposted", `the bank paid transfer ${tid}, which LEDGER never posted to a bank account`, {
      bank: list,
    });
  }
  return { found, confirm, judged };
}

/** The finding for a transfer PAYOUTS has an outcome for and the bank does not know (status 404). */
export function noRecord(p: Posting, outcome: PayoutOutcome): Discrepancy {
  return {
    kind: FindingKinds.BankMismatch,
    key: `${p.transferId}:no_record`,
    transferId: p.transferId,
    account: p.to,
    summary: `PAYOUTS says ${outcome.type} for transfer ${p.transferId}; the bank has no record of ${bankKeyOf(p.transferId)}`,
    evidence: {
      check: "no_record",
      bankKey: bankKeyOf(p.transferId),
      bankStatus: 404,
      ledger: { posted: { seq: p.seq, to: p.to, amountMinor: p.amountMinor, currency: p.currency } },
      payouts: { type: outcome.type, seq: outcome.seq, eventId: outcome.eventId },
    },
    command: trace(p.transferId),
  };
}
