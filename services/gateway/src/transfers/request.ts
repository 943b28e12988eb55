import { createHash } from "node:crypto";
import { type FieldIssue, TransferRequestLimits } from "@jetmesh/contracts";
import { escapePointer } from "../http/strict-json.ts";

/** A transfer request that passed the gateway's structural checks. */
export interface TransferRequest {
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  /** The client's own reference (transfers.requested v2). */
  readonly reference?: string;
  /** A small map of the client's strings (transfers.requested v2). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: FieldIssue[] };

/** The header that makes `POST /v1/transfers` safe to retry. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const ACCOUNT_MAX = 64;
const CURRENCY = /^[A-Za-z]{3}$/;
const FIELDS = new Set(["from", "to", "amountMinor", "currency", "reference", "metadata"]);
const METADATA_KEY = new RegExp(TransferRequestLimits.metadataKeyPattern);
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
  const reference = input.reference;
  if (reference !== undefined) issues.push(...referenceIssues(reference));
  const metadata = input.metadata;
  if (metadata !== undefined) issues.push(...metadataIssues(metadata));
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
      ...(reference !== undefined ? { reference: reference as string } : {}),
      // A plain copy: the strict parser builds null-prototype objects.
      ...(metadata !== undefined ? { metadata: { ...(metadata as Record<string, string>) } } : {}),
    },
  };
}

function referenceIssues(v: unknown): FieldIssue[] {
  const max = TransferRequestLimits.referenceMaxLength;
  if (typeof v !== "string") return [{ field: "/reference", rule: "must be string" }];
  if (v.length === 0) return [{ field: "/reference", rule: "must not be empty" }];
  if (v.length > max) return [{ field: "/reference", rule: `must be at most ${max} characters` }];
  return [];
}

function metadataIssues(v: unknown): FieldIssue[] {
  const { metadataMaxEntries, metadataKeyPattern, metadataValueMaxLength } = TransferRequestLimits;
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return [{ field: "/metadata", rule: "must be an object of strings" }];
  const entries = Object.entries(v);
  if (entries.length > metadataMaxEntries)
    return [{ field: "/metadata", rule: `must have at most ${metadataMaxEntries} entries` }];
  const issues: FieldIssue[] = [];
  for (const [key, value] of entries) {
    const field = `/metadata/${escapePointer(key)}`;
    if (!METADATA_KEY.test(key)) issues.push({ field, rule: `key must match ${metadataKeyPattern}` });
    else if (typeof value !== "string") issues.push({ field, rule: "must be string" });
    else if (value.length > metadataValueMaxLength)
      issues.push({ field, rule: `must be at most ${metadataValueMaxLength} characters` });
  }
  return issues;
}

/**
 * A hash of what the request asks for, independent of key order and whitespace, so a
 * retry that re-serialises the same body is recognised as the same request. A request
 * without reference and metadata hashes as it did before they existed, so records written
 * by an older gateway still match its retries.
 */
export function requestHash(req: TransferRequest): string {
  const core: unknown[] = [req.from, req.to, req.amountMinor, req.currency];
  if (req.reference !== undefined || req.metadata !== undefined) {
    const metadata = req.metadata
      ? Object.entries(req.metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      : null;
    core.push(req.reference ?? null, metadata);
  }
  return createHash("sha256").update(JSON.stringify(core)).digest("hex");
}
