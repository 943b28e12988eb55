import type { Logger } from "pino";

/**
 * Runs a start-up JetStream call until the server answers: a cluster electing leaders, or
 * creating an R3 bucket under load, times out for a while; that is no reason to exit.
 * Answers that say no (a ConfigError, a missing deploy-only stream) are thrown at once.
 */
export async function untilAnswered<T>(logger: Logger, what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const timedOut = err instanceof Error && /timeout|no responders/i.test(`${err.name} ${err.message}`);
      if (!timedOut || attempt >= 30) throw err;
      logger.warn({ err, attempt }, `start-up: no answer about ${what} yet; retrying`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
}
