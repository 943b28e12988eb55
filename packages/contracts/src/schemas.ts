import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { TeamStreams } from "./team-streams.ts";
import { TransferCore } from "./transfer-core.ts";

/**
 * The event contracts of the reference pipeline, authored once as JSON Schema (TypeBox);
 * the TypeScript types are derived from them, never written twice, and every version's
 * JSON Schema is generated into `packages/contracts/schemas/<type>/v<N>.json` (README).
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
/** Bounds of the optional fields transfers.requested v2 adds; the gateway answers 400 past them. */
export const TransferRequestLimits = {
  referenceMaxLength: 140,
  metadataMaxEntries: 16,
  // A key starts with a letter or digit: `__proto__` would not survive a JavaScript reader
  // (msgpackr drops it on decode; the codec's property test found it).
  metadataKeyPattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$",
  metadataValueMaxLength: 256,
} as const;

/**
 * v2 adds the client's own `reference` (shown on statements) and a small `metadata` map,
 * both optional: every v1 event is a valid v2 event, so the upcast is the identity and the
 * change is compatible both ways (README, "Compatibility modes").
 */
export const TransferRequestedV2 = Type.Object(
  {
    ...TransferRequestedV1.properties,
    reference: Type.Optional(
      Type.String({ minLength: 1, maxLength: TransferRequestLimits.referenceMaxLength }),
    ),
    metadata: Type.Optional(
      Type.Record(
        Type.String({ pattern: TransferRequestLimits.metadataKeyPattern }),
        Type.String({ maxLength: TransferRequestLimits.metadataValueMaxLength }),
        { maxProperties: TransferRequestLimits.metadataMaxEntries, additionalProperties: false },
      ),
    ),
  },
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
/** transfers.requested as readers see it: every older version is lifted to v2 on read. */
export type TransferRequested = Static<typeof TransferRequestedV2>;
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

/**
 * The data type of each event type as readers see it: the shape of its highest registered
 * version ({@link READ_VERSION}), to which the codec lifts every older one. Teams' events
 * join it from team-streams.ts.
 */
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

/**
 * How the versions of an event type may change, as Confluent's schema registry defines the
 * modes, checked by `pnpm contracts:check` between a new version and the one before it:
 * - `backward`: a reader of the new version reads events written with the previous one
 *   (what replaying a stream from its start needs);
 * - `forward`: a reader of the previous version reads events written with the new one
 *   (what a consumer deployed after its producer needs);
 * - `full`: both.
 * Readers ignore properties they do not know in events of a version newer than theirs, so
 * adding an optional field is compatible both ways (README, "Compatibility modes").
 */
export const CompatibilityModes = { Backward: "backward", Forward: "forward", Full: "full" } as const;
export type CompatibilityMode = (typeof CompatibilityModes)[keyof typeof CompatibilityModes];

/** What each event type declares about its evolution. */
export interface EventContract {
  /** The rule every new version of the type must keep against the one before it. */
  readonly mode: CompatibilityMode;
  /**
   * The version producers write. Declared, never derived from what is registered: a new
   * version is registered (readers learn it) one release before producers write it, so a
   * consumer is never sent a version it cannot read (README, "Rollout order").
   */
  readonly writes: number;
  /**
   * Versions announced deprecated (README, "Deprecation"): still read, never written, and
   * removable once released as deprecated in {@link DEPRECATION_WINDOW_RELEASES} releases.
   */
  readonly deprecated?: readonly number[];
  /**
   * The whole type announced deprecated (README, "Deprecation"): its consumers move to what
   * replaces it while producers still write it (the dual-publish window); removable once
   * released that way in {@link DEPRECATION_WINDOW_RELEASES} releases.
   */
  readonly typeDeprecated?: boolean;
}

/**
 * How many releases must ship a version marked deprecated (the dual-publish window: readers
 * still read it, producers write its successor) before the gate lets it be removed.
 */
export const DEPRECATION_WINDOW_RELEASES = 2;

/**
 * Every event type's contract. Every type is `full`: its streams are replayed from the first
 * message (rebuild, recreated consumers), which needs backward, and stages deploy in any
 * order, which needs forward.
 */
export const EventContracts: Readonly<Record<EventType, EventContract>> = {
  "transfers.requested": { mode: "full", writes: 2 },
  "transfers.validated": { mode: "full", writes: 1 },
  "transfers.rejected": { mode: "full", writes: 1 },
  "transfers.scored": { mode: "full", writes: 1 },
  "ledger.posted": { mode: "full", writes: 1 },
  "ledger.declined": { mode: "full", writes: 1 },
  "ledger.reversed": { mode: "full", writes: 1 },
  "payouts.completed": { mode: "full", writes: 1 },
  "payouts.failed": { mode: "full", writes: 1 },
  // A team's event starts at v1, full: its own evolution is declared here when it has a v2.
  ...(Object.fromEntries(
    Object.values(
      TeamStreams as Readonly<Record<string, { events: Readonly<Record<string, TSchema>> }>>,
    ).flatMap((stream) => Object.keys(stream.events).map((type) => [type, { mode: "full", writes: 1 }])),
  ) as Record<TeamEventType, EventContract>),
};

/** One schema version of one event type. */
export interface SchemaEntry {
  readonly type: EventType;
  readonly version: number;
  readonly schema: TSchema;
  /**
   * Lifts data of this version to the next one (`version + 1`); present on every version but
   * the highest. The codec chains them, so a reader always sees the highest version's shape.
   */
  readonly upcast?: (data: unknown) => unknown;
}

/**
 * Every known (type, version) pair. A version, once released, never changes and is never
 * removed: old events stay readable forever. Adding v2 of an event means a new entry and an
 * `upcast` on the v1 entry.
 */
export const SchemaRegistry: readonly SchemaEntry[] = [
  // v2 only adds optional fields: a v1 body is a v2 body as it is.
  { type: EventTypes.TransferRequested, version: 1, schema: TransferRequestedV1, upcast: (d) => d },
  { type: EventTypes.TransferRequested, version: 2, schema: TransferRequestedV2 },
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
const eventTypeList = AllEventTypes;

/** The version producers write today for each type ({@link EventContract.writes}). */
export const CURRENT_VERSION: Readonly<Record<EventType, number>> = Object.fromEntries(
  eventTypeList.map((t) => [t, EventContracts[t].writes]),
) as Record<EventType, number>;

/** The highest registered version of each type: the shape readers see ({@link EventDataMap}). */
export const READ_VERSION: Readonly<Record<EventType, number>> = Object.fromEntries(
  eventTypeList.map((t) => [
    t,
    Math.max(...SchemaRegistry.filter((e) => e.type === t).map((e) => e.version)),
  ]),
) as Record<EventType, number>;
