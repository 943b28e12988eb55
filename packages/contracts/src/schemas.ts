import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { TeamStreams } from "./team-streams.ts";
import { TransferCore } from "./transfer-core.ts";

/**
 * The v1 event contracts of the reference pipeline, authored once as JSON Schema
 * (TypeBox); the TypeScript types are derived from them, never written twice.
 * Contracts are structural; business rules (limits, known currencies) belong to
 * the validator stage so that a rule change is a deploy, not a schema version.
 * The events of teams' own stages are declared with their stream in team-streams.ts and
 * join every list here.
 */

/** Why a transfer was rejected: the field and the rule it broke. */
export const RejectionReason = Type.Object(
  { field: Type.String(), rule: Type.String() },
  { additionalProperties: false },
);

export const TransferRequestedV1 = Type.Object(
  { ...TransferCore, requestedAt: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export const TransferValidatedV1 = Type.Object(TransferCore, { additionalProperties: false });
export const TransferRejectedV1 = Type.Object(
  { ...TransferCore, reasons: Type.Array(RejectionReason, { minItems: 1 }) },
  { additionalProperties: false },
);
export const RiskDecision = Type.Union([Type.Literal("allow"), Type.Literal("review"), Type.Literal("deny")]);
export const TransferScoredV1 = Type.Object(
  {
    ...TransferCore,
    score: Type.Integer({ minimum: 0, maximum: 100 }),
    decision: RiskDecision,
    factors: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export const LedgerPostedV1 = Type.Object(
  { ...TransferCore, decision: RiskDecision },
  { additionalProperties: false },
);
export const DeclineReason = Type.Union([Type.Literal("insufficient_funds"), Type.Literal("risk_denied")]);
export const LedgerDeclinedV1 = Type.Object(
  { ...TransferCore, reason: DeclineReason },
  { additionalProperties: false },
);
export const LedgerReversedV1 = Type.Object(
  { ...TransferCore, reason: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export const PayoutCompletedV1 = Type.Object(
  { ...TransferCore, bankReference: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export const PayoutFailedV1 = Type.Object(
  { ...TransferCore, reason: Type.String({ minLength: 1 }), bankStatus: Type.Integer() },
  { additionalProperties: false },
);

export type RejectionReason = Static<typeof RejectionReason>;
export type RiskDecision = Static<typeof RiskDecision>;
export type DeclineReason = Static<typeof DeclineReason>;
export type TransferRequested = Static<typeof TransferRequestedV1>;
export type TransferValidated = Static<typeof TransferValidatedV1>;
export type TransferRejected = Static<typeof TransferRejectedV1>;
export type TransferScored = Static<typeof TransferScoredV1>;
export type LedgerPosted = Static<typeof LedgerPostedV1>;
export type LedgerDeclined = Static<typeof LedgerDeclinedV1>;
export type LedgerReversed = Static<typeof LedgerReversedV1>;
export type PayoutCompleted = Static<typeof PayoutCompletedV1>;
export type PayoutFailed = Static<typeof PayoutFailedV1>;

/** The event types of the reference pipeline; each is also the first two subject tokens. */
export const EventTypes = {
  TransferRequested: "transfers.requested",
  TransferValidated: "transfers.validated",
  TransferRejected: "transfers.rejected",
  TransferScored: "transfers.scored",
  LedgerPosted: "ledger.posted",
  LedgerDeclined: "ledger.declined",
  LedgerReversed: "ledger.reversed",
  PayoutCompleted: "payouts.completed",
  PayoutFailed: "payouts.failed",
} as const;
/** An event type of the reference pipeline. */
export type PipelineEventType = (typeof EventTypes)[keyof typeof EventTypes];

type TeamEvents = (typeof TeamStreams)[keyof typeof TeamStreams]["events"];
type KeysOf<U> = U extends unknown ? keyof U & string : never;
/** An event type of a team's stream (team-streams.ts). */
export type TeamEventType = KeysOf<TeamEvents>;
/** The data type of each team event type, from its schema. */
export type TeamEventDataMap = { [T in TeamEventType]: Static<Extract<TeamEvents, Record<T, TSchema>>[T]> };

/** Every event type: the pipeline's and the teams'. */
export type EventType = PipelineEventType | TeamEventType;

/** The data type of each event type at its current version. */
export interface EventDataMap extends TeamEventDataMap {
  "transfers.requested": TransferRequested;
  "transfers.validated": TransferValidated;
  "transfers.rejected": TransferRejected;
  "transfers.scored": TransferScored;
  "ledger.posted": LedgerPosted;
  "ledger.declined": LedgerDeclined;
  "ledger.reversed": LedgerReversed;
  "payouts.completed": PayoutCompleted;
  "payouts.failed": PayoutFailed;
}

/** One schema version of one event type. */
export interface SchemaEntry {
  readonly type: EventType;
  readonly version: number;
  readonly schema: TSchema;
  /** Lifts data of this version to the current version; absent on the current one. */
  readonly upcast?: (data: unknown) => unknown;
}

/**
 * Every known (type, version) pair. Adding v2 of an event means a new entry with
 * `upcast` on the v1 entry; consumers then always see the current shape.
 */
export const SchemaRegistry: readonly SchemaEntry[] = [
  { type: EventTypes.TransferRequested, version: 1, schema: TransferRequestedV1 },
  { type: EventTypes.TransferValidated, version: 1, schema: TransferValidatedV1 },
  { type: EventTypes.TransferRejected, version: 1, schema: TransferRejectedV1 },
  { type: EventTypes.TransferScored, version: 1, schema: TransferScoredV1 },
  { type: EventTypes.LedgerPosted, version: 1, schema: LedgerPostedV1 },
  { type: EventTypes.LedgerDeclined, version: 1, schema: LedgerDeclinedV1 },
  { type: EventTypes.LedgerReversed, version: 1, schema: LedgerReversedV1 },
  { type: EventTypes.PayoutCompleted, version: 1, schema: PayoutCompletedV1 },
  { type: EventTypes.PayoutFailed, version: 1, schema: PayoutFailedV1 },
  ...Object.values(
    TeamStreams as Readonly<Record<string, { events: Readonly<Record<string, TSchema>> }>>,
  ).flatMap((stream) =>
    Object.entries(stream.events).map(([type, schema]) => ({ type: type as EventType, version: 1, schema })),
  ),
];

/** Every event type, the pipeline's first, in registry order. */
export const AllEventTypes: readonly EventType[] = [...new Set(SchemaRegistry.map((e) => e.type))];

/** The version producers write today for each type. */
export const CURRENT_VERSION: Readonly<Record<EventType, number>> = Object.fromEntries(
  AllEventTypes.map((t) => [
    t,
    Math.max(...SchemaRegistry.filter((e) => e.type === t).map((e) => e.version)),
  ]),
) as Record<EventType, number>;
