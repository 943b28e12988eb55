/** Latency percentiles, in the unit of the values (ms for every tool). */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Nearest-rank percentile of ascending `sorted` values: the smallest value with at least
 * `q` of the values at or below it (`q` from 0 to 1; p99 is `q = 0.99`). 0 when empty.
 * The one rule of every tool, so a p99 means the same in the mesh, chaos and bench reports.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** p50, p95, p99 and max of `values` (any order; not modified); zeros when empty. */
export function percentiles(values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: percentile(sorted, 1),
  };
}
