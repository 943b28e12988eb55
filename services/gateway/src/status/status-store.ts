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

export function createStatusStore(redis: Redis, opts: { ttlMs: number }): StatusStore {
  return {
    async record(entry) {
      const key = statusKey(entry.transferId);
      const results = await redis
        .multi()
        .hset(key, entry.eventId, JSON.stringify(entry))
        .pexpire(key, opts.ttlMs)
        .exec();
      // MULTI reports a failed command in its result list instead of rejecting.
      const failed = results?.find(([err]) => err !== null)?.[0];
      if (failed) throw failed;
    },
    async read(transferId) {
      const fields = await redis.hgetall(statusKey(transferId));
      return Object.values(fields).map((v) => JSON.parse(v) as LineageEntry);
    },
  };
}
