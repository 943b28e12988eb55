/**
 * Input that can never succeed: the runtime parks the message in the DLQ with this
 * error's message as the reason, then terms it. Decode and validation errors are
 * permanent.
 */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

/**
 * A failure that may pass: the runtime naks with exponential backoff and jitter,
 * bounded by MaxDeliver, after which the message is parked. Unknown errors are
 * treated the same way.
 */
export class TransientError extends Error {
  override readonly name = "TransientError";
  /** Minimum delay before the retry, when the cause knows one (e.g. a lease). */
  readonly retryAfterMs?: number;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
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
