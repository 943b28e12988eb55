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
import { cloneFold } from "./fold.ts";
import { toEntry } from "./ledger-log.ts";
import type { LogFollower } from "./log-follower.ts";
import { type ApplyResult, type LedgerStore, RestoreWritesLost } from "./store.ts";

/**
 * Redis as a read model of LEDGER: the balances and outcomes the gateway serves. Nothing
 * decides on it. It follows the log with its own ordered consumer from Redis's applied-seq
 * and applies each event strictly after the one before (APPLY in lua.ts), and it repairs
 * itself from the log whatever Redis lost:
 * - wiped or restarted empty (no epoch): restore it from a copy of the in-memory fold,
 *   every write fenced by a lock, then follow on from the fold's sequence;
 * - rolled back (a failover to a lagging replica, a lost AOF tail, a backup): the next apply
 *   finds applied-seq behind it, or the periodic check does while the log is idle, and the
 *   projection re-applies the log from Redis's own applied-seq.
 * Meanwhile `ready()` is false, so the ledger's /readyz says the projection is repairing.
 */
export interface RedisProjection {
  start(): void;
  ready(): boolean;
  status(): ProjectionStatus;
  stop(): Promise<void>;
}

export interface ProjectionStatus {
  readonly mode: "starting" | "live" | "repairing" | "restoring" | "stopped";
  readonly appliedSeq: number;
  readonly restores: number;
  readonly repairs: number;
}

export interface RedisProjectionOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly store: LedgerStore;
  readonly follower: LogFollower;
  readonly logger: Logger;
  readonly stream?: string;
  /** The LEDGER instance (creation time) written into the epoch. */
  readonly streamCreated: string;
  /** How often Redis is checked for a wipe or a rollback while the log is idle, ms. */
  readonly checkEveryMs: number;
  readonly restoreLockMs?: number;
  /** APPLY scripts in flight at once. */
  readonly applyWindow?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** No progress for this long while the log is ahead: the pass is restarted. */
const STALL_MS = 3000;

export function createRedisProjection(o: RedisProjectionOptions): RedisProjection {
  return new LogProjection(o);
}

interface InFlight {
  readonly seq: number;
  readonly generation: number;
  readonly result: Promise<ApplyResult>;
}

class LogProjection implements RedisProjection {
  readonly #o: RedisProjectionOptions;
  readonly #stream: string;
  readonly #log: Logger;
  readonly #instance = randomUUID();
  #mode: ProjectionStatus["mode"] = "starting";
  /** The sequence Redis is known to have applied. */
  #applied = 0;
  /** Until #applied reaches it the projection is repairing (a gap was found at it). */
  #repairUntil = 0;
  #restores = 0;
  #repairs = 0;
  #generation = 0;
  #inFlight: InFlight[] = [];
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #checking = false;
  /** When #applied last moved (a pass that stalls, as an ordered consumer can after a broker restart, is restarted). */
  #movedAt = Date.now();

  constructor(o: RedisProjectionOptions) {
    this.#o = o;
    this.#stream = o.stream ?? StreamNames.Ledger;
    this.#log = o.logger.child({ component: "redis-projection", stream: this.#stream });
  }

  ready(): boolean {
    return this.#mode === "live";
  }

