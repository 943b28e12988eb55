import { type AnyEnvelope, type Envelope, EventTypes } from "@jetmesh/contracts";

/**
 * The ledger's state as a pure fold of the LEDGER stream. The Lua scripts in
 * lua.ts make the same moves in Redis; `applyLedgerEvent` is the reference they
 * are tested against, the source of snapshots, and what `rebuild` compares with
 * the live projection (invariant I4).
 */

/** What the ledger decided for one transfer, and whether it was reversed. */
export interface TransferOutcome {
  readonly transferId: string;
  readonly status: "posted" | "declined";
  /** The risk decision of a posting, or the reason of a decline. */
  readonly detail: string;
  /** The eventId of the input that caused the outcome (the output's causationId). */
  readonly cause: string;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  /** Set once a posting is reversed. */
  reversal?: { readonly reason: string; readonly cause: string };
}

/** Balances and outcomes after folding a prefix of LEDGER up to `seq`. */
export interface FoldState {
  /** Last stream sequence folded (0 = nothing yet). */
  seq: number;
  /**
   * The event id (= Nats-Msg-Id) of the message at `seq`, when it decoded: what a snapshot
   * or the projection records, so that a log replaced or cut short under them is noticed.
   */
  lastEventId?: string;
  /** account → currency → balance in minor units. */
  readonly balances: Map<string, Map<string, bigint>>;
  /** transferId → outcome, in the order transfers first appear in the log. */
  readonly outcomes: Map<string, TransferOutcome>;
  /**
   * transferId → when the last event that wrote its outcome occurred (ms): the projection's
   * outcome hash lives LEDGER_OUTCOME_TTL_MS from about then (outcome-ttl.ts). Absent for a
   * transfer folded from a snapshot written before times were kept.
   */
  outcomeTimes?: Map<string, number>;
}

/** What folding one event did. `ignored` names why an event changed nothing. */
export type FoldStep = "applied" | "duplicate" | "ignored";

export function emptyFold(): FoldState {
  return { seq: 0, balances: new Map(), outcomes: new Map() };
}

function stamp(state: FoldState, transferId: string, env: AnyEnvelope): void {
  const at = Date.parse(env.occurredAt);
  if (!Number.isFinite(at)) return;
  state.outcomeTimes ??= new Map();
  state.outcomeTimes.set(transferId, at);
}

function move(state: FoldState, account: string, currency: string, delta: bigint): void {
  let acc = state.balances.get(account);
  if (!acc) {
    acc = new Map();
    state.balances.set(account, acc);
  }
  acc.set(currency, (acc.get(currency) ?? 0n) + delta);
}

/**
 * Folds one LEDGER event at stream sequence `seq` into `state` (mutates it).
 * Idempotent by transferId, as the projector's Lua is: a posting or decline whose
 * transfer already has an outcome changes nothing, a reversal applies only to a
 * posting not yet reversed, and moves the amounts of the stored posting.
 */
export function applyLedgerEvent(state: FoldState, seq: number, env: AnyEnvelope): FoldStep {
  if (seq > state.seq) {
    state.seq = seq;
    state.lastEventId = env.eventId;
  }
  switch (env.type) {
    case EventTypes.LedgerPosted:
    case EventTypes.LedgerDeclined: {
      const d = env.data;
      if (state.outcomes.has(d.transferId)) return "duplicate";
      state.outcomes.set(d.transferId, outcomeOf(env));
      stamp(state, d.transferId, env);
      if (env.type === EventTypes.LedgerPosted) {
        move(state, d.from, d.currency, -BigInt(d.amountMinor));
        move(state, d.to, d.currency, BigInt(d.amountMinor));
      }
      return "applied";
    }
    case EventTypes.LedgerReversed: {
      const o = state.outcomes.get(env.data.transferId);
      if (o?.status !== "posted") return "ignored";
      if (o.reversal) return "duplicate";
      o.reversal = { reason: env.data.reason, cause: env.causationId };
      stamp(state, o.transferId, env);
      move(state, o.from, o.currency, BigInt(o.amountMinor));
      move(state, o.to, o.currency, -BigInt(o.amountMinor));
      return "applied";
    }
    default:
      return "ignored";
  }
}

/** The outcome a ledger.posted or ledger.declined event records (not yet reversed). */
export function outcomeOf(
  env: Envelope<typeof EventTypes.LedgerPosted | typeof EventTypes.LedgerDeclined>,
): TransferOutcome {
  const d = env.data;
  const posted = env.type === EventTypes.LedgerPosted;
  return {
    transferId: d.transferId,
    status: posted ? "posted" : "declined",
    detail: posted ? (env.data as { decision: string }).decision : (env.data as { reason: string }).reason,
    cause: env.causationId,
    from: d.from,
    to: d.to,
    amountMinor: d.amountMinor,
    currency: d.currency,
  };
}

/** Sum of every balance per currency; conservation (I3) says each is 0. */
export function totals(balances: ReadonlyMap<string, ReadonlyMap<string, bigint>>): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const byCurrency of balances.values()) {
    for (const [cur, v] of byCurrency) out.set(cur, (out.get(cur) ?? 0n) + v);
  }
  return out;
}

/** Deep copy, so a snapshot or a restore can work on a state the projector keeps mutating. */
export function cloneFold(state: FoldState): FoldState {
  const balances = new Map<string, Map<string, bigint>>();
  for (const [acc, m] of state.balances) balances.set(acc, new Map(m));
  const outcomes = new Map<string, TransferOutcome>();
  for (const [id, o] of state.outcomes)
    outcomes.set(id, o.reversal ? { ...o, reversal: { ...o.reversal } } : { ...o });
  return {
    seq: state.seq,
    ...(state.lastEventId !== undefined ? { lastEventId: state.lastEventId } : {}),
    balances,
    outcomes,
    ...(state.outcomeTimes ? { outcomeTimes: new Map(state.outcomeTimes) } : {}),
  };
}
