import { EventTypes } from "@jetmesh/contracts";
import { type Step, Steps } from "./catalog.ts";

/** One stored event of a transfer, as evidence (its lineage). */
export interface EventRef {
  readonly type: string;
  readonly stream: string;
  readonly seq: number;
  readonly eventId?: string;
  readonly causationId?: string;
  /** Stream store time, ms since the epoch. */
  readonly at: number;
}

/** A transfer not finished yet: the step it waits in, since when, and what it has. */
export interface OpenTransfer {
  readonly transferId: string;
  readonly step: Step | undefined;
  /** Store time of the event that started the step. */
  readonly since: number;
  readonly events: readonly EventRef[];
  /** The step a stuck finding was opened for, if one is open. */
  flagged: Step | undefined;
}

interface Saga extends OpenTransfer {
  step: Step | undefined;
  since: number;
  readonly events: EventRef[];
  /** Known once LEDGER's posting (or a payout event) was read: the transfer leaves through the bank. */
  bank: boolean | undefined;
  readonly seen: Set<string>;
}

/** What reading one event did to its transfer. */
export interface Progress {
  /** The step the transfer waited in before, and the one it waits in now (undefined: finished). */
  readonly before: Step | undefined;
  readonly after: Step | undefined;
  readonly finished: boolean;
  /** The step a stuck finding was open for, when the transfer has left it. */
  readonly resolved: Step | undefined;
  readonly transfer: OpenTransfer;
}

const MAX_EVENTS = 12;

/**
 * Every accepted transfer's saga, from the events read on the pipeline's streams in any
 * order (each stream is followed on its own): the step it waits in and since when. A
 * finished transfer leaves the open set and is remembered only until every follower has
 * read past its end (so a late-read earlier event of it is not taken for a new transfer).
 * Pure: no I/O, no clock.
 */
export class SagaTracker {
  readonly #open = new Map<string, Saga>();
  readonly #finished = new Map<string, number>();

  /** Reads one event of transfer `transferId`; `bank` when a LEDGER posting names a bank account. */
  observe(transferId: string, ref: EventRef, bank?: boolean): Progress | undefined {
    if (this.#finished.has(transferId)) return undefined;
    let s = this.#open.get(transferId);
    if (!s) {
      s = {
        transferId,
        step: undefined,
        since: 0,
        events: [],
        flagged: undefined,
        bank: undefined,
        seen: new Set(),
      };
      this.#open.set(transferId, s);
    }
    if (s.seen.has(ref.type)) return undefined;
    s.seen.add(ref.type);
    if (s.events.length < MAX_EVENTS) s.events.push(ref);
    if (bank !== undefined) s.bank = bank;
    if (ref.type === EventTypes.PayoutCompleted || ref.type === EventTypes.PayoutFailed) s.bank = true;
    const before = s.step;
    const next = stepOf(s);
    const flagged = s.flagged;
    if (next === "finished") {
      this.#open.delete(transferId);
      this.#finished.set(transferId, ref.at);
      return { before, after: undefined, finished: true, resolved: flagged, transfer: s };
    }
    if (next) {
      s.step = next.step;
      s.since = next.since;
    }
    const resolved = flagged !== undefined && flagged !== s.step ? flagged : undefined;
    if (resolved) s.flagged = undefined;
    return { before, after: s.step, finished: false, resolved, transfer: s };
  }

  /** Transfers past the deadline of their step, judged only where `known(stream, t)` says the stream was read past t. */
  overdue(
    now: number,
    deadlines: Readonly<Record<Step, number>>,
    readPast: (step: Step, t: number) => boolean,
  ): OpenTransfer[] {
    const out: OpenTransfer[] = [];
    for (const s of this.#open.values()) {
      if (!s.step || s.flagged === s.step) continue;
      const due = s.since + deadlines[s.step];
      if (now > due && readPast(s.step, due)) out.push(s);
    }
    return out;
  }

  get(transferId: string): OpenTransfer | undefined {
    return this.#open.get(transferId);
  }

  isFinished(transferId: string): boolean {
    return this.#finished.has(transferId);
  }

  /** Forgets finished transfers that ended before `frontier` (every follower has read past it). */
  prune(frontier: number): void {
    for (const [id, at] of this.#finished) if (at < frontier) this.#finished.delete(id);
  }

  get openCount(): number {
    return this.#open.size;
  }
}

/** The step a transfer waits in, from the event types it has; "finished" once it has its outcome. */
function stepOf(s: Saga): { step: Step; since: number } | "finished" | undefined {
  const at = (type: string) => s.events.find((e) => e.type === type)?.at ?? 0;
  const has = (type: string) => s.seen.has(type);
  if (
    has(EventTypes.TransferRejected) ||
    has(EventTypes.LedgerDeclined) ||
    has(EventTypes.LedgerReversed) ||
    has(EventTypes.PayoutCompleted)
  )
    return "finished";
  if (has(EventTypes.PayoutFailed)) return { step: Steps.Reverse, since: at(EventTypes.PayoutFailed) };
  if (has(EventTypes.LedgerPosted))
    return s.bank === false ? "finished" : { step: Steps.Payout, since: at(EventTypes.LedgerPosted) };
  if (has(EventTypes.TransferScored)) return { step: Steps.Decide, since: at(EventTypes.TransferScored) };
  if (has(EventTypes.TransferValidated))
    return { step: Steps.Score, since: at(EventTypes.TransferValidated) };
  if (has(EventTypes.TransferRequested))
    return { step: Steps.Validate, since: at(EventTypes.TransferRequested) };
  return undefined;
}
