/**
 * A counting semaphore: at most `size` holders; `acquire` waits in FIFO order.
 * Bounds how many messages one process works on at once.
 */
export class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(readonly size: number) {
    this.#free = size;
  }
  get inUse(): number {
    return this.size - this.#free;
  }
  acquire(): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free -= 1;
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free += 1;
  }
}

/**
 * Open while every dependency is up. Messages that reach a closed gate wait; `hold`
 * keeps their ack timers alive meanwhile (JetStream's "working" ack, which does not
 * count as a delivery) so a Redis outage does not burn MaxDeliver.
 */
export class Gate {
  readonly #down = new Set<string>();
  #waiters: Array<() => void> = [];
  get open(): boolean {
    return this.#down.size === 0;
  }
  /** Names of the dependencies that are down now. */
  get reasons(): string[] {
    return [...this.#down];
  }
  set(dependency: string, up: boolean): void {
    if (up) this.#down.delete(dependency);
    else this.#down.add(dependency);
    if (this.open) {
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    }
  }
  /** Resolves when open; calls `keepAlive` every `everyMs` while waiting. */
  async whenOpen(keepAlive?: () => void, everyMs = 1000): Promise<void> {
    if (this.open) return;
    const timer = keepAlive ? setInterval(keepAlive, everyMs) : undefined;
    try {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    } finally {
      if (timer) clearInterval(timer);
    }
  }
}
