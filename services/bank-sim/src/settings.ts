/** What the simulated bank does with the next requests; changed at run time through /admin/config. */
export interface BankBehaviour {
  /** Extra delay before every answer of POST /v1/payouts, after the outcome is decided and stored. */
  readonly latencyMs: number;
  /** Share of attempts on a new key answered 503 before deciding (nothing stored: a retry may pass). */
  readonly errorRate: number;
  /** Share of new idempotency keys refused with 422 (stored: a retry gets the same 422). */
  readonly refusalRate: number;
  /** Accounts whose payouts are always refused with 422. */
  readonly refuseAccounts: readonly string[];
  /** Shortest time a new key stays "processing" before it is decided. */
  readonly processingMinMs: number;
  /** Longest time a new key stays "processing"; each key draws its time in [min, max]. */
  readonly processingMaxMs: number;
  /** Share of keys whose first answer is held back `slowMs` after the decision was stored. */
  readonly slowRate: number;
  readonly slowMs: number;
  /** A decided key is forgotten this long after its decision and then treated as new; 0 keeps it forever. */
  readonly retentionMs: number;
}

/** One thing wrong with a request or a setting: the field and the rule it broke. */
export interface Issue {
  readonly field: string;
  readonly rule: string;
}

/**
 * The realistic bank: a new key is processing for 20 to 200 ms (a concurrent retry
 * gets 409 "in use"), keys are kept forever, and no switch fires until a test sets it.
 */
export const DEFAULT_BEHAVIOUR: BankBehaviour = {
  latencyMs: 0,
  errorRate: 0,
  refusalRate: 0,
  refuseAccounts: [],
  processingMinMs: 20,
  processingMaxMs: 200,
  slowRate: 0,
  slowMs: 3000,
  retentionMs: 0,
};

/**
 * The bank as it was before the realistic mode: every key decided the moment it
 * arrives, so a concurrent retry replays instead of getting 409, and no key is forgotten.
 */
export const POLITE_BEHAVIOUR: Partial<BankBehaviour> = {
  processingMinMs: 0,
  processingMaxMs: 0,
  slowRate: 0,
  retentionMs: 0,
};

/** setTimeout's largest delay; a larger one would fire at once. */
export const MAX_DELAY_MS = 2_147_483_647;

const DELAY_RULE = `must be an integer from 0 to ${MAX_DELAY_MS}`;

function isDelay(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_DELAY_MS;
}

interface Rule {
  readonly rule: string;
  accepts(value: unknown): boolean;
}
const delay: Rule = { rule: DELAY_RULE, accepts: isDelay };
const rate: Rule = {
  rule: "must be a number from 0 to 1",
  accepts: (x) => typeof x === "number" && x >= 0 && x <= 1,
};
/** Every setting with its rule, in the order error lists are written. */
const RULES: { readonly [K in keyof BankBehaviour]: Rule } = {
  latencyMs: delay,
  errorRate: rate,
  refusalRate: rate,
  refuseAccounts: {
    rule: "must be an array of strings",
    accepts: (x) => Array.isArray(x) && x.every((s) => typeof s === "string"),
  },
  processingMinMs: delay,
  processingMaxMs: delay,
  slowRate: rate,
  slowMs: delay,
  retentionMs: delay,
};

function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Checks a partial behaviour (from /admin/config or the environment) and the result of
 * merging it into `current`; returns the change or every issue found, in field order.
 */
export function parseBehaviour(
  value: unknown,
  current: BankBehaviour = DEFAULT_BEHAVIOUR,
): { change?: Partial<BankBehaviour>; issues: Issue[] } {
  const v = asObject(value);
  if (!v) return { issues: [{ field: "/", rule: "must be a json object" }] };
  const issues: Issue[] = [];
  const change: Record<string, unknown> = {};
  for (const key of Object.keys(v)) {
    if (!Object.hasOwn(RULES, key)) issues.push({ field: key, rule: "is not a setting" });
  }
  for (const field of Object.keys(RULES) as (keyof BankBehaviour)[]) {
    const x = v[field];
    if (x === undefined) continue;
    if (RULES[field].accepts(x)) change[field] = Array.isArray(x) ? [...x] : x;
    else issues.push({ field, rule: RULES[field].rule });
  }
  const merged = { ...current, ...(change as Partial<BankBehaviour>) };
  if (merged.processingMinMs > merged.processingMaxMs) {
    // name the field the caller sent, so the message points at what to fix
    issues.push(
      change.processingMinMs !== undefined
        ? { field: "processingMinMs", rule: "must not exceed processingMaxMs" }
        : { field: "processingMaxMs", rule: "must not be below processingMinMs" },
    );
  }
  return issues.length ? { issues } : { change: change as Partial<BankBehaviour>, issues };
}

/** Checks the body of POST /admin/outage: `{durationMs}`, 0 ends an outage. */
export function parseOutage(value: unknown): { durationMs?: number; issues: Issue[] } {
  const v = asObject(value);
  if (!v) return { issues: [{ field: "/", rule: "must be a json object" }] };
  const issues: Issue[] = Object.keys(v)
    .filter((k) => k !== "durationMs")
    .map((field) => ({ field, rule: "is not a setting" }));
  if (!isDelay(v.durationMs)) issues.push({ field: "durationMs", rule: DELAY_RULE });
  return issues.length ? { issues } : { durationMs: v.durationMs as number, issues };
}
