/** Latencies in milliseconds, recorded into a preallocated array. */
export class Latencies {
  readonly #values: Float64Array;
  #n = 0;
  constructor(capacity: number) {
    this.#values = new Float64Array(capacity);
  }
  get count(): number {
    return this.#n;
  }
  record(ms: number): void {
    if (this.#n < this.#values.length) this.#values[this.#n++] = ms;
  }
  /** p50, p95, p99 and max (nearest rank); zeros when empty. */
  summary(): LatencySummary {
    const v = this.#values.slice(0, this.#n).sort();
    const at = (q: number) => (v.length ? v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]! : 0);
    return { count: v.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) };
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}
