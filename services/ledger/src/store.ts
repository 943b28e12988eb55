import { type AnyEnvelope, EventTypes, LedgerProjection } from "@jetmesh/contracts";
import type { Redis } from "ioredis";
import type { FoldState, TransferOutcome } from "./fold.ts";
import { APPLY, COMMIT_RESTORE, FENCED_WRITE, RELEASE_LOCK, RENEW_LOCK, TAKE_OVER_LOCK } from "./lua.ts";
import { DEFAULT_OUTCOME_TTL_MS, outcomeLifeLeft } from "./outcome-ttl.ts";

/**
 * Redis keys of the ledger. Balances, the account set and applied-seq are the
 * contract's (LedgerProjection); the rest is the ledger's own business.
 */
export const LedgerKeys = {
  balance: LedgerProjection.balanceKey,
  accounts: LedgerProjection.accountsKey,
  appliedSeq: LedgerProjection.appliedSeqKey,
  /** The event id of the message at applied-seq: a log that holds another one there is not this projection's. */
  appliedId: "ledger:applied-id",
  /** Hash per transfer: its outcome (see lua.ts); what makes every step idempotent. */
  outcome: (transferId: string) => `ledger:outcome:${transferId}`,
  /** Present while the projection is whole; deleted (or wiped) means "restore first". */
  epoch: "ledger:epoch",
  /** Held by the one process restoring the projection. */
  restoreLock: "ledger:restore-lock",
  /** The number of the last batch a restore wrote (FENCED_WRITE in lua.ts). */
  restoreBatches: "ledger:restore-batches",
  balancePattern: "ledger:bal:*",
  outcomePattern: "ledger:outcome:*",
} as const;

/**
 * What the projection's step did with one LEDGER event: `gap` when Redis has not applied the
 * sequence before it (it lost writes), with the sequence it holds.
 */
export type ApplyResult =
  | { readonly kind: "not-ready" | "applied" | "duplicate" | "ignored" }
  | { readonly kind: "gap"; readonly appliedSeq: number };

/** The live projection as read back from Redis (balances as bigint). */
export interface ProjectionView {
  readonly appliedSeq: number;
  readonly appliedId: string | null;
  readonly epoch: string | null;
  readonly balances: Map<string, Map<string, bigint>>;
  readonly outcomes: Map<string, TransferOutcome>;
}

/**
 * The ledger's Redis read projection (balances and outcomes the gateway serves): the
 * projection's apply step and the fenced writes of a restore. Nothing here decides. Every
 * method is one round trip per key batch; ioredis pipelines concurrent calls.
 */
