import {
  AccountPatterns,
  type BankPayout,
  type BankRecord,
  type BankRefusal,
  EventTypes,
  Headers,
} from "@jetmesh/contracts";
import type { EventRef } from "./invariants.ts";
import { eventRef } from "./invariants.ts";
import type { StoredEvent } from "./invariants-read.ts";

/**
 * The bank's own record against the event log: what the external system says it paid and
 * refused (bank-sim's `GET /admin/payouts` and `/admin/refusals`), compared transfer by
 * transfer with LEDGER and PAYOUTS. I1 to I6 read only our streams, so a payout made twice
 * (a key the bank forgot, sent again), or a transfer the bank paid while the ledger reversed
 * it, is invisible to them: only the other side's record shows it.
 */

/** What the bank's record must say of the log, read once the pipeline is quiet. */
export const BankInvariants = {
  B1: "no transfer is paid twice by the bank",
  B2: "a paid payout is never reversed, nor reported failed",
  B3: "a refused payout is reversed exactly once (and never paid)",
  B4: "every transfer posted to a bank account is paid or refused by the bank",
  B5: "the bank paid only what LEDGER posted (account, amount, currency), and PAYOUTS carries its answer",
} as const;
export type BankInvariantName = keyof typeof BankInvariants;
const ALL = Object.keys(BankInvariants) as BankInvariantName[];

/** One way the bank's record and the log disagree. */
export interface BankViolation {
  readonly invariant: BankInvariantName;
  readonly transferId?: string;
  readonly message: string;
  readonly events: readonly EventRef[];
}

/** Numbers of the comparison. */
export interface BankRecordCounts {
  /** Transfers LEDGER posted to a bank account. */
  readonly postedToBank: number;
  /** Distinct transfers the bank paid, and payouts it made (more when one was paid twice). */
  readonly paidTransfers: number;
  readonly payouts: number;
  /** Distinct transfers the bank refused. */
  readonly refusedTransfers: number;
  /** Transfers reversed in LEDGER. */
  readonly reversed: number;
}

/** The answer of {@link checkBankRecord}. */
export interface BankRecordReport {
  readonly ok: boolean;
  readonly checked: readonly BankInvariantName[];
  readonly counts: BankRecordCounts;
  /** At most `maxViolations` per invariant, B1 first. */
  readonly violations: readonly BankViolation[];
  readonly violationCounts: Readonly<Record<BankInvariantName, number>>;
}

/** The stored events and the bank's record to compare. */
export interface CheckBankRecordInput {
  /** LEDGER as stored (ledger.posted, ledger.reversed, ledger.declined). */
  readonly ledger: readonly StoredEvent[];
  /** PAYOUTS as stored (payouts.completed, payouts.failed). */
  readonly payouts: readonly StoredEvent[];
  /** The DLQ, to name where a payout that never reached a decision was parked. */
  readonly dlq?: readonly StoredEvent[];
  readonly bank: BankRecord;
  /** Accounts that leave through the bank (default: contracts' `bank:…` pattern). */
  readonly isBankAccount?: (account: string) => boolean;
  /** Violations kept per invariant (default 200); all are counted. */
  readonly maxViolations?: number;
}

interface TransferData {
  readonly transferId: string;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly bankReference?: string;
}

const dataOf = (e: StoredEvent): TransferData | undefined => {
  const d = e.env?.data as Partial<TransferData> | undefined;
  return typeof d?.transferId === "string" ? (d as TransferData) : undefined;
};

function group<T>(items: readonly T[], key: (t: T) => string | undefined): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    if (k === undefined) continue;
    const list = out.get(k);
    if (list) list.push(it);
    else out.set(k, [it]);
  }
  return out;
}

const ofType = (events: readonly StoredEvent[], type: string) =>
  group(
    events.filter((e) => e.env?.type === type),
    (e) => dataOf(e)?.transferId,
  );

/**
 * Compares the bank's record with LEDGER and PAYOUTS, transfer by transfer. Pure: read the
 * streams (readStoredEvents) and the record ({@link readBankRecord}) once the pipeline is
 * quiet, or a payout still on its way shows as B4.
 */
