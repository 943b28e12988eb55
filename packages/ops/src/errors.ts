/** Exit statuses of the `jetmesh` CLI. */
export const ExitCodes = {
  Ok: 0,
  /** A runtime failure: unreachable server, unknown stream or transfer, undecodable input. */
  Failure: 1,
  /** Bad usage: an unknown flag, a malformed value, conflicting flags. */
  Usage: 2,
} as const;
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

/**
 * A failure the CLI reports as one line on stderr with its exit status, never a stack trace.
 * Its message is written for an operator, lowercase and short.
 */
export class OpsError extends Error {
  override readonly name = "OpsError";
  readonly exitCode: ExitCode;
  constructor(message: string, opts: { exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.exitCode = opts.exitCode ?? ExitCodes.Failure;
  }
}

/** The message of anything thrown, on one line. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, " ").trim();
}