export interface LedgerStore {
  /** Lifetime of an outcome hash from its last write (outcome-ttl.ts, rule 3). */
  readonly outcomeTtlMs: number;
  /**
   * Applies LEDGER event `seq` (undefined: a message that did not decode, only passed over)
   * right after `seq − 1`; advances applied-seq and applied-id.
   */
  apply(seq: number, env: AnyEnvelope | undefined): Promise<ApplyResult>;
  /** True while the epoch key exists. */
  isReady(): Promise<boolean>;
  /** What the projection says it was built from: applied-seq, applied-id, epoch. */
  marks(): Promise<{ appliedSeq: number; appliedId: string | null; epoch: string | null }>;
  appliedSeq(): Promise<number>;
  epoch(): Promise<string | null>;
  /** Takes the restore lock for `ttlMs`; false when another process holds it. */
  acquireRestoreLock(owner: string, ttlMs: number): Promise<boolean>;
  renewRestoreLock(owner: string, ttlMs: number): Promise<boolean>;
  releaseRestoreLock(owner: string): Promise<void>;
  /** True while some process holds the restore lock. */
  restoreLockHeld(): Promise<boolean>;
  /** Who holds the restore lock (null: nobody). */
  restoreLockOwner(): Promise<string | null>;
  /** Moves the restore lock from `stale` to `owner` if `stale` still holds it. */
  takeOverRestoreLock(stale: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * Under the lock: deletes every ledger key, writes `state` (an outcome that expires gets
   * what is left of its lifetime from when its last event occurred, and one past it is not
   * written), then sets applied-seq, applied-id and the epoch in one step. @returns false when the lock was lost on the way
   * (another process restores; nothing more was written by this one).
   */
  /**
   * @returns false when the restore lock was lost (another process restores)
   * @throws RestoreWritesLost when Redis lost some of its writes meanwhile (nothing committed)
   */
  writeRestore(owner: string, state: FoldState, epoch: string, now?: number): Promise<boolean>;
  /** Reads balances, outcomes, applied-seq and epoch (SCAN; for rebuild and tests). */
  read(): Promise<ProjectionView>;
}

type Reply = (string | null)[];
type ScriptedRedis = Redis & {
  ledgerApply(...args: string[]): Promise<Reply>;
  ledgerFencedWrite(numKeys: number, ...args: string[]): Promise<number>;
  ledgerCommitRestore(...args: string[]): Promise<number>;
  ledgerTakeOverLock(...args: string[]): Promise<number>;
  ledgerRenewLock(...args: string[]): Promise<number>;
  ledgerReleaseLock(...args: string[]): Promise<number>;
};

/** Keys and args per fenced batch: small enough for Lua's unpack and a short script. */
const BATCH_KEYS = 256;
const BATCH_ARGS = 4000;

/**
 * Creates the store; the external account may go negative, every other must not.
 * `outcomeTtlMs`: LEDGER_OUTCOME_TTL_MS (default 14 days, outcome-ttl.ts).
 */
export function createLedgerStore(redis: Redis, o: { readonly outcomeTtlMs?: number } = {}): LedgerStore {
  return new RedisLedgerStore(redis, o.outcomeTtlMs ?? DEFAULT_OUTCOME_TTL_MS);
}

const neg = (n: number): string => String(-n);

/**
 * The keys matching `pattern`, in batches, as the client names them: a client with a key
 * prefix (a namespace's, JETMESH_NAMESPACE) prefixes every key it sends but not a SCAN
 * pattern, nor does it strip the keys SCAN returns; this does both.
 */
async function* scanKeys(redis: Redis, pattern: string): AsyncGenerator<string[]> {
  const prefix = redis.options.keyPrefix ?? "";
  for await (const keys of redis.scanStream({ match: `${prefix}${pattern}`, count: 1000 }) as AsyncIterable<
    string[]
  >)
    yield keys.map((k) => k.slice(prefix.length));
}

class RedisLedgerStore implements LedgerStore {
  readonly #redis: ScriptedRedis;
  readonly outcomeTtlMs: number;

  constructor(redis: Redis, outcomeTtlMs: number) {
    this.outcomeTtlMs = outcomeTtlMs;
    // defineCommand runs EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart).
    if (!("ledgerApply" in redis)) {
      redis.defineCommand("ledgerApply", { numberOfKeys: 7, lua: APPLY });
      redis.defineCommand("ledgerFencedWrite", { lua: FENCED_WRITE });
      redis.defineCommand("ledgerCommitRestore", { numberOfKeys: 5, lua: COMMIT_RESTORE });
      redis.defineCommand("ledgerRenewLock", { numberOfKeys: 1, lua: RENEW_LOCK });
      redis.defineCommand("ledgerReleaseLock", { numberOfKeys: 1, lua: RELEASE_LOCK });
      redis.defineCommand("ledgerTakeOverLock", { numberOfKeys: 1, lua: TAKE_OVER_LOCK });
    }
    this.#redis = redis as ScriptedRedis;
  }

  async apply(seq: number, env: AnyEnvelope | undefined): Promise<ApplyResult> {
    const d = (env?.data ?? {}) as {
      transferId?: string;
      from?: string;
      to?: string;
      amountMinor?: number;
      currency?: string;
    };
    let kind = "skip";
    let detail = "";
    switch (env?.type) {
      case EventTypes.LedgerPosted:
        kind = "posted";
        detail = env.data.decision;
        break;
      case EventTypes.LedgerDeclined:
        kind = "declined";
        detail = env.data.reason;
        break;
      case EventTypes.LedgerReversed:
        kind = "reversed";
        detail = env.data.reason;
        break;
    }
    const transferId = kind === "skip" ? "-" : (d.transferId ?? "-");
    // Every outcome's hash lives the TTL from its last write (outcome-ttl.ts, rule 3).
    const ttl = kind === "skip" ? 0 : this.outcomeTtlMs;
    let from = d.from ?? "-";
    let to = d.to ?? "-";
    for (let round = 0; round < 2; round++) {
      const r = await this.#redis.ledgerApply(
        LedgerKeys.epoch,
        LedgerKeys.appliedSeq,
        LedgerKeys.appliedId,
        LedgerKeys.outcome(transferId),
        LedgerKeys.balance(from),
        LedgerKeys.balance(to),
        LedgerKeys.accounts,
        String(seq),
        kind,
        env?.causationId ?? "",
        from,
        to,
        String(d.amountMinor ?? 0),
        neg(d.amountMinor ?? 0),
        d.currency ?? "",
        detail,
        env?.eventId ?? "",
        String(ttl),
      );
      switch (r[0]) {
        case "mismatch":
          from = r[1] ?? from;
          to = r[2] ?? to;
          continue;
        case "gap":
          return { kind: "gap", appliedSeq: Number(r[1]) };
        case "not-ready":
        case "applied":
        case "duplicate":
          return { kind: r[0] };
        default:
          return { kind: "ignored" };
      }
    }
    throw new Error(`apply of ${transferId}: stored accounts kept changing`);
  }

