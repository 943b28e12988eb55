import { type Decision, decisionFor, draw, fingerprintOf, isSlow, processingMsOf } from "./decision.ts";
import type { Payout, PayoutRequest, Refusal } from "./records.ts";
import { createRetentionQueue } from "./retention.ts";
import { type BankBehaviour, DEFAULT_BEHAVIOUR } from "./settings.ts";
import { appendStateLine, loadStateLines } from "./state-file.ts";
import { type BankStats, type StatName, zeroStats } from "./stats.ts";

/** The bank's answer to one payout request. */
export interface BankAnswer {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  /** True when the answer is a stored one, returned again for a repeated key and body. */
  readonly replayed: boolean;
  /** True when this answer is to be held back `slowMs` after the decision (the slowRate draw). */
  readonly slow: boolean;
}

/** What GET /v1/payouts/{idempotencyKey} reports; undefined for a key never seen or forgotten. */
export type KeyStatus =
  | {
      readonly status: "paid";
      readonly reference: string;
      readonly transferId: string;
      readonly amountMinor: number;
      readonly currency: string;
    }
  | { readonly status: "refused"; readonly reason: string }
  | { readonly status: "processing" };

export interface OutageState {
  readonly active: boolean;
  readonly remainingMs: number;
}

/** Counters the HTTP layer sees and the bank cannot: they are bumped through {@link Bank.count}. */
export type HttpStatName = Extract<
  StatName,
  "requests" | "statusQueries" | "outageRejections" | "answersAfterClientLeft"
>;

/** The simulated bank: decides, stores and replays payout answers per idempotency key. */
export interface Bank {
  /**
   * Answers a payout request. The key is looked up and, when new, reserved before this
   * returns (no await in between), so two concurrent requests with one key never both
   * pay: the second gets 409 "in use" while the first is processing. The promise
   * settles when the key is decided (processingMs later; at once for a replay, a
   * conflict or a 503). Rejects only when the bank is closed or the state file fails.
   */
  answer(idempotencyKey: string, request: PayoutRequest): Promise<BankAnswer>;
  /** The state of a key; never creates or changes one. Undefined: never seen, or forgotten. */
  status(idempotencyKey: string): KeyStatus | undefined;
  /** Every payout ever made, oldest first, including those whose key was since forgotten. */
  payouts(): readonly Payout[];
  /** Every refusal ever decided, oldest first. */
  refusals(): readonly Refusal[];
  stats(): BankStats;
  count(name: HttpStatName): void;
  behaviour(): BankBehaviour;
  /** Merges a validated partial behaviour; returns the result. Decision keys keep their answer. */
  configure(change: Partial<BankBehaviour>): BankBehaviour;
  outage(): OutageState;
  /**
   * Starts an outage of `durationMs` (replacing any running one); 0 ends it. Meanwhile
   * nothing is decided: payout requests get 503, and keys whose processing ends are
   * decided when the outage ends.
   */
  startOutage(durationMs: number): OutageState;
  /** Cancels every timer; keys still processing are dropped undecided and their callers rejected. */
  close(): void;
}

/** Options of {@link createBank}. */
export interface CreateBankOptions {
  /** Seed of every random draw, so a run replays; default "jetmesh". */
  readonly seed?: string;
  /** Merged into {@link DEFAULT_BEHAVIOUR} (the realistic bank); not validated here. */
  readonly behaviour?: Partial<BankBehaviour>;
  /** JSON-lines file the decisions are appended to and reloaded from at start. */
  readonly stateFile?: string;
  /** An outage of this many ms starting now; default 0 (none). */
  readonly outageMs?: number;
}

/** The fixed bodies of the bank's error answers. */
export const AnswerBodies = {
  inUse: { error: "idempotency key in use", code: "idempotency_key_in_use" },
  reused: { error: "idempotency key reused with a different body", code: "idempotency_key_reused" },
  unavailable: { error: "bank unavailable" },
} as const;

interface Processing {
  readonly fingerprint: string;
  readonly request: PayoutRequest;
  timer?: NodeJS.Timeout;
  resolve(answer: BankAnswer): void;
  reject(err: unknown): void;
}

const settled = (status: number, body: Readonly<Record<string, unknown>>, replayed = false) =>
  Promise.resolve<BankAnswer>({ status, body, replayed, slow: false });

