/**
 * Named points on a message's path where a test can make the process die hard
 * (SIGKILL: no finally blocks, no flush), to prove that a crash between any two
 * steps keeps I1–I6. Configured by JETMESH_CRASH_AT / JETMESH_CRASH_AFTER; when
 * unset the returned function is a no-op.
 */
export const CrashPoints = {
  AfterClaim: "after-claim",
  BeforeEffect: "before-effect",
  AfterEffect: "after-effect",
  AfterPublish: "after-publish",
  AfterDone: "after-done",
  AfterAck: "after-ack",
} as const;
export type CrashPoint = (typeof CrashPoints)[keyof typeof CrashPoints];

/** A function the runtime calls at each point; kills the process at the configured one. */
export type CrashHook = (point: CrashPoint) => void;

const noop: CrashHook = () => {};

/**
 * Builds the crash hook: dies the `after`-th time `at` is reached.
 * @throws Error when `at` names no known point (a typo must not silently test nothing).
 */
export function createCrashHook(
  at: string | undefined,
  after = 1,
  onCrash?: (p: CrashPoint) => void,
): CrashHook {
  if (!at) return noop;
  if (!Object.values(CrashPoints).includes(at as CrashPoint)) {
    throw new Error(`JETMESH_CRASH_AT=${at} is not one of ${Object.values(CrashPoints).join(", ")}`);
  }
  let seen = 0;
  return (point) => {
    if (point !== at) return;
    seen += 1;
    if (seen < after) return;
    onCrash?.(point);
    process.stderr.write(`jetmesh: crash point ${point} reached, killing process\n`);
    process.kill(process.pid, "SIGKILL");
  };
}

/**
 * Thrown by an in-process crash hook (tests) to simulate a process death at a point:
 * the runtime abandons the message exactly as a dead process would (no ack, no nak,
 * no lease release), so JetStream redelivers it after AckWait.
 */
export class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
}
