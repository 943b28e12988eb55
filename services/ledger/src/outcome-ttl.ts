import { REPLAY_MAX_AGE_MS, Streams } from "@jetmesh/contracts";
import type { FoldState, TransferOutcome } from "./fold.ts";

/**
 * The ledger's horizon: how long a transfer's outcome is remembered, in the projection's
 * hash `ledger:outcome:<id>` and in the fold the ledger decides on. LEDGER keeps every event
 * for ever (the archive that `rebuild` reads); what is bounded is what a running ledger holds,
 * so that its memory, its snapshots and Redis stay flat over months instead of growing with
 * every transfer ever made.
 *
 * One setting, H = LEDGER_OUTCOME_TTL_MS (default 14 days), and four rules derived from it, in
 * the order they act on an outcome that occurred (its last LEDGER event, by the event's
 * `occurredAt`) at time t:
 *
 * 1. **Inputs** (`inputForgettable`): an input whose transfer the ledger does not know, and that
 *    occurred before now − H/2, is refused (parked in the DLQ with the reason) instead of
 *    decided: its outcome, if it ever had one, may be forgotten. Without this rule a
 *    transfers.scored parked for a month and replayed would be posted a second time. Inputs
 *    that arrive as the pipeline sends them are days old at most (RISK and PAYOUTS keep
 *    messages 3 days; loadConfig refuses an H/2 that does not outlive those limits).
 * 2. **Decisions** (`outcomeRemembered`): from t + 3H/4 the ledger decides as if the outcome
 *    were unknown: a late payouts.failed of a posting that old is refused (parked) rather than
 *    reversed. A transfer still seen at t + 3H/4 was decided on an input younger than H/2 (rule
 *    1), so the gap of H/4 absorbs the producers' clock skew.
 * 3. **Projection** (`outcomeLifeLeft`): the hash lives H from when it was applied, for every
 *    outcome. A reversal decided before t + 3H/4 is applied while the posting's hash lives, as
 *    long as the projection is less than H/4 behind the log.
 * 4. **Memory** (`compactFold`): from t + 5H/4 the fold drops the outcome (its balances stay):
 *    after the hash expired, so `rebuild --check` finds the two agreeing; snapshots are written
 *    from the compacted fold. Decisions never depend on whether compaction ran (rule 2 already
 *    hides what it drops): two instances, or one restarted from an older snapshot, decide the
 *    same.
 *
 * What brings a message back to the ledger, and its bound: a redelivery or a consumer rewound
 * on RISK or PAYOUTS (3 days), REPLAY (7 days, but it carries the parked event's own
 * `occurredAt`), the DLQ (no age limit: rule 1), the runtime's idempotency keys (7 days), the
 * duplicate windows (15 minutes). With the default H, an input is refused only once it is
 * 7 days old (REPLAY's age limit, more than twice RISK's and PAYOUTS'), and the fold holds an
 * outcome 17.5 days: measured by bench/src/ledger-memory.ts, about 460 B of heap per outcome,
 * so 7.6 GiB per million transfers a day (services/ledger/README.md, "Memory"). A lower H
 * costs less; loadConfig refuses one that does not outlive what it must.
 */
export const DEFAULT_OUTCOME_TTL_MS = 14 * 24 * 3600_000;

/** Rule 1: an input older than this, of a transfer the ledger does not know, is refused. */
export const inputHorizonMs = (ttlMs: number): number => ttlMs / 2;
/** Rule 2: an outcome this old no longer decides anything. */
export const decisionHorizonMs = (ttlMs: number): number => (ttlMs * 3) / 4;
/** Rule 4: an outcome this old leaves the fold. */
export const compactionHorizonMs = (ttlMs: number): number => (ttlMs * 5) / 4;

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
  const problems = horizons
    .filter(([, ms]) => outcomeTtlMs <= ms)
    .map(
      ([what, ms]) =>
        `LEDGER_OUTCOME_TTL_MS ${outcomeTtlMs} ms must outlive ${what}, ${ms} ms: a message that can still come back to the ledger would find its transfer's outcome gone from the projection`,
    );
  // Rule 1 must never refuse an input the pipeline delivers in its streams' lifetime.
  for (const s of [Streams.RISK, Streams.PAYOUTS])
    if (inputHorizonMs(outcomeTtlMs) <= s.maxAgeMs)
      problems.push(
        `LEDGER_OUTCOME_TTL_MS ${outcomeTtlMs} ms: half of it (${inputHorizonMs(outcomeTtlMs)} ms, the age past which an input of an unknown transfer is refused) must outlive stream ${s.name}'s age limit, ${s.maxAgeMs} ms`,
      );
  return problems;
}

/** When the last event that wrote `transferId`'s outcome occurred (ms), if the fold knows. */
const occurred = (state: Pick<FoldState, "outcomeTimes">, transferId: string): number | undefined =>
  state.outcomeTimes?.get(transferId);

/**
 * How long an outcome's hash has left to live at `now` (rule 3); the whole TTL when the fold
 * does not know when it occurred (a snapshot written before times were kept).
 */
export function outcomeLifeLeft(
  o: Pick<TransferOutcome, "transferId">,
  state: Pick<FoldState, "outcomeTimes">,
  ttlMs: number,
  now: number,
): number {
  const at = occurred(state, o.transferId);
  return at === undefined ? ttlMs : at + ttlMs - now;
}

/** Rule 2: false once the outcome is past the decision horizon (decide as if unknown). */
export function outcomeRemembered(
  state: Pick<FoldState, "outcomeTimes">,
  transferId: string,
  ttlMs: number,
  now: number,
): boolean {
  const at = occurred(state, transferId);
  return at === undefined || now - at < decisionHorizonMs(ttlMs);
}

/**
 * Rule 1: true when an input that occurred at `occurredAt` (an ISO time) is past the input
 * horizon, so that an outcome of its transfer may be forgotten. An unreadable time counts as
 * old: nothing is decided on an input whose age is unknown.
 */
export function inputForgettable(occurredAt: string, ttlMs: number, now: number): boolean {
  const at = Date.parse(occurredAt);
  return !Number.isFinite(at) || now - at >= inputHorizonMs(ttlMs);
}

/**
 * Rule 4: drops from `state` (mutated) every outcome past the compaction horizon; balances
 * stay. Returns how many were dropped. It scans every outcome, `chunk` at a time, and gives the
 * event loop back between chunks (a scan costs about 1.5 µs per outcome: 17 million would hold
 * the ledger for seconds); outcomes folded meanwhile are young and stay.
 */
export async function compactFold(
  state: FoldState,
  ttlMs: number,
  now: number,
  chunk = 20_000,
): Promise<number> {
  const times = state.outcomeTimes;
  if (!times) return 0;
  const cutoff = now - compactionHorizonMs(ttlMs);
  let dropped = 0;
  let seen = 0;
  for (const [id, at] of times) {
    if (++seen % chunk === 0) await new Promise<void>((r) => setImmediate(r));
    if (at > cutoff) continue;
    times.delete(id);
    state.outcomes.delete(id);
    dropped++;
  }
  return dropped;
}
