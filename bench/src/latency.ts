import { type Percentiles, percentiles } from "@jetmesh/tools";

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
  /** p50, p95, p99 and max (the tools' nearest rank); zeros when empty. */
  summary(): LatencySummary {
    return percentiles(this.#values.subarray(0, this.#n));
  }
}

export type LatencySummary = Percentiles;
