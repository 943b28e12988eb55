import type { Redis } from "ioredis";
import { runScript } from "../redis-scripts.ts";
import type { LatencyMark, OutcomeKind } from "./outcome-latency.ts";

/** Redis key of the status projection of one transfer: a hash eventId → {@link LineageEntry} JSON. */
export function statusKey(transferId: string): string {
  return `status:${transferId}`;
}

/** One event of a transfer as the status projection saw it. */
export interface LineageEntry {
  readonly type: string;
  readonly eventId: string;
  /** The eventId of the input that caused it; for the request, `idempotency-key:<key>`. */
  readonly causationId: string;
  readonly transferId: string;
  readonly stream: string;
  readonly sequence: number;
  readonly occurredAt: string;
  /** The API client whose request the event descends from (the envelope's `actor`). */
  readonly actor?: string;
  readonly traceId?: string;
  /** What the event decided, when it decided something: reasons, score, bank reference. */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/**
 * The status projection's storage. One hash field per eventId, so writing an event
 * twice (redelivery, a replayed projection) leaves the same hash: idempotent per event.
 */
export interface StatusStore {
  /**
   * Records the event, and its latency mark (outcome-latency.ts) in the same write.
   * @throws when Redis is unreachable (the projection then retries the message).
   */
  record(entry: LineageEntry, mark?: LatencyMark): Promise<void>;
  /** Every event recorded for the transfer, in no particular order; empty when unknown. */
  read(transferId: string): Promise<LineageEntry[]>;
  /**
   * Once the transfer's hash holds both its accept time and its outcome, claims the one
   * observation of its latency (HSETNX: one caller in all instances and redeliveries gets it).
   * @returns the outcome and the seconds from accept to outcome for that caller, else undefined.
   */
  settle(transferId: string): Promise<{ outcome: OutcomeKind; seconds: number } | undefined>;
}

/** Fields of the status hash that are not events (eventIds are UUIDs: no clash). */
const ACCEPTED = "@accepted";
const OUTCOME = "@outcome";
const OBSERVED = "@observed";

/**
 * settle in one round trip: when the hash holds both the accept time and the outcome, claims
 * the observation (HSETNX) and returns both; else nil. One step, so no two callers both claim.
 */
const SETTLE = `
local accepted = redis.call('HGET', KEYS[1], ARGV[1])
local outcome = redis.call('HGET', KEYS[1], ARGV[2])
if not accepted or not outcome then return false end
if redis.call('HSETNX', KEYS[1], ARGV[3], '1') == 0 then return false end
return {accepted, outcome}
`;

/**
 * Writes are gathered per turn of the event loop (process.nextTick) and sent as one
 * MULTI: per transfer one HSET of every field written in the turn and one PEXPIRE, instead
 * of a MULTI (four commands, one socket write) per event. The projection records every
 * event of five streams and the API writes each request through, so the turn's batch is
 * what a pull delivers. Each `record` still resolves only once its own field is stored (and
 * rejects when the MULTI failed), so the projection acks nothing unwritten.
 */
export function createStatusStore(redis: Redis, opts: { ttlMs: number }): StatusStore {
  let pending: Map<string, PendingKey> | undefined;
  const flush = (): void => {
    const batch = pending as Map<string, PendingKey>;
    pending = undefined;
    const multi = redis.multi();
    for (const [key, p] of batch) multi.hset(key, ...p.fields).pexpire(key, opts.ttlMs);
    const settle = (err: unknown): void => {
      for (const p of batch.values()) for (const w of p.waiters) err ? w.reject(err) : w.resolve();
    };
    multi.exec().then(
      // MULTI reports a failed command in its result list instead of rejecting.
      (results) => settle(results?.find(([err]) => err !== null)?.[0] ?? null),
      settle,
    );
  };
  return {
    record(entry, mark) {
      return new Promise<void>((resolve, reject) => {
        if (!pending) {
          pending = new Map();
          process.nextTick(flush);
        }
        const key = statusKey(entry.transferId);
        let p = pending.get(key);
        if (!p) {
          p = { fields: [], waiters: [] };
          pending.set(key, p);
        }
        p.fields.push(entry.eventId, JSON.stringify(entry));
        if (mark?.kind === "accepted") p.fields.push(ACCEPTED, String(mark.atMs));
        else if (mark) p.fields.push(OUTCOME, `${mark.outcome} ${mark.atMs}`);
        p.waiters.push({ resolve, reject });
      });
    },
    async read(transferId) {
      const fields = await redis.hgetall(statusKey(transferId));
      return Object.entries(fields)
        .filter(([f]) => !f.startsWith("@"))
        .map(([, v]) => JSON.parse(v) as LineageEntry);
    },
    async settle(transferId) {
      const got = (await runScript(redis, SETTLE, [statusKey(transferId)], [ACCEPTED, OUTCOME, OBSERVED])) as
        | [string, string]
        | null;
      if (!got) return undefined;
      const [accepted, outcome] = got;
      const [kind, at] = outcome.split(" ");
      return { outcome: kind as OutcomeKind, seconds: Math.max(0, Number(at) - Number(accepted)) / 1000 };
    },
  };
}

/** The fields of one transfer's hash written in this turn, and who waits for them. */
interface PendingKey {
  readonly fields: string[];
  readonly waiters: { resolve: () => void; reject: (err: unknown) => void }[];
}
