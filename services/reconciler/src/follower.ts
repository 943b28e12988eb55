import {
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Logger } from "pino";

/** How far a follower has read its stream. */
export interface FollowerPosition {
  readonly stream: string;
  /** Last sequence read. */
  readonly seq: number;
  /** The stream's last sequence when last asked. */
  readonly lastSeq: number;
  /** Messages stored and not read yet, as last known. */
  readonly lag: number;
  /** Store time of the oldest message not read yet, ms (undefined when caught up). */
  readonly behindSinceMs: number | undefined;
  /**
   * Everything stored before this time (ms) has been read: the store time of the last message
   * read, or the time the follower last knew it was at the stream's end.
   */
  readonly frontierMs: number;
  readonly exists: boolean;
}

const STALL_MS = 3000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/**
 * Follows one stream from its first message with an ordered consumer (ephemeral: no durable
 * state on the server, so any number of reconciler instances follow side by side), handing
 * each message to `onMessage` in sequence order. Survives broker restarts and a consumer that
 * stalls (it follows again from the next sequence); a missing stream is waited for.
 */
export class StreamFollower {
  readonly stream: string;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #log: Logger;
  readonly #onMessage: (m: JsMsg) => void;
  #seq = 0;
  #lastSeq = 0;
  #frontier = 0;
  #exists = false;
  #movedAt = Date.now();
  #stopped = false;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  readonly #waiters = new Set<{ seq: number; done: () => void }>();

  constructor(o: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    stream: string;
    logger: Logger;
    onMessage: (m: JsMsg) => void;
  }) {
    this.stream = o.stream;
    this.#js = o.js;
    this.#jsm = o.jsm;
    this.#log = o.logger.child({ stream: o.stream });
    this.#onMessage = o.onMessage;
  }

  start(): void {
    this.#loop = this.#run();
    this.#watchdog = setInterval(() => void this.refresh(), 1000);
    this.#watchdog.unref();
  }

  /** Resolves once every message stored when it was called has been read. */
  async caughtUp(): Promise<void> {
    for (;;) {
      if (this.#stopped) return;
      const target = await this.refresh();
      if (target === undefined) {
        await sleep(500);
        continue;
      }
      if (this.#seq >= target) return;
      await new Promise<void>((resolve) => {
        const w = { seq: target, done: resolve };
        this.#waiters.add(w);
        setTimeout(() => {
          this.#waiters.delete(w);
          resolve();
        }, 1000).unref();
      });
    }
  }

  /** Asks the stream's last sequence (and restarts a stalled consumer); undefined when unreachable or missing. */
  async refresh(): Promise<number | undefined> {
    const askedAt = Date.now();
    let last: number;
    try {
      last = await this.#lastStored();
      this.#exists = true;
    } catch (err) {
      if (isNotFound(err)) this.#exists = false;
      return undefined;
    }
    this.#lastSeq = last;
    if (this.#seq >= last) this.#frontier = Math.max(this.#frontier, askedAt);
    else if (this.#messages && Date.now() - this.#movedAt > STALL_MS) {
      this.#log.warn(
        { seq: this.#seq, last_seq: last },
        "follower stalled behind its stream; following it again",
      );
      this.#movedAt = Date.now();
      await this.#messages.close().catch(() => {});
    }
    return last;
  }

  /**
   * The sequence of the stream's last stored message (0 when it holds none). Not simply
   * last_seq: an operator removes DLQ entries (`jetmesh dlq replay`, `drop`), and a deleted last
   * sequence is never delivered, so waiting for it would never end.
   */
  async #lastStored(): Promise<number> {
    const { state } = await this.#jsm.streams.info(this.stream);
    if (state.messages === 0) return 0;
    if (!state.num_deleted || this.#seq >= state.last_seq) return state.last_seq;
    const deleted = new Set(
      (await this.#jsm.streams.info(this.stream, { deleted_details: true })).state.deleted ?? [],
    );
    let last = state.last_seq;
    while (last > state.first_seq && deleted.has(last)) last--;
    return last;
  }

  position(): FollowerPosition {
    const lag = Math.max(0, this.#lastSeq - this.#seq);
    return {
      stream: this.stream,
      seq: this.#seq,
      lastSeq: this.#lastSeq,
      lag,
      behindSinceMs: lag > 0 ? this.#frontier : undefined,
      frontierMs: this.#frontier,
      exists: this.#exists,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    await this.#messages?.close().catch(() => {});
    for (const w of this.#waiters) w.done();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        const consumer = await this.#js.consumers.get(this.stream, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.#seq + 1,
        });
        const messages = await consumer.consume({ max_messages: 1000 });
        this.#messages = messages;
        if (this.#stopped) void messages.close();
        for await (const m of messages) {
          if (this.#stopped) break;
          failures = 0;
          this.#read(m);
        }
      } catch (err) {
        failures++;
        if (!isNotFound(err)) this.#log.warn({ err, failures }, "following the stream failed; resuming");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      } finally {
        await this.#messages?.close().catch(() => {});
        this.#messages = undefined;
      }
    }
  }

  #read(m: JsMsg): void {
    if (m.seq <= this.#seq) return;
    this.#seq = m.seq;
    this.#movedAt = Date.now();
    if (m.seq > this.#lastSeq) this.#lastSeq = m.seq;
    const at = Number(m.timestampNanos / 1_000_000n);
    // pending 0: nothing stored after it, as of its delivery.
    this.#frontier = Math.max(this.#frontier, m.info.pending === 0 ? Date.now() : at);
    try {
      this.#onMessage(m);
    } catch (err) {
      this.#log.error({ err, stream_seq: m.seq }, "a message could not be read; skipped");
    }
    for (const w of [...this.#waiters])
      if (this.#seq >= w.seq) {
        this.#waiters.delete(w);
        w.done();
      }
  }
}
