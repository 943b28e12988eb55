import { ContractError, type Envelope, EventTypes, StreamNames } from "@jetmesh/contracts";
import { type Context, DuplicateMismatchError, PermanentError, TransientError } from "@jetmesh/stage";
import { type EventPublisher, outputEnvelopes } from "@jetmesh/stage/internal";
import type { Logger } from "pino";
import { type Decision, decidePosting, decideReversal, type LedgerView } from "./decide.ts";
import { type FoldState, outcomeOf, type TransferOutcome } from "./fold.ts";
import type { LogFollower } from "./log-follower.ts";
import { DEFAULT_OUTCOME_TTL_MS, inputForgettable, outcomeRemembered } from "./outcome-ttl.ts";

/** An input the ledger decides on. */
export type LedgerInput =
  | Envelope<typeof EventTypes.TransferScored>
  | Envelope<typeof EventTypes.PayoutFailed>;

/** How one input ended: its decision appended now, or found in the log already. */
export interface Committed {
  readonly appended: boolean;
  /** The LEDGER sequence of the decision (when appended now). */
  readonly seq?: number;
}

/**
 * The ledger's one writer of LEDGER: the append is the commit point.
 *
 * Inputs are decided one after another, in the order they arrive, on the fold of LEDGER
 * (log-follower.ts) with the decisions already sent on top, and each decision is appended
 * with JetStream's optimistic concurrency: `Nats-Expected-Last-Sequence` = the sequence the
 * decision was made after, and, after the first of a run, `Nats-Expected-Last-Msg-Id` = the
 * previous decision's id. Appends are pipelined: the next decision is sent before the last
 * one's PubAck returns, in order on one connection (measured on nats-server 2.9.10 and a
 * 3-node cluster: 100 in flight all land; one refused and every one after it is refused
 * too). So a decision is stored only right after the state it was made on:
 * - another writer (a second instance, a paused one that woke up) appended in between: the
 *   append is refused (10071/10070), and so is every one after it;
 * - an append with no answer (a timeout): it may or may not be stored.
 * Either way the writer stops sending, waits for every answer, lets the fold catch up with
 * the stream's last sequence, drops what it had on top, and decides the inputs that are not
 * committed again, on the log as it is: an input whose decision made it in is found there
 * and replayed, the others are decided anew. Nothing is decided on state behind the log, no
 * decision is visible to another before its append, and every prefix of LEDGER is solvent.
 * An input is answered only once its decision is in the log; the runtime then marks it done
 * and acks it.
 */
export interface LedgerWriter {
  /**
   * Decides `input` and appends the decision unless the log already holds it.
   * @throws PermanentError for an input that can never be decided (a reversal of a transfer
   *   that was declined, or has no posting in the log; a malformed transfer);
   *   TransientError when the log cannot be read or written (the runtime retries).
   */
  decide(input: LedgerInput, parent: Context): Promise<Committed>;
  /** Rejects what waits and refuses new inputs (the log turned out not to be ours). */
  halt(reason: string): void;
  status(): WriterStatus;
}

export interface WriterStatus {
  readonly appends: number;
  readonly replays: number;
  readonly conflicts: number;
  readonly resyncs: number;
  /** Decisions sent and not yet in the fold. */
  readonly pending: number;
}

export interface LedgerWriterOptions {
  readonly follower: LogFollower;
  /** Publishes with no retry of its own (a timeout is settled by reading the log). */
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  readonly stream?: string;
  /** How long a resync waits for the fold to reach the stream's end. */
  readonly catchUpTimeoutMs: number;
  /** Resyncs an input may go through before it is given back to the runtime (retried later). */
  readonly maxResyncs?: number;
  /**
   * LEDGER_OUTCOME_TTL_MS, the horizon decisions follow (outcome-ttl.ts): an outcome older
   * than 3/4 of it decides nothing, an unknown transfer's input older than 1/2 of it is refused.
   */
  readonly outcomeTtlMs?: number;
}

