import { createHash } from "node:crypto";
import type { FieldIssue } from "@jetmesh/contracts";
import { escapePointer } from "../http/strict-json.ts";

/** A transfer request that passed the gateway's structural checks. */
export interface TransferRequest {
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
}

export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: FieldIssue[] };

/** The header that makes `POST /v1/transfers` safe to retry. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const ACCOUNT_MAX = 64;
const CURRENCY = /^[A-Za-z]{3}$/;
const FIELDS = new Set(["from", "to", "amountMinor", "currency"]);
const MAX_UNKNOWN_REPORTED = 10;
const INTEGER_TEXT = /^(?:0|-?[1-9][0-9]*)$/;

/**
 * Checks the Idempotency-Key header. Node joins repeated headers with ", ", which the
 * character class refuses, so a key sent twice is invalid rather than ambiguous.
 */
export function checkIdempotencyKey(value: string | string[] | undefined): Checked<string> {
  const field = `header:${IDEMPOTENCY_HEADER}`;
  if (value === undefined || value === "") return { ok: false, issues: [{ field, rule: "is required" }] };
  if (Array.isArray(value) || !IDEMPOTENCY_KEY.test(value)) {
    return { ok: false, issues: [{ field, rule: "must be 1 to 128 characters of [A-Za-z0-9_.:-]" }] };
  }
  return { ok: true, value };
}

/**
 * Structural checks of a transfer request body; every wrong field is reported, not the
 * first. Business rules (limits, known currencies, who may send) are the validator
 * stage's, so a request that passes here can still end as `transfers.rejected`.
 */
export function checkTransferRequest(
  body: unknown,
  numbers: ReadonlyMap<string, string> = new Map(),
): Checked<TransferRequest> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ field: "/", rule: "must be an object" }] };
  }
  const input = body as Record<string, unknown>;
  const issues: FieldIssue[] = [];
  for (const key of ["from", "to"] as const) {
    const v = input[key];
    if (v === undefined) issues.push({ field: `/${key}`, rule: "is required" });
    else if (typeof v !== "string") issues.push({ field: `/${key}`, rule: "must be string" });
    else if (v.length === 0) issues.push({ field: `/${key}`, rule: "must not be empty" });
    else if (v.length > ACCOUNT_MAX)
      issues.push({ field: `/${key}`, rule: `must be at most ${ACCOUNT_MAX} characters` });
  }
  const amount = input.amountMinor;
  if (amount === undefined) issues.push({ field: "/amountMinor", rule: "is required" });
  else if (typeof amount !== "number" || !Number.isInteger(amount)) {
    issues.push({ field: "/amountMinor", rule: "must be integer" });
  } else if (!Number.isSafeInteger(amount))
    issues.push({ field: "/amountMinor", rule: "must be a safe integer" });
  else {
    // 1.0, 1e2 and -0 parse to integers but are not how an integer amount is written:
    // refused, so every reader of the body sees the same amount, spelled one way.
    const text = numbers.get("/amountMinor");
    if (text !== undefined && !INTEGER_TEXT.test(text))
      issues.push({
        field: "/amountMinor",
        rule: "must be written as an integer (no fraction, exponent or -0)",
      });
  }
  const currency = input.currency;
  if (currency === undefined) issues.push({ field: "/currency", rule: "is required" });
  else if (typeof currency !== "string" || !CURRENCY.test(currency)) {
    issues.push({ field: "/currency", rule: "must be 3 letters" });
  }
  const unknown = Object.keys(input).filter((k) => !FIELDS.has(k));
  // Bounded: a body of a thousand stray keys gets a short answer, not a thousand lines.
  for (const key of unknown.slice(0, MAX_UNKNOWN_REPORTED)) {
    issues.push({ field: `/${escapePointer(key)}`, rule: "is not allowed" });
  }
  if (unknown.length > MAX_UNKNOWN_REPORTED) {
    issues.push({
      field: "/",
      rule: `has ${unknown.length - MAX_UNKNOWN_REPORTED} more fields that are not allowed`,
    });
  }
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      from: input.from as string,
      to: input.to as string,
      amountMinor: amount as number,
      currency: currency as string,
    },
  };
}

/**
 * A hash of what the request asks for, independent of key order and whitespace, so a
 * retry that re-serialises the same body is recognised as the same request.
 */
export function requestHash(req: TransferRequest): string {
  return createHash("sha256")
    .update(JSON.stringify([req.from, req.to, req.amountMinor, req.currency]))
    .digest("hex");
}
