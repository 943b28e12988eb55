import { pino, type Logger } from "pino";

/** Masks all but the last four characters: `acc-12345678` → `********5678`. */
export function maskAccount(value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (value.length <= 4) return value;
  return `${"*".repeat(value.length - 4)}${value.slice(-4)}`;
}

const ACCOUNT_PATHS = ["from", "to", "account", "account_id", "*.from", "*.to", "*.account", "*.account_id"];

/**
 * The one pino root of a process: JSON lines, `service` on every line, snake_case
 * fields, errors under `err`, account ids masked beyond their last four characters.
 */
export function createLogger(opts: {
  service: string;
  level?: string;
  destination?: pino.DestinationStream;
}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? "info",
    base: { service: opts.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ACCOUNT_PATHS, censor: (v) => maskAccount(v) },
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
export type { Logger };
