import { pino, type Logger } from "pino";

/** Masks all but the last four characters: `acc-12345678` → `********5678`. */
export function maskAccount(value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (value.length <= 4) return value;
  return `${"*".repeat(value.length - 4)}${value.slice(-4)}`;
}

/** Field names whose string value is an account id, at any depth. */
const ACCOUNT_KEYS = new Set(["from", "to", "account", "account_id", "accountId"]);
const ACCOUNT_PATHS = ["from", "to", "account", "account_id", "*.from", "*.to", "*.account", "*.account_id"];
/**
 * Account ids inside free text (an error message, a bank's refusal reason, a URL). The
 * shapes of contracts' AccountPatterns, unanchored; `external` (the boundary account) is
 * not a customer's and stays readable in text.
 */
const ACCOUNT_IN_TEXT = /\b(?:acc-[a-z0-9]{1,32}|bank:[a-z0-9-]{1,32})(?![a-z0-9-])/g;
const MAX_DEPTH = 5;

/** Masks every account id that appears inside `text`. */
export function maskAccountsIn(text: string): string {
  // Cheap test first: almost no log line mentions an account.
  if (!text.includes("acc-") && !text.includes("bank:")) return text;
  return text.replace(ACCOUNT_IN_TEXT, (id) => maskAccount(id) as string);
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null || Array.isArray(v);
}

/**
 * A copy of `value` with account ids masked: the values of account fields, and account
 * ids inside strings. Returns `value` itself when nothing changed, so that the common
 * line costs a walk and no allocation. Errors, buffers and class instances are left to
 * their serializers.
 */
function scrub(value: unknown, key: string | undefined, depth: number): unknown {
  if (typeof value === "string") {
    return key !== undefined && ACCOUNT_KEYS.has(key) ? maskAccount(value) : maskAccountsIn(value);
  }
  if (value === null || typeof value !== "object" || depth >= MAX_DEPTH || !isPlain(value)) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item, i) => {
      const s = scrub(item, undefined, depth + 1);
      if (s === item) return;
      out ??= [...value];
      out[i] = s;
    });
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const s = scrub(v, k, depth + 1);
    if (s === v) continue;
    out ??= { ...(value as Record<string, unknown>) };
    out[k] = s;
  }
  return out ?? value;
}

const scrubObject = <T extends object>(obj: T): T => scrub(obj, undefined, 0) as T;

/** pino's error serializer, then the same masking: messages and stacks can name accounts. */
function serializeError(err: unknown): unknown {
  const s: unknown = pino.stdSerializers.err(err as Error);
  // The serialized error's prototype is pino's, not Object's: copy its own fields to walk them.
  return s !== null && typeof s === "object" ? scrub({ ...s }, undefined, 0) : scrub(s, undefined, 0);
}

/**
 * The one pino root of a process: JSON lines, `service` on every line, snake_case
 * fields, errors under `err`, levels as words. Account ids are masked beyond their last
 * four characters wherever they appear: as the value of a `from`/`to`/`account` field
 * at any depth, in the message, in an error's message and stack, and in any other string
 * field (a bank's refusal reason, a URL).
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
    // Kept alongside the walk below: it also covers fields pino adds after formatters run.
    redact: { paths: ACCOUNT_PATHS, censor: (v) => maskAccount(v) },
    serializers: {
      err: serializeError,
      msg: (m: unknown) => (typeof m === "string" ? maskAccountsIn(m) : m),
    },
    formatters: {
      level: (label) => ({ level: label }),
      bindings: scrubObject,
      log: scrubObject,
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
export type { Logger };