  status(): ProjectionStatus {
    return { mode: this.#mode, appliedSeq: this.#applied, restores: this.#restores, repairs: this.#repairs };
  }

  start(): void {
    this.#loop = this.#run();
    this.#timer = setInterval(() => void this.#check(), this.#o.checkEveryMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#mode = "stopped";
    if (this.#timer) clearInterval(this.#timer);
    await this.#messages?.close();
    await this.#loop?.catch(() => {});
  }

  /** Ends the current pass over the log; the loop starts again from what Redis holds. */
  #reposition(): void {
    this.#generation++;
    this.#inFlight = [];
    void this.#messages?.close();
  }

  /** Redis holds `redisApplied` while this projection had written past it: it lost writes. */
  #rolledBack(redisApplied: number, where: string): void {
    if (this.#mode !== "repairing") this.#repairs++;
    this.#repairUntil = Math.max(this.#repairUntil, this.#applied, redisApplied + 1);
    this.#log.warn(
      { redis_applied_seq: redisApplied, projection_applied_seq: this.#applied, found_by: where },
      "Redis lost writes (rolled back); re-applying the log from where it stands",
    );
    this.#mode = "repairing";
    this.#applied = redisApplied;
    this.#reposition();
  }

  async #check(): Promise<void> {
    // One check at a time: under latency a slow check must not overlap the next one.
    if (this.#checking || this.#stopped || this.#mode === "restoring" || this.#mode === "starting") return;
    this.#checking = true;
    try {
      if (!(await this.#o.store.isReady())) {
        this.#log.warn("epoch key gone (Redis wiped or restarted empty); restoring");
        this.#reposition();
        return;
      }
      const redisApplied = await this.#o.store.appliedSeq();
      if (redisApplied < this.#applied) {
        this.#rolledBack(redisApplied, "periodic check");
        return;
      }
      if (Date.now() - this.#movedAt > STALL_MS && this.#applied < (await this.#o.follower.lastSeq())) {
        this.#log.warn(
          { applied_seq: this.#applied },
          "projection stalled behind the log; following it again",
        );
        this.#movedAt = Date.now();
        this.#reposition();
      }
    } catch {
      // Redis unreachable: the next check or apply tells.
    } finally {
      this.#checking = false;
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const generation = this.#generation;
      try {
        if (!(await this.#o.store.isReady())) {
          await this.#restore();
          continue;
        }
        this.#applied = await this.#o.store.appliedSeq();
        if (this.#stopped) break;
        if (this.#mode !== "repairing") this.#mode = "live";
        const last = await this.#o.follower.lastSeq();
        if (this.#applied >= last) this.#caughtUp();
        const consumer = await this.#o.js.consumers.get(this.#stream, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.#applied + 1,
        });
        this.#messages = await consumer.consume({ max_messages: 1000 });
        // stop() (or a reposition) while this pass was starting found nothing to close: close it
        // now, so the loop below ends at once. (Closing alone is not enough: a ConsumerMessages
        // ends, and its close() resolves, only once iterated.)
        if (this.#stopped || generation !== this.#generation) void this.#messages.close();
        for await (const m of this.#messages) {
          if (this.#stopped || generation !== this.#generation) break;
          this.#send(m, generation);
          await this.#settle(m.info.pending === 0 ? 0 : (this.#o.applyWindow ?? 256));
          failures = 0;
        }
        await this.#settle(0);
      } catch (err) {
        failures++;
        this.#inFlight = [];
        this.#log.warn({ err, failures }, "projecting the log into Redis failed; resuming");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      } finally {
        await this.#messages?.close();
        this.#messages = undefined;
      }
    }
  }

  #send(m: JsMsg, generation: number): void {
    const entry = toEntry(m);
    const result = this.#o.store.apply(m.seq, entry.env);
    // Applies dropped unawaited when the pass ends (a dropped Redis link) must not end the
    // process with an unhandled rejection; the awaited ones still reject into #run.
    result.catch(() => {});
    this.#inFlight.push({ seq: m.seq, generation, result });
  }

  /** Awaits applies, oldest first, until at most `keep` are in flight. */
  async #settle(keep: number): Promise<void> {
    while (this.#inFlight.length > keep) {
      const head = this.#inFlight[0] as InFlight;
      const r = await head.result;
      this.#inFlight.shift();
      if (head.generation !== this.#generation) continue;
      switch (r.kind) {
        case "not-ready":
          this.#log.warn({ stream_seq: head.seq }, "apply refused: epoch gone; restoring");
          this.#reposition();
          return;
        case "gap":
          this.#rolledBack(r.appliedSeq, `apply of seq ${head.seq}`);
          return;
        default:
          if (head.seq > this.#applied) {
            this.#applied = head.seq;
            this.#movedAt = Date.now();
          }
          if (this.#mode === "repairing" && this.#applied >= this.#repairUntil) this.#caughtUp();
      }
    }
  }

  #caughtUp(): void {
    if (this.#mode === "repairing") {
      this.#log.info({ applied_seq: this.#applied }, "Redis repaired from the log");
      this.#mode = "live";
    }
  }

  /** Writes a copy of the fold over a Redis without an epoch, under the restore lock. */
  async #restore(): Promise<void> {
    const store = this.#o.store;
    const lockMs = this.#o.restoreLockMs ?? 30_000;
    this.#mode = "restoring";
    const owner = `${this.#instance}:${randomUUID()}`;
    if (!(await store.acquireRestoreLock(owner, lockMs))) {
      // This process restores one attempt at a time: a lock of one of its own earlier attempts
      // is stale. Redis brought it back by losing its latest writes (the commit that released
      // it among them); waiting for it to expire would keep the projection down for its TTL.
      const held = await store.restoreLockOwner();
      const ours = held?.startsWith(`${this.#instance}:`) === true;
      if (!(ours && held && (await store.takeOverRestoreLock(held, owner, lockMs)))) {
        // Another instance restores: wait for its epoch, then follow from its applied-seq.
        while (!this.#stopped && !(await store.isReady()) && (await store.restoreLockHeld()))
          await sleep(100);
        return;
      }
      this.#log.warn(
        { stale: held },
        "our own earlier restore lock came back with a Redis rollback; taken over",
      );
    }
    const renew = setInterval(() => void store.renewRestoreLock(owner, lockMs).catch(() => {}), lockMs / 3);
    try {
      if (await store.isReady()) return;
      const state = cloneFold(this.#o.follower.fold());
      const epoch = JSON.stringify({
        seq: state.seq,
        stream: this.#o.streamCreated,
        by: this.#instance,
        at: new Date().toISOString(),
      });
      try {
        if (!(await store.writeRestore(owner, state, epoch))) {
          this.#log.warn("restore lock lost while writing; another process restores");
          return;
        }
      } catch (err) {
        if (!(err instanceof RestoreWritesLost)) throw err;
        // Nothing was committed (no epoch): the loop finds the projection not ready and
        // restores again from the start.
        this.#log.warn({ err }, "Redis lost writes of the restore; restoring again");
        return;
      }
      this.#restores++;
      this.#applied = state.seq;
      this.#log.info(
        { seq: state.seq, outcomes: state.outcomes.size, accounts: state.balances.size },
        "Redis projection restored from the fold",
      );
    } finally {
      clearInterval(renew);
      await store.releaseRestoreLock(owner).catch(() => {});
    }
  }
}