/** Creates the bank, reloading stored decisions from `stateFile` when it exists. */
export function createBank(opts: CreateBankOptions = {}): Bank {
  const seed = opts.seed ?? "jetmesh";
  let behaviour: BankBehaviour = { ...DEFAULT_BEHAVIOUR, ...opts.behaviour };
  const decided = new Map<string, Decision>();
  const processing = new Map<string, Processing>();
  /** Keys whose processing ended during an outage: decided when it ends. */
  const deferred = new Set<string>();
  /** Decisions per key so far, stored or forgotten; numbers the next reference. */
  const generations = new Map<string, number>();
  /** Keys forgotten and not sent again since. */
  const forgotten = new Set<string>();
  const retention = createRetentionQueue();
  /** Attempts per key that were not stored (503s); they seed the next 503 draw. */
  const attempts = new Map<string, number>();
  const paid: Payout[] = [];
  const refused: Refusal[] = [];
  const stats = zeroStats();
  let outage: { until: number; timer: NodeJS.Timeout } | undefined;
  let closed = false;

  const remember = (key: string, entry: Decision): void => {
    generations.set(key, entry.generation);
    decided.set(key, entry);
    retention.add({ key, generation: entry.generation, decidedAt: entry.decidedAt });
    if (entry.payout) paid.push(entry.payout);
    if (entry.refusal) refused.push(entry.refusal);
  };

  if (opts.stateFile !== undefined) {
    // Oldest first: a key decided again after being forgotten ends with its last decision.
    for (const line of loadStateLines(opts.stateFile)) {
      const at = line.decidedAt ?? line.payout?.paidAt ?? line.refusal?.refusedAt;
      remember(line.key, {
        ...line.answer,
        generation: (generations.get(line.key) ?? 0) + 1,
        decidedAt: at === undefined ? Date.now() : Date.parse(at),
        ...(line.payout ? { payout: line.payout } : {}),
        ...(line.refusal ? { refusal: line.refusal } : {}),
      });
    }
  }

  /** Forgets decisions older than retentionMs; a key decided again since keeps its new decision. */
  const sweep = (): void => {
    for (const e of retention.takeExpired(behaviour.retentionMs, Date.now())) {
      if (decided.get(e.key)?.generation !== e.generation) continue;
      decided.delete(e.key);
      forgotten.add(e.key);
      stats.forgottenKeys++;
    }
  };

  /**
   * Decides a reserved key and stores the decision, synchronously: the state file line
   * is written before the answer can leave the process.
   */
  const decide = (key: string, request: PayoutRequest): BankAnswer => {
    const entry = decisionFor(seed, key, (generations.get(key) ?? 0) + 1, request, behaviour, Date.now());
    if (opts.stateFile !== undefined) {
      appendStateLine(opts.stateFile, {
        key,
        answer: { fingerprint: entry.fingerprint, status: entry.status, body: entry.body },
        decidedAt: new Date(entry.decidedAt).toISOString(),
        ...(entry.payout ? { payout: entry.payout } : {}),
        ...(entry.refusal ? { refusal: entry.refusal } : {}),
      });
    }
    remember(key, entry);
    if (entry.payout) stats.paid++;
    else stats.refused++;
    const slow = isSlow(seed, key, behaviour);
    if (slow) stats.slowAnswers++;
    return { status: entry.status, body: entry.body, replayed: false, slow };
  };

  /** Ends the processing of a key: decides it, or holds it until a running outage ends. */
  const finish = (key: string): void => {
    const p = processing.get(key);
    if (!p) return;
    p.timer = undefined;
    if (outage) {
      deferred.add(key);
      return;
    }
    processing.delete(key);
    try {
      p.resolve(decide(key, p.request));
    } catch (err) {
      p.reject(err);
    }
  };

  const endOutage = (): void => {
    if (outage) clearTimeout(outage.timer);
    outage = undefined;
    const keys = [...deferred];
    deferred.clear();
    for (const key of keys) finish(key);
  };

  const outageState = (): OutageState => ({
    active: outage !== undefined,
    remainingMs: outage ? Math.max(0, outage.until - Date.now()) : 0,
  });

  const startOutage = (durationMs: number): OutageState => {
    if (outage) clearTimeout(outage.timer);
    outage = undefined;
    if (durationMs === 0) endOutage();
    else outage = { until: Date.now() + durationMs, timer: setTimeout(endOutage, durationMs) };
    return outageState();
  };

  if (opts.outageMs) startOutage(opts.outageMs);

  return {
    answer(key, request) {
      if (closed) return Promise.reject(new Error("bank closed"));
      if (outage) {
        stats.outageRejections++;
        return settled(503, AnswerBodies.unavailable);
      }
      sweep();
      if (forgotten.has(key)) stats.requestsForForgottenKeys++;
      const fingerprint = fingerprintOf(request);
      const pending = processing.get(key);
      const done = decided.get(key);
      const known = pending ?? done;
      if (known !== undefined && known.fingerprint !== fingerprint) {
        stats.conflictsReused++;
        return settled(409, AnswerBodies.reused);
      }
      if (pending) {
        stats.conflictsInProgress++;
        return settled(409, AnswerBodies.inUse);
      }
      if (done) {
        stats.replayed++;
        return settled(done.status, done.body, true);
      }
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      if (draw(seed, "error", key, attempt) < behaviour.errorRate) {
        stats.unavailable503++;
        return settled(503, AnswerBodies.unavailable);
      }
      attempts.delete(key);
      forgotten.delete(key);
      const processingMs = processingMsOf(seed, key, behaviour);
      if (processingMs === 0) {
        try {
          return Promise.resolve(decide(key, request));
        } catch (err) {
          return Promise.reject(err);
        }
      }
      // The executor runs now: the key is reserved before answer() returns.
      return new Promise<BankAnswer>((resolve, reject) => {
        const p: Processing = { fingerprint, request, resolve, reject };
        processing.set(key, p);
        p.timer = setTimeout(() => finish(key), processingMs);
      });
    },
    status(key) {
      sweep();
      if (processing.has(key)) return { status: "processing" };
      const d = decided.get(key);
      if (!d) return undefined;
      if (d.payout) {
        const { reference, transferId, amountMinor, currency } = d.payout;
        return { status: "paid", reference, transferId, amountMinor, currency };
      }
      return { status: "refused", reason: d.refusal?.reason ?? String(d.body.reason) };
    },
    payouts: () => [...paid],
    refusals: () => [...refused],
    stats() {
      sweep();
      return { ...stats };
    },
    count(name) {
      stats[name]++;
    },
    behaviour: () => behaviour,
    configure(change) {
      behaviour = { ...behaviour, ...change };
      return behaviour;
    },
    outage: outageState,
    startOutage,
    close() {
      closed = true;
      if (outage) clearTimeout(outage.timer);
      outage = undefined;
      deferred.clear();
      const dropped = [...processing.values()];
      processing.clear();
      for (const p of dropped) {
        if (p.timer) clearTimeout(p.timer);
        // Undecided, so nothing was stored: like a crash, the key is unknown to the next bank.
        p.reject(new Error("bank closed"));
      }
    },
  };
}
