import {
  type AnyEnvelope,
  encodeEvent,
  type Envelope,
  eventHeaders,
  Headers,
  subjectFor,
} from "@jetmesh/contracts";
import { JetStreamApiError, type JetStreamClient, type PubAck } from "@nats-io/jetstream";
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  headers as natsHeaders,
  TimeoutError,
} from "@nats-io/transport-node";
import type { Logger } from "pino";
import { TransientError } from "./errors.ts";
import type { StageMetrics } from "./metrics.ts";
import {
  type Context,
  context,
  injectContext,
  SpanKind,
  SpanStatusCode,
  trace,
  tracer,
} from "./telemetry.ts";

/** Options of one publish. */
export interface PublishOptions {
  /** Account whose partition the subject takes; defaults to `data.from`. */
  readonly partitionKey?: string;
  /** Parent of the producer span (the consumer span of the input, or the HTTP span). */
  readonly parent?: Context;
  /** False in at-least-once mode: no `Nats-Msg-Id`, so the stream keeps every copy. */
  readonly dedupe?: boolean;
}

/**
 * Publishes events to their streams with `Nats-Msg-Id` = eventId and operator-readable
 * headers plus W3C trace context. A publish whose acknowledgement is lost is retried
 * with the same id until `publishRetryHorizonMs`; the stream's duplicate window (longer,
 * checked at start) drops the copy. Resolves only once the stream stored the event.
 */
export interface EventPublisher {
  /**
   * @throws TransientError when the stream refuses (full, discard=new) or stays
   * unreachable past the retry horizon; ContractError when the event is invalid.
   */
  publish(env: Envelope | AnyEnvelope, opts?: PublishOptions): Promise<PubAck>;
}

/** Settings the publisher reads. */
export interface PublisherSettings {
  readonly publishTimeoutMs: number;
  readonly publishRetryHorizonMs: number;
}

/** Sends a message and resolves with the stream's PubAck, like `js.publish`. */
type PublishOnce = (
  subject: string,
  body: Uint8Array,
  h: MsgHdrs,
  msgID: string | undefined,
) => Promise<PubAck>;

const utf8 = new TextDecoder();

/**
 * JetStream publishes with their PubAcks taken from one inbox subscription. `js.publish`
 * makes each publish a request: a timer, a response mux entry, a TextDecoder and an Error
 * (built even on success, to cancel the request) per message, about a tenth of a stage's
 * CPU at saturation (bench/NOTES.md). Here a publish is a plain message with a reply
 * subject under the inbox, its PubAck is matched by token, and one interval sweeps the
 * publishes whose PubAck is late (in order: every publish has the same timeout). The
 * publishes requested in one turn go out together, in one socket write.
 */
