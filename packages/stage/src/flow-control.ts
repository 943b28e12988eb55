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
 * Open while every dependency is up (NATS, Redis, and each dependency whose breaker is
 * closed). A consume loop stops pulling when the gate closes and pulls again once it opens,
 * so an outage costs each message at most a delivery or two, however long it lasts.
 */
export class Gate {
  readonly #down = new Set<string>();
  readonly #closers = new Set<() => void>();
  #waiters: Array<() => void> = [];
  get open(): boolean {
    return this.#down.size === 0;
  }
  /** Names of the dependencies that are down now. */
  get reasons(): string[] {
    return [...this.#down];
  }
  set(dependency: string, up: boolean): void {
    const wasOpen = this.open;
    if (up) this.#down.delete(dependency);
    else this.#down.add(dependency);
    if (wasOpen && !this.open) for (const f of this.#closers) f();
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

  /** Resolves every current {@link Gate.whenOpen} waiter, open or not (a stopping loop). */
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Calls `f` each time the gate goes from open to closed; returns the unsubscribe. */
  onClose(f: () => void): () => void {
    this.#closers.add(f);
    return () => this.#closers.delete(f);
  }
}

/** A dependency a stage can tell is up without processing a message. */
export type DependencyProbe = () => Promise<void>;

/** How a {@link Breakers} trips and recovers. */
export interface BreakerSettings {
  /** Failures of one dependency within `windowMs` that open its breaker. */
  readonly threshold: number;
  readonly windowMs: number;
  /** First wait before probing an open breaker; doubles up to `maxCooldownMs`. */
  readonly cooldownMs: number;
  readonly maxCooldownMs: number;
}

/**
 * Circuit breakers per dependency (the bank, say) over a stage's {@link Gate}: when a
 * dependency fails `threshold` times within `windowMs` its breaker opens and closes the gate
 * under `dependency:<name>`, so the stage stops pulling instead of spending every message's
 * deliveries against something that is down (a ten-minute outage would otherwise park every
 * message in the DLQ). While open it probes: the dependency's probe when the stage declares
 * one (a request with no side effect), otherwise it closes after the cooldown and lets
 * traffic try again (half-open: the next failures open it again, with a longer cooldown).
 */
export class Breakers {
  readonly #gate: Gate;
  readonly #s: BreakerSettings;
  readonly #probes: Readonly<Record<string, DependencyProbe>>;
  readonly #failures = new Map<string, number[]>();
  readonly #open = new Map<string, { cooldownMs: number; timer: NodeJS.Timeout | undefined }>();
  /** Dependencies whose probe is being asked whether the failures mean it is down. */
  readonly #confirming = new Set<string>();
  readonly #onChange: (dependency: string, up: boolean, detail: string) => void;
  #stopped = false;

  constructor(o: {
    gate: Gate;
    settings: BreakerSettings;
    probes?: Readonly<Record<string, DependencyProbe>>;
    onChange: (dependency: string, up: boolean, detail: string) => void;
  }) {
    this.#gate = o.gate;
    this.#s = o.settings;
    this.#probes = o.probes ?? {};
    this.#onChange = o.onChange;
  }

  /** Dependencies whose breaker is open now. */
  get open(): string[] {
    return [...this.#open.keys()];
  }

  /**
   * A message failed because `dependency` did (a timeout, a 5xx, unreachable). At the
   * threshold a dependency with a probe is asked first: one that answers was only slow (a
   * bank that acted but answered late), and the failures are forgotten instead of pausing
   * the stage; one that does not answer is down.
   */
  failed(dependency: string): void {
    if (this.#stopped || this.#open.has(dependency) || this.#confirming.has(dependency)) return;
    const now = Date.now();
    const recent = (this.#failures.get(dependency) ?? []).filter((t) => now - t < this.#s.windowMs);
    recent.push(now);
    this.#failures.set(dependency, recent);
    if (recent.length < this.#s.threshold) return;
    const check = this.#probes[dependency];
    if (!check) {
      this.#trip(dependency, this.#s.cooldownMs);
      return;
    }
    this.#confirming.add(dependency);
    check().then(
      () => {
        this.#confirming.delete(dependency);
        this.#failures.delete(dependency);
      },
      () => {
        this.#confirming.delete(dependency);
        if (!this.#stopped) this.#trip(dependency, this.#s.cooldownMs);
      },
    );
  }

  stop(): void {
    this.#stopped = true;
    for (const o of this.#open.values()) clearTimeout(o.timer);
  }

  #trip(dependency: string, cooldownMs: number): void {
    this.#failures.delete(dependency);
    const state = { cooldownMs, timer: undefined as NodeJS.Timeout | undefined };
    this.#open.set(dependency, state);
    this.#gate.set(`dependency:${dependency}`, false);
    this.#onChange(dependency, false, `${this.#s.threshold} failures within ${this.#s.windowMs} ms`);
    const probe = async (): Promise<void> => {
      if (this.#stopped) return;
      const check = this.#probes[dependency];
      try {
        if (check) await check();
        this.#open.delete(dependency);
        this.#gate.set(`dependency:${dependency}`, true);
        this.#onChange(dependency, true, check ? "probe answered" : `half-open after ${state.cooldownMs} ms`);
      } catch {
        // Still down: probe again later.
        state.cooldownMs = Math.min(this.#s.maxCooldownMs, state.cooldownMs * 2);
        state.timer = setTimeout(() => void probe(), state.cooldownMs);
        state.timer.unref();
      }
    };
    state.timer = setTimeout(() => void probe(), cooldownMs);
    state.timer.unref();
  }
}
