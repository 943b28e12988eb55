import { randomUUID } from "node:crypto";
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
import { type LogPosition, logPosition, toEntry } from "./ledger-log.ts";
import type { SnapshotStore } from "./snapshots.ts";
import type { ApplyResult, LedgerStore } from "./store.ts";

/**
 * The projector keeps Redis equal to the fold of LEDGER (the log is the truth).
 *
 * It follows LEDGER with an ordered consumer and keeps the fold in memory. While the
 * projection is whole (`live`: the epoch key exists) it runs the APPLY script for each
 * event, which changes nothing when the decision step already stored the outcome (the
 * normal case) and fills in what a Redis that lost writes is missing. Every
 * `snapshotEvery` events it writes the fold to the snapshot bucket.
 *
 * Restore: when the epoch is missing (FLUSHALL, an empty Redis, a crashed restore) or
 * applied-seq is ahead of the log, every decision and apply script refuses. The
 * projector then lets the fold catch up with the stream's tail, takes the restore lock,
 * pauses folding, wipes the ledger keys and writes the fold (fenced by the lock), and
 * sets applied-seq and the epoch in one last step. Another instance that finds the
 * lock taken waits for the epoch and resumes applying from applied-seq. A wipe is
 * noticed by a refused script (apply here, the decision via `requestRestore`) or by a
 * periodic check of the epoch.
 */
export interface Projector {
  /**
   * Loads the latest snapshot, restores Redis when it is not whole, and resolves once
   * Redis has applied the log up to the last sequence seen at start.
   */
  start(): Promise<void>;
  /** Asks for a restore (the decision step calls this when its script refused). Coalesced. */
  requestRestore(reason: string): void;
  /** True while the projection is whole and the initial catch-up is done. */
  ready(): boolean;
  status(): ProjectorStatus;
  /** The in-memory fold (read-only use: tests, diagnostics). */
  fold(): FoldState;
  /** Stops following the log; waits for a running snapshot write. */
  stop(): Promise<void>;
}

export interface ProjectorStatus {
  readonly mode: "starting" | "live" | "restoring" | "stopped";
  readonly foldSeq: number;
  readonly appliedSeq: number;
  readonly snapshotSeq: number;
  readonly restores: number;
}

export interface ProjectorOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly store: LedgerStore;
  readonly snapshots: SnapshotStore;
  readonly logger: Logger;
  readonly stream?: string;
  /** Write a snapshot each time the fold crosses a multiple of this many events. */
  readonly snapshotEvery: number;
  /** How often the epoch is checked while live, ms. */
  readonly epochCheckMs: number;
  readonly restoreLockMs?: number;
  /** APPLY scripts in flight at once. */
  readonly applyWindow?: number;
}

interface PendingApply {
  readonly seq: number;
  readonly generation: number;
  readonly result: Promise<ApplyResult>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function createProjector(opts: ProjectorOptions): Projector {
  return new LogProjector(opts);
}

class LogProjector implements Projector {
  readonly #o: ProjectorOptions;
  readonly #stream: string;
  readonly #log: Logger;
  readonly #instance = randomUUID();
  #fold: FoldState = emptyFold();
  #streamCreated = "";
  #mode: ProjectorStatus["mode"] = "starting";
  #redisApplied = 0;
  #ready = false;
  #stopped = false;
  /** Bumped by each restore: results of applies sent before it are ignored. */
  #generation = 0;
  #pending: PendingApply[] = [];
  #messages: ConsumerMessages | undefined;
  #reposition = false;
  #loop: Promise<void> | undefined;
  #restoring: Promise<void> | undefined;
  #restores = 0;
  /** Resolves when folding may go on; replaced while a restore writes the frozen fold. */
  #gate: Promise<void> = Promise.resolve();
  #snapshotSeq = 0;
  #snapshotting: Promise<void> | undefined;
  #snapshotQueued: { state: FoldState; created: string } | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: ProjectorOptions) {
    this.#o = o;
    this.#stream = o.stream ?? StreamNames.Ledger;
    this.#log = o.logger.child({ component: "projector", stream: this.#stream });
  }

