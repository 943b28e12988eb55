import { setTimeout as sleep } from "node:timers/promises";

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Names the condition in the timeout error: `timed out waiting for <what>`. */
  what?: string;
}

/**
 * Polls `fn` until it returns (or resolves to) a value other than `undefined` or `false`,
 * and returns that value. A throw counts as "not yet" and is remembered. Attempts never
 * overlap: the next one starts `intervalMs` after the previous one settled.
 *
 * @throws Error `timed out waiting for <what> after <n> ms` with the last error as
 *   `cause` (and its message appended) once `timeoutMs` has passed.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const what = opts.what ?? "condition";
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? "" : `: ${errorMessage(lastError)}`;
      throw new Error(`timed out waiting for ${what} after ${timeoutMs} ms${detail}`, { cause: lastError });
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
