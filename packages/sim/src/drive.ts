import type { VirtualTime } from "./virtual-time.ts";

/** Thrown when virtual time passed the bound before the driven promise settled. */
export class VirtualTimeout extends Error {
  override readonly name = "VirtualTimeout";
}

/**
 * Settles `p` while moving virtual time on in steps of `stepMs`: a promise that waits on
 * timers (a publish timeout, a pull's expiry, a retry's backoff) needs the clock to move.
 * @throws VirtualTimeout when `maxMs` of virtual time (or `realBudgetMs` of real time, default
 * 120 s: a world spinning) passed first; `p`'s rejection otherwise.
 */
export async function drive<T>(
  vt: VirtualTime,
  p: Promise<T>,
  o: { stepMs?: number; maxMs: number; what: string; realBudgetMs?: number },
): Promise<T> {
  const realDeadline = process.hrtime.bigint() + BigInt(Math.round((o.realBudgetMs ?? 120_000) * 1e6));
  let state:
    | { done: false }
    | { done: true; ok: true; value: T }
    | { done: true; ok: false; error: unknown } = {
    done: false,
  };
  p.then(
    (value) => {
      state = { done: true, ok: true, value };
    },
    (error: unknown) => {
      state = { done: true, ok: false, error };
    },
  );
  const deadline = vt.now() + o.maxMs;
  // Let what is already resolvable settle before any time passes.
  await vt.advance(0);
  while (!state.done) {
    if (vt.now() >= deadline) throw new VirtualTimeout(`${o.what}: not done after ${o.maxMs} virtual ms`);
    if (process.hrtime.bigint() > realDeadline)
      throw new VirtualTimeout(
        `${o.what}: not done after ${o.realBudgetMs ?? 120_000} real ms (virtual ${vt.now()})`,
      );
    // Steps before the next timer are empty: nothing runs in them, so the clock jumps over
    // them (a world idling on a long timeout does not spin); the step that holds the timer
    // then runs as always, so the world sees the same step boundaries.
    const step = o.stepMs ?? 10;
    const due = vt.nextDueAt() ?? Number.POSITIVE_INFINITY;
    const empty = Math.min(Math.ceil((due - vt.now()) / step) - 1, Math.ceil((deadline - vt.now()) / step));
    if (empty > 0) vt.skip(empty * step);
    else await vt.advance(step);
  }
  const s = state as { done: true; ok: true; value: T } | { done: true; ok: false; error: unknown };
  if (s.ok) return s.value;
  throw s.error;
}
