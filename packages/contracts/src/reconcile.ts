import { type Static, Type } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { ContractError } from "./errors.ts";
import { CONTENT_TYPE, Headers } from "./headers.ts";
import { deriveId } from "./ids.ts";
import { issuesOf, packBody, unpackBody } from "./msgpack.ts";

/**
 * The reconciler's findings: a discrepancy between what the pipeline promises (BRIEF.md I1 to
 * I6) and what the streams, the Redis projection, the bank and the server's settings show.
 * They are not pipeline events (no stage consumes them, PipelineStreams leaves their stream
 * out): each finding is a short history on its own subject of RECONCILE, `opened` then
 * `closed` when it resolved (a late outcome, a repaired projection, a DLQ message handled).
 */

/** What was found. One subject per finding: `reconcile.<kind>.<findingId>`. */
export const FindingKinds = {
  /** An accepted transfer waits past the deadline of its current step. */
  StuckTransfer: "stuck_transfer",
  /** The bank's record of a payout disagrees with LEDGER or PAYOUTS. */
  BankMismatch: "bank_mismatch",
  /** A balance Redis serves differs from the fold of LEDGER at the sequence Redis applied. */
  ProjectionMismatch: "projection_mismatch",
  /** A prefix of LEDGER leaves an account other than external below zero. */
  InsolventPrefix: "insolvent_prefix",
  /** A DLQ message older than the allowed age. */
  DlqAged: "dlq_aged",
  /** A stream or durable consumer is missing or its settings differ from the code's. */
  SettingsDrift: "settings_drift",
} as const;
export type FindingKind = (typeof FindingKinds)[keyof typeof FindingKinds];

export const FindingStates = { Opened: "opened", Closed: "closed" } as const;
export type FindingState = (typeof FindingStates)[keyof typeof FindingStates];

export const FindingV1 = Type.Object(
  {
    /** deriveId of kind and key: the same finding has the same id in every reconciler instance. */
    findingId: Type.String({ minLength: 1, maxLength: 64 }),
    kind: Type.Union(Object.values(FindingKinds).map((k) => Type.Literal(k))),
    state: Type.Union([Type.Literal("opened"), Type.Literal("closed")]),
    /** What the finding is about, e.g. `<transferId>@<step>`, `<account>/<currency>`, `DLQ#12`. */
    key: Type.String({ minLength: 1, maxLength: 256 }),
    transferId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    account: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** One line for a human. */
    summary: Type.String({ minLength: 1, maxLength: 1024 }),
    /** What was seen: event references, values read, settings compared. */
    evidence: Type.Record(Type.String(), Type.Unknown()),
    /** The operator command to look further (packages/ops). */
    command: Type.String({ minLength: 1, maxLength: 256 }),
    /** When the finding was opened (the opened event's, repeated on the closed one). */
    openedAt: Type.String({ minLength: 1, maxLength: 40 }),
    /** When this event was written. */
    at: Type.String({ minLength: 1, maxLength: 40 }),
    /** The reconciler instance that wrote it. */
    instance: Type.String({ minLength: 1, maxLength: 128 }),
  },
  { additionalProperties: false },
);
export type Finding = Static<typeof FindingV1>;

/** The schema version findings are written at (header `Jetmesh-Schema-Version`). */
export const FINDING_VERSION = 1;

const findingCheck = TypeCompiler.Compile(FindingV1);

/** The id of the finding of `kind` about `key`: the same in every instance. */
export function findingIdOf(kind: FindingKind, key: string): string {
  return deriveId("finding", kind, key);
}

/** `reconcile.<kind>.<findingId>`: one subject per finding, its history in order. */
export function findingSubject(kind: FindingKind, findingId: string): string {
  return `reconcile.${kind}.${findingId}`;
}

/**
 * Validates then packs a finding as plain MessagePack.
 * @throws ContractError naming each bad field.
 */
export function encodeFinding(f: Finding): Uint8Array {
  if (!findingCheck.Check(f)) throw new ContractError("invalid finding", issuesOf(findingCheck, f, ""));
  return packBody(f);
}

/**
 * Unpacks and validates a finding.
 * @throws ContractError when the bytes are not MessagePack or not a finding.
 */
export function decodeFinding(bytes: Uint8Array): Finding {
  const value = unpackBody(bytes);
  if (!findingCheck.Check(value))
    throw new ContractError("invalid finding", issuesOf(findingCheck, value, ""));
  return value;
}

/**
 * The operator-readable headers of a finding event. `Nats-Msg-Id` is derived from the finding,
 * its new state and the subject sequence it follows, so two instances writing the same
 * transition store it once (and the publish carries `Nats-Expected-Last-Subject-Sequence`).
 */
export function findingHeaders(f: Finding, afterSubjectSeq: number): Record<string, string> {
  const id = deriveId("finding-event", f.findingId, f.state, String(afterSubjectSeq));
  return {
    [Headers.MsgId]: id,
    [Headers.ContentType]: CONTENT_TYPE,
    [Headers.EventType]: `reconcile.${f.state}`,
    [Headers.SchemaVersion]: String(FINDING_VERSION),
    [Headers.EventId]: id,
    [Headers.Producer]: "reconciler",
    [Headers.OccurredAt]: f.at,
    [Headers.FindingKind]: f.kind,
    [Headers.FindingState]: f.state,
    [Headers.FindingKey]: f.key,
    ...(f.transferId !== undefined ? { [Headers.CorrelationId]: f.transferId } : {}),
  };
}
