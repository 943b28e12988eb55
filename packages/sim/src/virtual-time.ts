import { syncBuiltinESMExports } from "node:module";
import { type Clock, withGlobal } from "@sinonjs/fake-timers";

/**
 * Virtual time for a simulated world: `setTimeout`, `setInterval`, `setImmediate`, `Date` and
 * `performance.now` of the whole process are replaced by one clock that moves only when the
 * world says so. Everything in the world (the runtime, nats.js, the simulated servers) keeps
 * calling the globals it always calls; with no real I/O left, the order in which things
 * happen depends only on the seed. Microtasks (promises, `queueMicrotask`,
 * `process.nextTick`) stay real: they run to completion between two timers.
 */
export interface VirtualTime {
  /** Virtual milliseconds since the epoch. */
  now(): number;
  /**
   * Runs every timer due within `ms` virtual milliseconds, in due order, letting promises
   * settle after each one; resolves with the virtual time reached.
   */
  advance(ms: number): Promise<number>;
  /**
   * Jumps `ms` ahead at once, as a machine waking from sleep or a clock stepped forward:
   * every timer due in between fires once, late, instead of at its time.
   */
  jump(ms: number): Promise<number>;
  /** Runs the next due timer (and the promises it settles); false when none is pending. */
  step(): Promise<boolean>;
  /** Timers pending now (intervals included). */
  pending(): number;
  /** Virtual time the next pending timer is due at; undefined when none is pending. */
  nextDueAt(): number | undefined;
  /**
   * Moves the clock `ms` ahead when no timer is due before it (nothing runs, no promise can
   * settle: the same as advancing through that empty stretch, without visiting it).
   * @throws when a timer is due by then.
   */
  skip(ms: number): void;
  /** Puts the real timers back. */
  uninstall(): void;
}

/** Whether a virtual clock is installed in this process now. */
let installed: Clock | undefined;

/**
 * Installs virtual time, starting at `startMs` (default 2026-01-01T00:00:00Z).
 * @throws when virtual time is already installed (one world per process at a time).
 */
export function installVirtualTime(startMs = Date.UTC(2026, 0, 1)): VirtualTime {
  if (installed) throw new Error("virtual time is already installed in this process");
  const clock = withGlobal(globalThis).install({
    now: startMs,
    toFake: [
      "setTimeout",
      "clearTimeout",
      "setInterval",
      "clearInterval",
      "setImmediate",
      "clearImmediate",
      "Date",
      "performance",
    ],
    // A stage's loops re-arm timers forever: a step is bounded by the caller, not by this.
    loopLimit: 1_000_000,
  });
  installed = clock;
  // fake-timers replaces `node:timers` and `node:timers/promises` on their module objects;
  // an ES import (the gateway's `setTimeout as sleep`) sees them only once synced.
  syncBuiltinESMExports();
  // The clock's own timer heap (fake-timers 15, pinned): its top is the timer that runs next.
  const heap = clock as unknown as { timerHeap?: { peek(): { callAt: number } | undefined } };
  const nextDueAt = () => heap.timerHeap?.peek()?.callAt;
  return {
    now: () => clock.now,
    advance: async (ms) => {
      await clock.tickAsync(ms);
      return clock.now;
    },
    jump: async (ms) => {
      clock.jump(ms);
      await clock.tickAsync(0);
      return clock.now;
    },
    step: async () => {
      if (clock.countTimers() === 0) return false;
      await clock.nextAsync();
      return true;
    },
    pending: () => clock.countTimers(),
    nextDueAt,
    skip: (ms) => {
      const due = nextDueAt();
      if (due !== undefined && due <= clock.now + ms)
        throw new Error(`virtual time: cannot skip ${ms} ms, a timer is due at ${due - clock.now} ms`);
      clock.tick(ms);
    },
    uninstall: () => {
      clock.uninstall();
      syncBuiltinESMExports();
      installed = undefined;
    },
  };
}
