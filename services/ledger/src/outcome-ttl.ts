import { AccountPatterns, REPLAY_MAX_AGE_MS, Streams } from "@jetmesh/contracts";
import type { FoldState, TransferOutcome } from "./fold.ts";

/**
 * How long the projection keeps a transfer's outcome hash `ledger:outcome:<id>` once nothing
 * can change it any more (LEDGER keeps every outcome for ever; the hash is the read model).
 *
 * The rule (BRIEF.md, the retention plan in packages/contracts/README.md): a guard outlives
 * everything that can bring its message back. Once the projection applied an outcome, what can
 * bring a message about that transfer back to the ledger is a redelivery or a replay of its
 * input: RISK and PAYOUTS keep messages 3 days, REPLAY 7 days, the ledger's idempotency keys
 * live 7 days (JETMESH_IDEMPOTENCY_TTL_MS), the duplicate windows 15 minutes. The ledger
 * decides those on its fold of LEDGER, never on this hash, and the projection applies LEDGER
 * in sequence order (applied-seq), so a re-applied event is dropped by its sequence; the hash
 * is a second guard (a posting or decline applied twice is `duplicate`). 30 days outlives all
 * of those horizons four times over, and loadConfig refuses a value that does not outlive each
 * (outcomeTtlProblems).
 *
 * One outcome never expires: a posting to a bank account that is not reversed. Its reversal
 * reads the hash (the posting's accounts and amount), and what brings a reversal (a
 * payouts.failed) has no horizon: the payout stage reads LEDGER, which keeps everything, and
 * the DLQ keeps a parked payout until an operator replays or drops it. A finite lifetime
 * would let a late reversal find no posting and leave the balances unreversed.
 */
export const DEFAULT_OUTCOME_TTL_MS = 30 * 24 * 3600_000;

/**
 * True for an outcome nothing can change any more, whose hash gets the TTL: a decline, a
 * posting that is reversed, a posting to an account that is not a bank's (decideReversal
 * refuses to reverse those).
 */
export function outcomeExpires(o: Pick<TransferOutcome, "status" | "to" | "reversal">): boolean {
  return o.status === "declined" || o.reversal !== undefined || !AccountPatterns.bank.test(o.to);
}

/** Why `outcomeTtlMs` is too short for the horizons it must outlive (empty when it is not). */
export function outcomeTtlProblems(outcomeTtlMs: number, idempotencyTtlMs: number): string[] {
  const horizons: [string, number][] = [
    ["the ledger's idempotency key ttl (JETMESH_IDEMPOTENCY_TTL_MS)", idempotencyTtlMs],
    ["REPLAY's age limit", REPLAY_MAX_AGE_MS],
    ...[Streams.RISK, Streams.PAYOUTS].flatMap((s): [string, number][] => [
      [`stream ${s.name}'s age limit`, s.maxAgeMs],
      [`stream ${s.name}'s duplicate window`, s.duplicateWindowMs],
    ]),
  ];
  return horizons
    .filter(([, ms]) => outcomeTtlMs <= ms)
    .map(
      ([what, ms]) =>
        `LEDGER_OUTCOME_TTL_MS ${outcomeTtlMs} ms must outlive ${what}, ${ms} ms: a message that can still come back to the ledger would find its transfer's outcome gone from the projection`,
    );
}

/**
 * How long an outcome's hash has left to live at `now`: undefined for one that never expires
 * (a bank posting not reversed), the whole TTL when the fold does not know when it occurred.
 */
export function outcomeLifeLeft(
  o: TransferOutcome,
  state: Pick<FoldState, "outcomeTimes">,
  ttlMs: number,
  now: number,
): number | undefined {
  if (!outcomeExpires(o)) return undefined;
  const at = state.outcomeTimes?.get(o.transferId);
  return at === undefined ? ttlMs : at + ttlMs - now;
}
