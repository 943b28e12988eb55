import {
  type AnyEnvelope,
  ContractError,
  encodeEvent,
  type Envelope,
  eventHeaders,
  Headers,
  type Names,
  namesFor,
  subjectFor,
} from "@jetmesh/contracts";
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
} from "@nats-io/jetstream";
import { type Msg, type MsgHdrs, MsgHdrsImpl, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { DuplicateMismatchError, PublishError } from "./errors.ts";
import type { StageMetrics } from "./metrics.ts";
import { ReplyInbox } from "./reply-inbox.ts";
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
  /**
   * Optimistic concurrency (a log with one writer at a time): the stream stores the event
   * only if its last sequence is `lastSequence` and, when given, its last message's id is
   * `lastMsgId` (`Nats-Expected-Last-Sequence`, `Nats-Expected-Last-Msg-Id`). Otherwise the
   * publish is refused with a {@link PublishError} whose `code` is 10071 or 10070. A
   * repeated Nats-Msg-Id is checked first by the server: a retry of a stored event gets its
   * duplicate PubAck whatever it expected (SERVER-BEHAVIOUR.md §6).
   */
  readonly expect?: { readonly lastSequence: number; readonly lastMsgId?: string };
  /** More operator-readable headers (the gateway's Jetmesh-Client-Id); they never replace the event's own. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** JetStream API error codes the publisher's callers branch on. */
export const PublishErrorCodes = {
  /** Nats-Expected-Last-Sequence (or -Subject-Sequence) did not match. */
  WrongLastSequence: 10071,
  /** Nats-Expected-Last-Msg-Id did not match. */
  WrongLastMsgId: 10070,
  /** A limit with discard=new: the stream is full (bytes or messages). */
  StreamFull: 10077,
} as const;

/**
 * Publishes events to their streams with `Nats-Msg-Id` = eventId and operator-readable
 * headers plus W3C trace context. A publish whose acknowledgement is lost is retried
 * with the same id until `publishRetryHorizonMs`; the stream's duplicate window (longer,
 * checked at start) drops the copy. Resolves only once the stream stored the event. A
 * duplicate PubAck is never trusted blindly: the stored message is read back and must hold
 * the same bytes, so a second, different event under one id cannot be dropped silently.
 */
export interface EventPublisher {
  /**
   * @throws PublishError (a TransientError) when the stream refuses (full, an expectation
   *   not met) or stays unreachable past the retry horizon, saying whether an earlier attempt
   *   may have stored it all the same; DuplicateMismatchError when the stream holds a
   *   different event under its id; ContractError when the event is invalid.
   */
  publish(env: Envelope | AnyEnvelope, opts?: PublishOptions): Promise<PubAck>;
}

/** Settings the publisher reads. */
export interface PublisherSettings {
  /** JETMESH_NAMESPACE: subjects are resolved in it (`namesFor`); absent or "" for none. */
  readonly namespace?: string;
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
 * A PubAck, parsed from the reply to a publish made through a {@link ReplyInbox}: `js.publish`
 * would make each publish a nats.js request (a timer, a mux entry, a TextDecoder and an
 * Error per message; about a tenth of a stage's CPU at saturation, bench/NOTES.md).
 * @throws JetStreamApiError when the stream refused the message.
 */
function pubAckOf(m: Msg): PubAck {
  if (m.headers?.hasError) throw new Error(m.headers.status);
  const ack = JSON.parse(utf8.decode(m.data)) as PubAck & {
    error?: ConstructorParameters<typeof JetStreamApiError>[0];
  };
  if (ack.error) throw new JetStreamApiError(ack.error);
  if (!ack.stream) throw new Error("invalid ack response");
  ack.duplicate = ack.duplicate ?? false;
  return ack;
}

const LINE_BREAK = /[\r\n]/;
const EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence";
const EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id";

/**
 * The NATS headers of one event: its contract headers (without `Nats-Msg-Id` when it does
 * not dedupe) and the W3C trace context. Built as a record and handed over whole:
 * `MsgHdrs.set` searches and canonicalises the keys already set on every call, which was
 * 4% of a stage's CPU for ten headers per publish. Values are checked as nats.js would.
 * @throws ContractError when a value holds a line break (it would end the header block).
 */
function headersOf(record: Record<string, string>, dedupe: boolean, ctx: Context): MsgHdrs {
  if (!dedupe) delete record[Headers.MsgId];
  injectContext(ctx, { get: (k) => record[k], set: (k, v) => (record[k] = v) });
  const values: Record<string, string[]> = {};
  for (const k in record) {
    const v = record[k]!;
    if (LINE_BREAK.test(v))
      throw new ContractError("invalid header", [
        { field: `header:${k}`, rule: "must not contain a line break" },
      ]);
    values[k] = [v];
  }
  return MsgHdrsImpl.fromRecord(values);
}

class JetStreamEventPublisher implements EventPublisher {
  readonly #publishOnce: PublishOnce;
  readonly #js: JetStreamClient;
  /** The namespace's names, resolved once: publish runs per message. */
  readonly #names: Names;
  #jsm: JetStreamManager | undefined;
  constructor(
    js: JetStreamClient,
    nc: NatsConnection | undefined,
    replies: ReplyInbox | undefined,
    private readonly settings: PublisherSettings,
    private readonly logger: Logger,
    private readonly stage: string,
    private readonly metrics?: StageMetrics,
  ) {
    this.#js = js;
    this.#names = namesFor(settings.namespace);
    const inbox = replies ?? (nc ? new ReplyInbox(nc, settings.publishTimeoutMs) : undefined);
    // The event's headers already carry Nats-Msg-Id when it dedupes (eventHeaders).
    this.#publishOnce = inbox
      ? (subject, body, h) => inbox.request(subject, body, h, settings.publishTimeoutMs).then(pubAckOf)
      : (subject, body, h, msgID) =>
          js.publish(subject, body, {
            ...(msgID ? { msgID } : {}),
            headers: h,
            timeout: settings.publishTimeoutMs,
          });
  }

  async publish(env: Envelope | AnyEnvelope, opts: PublishOptions = {}): Promise<PubAck> {
    const data = env.data as { from?: string };
    const subject = this.#names.subject(
      subjectFor(env.type, opts.partitionKey ?? data.from ?? env.correlationId),
    );
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
    const dedupe = opts.dedupe !== false;
    const record = { ...opts.headers, ...eventHeaders(env) };
    if (opts.expect) {
      record[EXPECTED_LAST_SEQUENCE] = String(opts.expect.lastSequence);
      if (opts.expect.lastMsgId !== undefined) record[EXPECTED_LAST_MSG_ID] = opts.expect.lastMsgId;
    }
    const h = headersOf(record, dedupe, trace.setSpan(opts.parent ?? context.active(), span));
    const started = performance.now();
    try {
      const ack = await this.#publishWithRetry(subject, body, h, dedupe ? env.eventId : undefined);
      span.setAttribute("messaging.nats.stream_sequence", ack.seq);
      if (ack.duplicate) {
        span.setAttribute("messaging.nats.duplicate", true);
        this.metrics?.duplicates.inc({ stage: this.stage, layer: "stream" });
        await this.#checkDuplicate(ack, body, env.eventId);
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

  /**
   * A duplicate PubAck names where the stream holds the event's id: the bytes stored there
   * must be the bytes sent. Outputs are deterministic (same ids, same payload on every
   * redelivery), so a difference is a second decision, never a retry.
   */
  async #checkDuplicate(ack: PubAck, body: Uint8Array, eventId: string): Promise<void> {
    // Kept once it exists, never as a promise: one that rejected (JetStream unanswered in a
    // broker restart) would fail every later check.
    this.#jsm ??= await this.#js.jetstreamManager();
    const stored = await this.#jsm.streams.getMessage(ack.stream, { seq: ack.seq });
    if (!stored) {
      throw new PublishError(
        `duplicate of ${eventId} reported at ${ack.stream} seq ${ack.seq}, which is gone`,
        {
          refused: false,
          ambiguous: true,
        },
      );
    }
    if (Buffer.compare(Buffer.from(stored.data), Buffer.from(body)) !== 0) {
      throw new DuplicateMismatchError(
        `${ack.stream} seq ${ack.seq} holds a different event under id ${eventId}: a second decision on one input was refused`,
        { stream: ack.stream, seq: ack.seq },
      );
    }
  }

  async #publishWithRetry(
    subject: string,
    body: Uint8Array,
    h: MsgHdrs,
    msgID: string | undefined,
  ): Promise<PubAck> {
    const deadline = Date.now() + this.settings.publishRetryHorizonMs;
    // Once an attempt went unanswered, the event may be stored whatever comes after.
    let ambiguous = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#publishOnce(subject, body, h, msgID);
      } catch (err) {
        // The stream answered and refused (full with discard=new, an expectation not met):
        // retrying now cannot help; the caller naks (stage) or answers 503 (gateway).
        if (err instanceof JetStreamApiError) {
          throw new PublishError(`stream refused ${subject}: ${err.message}`, {
            cause: err,
            refused: true,
            ambiguous,
            code: err.code,
            retryAfterMs: 1000,
          });
        }
        ambiguous = true;
        const waitMs = Math.min(2000, 50 * 2 ** attempt);
        if (Date.now() + waitMs > deadline) {
          throw new PublishError(`publish to ${subject} unacknowledged after ${attempt} attempts`, {
            cause: err,
            refused: false,
            ambiguous: true,
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
  /** The inbox to use instead of a new one on `nc` (a stage shares one with its confirmed acks). */
  replies?: ReplyInbox;
  settings: PublisherSettings;
  logger: Logger;
  /** Name used in metrics (the stage or service). */
  stage: string;
  metrics?: StageMetrics;
}): EventPublisher {
  return new JetStreamEventPublisher(
    opts.js,
    opts.nc,
    opts.replies,
    opts.settings,
    opts.logger,
    opts.stage,
    opts.metrics,
  );
}
