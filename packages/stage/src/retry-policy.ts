/** Exponential backoff with jitter for naks. */
export interface RetryPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
  /** Share of the delay that is randomised, 0..1 (full jitter at 1). */
  readonly jitter: number;
}

/**
 * Delay before the next delivery after `deliveryCount` failed attempts:
 * min(max, base·2^(n−1)), of which a `jitter` share is random so that a burst of
 * failures does not come back as a burst. Never below 1 ms: a nak without a delay is
 * redelivered at once (nats-server 2.9.10, SERVER-BEHAVIOUR.md §1).
 */
export function retryDelayMs(
  policy: RetryPolicy,
  deliveryCount: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, deliveryCount - 1));
  const fixed = exp * (1 - policy.jitter);
  return Math.max(1, Math.round(fixed + exp * policy.jitter * random()));
}

/** What bounds how long a message can keep coming back to be processed. */
export interface HorizonSettings {
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  readonly retryMaxMs: number;
  readonly leaseMs: number;
  readonly handlerTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly publishRetryHorizonMs: number;
}

/**
 * The true worst case of the time from a message's first delivery to the last delivery on
 * which its handler or effect may run, on a consumer without BackOff (what the runtime
 * provisions; on it the server redelivers after exactly ack_wait or exactly the nak delay,
 * measured on nats-server 2.9.10). Each of the first `maxDeliver − 1` deliveries ends in at
 * most one of:
 * - a dead or paused process: redelivered `ackWaitMs` after its last heartbeat, which is at
 *   most `ackWaitMs` after the delivery;
 * - a failed attempt: its handler and effect (≤ `handlerTimeoutMs`, kept alive by the
 *   heartbeat), its publishes retried for up to `publishRetryHorizonMs + publishTimeoutMs`,
 *   then a nak of at most `retryMaxMs`;
 * - a lease held by another attempt: a nak until that lease expires (≤ `leaseMs` + 50).
 * A delivery past `maxDeliver` is parked without running anything. Time a stage spends
 * paused with its dependency down (pulls stopped) comes on top.
 */
export function redeliveryHorizonMs(s: HorizonSettings): number {
  const attempt = s.handlerTimeoutMs + s.publishTimeoutMs + s.publishRetryHorizonMs + s.retryMaxMs;
  const gap = Math.max(s.ackWaitMs, s.leaseMs + 50, attempt);
  return (s.maxDeliver - 1) * gap;
}