  fold(): FoldState {
    return this.#fold;
  }

  ready(): boolean {
    return this.#ready && this.#mode === "live";
  }

  status(): ProjectorStatus {
    return {
      mode: this.#mode,
      foldSeq: this.#fold.seq,
      appliedSeq: this.#redisApplied,
      snapshotSeq: this.#snapshotSeq,
      restores: this.#restores,
    };
  }

  async start(): Promise<void> {
    let pos: LogPosition | undefined;
    let whole = false;
    // NATS or Redis may still be coming up with the rest of the system: wait for them.
    for (let failures = 1; ; failures++) {
      try {
        pos = await logPosition(this.#o.jsm, this.#stream);
        whole = await this.#o.store.isReady();
        if (whole) this.#redisApplied = await this.#o.store.appliedSeq();
        break;
      } catch (err) {
        if (this.#stopped) throw err;
        this.#log.warn({ err, failures }, "cannot read the log position or the projection yet; retrying");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
    this.#streamCreated = pos?.created ?? "";
    const lastAtStart = pos?.lastSeq ?? 0;
    await this.#loadSnapshot(pos);
    if (whole) {
      if (this.#redisApplied > lastAtStart) {
        this.#log.error(
          { applied_seq: this.#redisApplied, last_seq: lastAtStart },
          "projection is ahead of the log (a recreated stream?); restoring from the log",
        );
        this.#startRestore("projection ahead of the log", true);
      } else {
        this.#mode = "live";
        if (this.#redisApplied < lastAtStart) {
          this.#log.info(
            { applied_seq: this.#redisApplied, last_seq: lastAtStart },
            "projection behind the log; catching up",
          );
        }
      }
    } else {
      this.requestRestore("epoch missing at start");
    }
    this.#loop = this.#run();
    this.#timer = setInterval(() => void this.#checkEpoch(), this.#o.epochCheckMs);
    this.#timer.unref();
    while (!(this.#mode === "live" && this.#redisApplied >= lastAtStart && this.#fold.seq >= lastAtStart)) {
      if (this.#stopped) throw new Error("projector stopped before it was ready");
      await sleep(20);
    }
    this.#ready = true;
    this.#log.info({ ...this.status() }, "projection ready");
  }

  async #loadSnapshot(pos: LogPosition | undefined): Promise<void> {
    try {
      const snap = await this.#o.snapshots.readLatest();
      if (!snap) return;
      if (!pos || snap.pointer.streamCreated !== pos.created || snap.state.seq > pos.lastSeq) {
        this.#log.warn(
          {
            snapshot_seq: snap.state.seq,
            snapshot_stream: snap.pointer.streamCreated,
            stream_created: pos?.created,
          },
          "snapshot belongs to another instance of the stream; folding from the first message",
        );
        return;
      }
      this.#fold = snap.state;
      this.#snapshotSeq = snap.state.seq;
      this.#log.info({ snapshot_seq: snap.state.seq, outcomes: snap.state.outcomes.size }, "snapshot loaded");
    } catch (err) {
      // The log alone is enough: a bad snapshot only costs a longer replay.
      this.#log.error({ err }, "snapshot unreadable; folding from the first message");
    }
  }

  requestRestore(reason: string): void {
    this.#startRestore(reason, false);
  }

  /** `force`: restore even though the epoch is set (the projection is of another log). */
  #startRestore(reason: string, force: boolean): void {
    if (this.#restoring || this.#stopped) return;
    this.#mode = "restoring";
    this.#generation++;
    this.#log.warn({ reason }, "projection not whole; restoring");
    this.#restoring = this.#restore(force).finally(() => {
      this.#restoring = undefined;
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#mode = "stopped";
    if (this.#timer) clearInterval(this.#timer);
    await this.#messages?.close();
    await Promise.allSettled([this.#loop, this.#restoring, this.#snapshotting]);
  }

  async #checkEpoch(): Promise<void> {
    if (this.#mode !== "live") return;
    try {
      if (!(await this.#o.store.isReady())) this.requestRestore("epoch key disappeared");
    } catch {
      // Redis unreachable: the scripts fail too and the stage retries; nothing to restore yet.
    }
  }

  /** The consume loop: (re)creates the ordered consumer where fold and Redis need it. */
  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        const pos = await logPosition(this.#o.jsm, this.#stream);
        if (!pos) {
          await sleep(500);
          continue;
        }
        this.#checkStreamIdentity(pos);
        const live = this.#mode === "live";
        const start = (live ? Math.min(this.#fold.seq, this.#redisApplied) : this.#fold.seq) + 1;
        if (pos.firstSeq > this.#fold.seq + 1) {
          // Only a purge does this (LEDGER denies deletes and has no age limit).
          this.#log.error(
            { first_seq: pos.firstSeq, fold_seq: this.#fold.seq },
            "LEDGER lost messages before its first sequence and no snapshot covers them; the fold misses them",
          );
        }
        const consumer = await this.#o.js.consumers.get(this.#stream, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: start,
        });
        this.#messages = await consumer.consume({ max_messages: 1000 });
        this.#reposition = false;
        for await (const m of this.#messages) {
          await this.#gate;
          if (this.#reposition || this.#stopped) break;
          await this.#onMessage(m);
          if (m.info.pending === 0) await this.#settle(0);
          failures = 0;
        }
        await this.#settle(0);
      } catch (err) {
        failures++;
        this.#log.warn({ err, failures }, "following the log failed; resuming");
        this.#pending = [];
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      } finally {
        await this.#messages?.close();
        this.#messages = undefined;
      }
    }
  }

  #checkStreamIdentity(pos: LogPosition): void {
    if (pos.created === this.#streamCreated) return;
    if (this.#streamCreated === "" && this.#fold.seq === 0) {
      this.#streamCreated = pos.created;
      return;
    }
    this.#log.error(
      { was: this.#streamCreated, now: pos.created },
      "the stream was recreated; folding it anew",
    );
    this.#streamCreated = pos.created;
    this.#fold = emptyFold();
    this.#snapshotSeq = 0;
    this.#startRestore("stream recreated", true);
  }

  async #onMessage(m: JsMsg): Promise<void> {
    const entry = toEntry(m);
    if (entry.error)
      this.#log.error({ err: entry.error, stream_seq: m.seq }, "undecodable message in the log; skipped");
    if (m.seq > this.#fold.seq) {
      if (entry.env) applyLedgerEvent(this.#fold, m.seq, entry.env);
      else this.#fold.seq = m.seq;
      this.#maybeSnapshot();
    }
    if (this.#mode === "live" && m.seq > this.#redisApplied && entry.env) {
      const result = this.#o.store.apply(m.seq, entry.env);
      // Applies still queued when the loop resets (a dropped Redis link) are dropped
      // unawaited; observe their rejection here so it cannot end the process. The
      // awaited ones still reject into #settle's caller.
      result.catch(() => {});
      this.#pending.push({ seq: m.seq, generation: this.#generation, result });
      await this.#settle(this.#o.applyWindow ?? 256);
    }
  }

  /** Awaits applies, oldest first, until at most `keep` are in flight. */
  async #settle(keep: number): Promise<void> {
    while (this.#pending.length > keep) {
      const head = this.#pending[0] as PendingApply;
      const result = await head.result;
      this.#pending.shift();
      if (head.generation !== this.#generation) continue;
      if (result === "not-ready") {
        this.requestRestore("apply refused: epoch missing");
        continue;
      }
      if (result === "applied") {
        // Expected right after a restore (decisions taken before the wipe, published
        // after); otherwise Redis had lost a write and the log put it back.
        this.#log.info({ stream_seq: head.seq }, "effect applied from the log");
      }
      if (head.seq > this.#redisApplied) this.#redisApplied = head.seq;
    }
  }

  #maybeSnapshot(): void {
    const every = this.#o.snapshotEvery;
    const seq = this.#fold.seq;
    if (Math.floor(seq / every) <= Math.floor(this.#snapshotSeq / every)) return;
    this.#snapshotSeq = seq;
    // Copied now, at the multiple: the fold moves on while the write runs. While a write
    // runs, only the latest due snapshot waits for its turn.
    this.#snapshotQueued = { state: cloneFold(this.#fold), created: this.#streamCreated };
    if (!this.#snapshotting) this.#snapshotting = this.#writeSnapshots();
  }

  async #writeSnapshots(): Promise<void> {
    for (let next = this.#snapshotQueued; next; next = this.#snapshotQueued) {
      this.#snapshotQueued = undefined;
      try {
        const p = await this.#o.snapshots.write(next.state, next.created);
        if (p) this.#log.info({ snapshot_seq: p.seq, chunks: p.chunks, bytes: p.bytes }, "snapshot written");
      } catch (err) {
        this.#log.warn({ err, snapshot_seq: next.state.seq }, "snapshot not written; the next one will be");
      }
    }
    this.#snapshotting = undefined;
  }

  async #restore(force: boolean): Promise<void> {
    const lockMs = this.#o.restoreLockMs ?? 30_000;
    let failures = 0;
    while (!this.#stopped) {
      try {
        await this.#catchUpFold();
        const owner = `${this.#instance}:${randomUUID()}`;
        if (!(await this.#o.store.acquireRestoreLock(owner, lockMs))) {
          // Another process restores: wait for its epoch and then follow its applied-seq.
          if (await this.#waitForOtherRestore()) return this.#adopt();
          continue;
        }
        if (!force && (await this.#o.store.isReady())) {
          await this.#o.store.releaseRestoreLock(owner);
          return this.#adopt();
        }
        let release: () => void = () => {};
        this.#gate = new Promise<void>((r) => {
          release = r;
        });
        const renew = setInterval(
          () => void this.#o.store.renewRestoreLock(owner, lockMs).catch(() => {}),
          lockMs / 3,
        );
        try {
          const state = this.#fold; // frozen: the loop waits at the gate
          const epoch = JSON.stringify({ seq: state.seq, by: this.#instance, at: new Date().toISOString() });
          const written = await this.#o.store.writeRestore(owner, state, epoch);
          if (!written) {
            this.#log.warn("restore lock lost while writing; another process restores");
            continue;
          }
          this.#generation++;
          this.#pending = [];
          this.#redisApplied = state.seq;
          this.#mode = "live";
          this.#restores++;
          this.#log.info(
            { seq: state.seq, outcomes: state.outcomes.size, accounts: state.balances.size },
            "projection restored",
          );
          return;
        } finally {
          clearInterval(renew);
          release();
        }
      } catch (err) {
        failures++;
        this.#log.warn({ err, failures }, "restore failed; retrying");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  /** Waits until the fold has every message the stream held when called. */
  async #catchUpFold(): Promise<void> {
    const pos = await logPosition(this.#o.jsm, this.#stream);
    const target = pos?.lastSeq ?? 0;
    let waited = 0;
    while (this.#fold.seq < target && !this.#stopped) {
      await sleep(20);
      waited += 20;
      if (waited % 10_000 === 0)
        this.#log.warn({ fold_seq: this.#fold.seq, target }, "restore waits for the fold");
    }
  }

  /** True once another process's restore set the epoch; false when its lock vanished without one. */
  async #waitForOtherRestore(): Promise<boolean> {
    while (!this.#stopped) {
      if (await this.#o.store.isReady()) return true;
      if (!(await this.#o.store.restoreLockHeld())) return await this.#o.store.isReady();
      await sleep(100);
    }
    return false;
  }

  /** Another process restored: apply from its applied-seq on. */
  async #adopt(): Promise<void> {
    this.#generation++;
    this.#pending = [];
    this.#redisApplied = await this.#o.store.appliedSeq();
    this.#mode = "live";
    this.#log.info({ applied_seq: this.#redisApplied }, "projection restored by another instance");
    if (this.#redisApplied < this.#fold.seq) {
      this.#reposition = true;
      await this.#messages?.close();
    }
  }
}
