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
 * failures does not come back as a burst.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  deliveryCount: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, deliveryCount - 1));
  const fixed = exp * (1 - policy.jitter);
  return Math.round(fixed + exp * policy.jitter * random());
}

/**
 * Upper bound of the time a message can keep coming back: every delivery waits
 * at most its ack wait (server BackOff step) plus the longest nak delay.
 */
export function redeliveryHorizonMs(opts: {
  ackWaitMs: number;
  backoffMs: readonly number[];
  maxDeliver: number;
  retryMaxMs: number;
}): number {
  const steps = [opts.ackWaitMs, ...opts.backoffMs];
  let total = 0;
  for (let i = 0; i < opts.maxDeliver; i++)
    total += Math.max(steps[Math.min(i, steps.length - 1)] ?? 0, opts.retryMaxMs);
  return total;
}
