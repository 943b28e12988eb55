import { createHash } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";

/** What the simulated bank does with the next requests; changed at run time through /admin/config. */
export interface BankBehaviour {
  /** Delay before every answer of POST /v1/payouts, after the outcome is decided and stored. */
  readonly latencyMs: number;
  /** Share of payout attempts answered 503 (nothing paid, nothing stored: a retry may pass). */
  readonly errorRate: number;
  /** Share of new idempotency keys refused with 422 (stored: a retry gets the same 422). */
  readonly refusalRate: number;
  /** Accounts whose payouts are always refused with 422. */
  readonly refuseAccounts: readonly string[];
}

/** The body of POST /v1/payouts. */
export interface PayoutRequest {
  readonly transferId: string;
  readonly account: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/** A payout the bank made: one per idempotency key, never more. */
export interface Payout extends PayoutRequest {
  readonly idempotencyKey: string;
  readonly reference: string;
  readonly paidAt: string;
}

/** The bank's answer to one payout request. */
export interface BankAnswer {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  /** True when the answer is a stored one, returned again for a repeated key and body. */
  readonly replayed: boolean;
}

/** One thing wrong with a request or a setting: the field and the rule it broke. */
export interface Issue {
  readonly field: string;
  readonly rule: string;
}

/** The simulated bank: decides, stores and replays payout answers per idempotency key. */
export interface Bank {
  /**
   * Answers a payout request. Synchronous on purpose: the decision and its storage
   * happen with no await in between, so two concurrent requests with one key can
   * never both pay.
   */
  answer(idempotencyKey: string, request: PayoutRequest): BankAnswer;
  payouts(): readonly Payout[];
  behaviour(): BankBehaviour;
  /** Merges a validated partial behaviour; returns the result. */
  configure(change: Partial<BankBehaviour>): BankBehaviour;
}

/** Options of {@link createBank}. */
export interface CreateBankOptions {
  /** Seed of every random draw, so a run replays; default "jetmesh". */
  readonly seed?: string;
  readonly behaviour?: Partial<BankBehaviour>;
  /** JSON-lines file the stored answers are appended to and reloaded from at start. */
  readonly stateFile?: string;
}

export const DEFAULT_BEHAVIOUR: BankBehaviour = {
  latencyMs: 0,
  errorRate: 0,
  refusalRate: 0,
  refuseAccounts: [],
};

interface StoredAnswer {
  readonly fingerprint: string;
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
}

/** One line of the state file. */
interface StateLine {
  readonly key: string;
  readonly answer: StoredAnswer;
  readonly payout?: Payout;
}

function sha256(...parts: readonly (string | number)[]): string {
  return createHash("sha256").update(parts.join("\u001f")).digest("hex");
}

/**
 * A number in [0, 1) fixed by its parts. Draws hang off the idempotency key rather
 * than a shared sequence, so outcomes do not depend on the order concurrent requests
 * arrive in.
 */
function draw(...parts: readonly (string | number)[]): number {
  return Number.parseInt(sha256(...parts).slice(0, 8), 16) / 2 ** 32;
}

function fingerprintOf(r: PayoutRequest): string {
  return sha256(JSON.stringify([r.transferId, r.account, r.amountMinor, r.currency]));
}

/** Creates the bank, reloading stored answers from `stateFile` when it exists. */
export function createBank(opts: CreateBankOptions = {}): Bank {
  const seed = opts.seed ?? "jetmesh";
  let behaviour: BankBehaviour = { ...DEFAULT_BEHAVIOUR, ...opts.behaviour };
  const answers = new Map<string, StoredAnswer>();
  const paid: Payout[] = [];
  /** Attempts per key that were not stored (503s); they seed the next 503 draw. */
  const attempts = new Map<string, number>();

  if (opts.stateFile !== undefined) {
    for (const line of loadState(opts.stateFile)) {
      if (answers.has(line.key)) continue;
      answers.set(line.key, line.answer);
      if (line.payout) paid.push(line.payout);
    }
  }

  const store = (key: string, answer: StoredAnswer, payout?: Payout): void => {
    // Written before the answer leaves the process: a restart never forgets a payout it reported.
    if (opts.stateFile !== undefined) {
      appendFileSync(opts.stateFile, `${JSON.stringify({ key, answer, ...(payout ? { payout } : {}) })}\n`);
    }
    answers.set(key, answer);
    if (payout) paid.push(payout);
  };

  return {
    answer(key, request) {
      const fingerprint = fingerprintOf(request);
      const stored = answers.get(key);
      if (stored) {
        if (stored.fingerprint !== fingerprint) {
          return {
            status: 409,
            body: { error: "idempotency key reused with a different body" },
            replayed: false,
          };
        }
        return { status: stored.status, body: stored.body, replayed: true };
      }
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      if (draw(seed, "error", key, attempt) < behaviour.errorRate) {
        return { status: 503, body: { error: "bank unavailable" }, replayed: false };
      }
      attempts.delete(key);
      const refusal = behaviour.refuseAccounts.includes(request.account)
        ? "account refused"
        : draw(seed, "refuse", key) < behaviour.refusalRate
          ? "refused by bank"
          : undefined;
      if (refusal !== undefined) {
        const answer = { fingerprint, status: 422, body: { error: "payout refused", reason: refusal } };
        store(key, answer);
        return { ...answer, replayed: false };
      }
      const reference = `bnk-${sha256(seed, "reference", key).slice(0, 20)}`;
      const answer = { fingerprint, status: 201, body: { reference } };
      store(key, answer, {
        ...pickRequest(request),
        idempotencyKey: key,
        reference,
        paidAt: new Date().toISOString(),
      });
      return { ...answer, replayed: false };
    },
    payouts: () => [...paid],
    behaviour: () => behaviour,
    configure(change) {
      behaviour = { ...behaviour, ...change };
      return behaviour;
    },
  };
}

function pickRequest(r: PayoutRequest): PayoutRequest {
  return { transferId: r.transferId, account: r.account, amountMinor: r.amountMinor, currency: r.currency };
}

function loadState(file: string): StateLine[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, "utf8");
  // A crash mid-append leaves a torn last line; end it so the next append starts clean.
  if (text.length > 0 && !text.endsWith("\n")) appendFileSync(file, "\n");
  const lines: StateLine[] = [];
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    try {
      lines.push(JSON.parse(raw) as StateLine);
    } catch {
      // the torn line: its answer never left the process, so forgetting it is safe
    }
  }
  return lines;
}