const STAGE = "ledger";
const DECLARED = new Set<string>([
  EventTypes.LedgerPosted,
  EventTypes.LedgerDeclined,
  EventTypes.LedgerReversed,
]);

interface Request {
  readonly input: LedgerInput;
  readonly parent: Context;
  resolve(c: Committed): void;
  reject(err: Error): void;
  resyncs: number;
  /** The fold was caught up once for this input (a reversal whose posting was not in view). */
  caughtUp: boolean;
}

/** A decision sent to the log. */
interface Sent {
  readonly seq: number;
  readonly env: Envelope;
  readonly request: Request;
  /** Inputs whose outcome is this decision: answered with it. */
  readonly dependents: Request[];
  state: "sent" | "stored" | "failed";
  /** The request was answered for good (a permanent error): not decided again. */
  settled: boolean;
}

export function createLedgerWriter(o: LedgerWriterOptions): LedgerWriter {
  return new OptimisticWriter(o);
}

class OptimisticWriter implements LedgerWriter {
  readonly #o: LedgerWriterOptions;
  readonly #stream: string;
  readonly #log: Logger;
  readonly #queue: Request[] = [];
  /** Decisions sent and not yet folded, in sequence order. */
  #sent: Sent[] = [];
  #answersDue = 0;
  /** The sequence the next append expects as the log's last; -1 until a resync sets it. */
  #tail = -1;
  /** Id of the decision at #tail when it is one of ours in flight (the msg-id chain). */
  #tailId: string | undefined;
  #resync: Promise<void> | undefined;
  #halted: string | undefined;
  #overlay: Overlay | undefined;
  #stats = { appends: 0, replays: 0, conflicts: 0, resyncs: 0 };

  constructor(o: LedgerWriterOptions) {
    this.#o = o;
    this.#stream = o.stream ?? StreamNames.Ledger;
    this.#log = o.logger.child({ component: "ledger-writer" });
    o.follower.onAdvance((seq) => {
      // Decisions the fold now holds leave the overlay (the fold has them, or, when a
      // refused append's place was taken by another event, the fold has that one instead).
      if (this.#sent.length && this.#sent[0]!.seq <= seq) {
        this.#sent = this.#sent.filter((s) => s.seq > seq || s.state !== "stored");
        this.#overlay = undefined;
      }
    });
  }

