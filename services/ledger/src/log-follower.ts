import { StreamNames } from "@jetmesh/contracts";
import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Logger } from "pino";
import { applyLedgerEvent, cloneFold, emptyFold, type FoldState } from "./fold.ts";
import { compactFold, DEFAULT_OUTCOME_TTL_MS } from "./outcome-ttl.ts";
import { type LogPosition, logPosition, toEntry } from "./ledger-log.ts";
import type { SnapshotStore } from "./snapshots.ts";

/**
 * The fold of LEDGER in memory: the only state the ledger decides on. It starts from the
 * latest snapshot (checked against the log first, see log-integrity.ts), follows the stream
 * with an ordered consumer from there, and writes a snapshot each time it crosses a multiple
 * of `snapshotEvery` events. It never restarts from scratch on its own: a stream recreated
 * under it, or shorter than what it folded, is a {@link LogProblem} that stops the ledger.
 */
export interface LogFollower {
  /** Loads the snapshot, follows the log, and resolves once the fold reached the log's last sequence at start. */
  start(): Promise<void>;
  /** The live fold (read-only for callers). */
  fold(): FoldState;
  /** Resolves true once the fold reached `seq`, false after `timeoutMs` or a problem. */
  caughtUp(seq: number, timeoutMs: number): Promise<boolean>;
  /** The stream's last sequence now. */
  lastSeq(): Promise<number>;
  /** Called after each folded message with the fold's new sequence. */
  onAdvance(listener: (seq: number) => void): void;
  /** The problem that stopped the follower, if any. */
  problem(): LogProblem | undefined;
  onProblem(listener: (p: LogProblem) => void): void;
  /** Where the fold is; `outcomes` it holds now, `compacted` outcomes it dropped (outcome-ttl.ts). */
  status(): { foldSeq: number; snapshotSeq: number; outcomes: number; compacted: number };
  stop(): Promise<void>;
}

/** A log that is not the one the ledger's state was built from: never decided on, never restored over. */
export interface LogProblem {
  readonly kind: "recreated" | "shorter" | "mismatch" | "missing";
  readonly message: string;
}

export interface LogFollowerOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly snapshots: SnapshotStore;
  readonly logger: Logger;
  readonly stream?: string;
  readonly snapshotEvery: number;
  /** The snapshot to start from (already checked against the log), if any. */
  readonly from?: FoldState;
  /** The stream instance (creation time) the snapshot and the projection belong to. */
  readonly streamCreated: string;
  /**
   * How often the stream is checked against the fold while following it (default 1000 ms):
   * an ordered consumer does not end when its stream is deleted and recreated, it goes on
   * waiting for the next sequence of the new stream.
   */
  readonly checkEveryMs?: number;
  /**
   * LEDGER_OUTCOME_TTL_MS: outcomes older than 5/4 of it leave the fold (compactFold,
   * outcome-ttl.ts), checked every 1/20 of it (at least every second, at most every hour).
   */
  readonly outcomeTtlMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** No message for this long while the log is ahead: the follower is restarted. */
const STALL_MS = 3000;

export function createLogFollower(o: LogFollowerOptions): LogFollower {
  return new OrderedLogFollower(o);
}

class OrderedLogFollower implements LogFollower {
  readonly #o: LogFollowerOptions;
  readonly #stream: string;
  readonly #log: Logger;
  #fold: FoldState;
  #snapshotSeq: number;
  #snapshotQueued: FoldState | undefined;
  #snapshotting: Promise<void> | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #problem: LogProblem | undefined;
  readonly #advance: Array<(seq: number) => void> = [];
  readonly #problems: Array<(p: LogProblem) => void> = [];
  readonly #waiters = new Set<{ seq: number; done: (ok: boolean) => void }>();
  #movedAt = Date.now();
  #watchdog: NodeJS.Timeout | undefined;
  #compactor: NodeJS.Timeout | undefined;
  #compacted = 0;
  #compacting = false;

  constructor(o: LogFollowerOptions) {
    this.#o = o;
    this.#stream = o.stream ?? StreamNames.Ledger;
    this.#log = o.logger.child({ component: "log-follower", stream: this.#stream });
    this.#fold = o.from ?? emptyFold();
    this.#snapshotSeq = this.#fold.seq;
  }