/** Checks a payout request body; returns the request or every issue found. */
export function parsePayoutRequest(value: unknown): { request?: PayoutRequest; issues: Issue[] } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { issues: [{ field: "/", rule: "must be a json object" }] };
  }
  const v = value as Record<string, unknown>;
  const issues: Issue[] = [];
  for (const field of ["transferId", "account"] as const) {
    const s = v[field];
    if (typeof s !== "string" || s.length === 0 || s.length > 128) {
      issues.push({ field, rule: "must be a string of 1 to 128 characters" });
    }
  }
  if (!Number.isSafeInteger(v.amountMinor) || (v.amountMinor as number) <= 0) {
    issues.push({ field: "amountMinor", rule: "must be a positive integer" });
  }
  if (typeof v.currency !== "string" || !/^[A-Z]{3}$/.test(v.currency)) {
    issues.push({ field: "currency", rule: "must be three capital letters" });
  }
  if (issues.length) return { issues };
  return { request: pickRequest(v as unknown as PayoutRequest), issues };
}

/** Checks a partial behaviour (from /admin/config or the environment). */
export function parseBehaviour(value: unknown): { change?: Partial<BankBehaviour>; issues: Issue[] } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { issues: [{ field: "/", rule: "must be a json object" }] };
  }
  const v = value as Record<string, unknown>;
  const issues: Issue[] = [];
  const change: { -readonly [K in keyof BankBehaviour]?: BankBehaviour[K] } = {};
  for (const key of Object.keys(v)) {
    if (!(key in DEFAULT_BEHAVIOUR)) issues.push({ field: key, rule: "is not a setting" });
  }
  if (v.latencyMs !== undefined) {
    if (Number.isSafeInteger(v.latencyMs) && (v.latencyMs as number) >= 0)
      change.latencyMs = v.latencyMs as number;
    else issues.push({ field: "latencyMs", rule: "must be a non-negative integer" });
  }
  for (const field of ["errorRate", "refusalRate"] as const) {
    const r = v[field];
    if (r === undefined) continue;
    if (typeof r === "number" && r >= 0 && r <= 1) change[field] = r;
    else issues.push({ field, rule: "must be a number from 0 to 1" });
  }
  if (v.refuseAccounts !== undefined) {
    const a = v.refuseAccounts;
    if (Array.isArray(a) && a.every((s) => typeof s === "string")) change.refuseAccounts = [...a];
    else issues.push({ field: "refuseAccounts", rule: "must be an array of strings" });
  }
  return issues.length ? { issues } : { change, issues };
}
