import type { Redis } from "ioredis";

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
  /** @throws when Redis is unreachable (the projection then retries the message). */
  record(entry: LineageEntry): Promise<void>;
  /** Every event recorded for the transfer, in no particular order; empty when unknown. */
  read(transferId: string): Promise<LineageEntry[]>;
}

/**
 * One HSET and one PEXPIRE per event, sent without MULTI: the gateway's client pipelines
 * every command of a turn into one socket write (`enableAutoPipelining`), so a turn's
 * status writes, idempotency scripts and claims leave together. A MULTI is a pipeline of
 * its own (a write, four commands, per event) and its atomicity buys nothing here: the HSET
 * is idempotent, and a PEXPIRE lost with the process is sent again with the redelivered
 * event, whose ack waits for both (`record` resolves only once both are stored).
 */
export function createStatusStore(redis: Redis, opts: { ttlMs: number }): StatusStore {
  return {
    async record(entry) {
      const key = statusKey(entry.transferId);
      await Promise.all([
        redis.hset(key, entry.eventId, JSON.stringify(entry)),
        redis.pexpire(key, opts.ttlMs),
      ]);
    },
    async read(transferId) {
      const fields = await redis.hgetall(statusKey(transferId));
      return Object.values(fields).map((v) => JSON.parse(v) as LineageEntry);
    },
  };
}
