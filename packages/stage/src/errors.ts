/**
 * Input that can never succeed: the runtime parks the message in the DLQ with this
 * error's message as the reason, then terms it. Decode and validation errors are
 * permanent.
 */
export class PermanentError extends Error {
  override readonly name: string = "PermanentError";
}

/**
 * A failure that may pass: the runtime naks with exponential backoff and jitter,
 * bounded by MaxDeliver, after which the message is parked. Unknown errors are
 * treated the same way.
 */
export class TransientError extends Error {
  override readonly name: string = "TransientError";
  /** Minimum delay before the retry, when the cause knows one (e.g. a lease). */
  readonly retryAfterMs?: number;
  /**
   * The external dependency that failed (`bank`), when the failure is its and not the
   * message's: the stage's circuit breaker for it counts these and pauses the stage.
   */
  readonly dependency?: string;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number; dependency?: string }) {
    super(message, options);
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options?.dependency !== undefined) this.dependency = options.dependency;
  }
}

/**
 * A publish that did not end with the event stored. `refused`: the stream answered no (full,
 * a wrong expected sequence: `code` is the JetStream API error code); `ambiguous`: an earlier
 * attempt timed out, so the event may be stored all the same and only reading the stream
 * (or publishing the same Nats-Msg-Id again) tells.
 */
export class PublishError extends TransientError {
  override readonly name = "PublishError";
  readonly refused: boolean;
  readonly ambiguous: boolean;
  readonly code?: number;
  constructor(
    message: string,
    o: { cause?: unknown; refused: boolean; ambiguous: boolean; code?: number; retryAfterMs?: number },
  ) {
    super(message, {
      cause: o.cause,
      ...(o.retryAfterMs !== undefined ? { retryAfterMs: o.retryAfterMs } : {}),
    });
    this.refused = o.refused;
    this.ambiguous = o.ambiguous;
    if (o.code !== undefined) this.code = o.code;
  }
}

/**
 * The stream already holds another event under this event's id (its PubAck said
 * "duplicate" and the stored bytes differ): a second, different decision on one input.
 * Never retried; the input is parked with this reason.
 */
export class DuplicateMismatchError extends PermanentError {
  override readonly name = "DuplicateMismatchError";
  /** Where the stream holds the other event. */
  readonly stream: string;
  readonly seq: number;
  constructor(message: string, where: { stream: string; seq: number }) {
    super(message);
    this.stream = where.stream;
    this.seq = where.seq;
  }
}

/** Settings that contradict exactly-once, refused at start; lists every problem. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`refusing to start: ${problems.join("; ")}`);
    this.problems = problems;
  }
}
