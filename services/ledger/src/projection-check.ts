import { StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { applyLedgerEvent, emptyFold, type FoldState, totals } from "./fold.ts";
import { type LogPosition, logPosition, readLog } from "./ledger-log.ts";
import { outcomeLifeLeft } from "./outcome-ttl.ts";
import type { LedgerStore, ProjectionView } from "./store.ts";

/**
 * Invariant I4 as functions: fold LEDGER from its first message with the contracts codec and
 * compare the result with the live Redis projection. Importing this module runs nothing; the
 * `rebuild` command is src/rebuild.ts, and `jetmesh rebuild` (packages/ops) uses these too.
 */

/** The fold of the log, and the messages it could not use. */
export interface FoldResult {
  readonly state: FoldState;
  readonly position: LogPosition | undefined;
  /** Messages that did not decode, with the reason. */
  readonly skipped: readonly { readonly seq: number; readonly reason: string }[];
}

/**
 * Folds the LEDGER stream from its first message (or on from `from`, a fold of an
 * earlier prefix) up to its last message at call time.
 */
export async function foldLedger(opts: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream?: string;
  from?: FoldState;
  /** Called after each message folded with its sequence and the last one to fold (a progress line). */
  onProgress?: (seq: number, lastSeq: number) => void;
}): Promise<FoldResult> {
  const stream = opts.stream ?? StreamNames.Ledger;
  const state = opts.from ?? emptyFold();
  const skipped: { seq: number; reason: string }[] = [];
  const position = await logPosition(opts.jsm, stream);
  if (position && position.firstSeq > state.seq + 1 && position.lastSeq > 0) {
    skipped.push({
      seq: state.seq + 1,
      reason: `messages ${state.seq + 1}..${position.firstSeq - 1} are gone (purged)`,
    });
  }
  if (position) {
    await readLog(opts.js, stream, state.seq + 1, position.lastSeq, (e) => {
      if (e.env) applyLedgerEvent(state, e.seq, e.env);
      else {
        skipped.push({ seq: e.seq, reason: e.error.message });
        state.seq = Math.max(state.seq, e.seq);
      }
      opts.onProgress?.(e.seq, position.lastSeq);
    });
  }
  return { state, position, skipped };
}

/** One way the projection differs from the fold of the log. */
export type Difference =
  | {
      readonly kind: "balance";
      readonly account: string;
      readonly currency: string;
      readonly log: bigint;
      readonly projection: bigint;
    }
  | {
      readonly kind: "outcome";
      readonly transferId: string;
      readonly log: string;
      readonly projection: string;
    }
  | { readonly kind: "total"; readonly currency: string; readonly projection: bigint };

const NONE = "(none)";
const outcomeText = (
  o: FoldState["outcomes"] extends Map<string, infer O> ? O | undefined : never,
): string => (o ? `${o.status}/${o.detail}${o.reversal ? "/reversed" : ""}` : NONE);

/**
 * Compares balances (a missing balance counts as 0), every transfer's outcome, and the
 * projection's totals per currency (I3: each must be 0). With `expiry`, an outcome the
 * projection no longer holds is no difference once its lifetime is over (outcome-ttl.ts).
 */
export function diffProjection(
  fold: FoldState,
  view: ProjectionView,
  expiry?: { readonly outcomeTtlMs: number; readonly now: number },
): Difference[] {
  const out: Difference[] = [];
  const accounts = new Set([...fold.balances.keys(), ...view.balances.keys()]);
  for (const account of [...accounts].sort()) {
    const a = fold.balances.get(account);
    const b = view.balances.get(account);
    const currencies = new Set([...(a?.keys() ?? []), ...(b?.keys() ?? [])]);
    for (const currency of [...currencies].sort()) {
      const log = a?.get(currency) ?? 0n;
      const projection = b?.get(currency) ?? 0n;
      if (log !== projection) out.push({ kind: "balance", account, currency, log, projection });
    }
  }
  const ids = new Set([...fold.outcomes.keys(), ...view.outcomes.keys()]);
  for (const transferId of [...ids].sort()) {
    const log = outcomeText(fold.outcomes.get(transferId));
    const projection = outcomeText(view.outcomes.get(transferId));
    const o = fold.outcomes.get(transferId);
    const expired =
      expiry !== undefined &&
      o !== undefined &&
      projection === NONE &&
      outcomeLifeLeft(o, fold, expiry.outcomeTtlMs, expiry.now) <= 0 &&
      fold.outcomeTimes?.has(transferId) === true;
    if (log !== projection && !expired) out.push({ kind: "outcome", transferId, log, projection });
  }
  for (const [currency, sum] of totals(view.balances)) {
    if (sum !== 0n) out.push({ kind: "total", currency, projection: sum });
  }
  return out;
}

export function formatDifference(d: Difference): string {
  switch (d.kind) {
    case "balance":
      return `balance ${d.account} ${d.currency}: log ${d.log}, projection ${d.projection}`;
    case "outcome":
      return `outcome ${d.transferId}: log ${d.log}, projection ${d.projection}`;
    case "total":
      return `total ${d.currency}: projection sums to ${d.projection}, not 0`;
  }
}

export interface RebuildReport {
  readonly fold: FoldResult;
  readonly view: ProjectionView;
  readonly differences: readonly Difference[];
}

/**
 * Folds the log and compares it with the projection. The live projection may be a
 * moment ahead of the log (a decision stored but not yet published), so a difference
 * is confirmed `attempts` times, `settleMs` apart, folding the new tail each time.
 */
export async function rebuild(opts: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: LedgerStore;
  stream?: string;
  attempts?: number;
  settleMs?: number;
  onProgress?: (seq: number, lastSeq: number) => void;
}): Promise<RebuildReport> {
  const attempts = Math.max(1, opts.attempts ?? 3);
  let fold = await foldLedger(opts);
  const skipped = [...fold.skipped];
  for (let i = 1; ; i++) {
    const view = await opts.store.read();
    const differences = diffProjection(fold.state, view, {
      outcomeTtlMs: opts.store.outcomeTtlMs,
      now: Date.now(),
    });
    if (differences.length === 0 || i >= attempts) {
      return { fold: { ...fold, skipped }, view, differences };
    }
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 1000));
    fold = await foldLedger({ ...opts, from: fold.state });
    skipped.push(...fold.skipped);
  }
}