  async isReady(): Promise<boolean> {
    return (await this.#redis.exists(LedgerKeys.epoch)) === 1;
  }

  async marks(): Promise<{ appliedSeq: number; appliedId: string | null; epoch: string | null }> {
    const [seq, id, epoch] = await this.#redis.mget(
      LedgerKeys.appliedSeq,
      LedgerKeys.appliedId,
      LedgerKeys.epoch,
    );
    return { appliedSeq: Number(seq ?? 0), appliedId: id || null, epoch: epoch ?? null };
  }

  async appliedSeq(): Promise<number> {
    return Number((await this.#redis.get(LedgerKeys.appliedSeq)) ?? 0);
  }

  epoch(): Promise<string | null> {
    return this.#redis.get(LedgerKeys.epoch);
  }

  async acquireRestoreLock(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(LedgerKeys.restoreLock, owner, "PX", ttlMs, "NX")) === "OK";
  }

  async renewRestoreLock(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.ledgerRenewLock(LedgerKeys.restoreLock, owner, String(ttlMs))) === 1;
  }

  async releaseRestoreLock(owner: string): Promise<void> {
    await this.#redis.ledgerReleaseLock(LedgerKeys.restoreLock, owner);
  }

  async restoreLockHeld(): Promise<boolean> {
    return (await this.#redis.exists(LedgerKeys.restoreLock)) === 1;
  }

  restoreLockOwner(): Promise<string | null> {
    return this.#redis.get(LedgerKeys.restoreLock);
  }

  async takeOverRestoreLock(stale: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.ledgerTakeOverLock(LedgerKeys.restoreLock, stale, owner, String(ttlMs))) === 1;
  }

