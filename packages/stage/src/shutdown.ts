import type { Logger } from "pino";

/**
 * On SIGTERM or SIGINT, runs the closers in order (stop accepting, drain the stage,
 * drain NATS, close Redis, flush telemetry), each bounded by `timeoutMs`, then exits 0
 * (1 if a closer failed). A second signal exits at once.
 */
export function onShutdown(
  logger: Logger,
  closers: ReadonlyArray<() => Promise<unknown> | unknown>,
  opts: { timeoutMs?: number; exit?: (code: number) => void } = {},
): void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  const run = async (signal: string) => {
    if (closing) {
      logger.warn({ signal }, "second signal, exiting now");
      exit(1);
      return;
    }
    closing = true;
    logger.info({ signal }, "shutting down");
    let code = 0;
    for (const close of closers) {
      try {
        await Promise.race([
          Promise.resolve().then(close),
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error("closer timed out")), opts.timeoutMs ?? 15_000).unref(),
          ),
        ]);
      } catch (err) {
        code = 1;
        logger.error({ err }, "shutdown step failed");
      }
    }
    logger.info({ code }, "stopped");
    logger.flush?.();
    exit(code);
  };
  process.once("SIGTERM", () => void run("SIGTERM"));
  process.once("SIGINT", () => void run("SIGINT"));
}
