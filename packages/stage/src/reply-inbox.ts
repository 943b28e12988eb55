import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  TimeoutError,
} from "@nats-io/transport-node";

interface Waiting {
  readonly deadline: number;
  resolve(m: Msg): void;
  reject(e: Error): void;
}

interface Outgoing {
  readonly subject: string;
  readonly body: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly token: string;
}

/**
 * Requests whose replies come back on one inbox subscription of this process.
 *
 * A nats.js request costs a timer, a response-mux entry and a promise race per message,
 * and is written to the socket on its own as soon as it is made. A stage sends one
 * request per output (its PubAck) and, with confirmed acks, one per input (the ack's
 * confirmation): at saturation those were about a tenth of its CPU, and each one sent
 * alone broke the batching of everything after it (bench/NOTES.md). Here a request is a
 * plain message with a reply subject `<inbox>.<token>`; the requests made in one turn are
 * written together after its promise jobs (`process.nextTick`: nats.js flushes one
 * microtask after its first write, before the rest of a delivered batch is ready); one
 * interval sweeps the requests whose reply is late.
 */
export class ReplyInbox {
  readonly #prefix: string;
  readonly #waiting = new Map<string, Waiting>();
  #outbox: Outgoing[] = [];
  #next = 0;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #sweepEveryMs: number;

  /** @param shortestTimeoutMs the smallest timeout callers pass; sets the sweep interval. */
  constructor(
    private readonly nc: NatsConnection,
    shortestTimeoutMs: number,
  ) {
    this.#sweepEveryMs = Math.max(10, Math.min(250, shortestTimeoutMs / 4));
    // Under the connection's own inbox prefix (inboxPrefixOf): its permissions allow that one.
    this.#prefix = `${createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix)}.`;
    nc.subscribe(`${this.#prefix}*`, { callback: (_err, m) => this.#answer(m) });
  }

  /**
   * Sends `body` to `subject` and resolves with the reply.
   * @throws NoRespondersError when nobody listens on `subject`; TimeoutError after `timeoutMs`;
   *   the connection's error when it is closed.
   */
  request(subject: string, body: Uint8Array, headers: MsgHdrs | undefined, timeoutMs: number): Promise<Msg> {
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.#waiting.set(token, { deadline: performance.now() + timeoutMs, resolve, reject });
      if (this.#outbox.push({ subject, body, headers, token }) === 1) process.nextTick(this.#send);
      if (!this.#sweeper) {
        this.#sweeper = setInterval(() => this.#sweep(), this.#sweepEveryMs);
        this.#sweeper.unref();
      }
    });
  }

  /** Requests waiting for their reply (for tests). */
  get waiting(): number {
    return this.#waiting.size;
  }

  #send = (): void => {
    const out = this.#outbox;
    this.#outbox = [];
    for (const o of out) {
      try {
        this.nc.publish(o.subject, o.body, {
          reply: this.#prefix + o.token,
          ...(o.headers ? { headers: o.headers } : {}),
        });
      } catch (err) {
        const w = this.#waiting.get(o.token);
        this.#waiting.delete(o.token);
        w?.reject(err as Error);
      }
    }
  };

  #answer(m: Msg): void {
    const token = m.subject.slice(this.#prefix.length);
    const w = this.#waiting.get(token);
    if (!w) return;
    this.#waiting.delete(token);
    if (m.headers?.hasError && m.headers.code === 503) w.reject(new NoRespondersError(m.subject));
    else w.resolve(m);
  }

  #sweep(): void {
    const now = performance.now();
    for (const [token, w] of this.#waiting) {
      if (w.deadline > now) continue;
      this.#waiting.delete(token);
      w.reject(new TimeoutError());
    }
    if (this.#waiting.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