  async writeRestore(owner: string, state: FoldState, epoch: string, now = Date.now()): Promise<boolean> {
    const batch = new FencedBatch(this.#redis, owner);
    // 0. no epoch while the keys are rewritten: every apply (of any instance) refuses until
    //    the commit step sets it again with applied-seq.
    if (!(await batch.add(LedgerKeys.epoch, "DEL", [])) || !(await batch.flush())) return false;
    // 1. wipe: whatever a crashed restore or a lost-write Redis left behind
    for (const pattern of [LedgerKeys.balancePattern, LedgerKeys.outcomePattern]) {
      for await (const keys of scanKeys(this.#redis, pattern)) {
        for (const k of keys) if (!(await batch.add(k, "DEL", []))) return false;
      }
    }
    for (const k of [LedgerKeys.accounts, LedgerKeys.appliedSeq, LedgerKeys.appliedId])
      if (!(await batch.add(k, "DEL", []))) return false;
    // 2. balances and the account set
    for (const [account, byCurrency] of state.balances) {
      const args: string[] = [];
      for (const [cur, v] of byCurrency) args.push(cur, v.toString());
      if (args.length && !(await batch.add(LedgerKeys.balance(account), "HSET", args))) return false;
      if (!(await batch.add(LedgerKeys.accounts, "SADD", [account]))) return false;
    }
    // 3. outcomes
    for (const o of state.outcomes.values()) {
      const left = outcomeLifeLeft(o, state, this.outcomeTtlMs, now);
      if (left <= 0) continue;
      const key = LedgerKeys.outcome(o.transferId);
      if (!(await batch.add(key, "HSET", outcomeFields(o)))) return false;
      if (!(await batch.add(key, "PEXPIRE", [String(Math.ceil(left))]))) return false;
    }
    if (!(await batch.flush())) return false;
    // 4. applied-seq and the epoch together: the projection is whole from here on
    const ok = await this.#redis.ledgerCommitRestore(
      LedgerKeys.restoreLock,
      LedgerKeys.appliedSeq,
      LedgerKeys.epoch,
      LedgerKeys.appliedId,
      LedgerKeys.restoreBatches,
      owner,
      String(state.seq),
      epoch,
      state.lastEventId ?? "",
      String(batch.flushed),
    );
    if (ok === -1) throw new RestoreWritesLost(batch.flushed);
    return ok === 1;
  }

  async read(): Promise<ProjectionView> {
    const redis = this.#redis;
    const [applied, appliedId, epoch] = await Promise.all([
      redis.get(LedgerKeys.appliedSeq),
      redis.get(LedgerKeys.appliedId),
      redis.get(LedgerKeys.epoch),
    ]);
    const balances = new Map<string, Map<string, bigint>>();
    const balanceKeys: string[] = [];
    for await (const keys of scanKeys(redis, LedgerKeys.balancePattern)) {
      balanceKeys.push(...keys);
    }
    const prefix = LedgerKeys.balance("");
    for (const key of balanceKeys) {
      const h = await redis.hgetall(key);
      const m = new Map<string, bigint>();
      for (const [cur, v] of Object.entries(h)) m.set(cur, BigInt(v));
      balances.set(key.slice(prefix.length), m);
    }
    const outcomes = new Map<string, TransferOutcome>();
    const oprefix = LedgerKeys.outcome("");
    for await (const keys of scanKeys(redis, LedgerKeys.outcomePattern)) {
      const rows = await Promise.all(keys.map((k) => redis.hgetall(k)));
      keys.forEach((k, i) => {
        const h = rows[i] ?? {};
        const id = k.slice(oprefix.length);
        outcomes.set(id, {
          transferId: id,
          status: h.status === "posted" ? "posted" : "declined",
          detail: h.detail ?? "",
          cause: h.cause ?? "",
          from: h.from ?? "",
          to: h.to ?? "",
          amountMinor: Number(h.amount ?? 0),
          currency: h.currency ?? "",
          ...(h.rev_reason !== undefined
            ? { reversal: { reason: h.rev_reason, cause: h.rev_cause ?? "" } }
            : {}),
        });
      });
    }
    return { appliedSeq: Number(applied ?? 0), appliedId: appliedId || null, epoch, balances, outcomes };
  }
}

/** The outcome hash fields, as lua.ts stores them. */
function outcomeFields(o: TransferOutcome): string[] {
  const f = [
    "status",
    o.status,
    "detail",
    o.detail,
    "cause",
    o.cause,
    "from",
    o.from,
    "to",
    o.to,
    "amount",
    String(o.amountMinor),
    "currency",
    o.currency,
  ];
  if (o.reversal) f.push("rev_reason", o.reversal.reason, "rev_cause", o.reversal.cause);
  return f;
}

/** Collects fenced writes and sends them in batches; false once the lock is lost. */
/**
 * Redis lost writes of a restore while it ran (the batch counter is behind, FENCED_WRITE):
 * nothing is committed, and the restore starts over.
 */
export class RestoreWritesLost extends Error {
  constructor(batches: number) {
    super(`Redis lost writes of this restore (the batch counter is behind batch ${batches}); starting over`);
    this.name = "RestoreWritesLost";
  }
}

class FencedBatch {
  readonly #redis: ScriptedRedis;
  readonly #owner: string;
  #keys: string[] = [];
  #args: string[] = [];
  /** Batches written so far; the commit expects the counter at this number. */
  flushed = 0;

  constructor(redis: ScriptedRedis, owner: string) {
    this.#redis = redis;
    this.#owner = owner;
  }

  async add(key: string, op: "DEL" | "HSET" | "SADD" | "PEXPIRE", args: readonly string[]): Promise<boolean> {
    this.#keys.push(key);
    this.#args.push(op, String(args.length), ...args);
    return this.#keys.length >= BATCH_KEYS || this.#args.length >= BATCH_ARGS ? this.flush() : true;
  }

  async flush(): Promise<boolean> {
    if (this.#keys.length === 0) return true;
    const keys = [LedgerKeys.restoreLock, LedgerKeys.restoreBatches, ...this.#keys];
    const args = [this.#owner, String(this.flushed + 1), ...this.#args];
    this.#keys = [];
    this.#args = [];
    const r = await this.#redis.ledgerFencedWrite(keys.length, ...keys, ...args);
    if (r === -1) throw new RestoreWritesLost(this.flushed);
    this.flushed++;
    return r === 1;
  }
}