  status(): WriterStatus {
    return { ...this.#stats, pending: this.#sent.length };
  }

  decide(input: LedgerInput, parent: Context): Promise<Committed> {
    if (this.#halted) return Promise.reject(new TransientError(`ledger halted: ${this.#halted}`));
    return new Promise<Committed>((resolve, reject) => {
      this.#queue.push({ input, parent, resolve, reject, resyncs: 0, caughtUp: false });
      this.#pump();
    });
  }

  halt(reason: string): void {
    this.#halted = reason;
    const err = new TransientError(`ledger halted: ${reason}`);
    for (const r of this.#queue.splice(0)) r.reject(err);
  }

  #pump(): void {
    if (this.#resync || this.#halted) return;
    // Where the log ends is learnt for an input, not in a loop: after inputs were given back
    // (the log unreadable), the next input starts the resync.
    if (this.#tail < 0) {
      if (this.#queue.length) this.#startResync();
      return;
    }
    while (this.#queue.length && !this.#resync) this.#decideOne(this.#queue.shift() as Request);
  }

  #view(): LedgerView {
    const fold = this.#o.follower.fold();
    this.#overlay ??= new Overlay(
      fold,
      this.#sent.filter((s) => s.seq > fold.seq && s.state !== "failed"),
    );
    const overlay = this.#overlay;
    const ttl = this.#o.outcomeTtlMs ?? DEFAULT_OUTCOME_TTL_MS;
    const now = Date.now();
    return {
      balance: (account, currency) =>
        (fold.balances.get(account)?.get(currency) ?? 0n) + overlay.delta(account, currency),
      // Decisions on their way into the log are new; the fold's outcomes count until the
      // decision horizon, whether or not compaction has dropped them yet.
      outcome: (transferId) =>
        overlay.outcomes.get(transferId) ??
        (outcomeRemembered(fold, transferId, ttl, now) ? fold.outcomes.get(transferId) : undefined),
      forgets: (occurredAt) => inputForgettable(occurredAt, ttl, now),
    };
  }

  #decideOne(r: Request): void {
    const view = this.#view();
    const d: Decision =
      r.input.type === EventTypes.TransferScored
        ? decidePosting(view, r.input.data, r.input.occurredAt)
        : decideReversal(view, r.input.data);
    switch (d.kind) {
      case "refuse":
        r.reject(new PermanentError(d.reason));
        return;
      case "unknown":
        if (r.caughtUp) {
          r.reject(
            new PermanentError(
              `no posting of transfer ${r.input.data.transferId} in ${this.#stream} to reverse, or one past the ledger's decision horizon (3/4 of LEDGER_OUTCOME_TTL_MS): see its lineage (jetmesh trace ${r.input.data.transferId})`,
            ),
          );
          return;
        }
        // The posting may be in the log beyond the fold: catch up, then decide again.
        r.caughtUp = true;
        this.#queue.unshift(r);
        this.#startResync();
        return;
      case "decided": {
        // Its outcome may be a decision still on its way into the log: answer with it.
        const inFlight = this.#overlay?.sentFor.get(d.outcome.transferId);
        if (inFlight && inFlight.state === "sent") inFlight.dependents.push(r);
        else {
          this.#stats.replays++;
          r.resolve({ appended: false });
        }
        return;
      }
      case "append":
        this.#append(r, d);
    }
  }

  #append(r: Request, d: Extract<Decision, { kind: "append" }>): void {
    const [env] = outputEnvelopes(STAGE, r.input, [d.emission], { declared: DECLARED, derived: true });
    const sent: Sent = {
      seq: this.#tail + 1,
      env: env as Envelope,
      request: r,
      dependents: [],
      state: "sent",
      settled: false,
    };
    const expect = {
      lastSequence: this.#tail,
      ...(this.#tailId !== undefined ? { lastMsgId: this.#tailId } : {}),
    };
    this.#sent.push(sent);
    this.#overlay?.add(sent);
    this.#tail = sent.seq;
    this.#tailId = sent.env.eventId;
    this.#answersDue++;
    this.#o.publisher.publish(sent.env, { parent: r.parent, expect }).then(
      (ack) => {
        this.#answersDue--;
        sent.state = "stored";
        this.#stats.appends++;
        const c: Committed = { appended: !ack.duplicate, seq: ack.seq };
        r.resolve(c);
        for (const dep of sent.dependents) dep.resolve({ appended: false });
        // Stored, but not where this writer thought the log ended: resync before deciding more.
        if (ack.seq !== sent.seq) this.#startResync();
      },
      (err: Error) => {
        this.#answersDue--;
        sent.state = "failed";
        this.#overlay = undefined;
        if (err instanceof DuplicateMismatchError) {
          // The log holds another event under this decision's id: the log decides. The
          // resync folds it and the input is answered from it.
          this.#log.warn({ err, seq: sent.seq }, "the log holds another event under this decision's id");
        }
        if (err instanceof ContractError) {
          // An event the contract refuses: never retried. The log may still have moved, so
          // resync all the same.
          sent.settled = true;
          r.reject(new PermanentError(err.message, { cause: err }));
        } else {
          this.#stats.conflicts++;
          this.#log.debug({ err, seq: sent.seq }, "append refused or unanswered; resyncing with the log");
        }
        this.#startResync();
      },
    );
  }

  /**
   * Stops deciding, waits for every append's answer, lets the fold reach the stream's last
   * sequence, and decides again, from the log, every input not committed yet.
   */
  #startResync(): void {
    if (this.#resync || this.#halted) return;
    this.#stats.resyncs++;
    this.#resync = (async () => {
      while (this.#answersDue > 0) await new Promise((r) => setTimeout(r, 2));
      // Failed decisions (and whoever waited on them) are decided again, first, in order; an
      // input already answered with a permanent error is not (deciding it again would append
      // the same refused event, and refuse every append chained after it, at every resync).
      const again: Request[] = [];
      for (const s of this.#sent)
        if (s.state === "failed") again.push(...(s.settled ? [] : [s.request]), ...s.dependents);
      this.#sent = this.#sent.filter((s) => s.state !== "failed");
      const requeue: Request[] = [];
      for (const r of again) {
        if (++r.resyncs > (this.#o.maxResyncs ?? 20)) {
          r.reject(new TransientError("ledger log kept changing under this decision; retrying later"));
        } else requeue.push(r);
      }
      this.#queue.unshift(...requeue);
      let target = 0;
      try {
        target = await this.#o.follower.lastSeq();
      } catch (err) {
        return this.#giveBack(new TransientError("ledger log unreadable", { cause: err }));
      }
      if (!(await this.#o.follower.caughtUp(target, this.#o.catchUpTimeoutMs))) {
        const problem = this.#o.follower.problem();
        return this.#giveBack(
          new TransientError(
            problem ? problem.message : `the fold did not reach ${this.#stream} seq ${target}`,
          ),
        );
      }
      const fold = this.#o.follower.fold();
      this.#sent = [];
      this.#overlay = undefined;
      this.#tail = fold.seq;
      this.#tailId = undefined;
    })().finally(() => {
      this.#resync = undefined;
      this.#pump();
    });
  }

  /** Every queued input goes back to the runtime to be retried later. */
  #giveBack(err: Error): void {
    this.#log.warn({ err }, "ledger cannot reach the end of its log; inputs are retried later");
    for (const r of this.#queue.splice(0)) r.reject(err);
    this.#tail = -1;
  }
}

/** The decisions sent and not yet folded, as changes on top of the fold. */
class Overlay {
  readonly #deltas = new Map<string, Map<string, bigint>>();
  readonly outcomes = new Map<string, TransferOutcome>();
  readonly sentFor = new Map<string, Sent>();
  readonly #fold: FoldState;

  constructor(fold: FoldState, sent: readonly Sent[]) {
    this.#fold = fold;
    for (const s of sent) this.add(s);
  }

  delta(account: string, currency: string): bigint {
    return this.#deltas.get(account)?.get(currency) ?? 0n;
  }

  #move(account: string, currency: string, v: bigint): void {
    let m = this.#deltas.get(account);
    if (!m) {
      m = new Map();
      this.#deltas.set(account, m);
    }
    m.set(currency, (m.get(currency) ?? 0n) + v);
  }

  add(s: Sent): void {
    const env = s.env;
    const d = env.data as {
      transferId: string;
      from: string;
      to: string;
      amountMinor: number;
      currency: string;
    };
    const amount = BigInt(d.amountMinor);
    this.sentFor.set(d.transferId, s);
    if (env.type === EventTypes.LedgerReversed) {
      const posting = this.outcomes.get(d.transferId) ?? this.#fold.outcomes.get(d.transferId);
      if (posting)
        this.outcomes.set(d.transferId, { ...posting, reversal: { reason: "", cause: env.causationId } });
      this.#move(d.from, d.currency, amount);
      this.#move(d.to, d.currency, -amount);
      return;
    }
    this.outcomes.set(
      d.transferId,
      outcomeOf(env as Envelope<typeof EventTypes.LedgerPosted | typeof EventTypes.LedgerDeclined>),
    );
    if (env.type === EventTypes.LedgerPosted) {
      this.#move(d.from, d.currency, -amount);
      this.#move(d.to, d.currency, amount);
    }
  }
}