class PubAckInbox {
  readonly #prefix = `${createInbox()}.`;
  readonly #pending = new Map<
    string,
    { deadline: number; resolve(a: PubAck): void; reject(e: Error): void }
  >();
  #next = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    nc.subscribe(`${this.#prefix}*`, { callback: (_err, m) => this.#answer(m) });
  }

  #outbox: { subject: string; body: Uint8Array; h: MsgHdrs; token: string }[] = [];

  // The event's headers already carry Nats-Msg-Id when it dedupes (eventHeaders).
  publish: PublishOnce = (subject, body, h) => {
    const token = (this.#next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      this.#pending.set(token, { deadline: performance.now() + this.timeoutMs, resolve, reject });
      // Sent after this turn's promise jobs, all together: nats.js flushes its buffer one
      // microtask after the first write, which would otherwise send each message of a
      // delivered batch on its own as soon as it is ready (one syscall per message).
      if (this.#outbox.push({ subject, body, h, token }) === 1) process.nextTick(this.#send);
      if (!this.#sweeper) {
        this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.min(250, this.timeoutMs / 4)));
        this.#sweeper.unref();
      }
    });
  };

  #send = (): void => {
    const out = this.#outbox;
    this.#outbox = [];
    for (const o of out) {
      try {
        this.nc.publish(o.subject, o.body, { reply: this.#prefix + o.token, headers: o.h });
      } catch (err) {
        const p = this.#pending.get(o.token);
        this.#pending.delete(o.token);
        p?.reject(err as Error);
      }
    }
  };

  #answer(m: Msg): void {
    const token = m.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (!p) return;
    this.#pending.delete(token);
    if (m.headers?.hasError) {
      p.reject(m.headers.code === 503 ? new NoRespondersError(m.subject) : new Error(m.headers.status));
      return;
    }
    try {
      const ack = JSON.parse(utf8.decode(m.data)) as PubAck & {
        error?: ConstructorParameters<typeof JetStreamApiError>[0];
      };
      if (ack.error) p.reject(new JetStreamApiError(ack.error));
      else if (!ack.stream) p.reject(new Error("invalid ack response"));
      else {
        ack.duplicate = ack.duplicate ?? false;
        p.resolve(ack);
      }
    } catch (err) {
      p.reject(err as Error);
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const [token, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(token);
      p.reject(new TimeoutError());
    }
    if (this.#pending.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}

class JetStreamEventPublisher implements EventPublisher {
  readonly #publishOnce: PublishOnce;
  constructor(
    js: JetStreamClient,
    nc: NatsConnection | undefined,
    private readonly settings: PublisherSettings,
    private readonly logger: Logger,
    private readonly stage: string,
    private readonly metrics?: StageMetrics,
  ) {
    this.#publishOnce = nc
      ? new PubAckInbox(nc, settings.publishTimeoutMs).publish
      : (subject, body, h, msgID) =>
          js.publish(subject, body, {
            ...(msgID ? { msgID } : {}),
            headers: h,
            timeout: settings.publishTimeoutMs,
          });
  }

  async publish(env: Envelope | AnyEnvelope, opts: PublishOptions = {}): Promise<PubAck> {
    const data = env.data as { from?: string };
    const subject = subjectFor(env.type, opts.partitionKey ?? data.from ?? env.correlationId);
    const body = encodeEvent(env);
    const span = tracer.startSpan(
      `send ${env.type}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "send",
          "messaging.destination.name": subject,
          "messaging.message.id": env.eventId,
          "messaging.message.conversation_id": env.correlationId,
        },
      },
      opts.parent ?? context.active(),
    );
    const h: MsgHdrs = natsHeaders();
    const dedupe = opts.dedupe !== false;
    for (const [k, v] of Object.entries(eventHeaders(env))) if (dedupe || k !== Headers.MsgId) h.set(k, v);
    injectContext(trace.setSpan(opts.parent ?? context.active(), span), h);
    const started = performance.now();
    try {
      const ack = await this.#publishWithRetry(subject, body, h, dedupe ? env.eventId : undefined);
      span.setAttribute("messaging.nats.stream_sequence", ack.seq);
      if (ack.duplicate) {
        span.setAttribute("messaging.nats.duplicate", true);
        this.metrics?.duplicates.inc({ stage: this.stage, layer: "stream" });
      }
      return ack;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      this.metrics?.publishDuration.observe({ stage: this.stage }, (performance.now() - started) / 1000);
      span.end();
    }
  }

  async #publishWithRetry(
    subject: string,
    body: Uint8Array,
    h: MsgHdrs,
    msgID: string | undefined,
  ): Promise<PubAck> {
    const deadline = Date.now() + this.settings.publishRetryHorizonMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#publishOnce(subject, body, h, msgID);
      } catch (err) {
        // The stream answered and refused (e.g. full with discard=new): retrying now
        // cannot help; the caller naks (stage) or answers 503 (gateway).
        if (err instanceof JetStreamApiError) {
          throw new TransientError(`stream refused ${subject}: ${err.message}`, {
            cause: err,
            retryAfterMs: 1000,
          });
        }
        const waitMs = Math.min(2000, 50 * 2 ** attempt);
        if (Date.now() + waitMs > deadline) {
          throw new TransientError(`publish to ${subject} unacknowledged after ${attempt} attempts`, {
            cause: err,
          });
        }
        this.logger.warn(
          { err, subject, msg_id: msgID, attempt },
          "publish not acknowledged, retrying with the same id",
        );
        await new Promise((r) => setTimeout(r, waitMs));
      }
    }
  }
}

/** Creates an {@link EventPublisher} over a JetStream client. */
export function createEventPublisher(opts: {
  js: JetStreamClient;
  /** When given, PubAcks come back on one inbox subscription instead of a request per publish. */
  nc?: NatsConnection;
  settings: PublisherSettings;
  logger: Logger;
  /** Name used in metrics (the stage or service). */
  stage: string;
  metrics?: StageMetrics;
}): EventPublisher {
  return new JetStreamEventPublisher(opts.js, opts.nc, opts.settings, opts.logger, opts.stage, opts.metrics);
}