  fold(): FoldState {
    return this.#fold;
  }
  problem(): LogProblem | undefined {
    return this.#problem;
  }
  status() {
    return {
      foldSeq: this.#fold.seq,
      snapshotSeq: this.#snapshotSeq,
      outcomes: this.#fold.outcomes.size,
      compacted: this.#compacted,
    };
  }
  onAdvance(listener: (seq: number) => void): void {
    this.#advance.push(listener);
  }
  onProblem(listener: (p: LogProblem) => void): void {
    this.#problems.push(listener);
  }

  /** @throws when the stream is not the one the fold is of (the follower then has a problem). */
  async lastSeq(): Promise<number> {
    const folded = this.#fold.seq;
    const pos = await logPosition(this.#o.jsm, this.#stream);
    if (!pos || !this.#check(pos, folded))
      throw new Error(this.#problem?.message ?? `stream ${this.#stream} is missing`);
    return pos.lastSeq;
  }

  caughtUp(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.#fold.seq >= seq) return Promise.resolve(true);
    if (this.#problem) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = {
        seq,
        done: (ok: boolean) => {
          clearTimeout(timer);
          this.#waiters.delete(w);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => w.done(false), timeoutMs);
      this.#waiters.add(w);
    });
  }

  async start(): Promise<void> {
    const target = await this.lastSeq();
    this.#loop = this.#run();
    // An ordered consumer can stall after a broker restart: follow again when the log is
    // ahead and nothing arrived for a while (also the stream-identity check of #run).
    this.#watchdog = setInterval(() => void this.#watch(), 1000);
    this.#watchdog.unref();
    this.#timer = setInterval(() => void this.#verify(), this.#o.checkEveryMs ?? 1000);
    this.#timer.unref();
    const ttl = this.#o.outcomeTtlMs ?? DEFAULT_OUTCOME_TTL_MS;
    this.#compactor = setInterval(
      () => void this.#compact(ttl),
      Math.min(3600_000, Math.max(1000, ttl / 20)),
    );
    this.#compactor.unref();
    for (;;) {
      if (this.#problem) throw new Error(this.#problem.message);
      if (this.#stopped) throw new Error("log follower stopped before it caught up");
      if (await this.caughtUp(target, 1000)) break;
      this.#log.info({ fold_seq: this.#fold.seq, target }, "folding the log");
    }
    this.#log.info(
      { fold_seq: this.#fold.seq, outcomes: this.#fold.outcomes.size },
      "fold caught up with the log",
    );
  }

  async #watch(): Promise<void> {
    // Only a pass that runs (its consumer made) can stall; one being set up is not restarted.
    if (this.#stopped || this.#problem || !this.#messages || Date.now() - this.#movedAt < STALL_MS) return;
    try {
      if ((await this.lastSeq()) > this.#fold.seq) {
        this.#log.warn({ fold_seq: this.#fold.seq }, "follower stalled behind the log; following it again");
        this.#movedAt = Date.now();
        await this.#messages?.close();
      }
    } catch {
      // the stream is unreadable now: #run reports what it finds
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    clearInterval(this.#timer);
    clearInterval(this.#compactor);
    await this.#messages?.close();
    for (const w of [...this.#waiters]) w.done(false);
    await Promise.allSettled([this.#loop, this.#snapshotting]);
  }

  #fail(p: LogProblem): void {
    if (this.#problem) return;
    this.#problem = p;
    clearInterval(this.#timer);
    this.#log.error({ problem: p.kind }, p.message);
    for (const w of [...this.#waiters]) w.done(false);
    for (const l of this.#problems) l(p);
    void this.#messages?.close();
  }

  /**
   * Compares the stream as it is now with what the fold was built from. `folded` is the
   * fold's sequence when `pos` was asked for: the fold may have moved on while the answer
   * travelled, and the answer is only ever compared with what was folded before it.
   */
  #check(pos: LogPosition | undefined, folded = this.#fold.seq): boolean {
    if (!pos) {
      this.#fail({ kind: "missing", message: `stream ${this.#stream} disappeared under the ledger` });
      return false;
    }
    if (pos.created !== this.#o.streamCreated) {
      this.#fail({
        kind: "recreated",
        message: `stream ${this.#stream} was recreated (created ${pos.created}, the ledger's state is of the one created ${this.#o.streamCreated}); refusing to decide on an empty log`,
      });
      return false;
    }
    if (pos.lastSeq < folded) {
      this.#fail({
        kind: "shorter",
        message: `stream ${this.#stream} is shorter than the fold (last seq ${pos.lastSeq}, folded ${folded}): the broker lost its tail`,
      });
      return false;
    }
    return true;
  }

  /**
   * Drops the outcomes past the compaction horizon. Decisions do not depend on it (they
   * ignore outcomes past the decision horizon already); it bounds memory and snapshots.
   */
  async #compact(ttl: number): Promise<void> {
    if (this.#stopped || this.#problem || this.#compacting) return;
    this.#compacting = true;
    try {
      const started = performance.now();
      const dropped = await compactFold(this.#fold, ttl, Date.now());
      if (dropped === 0) return;
      this.#compacted += dropped;
      this.#log.info(
        { dropped, outcomes: this.#fold.outcomes.size, ms: Math.round(performance.now() - started) },
        "outcomes past the ledger's horizon left the fold",
      );
    } finally {
      this.#compacting = false;
    }
  }

  /** The periodic check while following: a stream recreated or cut short under the fold. */
  async #verify(): Promise<void> {
    if (this.#stopped || this.#problem) return;
    const folded = this.#fold.seq;
    let pos: LogPosition | undefined;
    try {
      pos = await logPosition(this.#o.jsm, this.#stream);
    } catch {
      return; // unreachable: the next check tells
    }
    if (!this.#stopped) this.#check(pos, folded);
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped && !this.#problem) {
      try {
        if (!this.#check(await logPosition(this.#o.jsm, this.#stream))) return;
        const consumer = await this.#o.js.consumers.get(this.#stream, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.#fold.seq + 1,
        });
        this.#messages = await consumer.consume({ max_messages: 1000 });
        // stop() (or a problem) while this pass was starting found nothing to close: close it
        // now, so the loop below ends at once. (Closing alone is not enough: a ConsumerMessages
        // ends, and its close() resolves, only once iterated.)
        if (this.#stopped || this.#problem) void this.#messages.close();
        for await (const m of this.#messages) {
          if (this.#stopped || this.#problem) break;
          this.#onMessage(m);
          failures = 0;
        }
      } catch (err) {
        failures++;
        this.#log.warn({ err, failures }, "following the log failed; resuming");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      } finally {
        await this.#messages?.close();
        this.#messages = undefined;
      }
    }
  }

  #onMessage(m: JsMsg): void {
    if (m.seq <= this.#fold.seq) return;
    const entry = toEntry(m);
    if (entry.env) applyLedgerEvent(this.#fold, m.seq, entry.env);
    else {
      this.#log.error({ err: entry.error, stream_seq: m.seq }, "undecodable message in the log; skipped");
      this.#fold.seq = m.seq;
      delete this.#fold.lastEventId;
    }
    this.#maybeSnapshot();
    this.#movedAt = Date.now();
    const seq = this.#fold.seq;
    for (const l of this.#advance) l(seq);
    for (const w of [...this.#waiters]) if (seq >= w.seq) w.done(true);
  }

  #maybeSnapshot(): void {
    const every = this.#o.snapshotEvery;
    const seq = this.#fold.seq;
    if (Math.floor(seq / every) <= Math.floor(this.#snapshotSeq / every)) return;
    this.#snapshotSeq = seq;
    // Copied now, at the multiple: the fold moves on while the write runs. While a write
    // runs, only the latest due snapshot waits for its turn.
    this.#snapshotQueued = cloneFold(this.#fold);
    if (!this.#snapshotting) this.#snapshotting = this.#writeSnapshots();
  }

  async #writeSnapshots(): Promise<void> {
    for (let next = this.#snapshotQueued; next; next = this.#snapshotQueued) {
      this.#snapshotQueued = undefined;
      try {
        const p = await this.#o.snapshots.write(next, this.#o.streamCreated);
        if (p) this.#log.info({ snapshot_seq: p.seq, chunks: p.chunks, bytes: p.bytes }, "snapshot written");
      } catch (err) {
        this.#log.warn({ err, snapshot_seq: next.seq }, "snapshot not written; the next one will be");
      }
    }
    this.#snapshotting = undefined;
  }
}
