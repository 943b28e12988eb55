/** One decision waiting to be forgotten. */
export interface Expiring {
  readonly key: string;
  readonly generation: number;
  readonly decidedAt: number;
}

/**
 * Decisions in the order they were made, so keys can be forgotten after retentionMs
 * lazily, without a timer per key: decisions are appended in time order, so the expired
 * ones are always at the front, whatever retentionMs is set to later.
 */
export interface RetentionQueue {
  add(entry: Expiring): void;
  /** Removes and returns every entry decided at least `retentionMs` before `now`; none when retentionMs is 0. */
  takeExpired(retentionMs: number, now: number): Expiring[];
}

export function createRetentionQueue(): RetentionQueue {
  const entries: Expiring[] = [];
  let head = 0;
  return {
    add: (entry) => {
      entries.push(entry);
    },
    takeExpired(retentionMs, now) {
      if (retentionMs === 0) return [];
      const start = head;
      while (head < entries.length && entries[head]!.decidedAt + retentionMs <= now) head++;
      const taken = entries.slice(start, head);
      // drop the consumed front now and then, so the array does not grow without bound
      if (head > 1024 && head * 2 > entries.length) {
        entries.splice(0, head);
        head = 0;
      }
      return taken;
    },
  };
}