export function checkBankRecord(input: CheckBankRecordInput): BankRecordReport {
  const isBank = input.isBankAccount ?? ((a: string) => AccountPatterns.bank.test(a));
  const max = input.maxViolations ?? 200;
  const violations: BankViolation[] = [];
  const violationCounts: Record<BankInvariantName, number> = { B1: 0, B2: 0, B3: 0, B4: 0, B5: 0 };
  const add = (v: BankViolation) => {
    violationCounts[v.invariant] += 1;
    if (violationCounts[v.invariant] <= max) violations.push(v);
  };

  const posted = ofType(input.ledger, EventTypes.LedgerPosted);
  const reversed = ofType(input.ledger, EventTypes.LedgerReversed);
  const completed = ofType(input.payouts, EventTypes.PayoutCompleted);
  const failed = ofType(input.payouts, EventTypes.PayoutFailed);
  const paid = group(input.bank.payouts, (p) => p.transferId);
  const refused = group(input.bank.refusals, (r) => r.transferId);
  const parked = group(input.dlq ?? [], (d) => d.headers[Headers.CorrelationId.toLowerCase()]);
  const postedToBank = [...posted].filter(([, es]) => es.some((e) => isBank(dataOf(e)?.to ?? "")));
  const refs = (t: string, ...lists: (Map<string, StoredEvent[]> | undefined)[]) =>
    lists.flatMap((m) => m?.get(t) ?? []).map(eventRef);
  const describePaid = (ps: readonly BankPayout[]) =>
    ps.map((p) => `${p.reference} at ${p.paidAt} (key ${p.idempotencyKey})`).join(", ");

  for (const [t, ps] of paid) {
    if (ps.length > 1)
      add({
        invariant: "B1",
        transferId: t,
        message: `transfer ${t} paid ${ps.length} times by the bank: ${describePaid(ps)}`,
        events: refs(t, posted, completed),
      });
    const rev = reversed.get(t) ?? [];
    const fail = failed.get(t) ?? [];
    if (rev.length > 0 || fail.length > 0)
      add({
        invariant: "B2",
        transferId: t,
        message: `transfer ${t} was paid by the bank (${describePaid(ps)}) but ${rev.length ? `reversed ${rev.length} time(s) in LEDGER` : "not reversed"}${fail.length ? `, and PAYOUTS says it failed (${fail.length})` : ""}`,
        events: refs(t, posted, failed, reversed),
      });
  }

  for (const [t, rs] of refused) {
    const rev = reversed.get(t) ?? [];
    const ps = paid.get(t) ?? [];
    if (ps.length > 0)
      add({
        invariant: "B3",
        transferId: t,
        message: `transfer ${t} was both refused (${rs.map((r) => r.reason).join(", ")}) and paid (${describePaid(ps)}) by the bank`,
        events: refs(t, posted, completed, failed, reversed),
      });
    else if (rev.length !== 1)
      add({
        invariant: "B3",
        transferId: t,
        message: `transfer ${t} was refused by the bank (${rs[0]?.reason}) and reversed ${rev.length} time(s) in LEDGER, not once`,
        events: refs(t, posted, failed, reversed),
      });
  }

  for (const [t] of postedToBank) {
    if (paid.has(t) || refused.has(t)) continue;
    const dlq = parked.get(t) ?? [];
    const why = dlq.length
      ? `; parked in the DLQ: ${dlq.map((d) => d.headers[Headers.DlqReason.toLowerCase()] ?? "no reason").join(" | ")}`
      : "";
    add({
      invariant: "B4",
      transferId: t,
      message: `transfer ${t} was posted to a bank account but the bank neither paid nor refused it${why}`,
      events: [...refs(t, posted, completed, failed, reversed), ...dlq.map(eventRef)],
    });
  }

  for (const [t, ps] of paid) {
    const postings = (posted.get(t) ?? []).flatMap((e) => {
      const d = dataOf(e);
      return d ? [d] : [];
    });
    for (const p of ps) {
      const match = postings.find(
        (d) => d.to === p.account && d.amountMinor === p.amountMinor && d.currency === p.currency,
      );
      if (!match)
        add({
          invariant: "B5",
          transferId: t,
          message: postings.length
            ? `the bank paid ${p.amountMinor} ${p.currency} to ${p.account} for ${t}; LEDGER posted ${postings.map((d) => `${d.amountMinor} ${d.currency} to ${d.to}`).join(", ")}`
            : `the bank paid ${p.amountMinor} ${p.currency} to ${p.account} for ${t}, which LEDGER never posted`,
          events: refs(t, posted),
        });
    }
    const references = new Set(ps.map((p) => p.reference));
    for (const c of completed.get(t) ?? []) {
      const ref = dataOf(c)?.bankReference;
      if (ref !== undefined && !references.has(ref))
        add({
          invariant: "B5",
          transferId: t,
          message: `payouts.completed for ${t} names bank reference ${ref}; the bank paid it as ${[...references].join(", ")}`,
          events: [eventRef(c)],
        });
    }
  }
  for (const [t, cs] of completed) {
    if (!paid.has(t))
      add({
        invariant: "B5",
        transferId: t,
        message: `PAYOUTS says ${t} was paid (payouts.completed), but the bank has no payout for it`,
        events: cs.map(eventRef),
      });
  }
  for (const [t, fs] of failed) {
    if (!refused.has(t) && !paid.has(t))
      add({
        invariant: "B5",
        transferId: t,
        message: `PAYOUTS says ${t} was refused (payouts.failed), but the bank never refused it`,
        events: fs.map(eventRef),
      });
  }
  for (const [t, rs] of refused) {
    if (!posted.has(t))
      add({
        invariant: "B5",
        transferId: t,
        message: `the bank refused ${t} (${rs[0]?.reason}), which LEDGER never posted`,
        events: [],
      });
  }

  const order = (v: BankViolation) => ALL.indexOf(v.invariant);
  return {
    ok: violations.length === 0,
    checked: ALL,
    counts: {
      postedToBank: postedToBank.length,
      paidTransfers: paid.size,
      payouts: input.bank.payouts.length,
      refusedTransfers: refused.size,
      reversed: reversed.size,
    },
    violations: [...violations].sort((a, b) => order(a) - order(b)),
    violationCounts,
  };
}

/**
 * Reads the bank's record from bank-sim's admin API (`/admin/payouts`, `/admin/refusals`).
 * @throws when either answers other than 200.
 */
export async function readBankRecord(bankUrl: string, timeoutMs = 10_000): Promise<BankRecord> {
  const base = bankUrl.replace(/\/$/, "");
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (res.status !== 200)
      throw new Error(`GET ${base}${path} answered ${res.status}: ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  };
  const [p, r] = await Promise.all([
    get<{ payouts: BankPayout[] }>("/admin/payouts"),
    get<{ refusals: BankRefusal[] }>("/admin/refusals"),
  ]);
  return { payouts: p.payouts, refusals: r.refusals };
}
