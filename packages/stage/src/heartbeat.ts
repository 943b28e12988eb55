import type { JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { IdempotencyStore } from "./idempotency-store.ts";

/** One attempt the heartbeat keeps alive. */
export interface TrackedAttempt {
  readonly m: JsMsg;
  /** The idempotency key whose lease the attempt holds (exactly-once mode). */
  readonly key: string | undefined;
  /** The attempt's fencing token. */
  readonly token: string;
  readonly since: number;
  /** Called once when the lease turns out to be another attempt's: stop, change nothing. */
  lost(): void;
}

/**
 * Keeps long attempts alive with one timer per stage instead of one per message: every
 * `everyMs` (a third of the shorter of ack wait and lease) each attempt older than that
 * sends JetStream's `working()` (the server restarts the message's ack timer; it is not a
 * delivery) and renews its lease, fenced by its token. A renewal that finds another
 * attempt's lease tells the attempt it lost. Short attempts never see a beat.
 */
export class Heartbeat {
  readonly #attempts = new Set<TrackedAttempt>();
  readonly #everyMs: number;
  readonly #leaseMs: number;
  readonly #store: IdempotencyStore | undefined;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: {
    ackWaitMs: number;
    leaseMs: number;
    store: IdempotencyStore | undefined;
    logger: Logger;
  }) {
    this.#everyMs = Math.max(20, Math.floor(Math.min(o.ackWaitMs, o.leaseMs) / 3));
    this.#leaseMs = o.leaseMs;
    this.#store = o.store;
    this.#logger = o.logger;
  }

  track(a: TrackedAttempt): void {
    this.#attempts.add(a);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#beat(), this.#everyMs);
      this.#timer.unref();
    }
  }

  untrack(a: TrackedAttempt): void {
    this.#attempts.delete(a);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #beat(): void {
    const now = performance.now();
    for (const a of this.#attempts) {
      if (now - a.since < this.#everyMs) continue;
      a.m.working();
      if (!a.key || !this.#store) continue;
      this.#store.extend(a.key, a.token, this.#leaseMs).then(
        (held) => {
          if (held || !this.#attempts.has(a)) return;
          this.#attempts.delete(a);
          a.lost();
        },
        // Redis unreachable: the lease may lapse; the done mark is fenced all the same.
        (err: unknown) => this.#logger.warn({ err, key: a.key }, "lease not renewed"),
      );
    }
  }
}
