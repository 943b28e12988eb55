// Hostile MessagePack for the stages (issue 12): fast-check recipes for what an outsider with
// publish rights could put on a stage's input subjects, the bytes and headers they become,
// and the bookkeeping that says, for every stored message and every consumer of its stream,
// how it ended: parked in the DLQ with its reason, answered with a business event, or not at
// all. Nothing here imports a stage: what each stage consumes is restated below from the
// stage definitions, and outcomes are read from the streams and Redis, as an operator would.
import {
  AccountPatterns,
  type AnyEnvelope,
  decodeEvent,
  EventTypes,
  // the fuzzed subjects are the reference pipeline's (the stages under test consume those)
  type PipelineEventType as EventType,
  Headers,
  type StreamName,
  StreamNames,
  streamOf,
} from "@jetmesh/contracts";
import type { StoredEvent } from "@jetmesh/testkit";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import fc from "fast-check";
import { pack, Packr } from "msgpackr";

/** The gateway's status projection: one durable consumer on every pipeline stream. */
export const STATUS = "gateway-status";

/**
 * Who consumes each subject, from the stage definitions (services/<name>/src/handler.ts, the
 * gateway's status/projection.ts): the stage whose input it is, and the status projection.
 */
export const CONSUMERS: Readonly<Record<EventType, readonly string[]>> = {
  [EventTypes.TransferRequested]: ["validator", STATUS],
  [EventTypes.TransferValidated]: ["risk", STATUS],
  [EventTypes.TransferRejected]: [STATUS],
  [EventTypes.TransferScored]: ["ledger", STATUS],
  [EventTypes.LedgerPosted]: ["payout", STATUS],
  [EventTypes.LedgerDeclined]: [STATUS],
  [EventTypes.LedgerReversed]: [STATUS],
  [EventTypes.PayoutCompleted]: [STATUS],
  [EventTypes.PayoutFailed]: ["ledger", STATUS],
};

/** The stream each stage writes its answers to. */
export const OUTPUT_STREAM: Readonly<Record<string, StreamName>> = {
  validator: StreamNames.Validation,
  risk: StreamNames.Risk,
  ledger: StreamNames.Ledger,
  payout: StreamNames.Payouts,
};

const ALL_TYPES = Object.values(EventTypes) as EventType[];

// The contracts codec's settings (plain MessagePack, maps as objects), without its validation.
const plain = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

// ---------------------------------------------------------------------------------------
// Recipes: pure data that fast-check generates and shrinks; bytes are made at publish time.

/** A business-looking value for one field: right, edge, or hostile. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    0,
    -1,
    1.5,
    2 ** 53,
    -(2 ** 53),
    1e300,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 2,
    10_000_001,
  ),
  fc.double(),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom(
    "not-an-account!*>",
    "",
    " ",
    "acc-",
    "acc-1\r\nJetmesh-Event-Type: ledger.posted",
    "external",
    "bank:",
    "\u0000",
    "EUR\u0000",
    "$JS.API.>",
    "../../etc/passwd",
    "%s%n",
    "__proto__",
    "constructor",
  ),
  // Huge strings: past every maxLength, still under the streams' 64 KiB message limit.
  fc.integer({ min: 129, max: 30_000 }).map((n) => "x".repeat(n)),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 16 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
);

const ENVELOPE_KEYS = [
  "eventId",
  "type",
  "version",
  "occurredAt",
  "correlationId",
  "causationId",
  "producer",
  "actor",
  "data",
] as const;
const DATA_KEYS = [
  "transferId",
  "from",
  "to",
  "amountMinor",
  "currency",
  "requestedAt",
  "reasons",
  "score",
  "decision",
  "factors",
  "reason",
  "bankReference",
  "bankStatus",
] as const;

/** One change to a valid envelope: a field removed, replaced or added. */
export interface Mutation {
  readonly where: "envelope" | "data";
  readonly key: string;
  readonly op: "delete" | "set";
  readonly value?: unknown;
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    where: fc.constant("envelope" as const),
    key: fc.oneof(fc.constantFrom<string>(...ENVELOPE_KEYS), fc.string({ maxLength: 8 })),
    op: fc.constantFrom("delete" as const, "set" as const),
    value: hostileValue,
  }),
  fc.record({
    where: fc.constant("data" as const),
    key: fc.oneof(fc.constantFrom<string>(...DATA_KEYS), fc.string({ maxLength: 8 })),
    op: fc.constantFrom("delete" as const, "set" as const),
    value: hostileValue,
  }),
  // Schema versions that do not exist, and types nobody knows.
  fc.record({
    where: fc.constant("envelope" as const),
    key: fc.constant("version"),
    op: fc.constant("set" as const),
    value: fc.constantFrom<unknown>(0, 2, 99, -1, 1.5, "1", Number.NaN),
  }),
  fc.record({
    where: fc.constant("envelope" as const),
    key: fc.constant("type"),
    op: fc.constant("set" as const),
    value: fc.constantFrom<unknown>("transfers.requested.v2", "", "TRANSFERS.REQUESTED", "ledger.*", "x"),
  }),
);

/** Field values a forged but well-formed event is built from: pools of right and edge values. */
const account = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("external", "acc-fzx1", "acc-fzx2", "bank:fz-1", "bank:refuse-1") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "not-an-account!*>",
      "ACC-1",
      `acc-${"a".repeat(40)}`,
      `bank:${"b".repeat(40)}`,
      "acc-\u00e9",
      "external ",
      " acc-fzx1",
    ),
  },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 64 }) },
);
const amount = fc.oneof(
  fc.constantFrom(
    1,
    100,
    5000,
    50_001,
    0,
    -0,
    -1,
    -5000,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    10_000_000,
    10_000_001,
  ),
  { arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }), weight: 1 },
  // Amounts no integer schema lets through: the whole message must be parked.
  {
    arbitrary: fc.constantFrom(1.5, -0.25, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
    weight: 1,
  },
);
const currency = fc.constantFrom("EUR", "USD", "JPY", "eur", "EUX", "XXX", "€€€", "E\u0000R");
const timestamp = fc.constantFrom(
  "now",
  "2026-02-30T25:61:00Z",
  "not-a-date",
  "0",
  "9999-12-31T23:59:59.999Z",
  "-271821-04-20T00:00:00Z",
);
const id = fc.oneof(
  { weight: 4, arbitrary: fc.constant("") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "not-an-account!*>",
      "a\u0000b",
      "ünïcödé-🙂",
      "with space",
      "a.b.c",
      "x".repeat(100),
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);

/** A well-formed event of the subject's type whose values are anything the schema lets through. */
export interface ForgedRecipe {
  readonly transferIdPrefix: string;
  readonly eventIdPrefix: string;
  readonly correlation: "transferId" | "other";
  readonly causationId: string;
  readonly producer: string;
  readonly actor: string | undefined;
  readonly occurredAt: string;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly requestedAt: string;
  readonly score: number;
  readonly decision: string;
  readonly factors: readonly string[];
  readonly reason: string;
  readonly bankStatus: number;
}

const forged: fc.Arbitrary<ForgedRecipe> = fc.record({
  transferIdPrefix: id,
  eventIdPrefix: id,
  correlation: fc.constantFrom("transferId" as const, "transferId" as const, "other" as const),
  causationId: fc.constantFrom("fuzz", "x".repeat(256), "ünïcödé"),
  producer: fc.constantFrom("fuzz", "validator", "ledger", "x".repeat(64)),
  actor: fc.constantFrom(undefined, "fuzz-operator", "mallory"),
  occurredAt: timestamp,
  from: account,
  to: account,
  amountMinor: amount,
  currency,
  requestedAt: timestamp,
  score: fc.oneof(fc.constantFrom(0, 100, 101, -1), fc.integer({ min: 0, max: 100 })),
  decision: fc.constantFrom("allow", "review", "deny", "maybe"),
  factors: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
  reason: fc.constantFrom("insufficient_funds", "risk_denied", "refused", "x".repeat(300)),
  bankStatus: fc.constantFrom(422, 500, 0, -1),
});

/** What goes in a message's body. */
export type BodyRecipe =
  | { readonly kind: "bytes"; readonly bytes: Uint8Array }
  | { readonly kind: "anything"; readonly value: unknown; readonly records: boolean }
  | {
      readonly kind: "deep";
      readonly depth: number;
      readonly shape: "array" | "map";
      readonly inData: boolean;
    }
  | { readonly kind: "mutated"; readonly base: ForgedRecipe; readonly mutations: readonly Mutation[] }
  | { readonly kind: "forged"; readonly fields: ForgedRecipe }
  /** A forged event under the eventId of an event already stored in the stream. */
  | { readonly kind: "replay"; readonly pick: number; readonly fields: ForgedRecipe }
  /** Past the stream's max message size: the stream must refuse it. */
  | { readonly kind: "oversized"; readonly extra: number };

/** What goes in a message's headers. */
export type HeaderRecipe =
  | { readonly kind: "honest" }
  | { readonly kind: "none" }
  /** Headers that contradict the body. */
  | {
      readonly kind: "lying";
      readonly eventType: string;
      readonly version: string;
      readonly contentType: string;
      readonly traceparent: string;
    }
  /** A status line, as the server's own control messages carry (heartbeats, 404, 409...). */
  | { readonly kind: "status"; readonly code: number; readonly description: string }
  /** A Nats-Msg-Id already used in the stream (by a pipeline event or an earlier message). */
  | { readonly kind: "reuse-msg-id"; readonly pick: number }
  | { readonly kind: "msg-id"; readonly id: string };

/** One hostile message: its subject (an input subject of the stage under test), body and headers. */
export interface HostileRecipe {
  readonly subjectType: number;
  readonly partition: string;
  readonly body: BodyRecipe;
  readonly headers: HeaderRecipe;
}

const body: fc.Arbitrary<BodyRecipe> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("bytes" as const), bytes: fc.uint8Array({ maxLength: 512 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("anything" as const),
      value: fc.anything({
        maxDepth: 4,
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
        withNullPrototype: true,
        withSparseArray: true,
      }),
      records: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("deep" as const),
      // Up to 60 000 bytes of nesting: deep, and still under the streams' 64 KiB limit.
      depth: fc.oneof(fc.integer({ min: 50, max: 2000 }), fc.integer({ min: 10_000, max: 19_900 })),
      shape: fc.constantFrom("array" as const, "map" as const),
      inData: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("mutated" as const),
      base: forged,
      mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("forged" as const), fields: forged }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("replay" as const), pick: fc.nat(), fields: forged }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("oversized" as const),
      extra: fc.integer({ min: 1, max: 4096 }),
    }),
  },
);

const headerRecipe: fc.Arbitrary<HeaderRecipe> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "honest" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("lying" as const),
      eventType: fc.constantFrom<string>(...ALL_TYPES, "nonsense", ""),
      version: fc.constantFrom("1", "2", "0", "-1", "x"),
      contentType: fc.constantFrom("application/msgpack", "application/json", "text/plain", ""),
      traceparent: fc.constantFrom(
        "garbage",
        `00-${"0".repeat(32)}-${"0".repeat(16)}-01`,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        `ff-${"f".repeat(32)}-${"f".repeat(16)}-ff`,
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("status" as const),
      code: fc.constantFrom(100, 404, 408, 409, 503),
      description: fc.constantFrom(
        "Idle Heartbeat",
        "FlowControl Request",
        "No Messages",
        "Request Timeout",
        "Consumer Deleted",
        "No Responders",
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reuse-msg-id" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("msg-id" as const), id: fc.stringMatching(/^[!-~]{1,40}$/) }),
  },
);

/** A hostile message for one of `subjectTypes` (the input subjects of the stage under test). */
export function hostileMessage(subjectTypes: readonly EventType[]): fc.Arbitrary<HostileRecipe> {
  return fc.record({
    subjectType: fc.nat({ max: subjectTypes.length - 1 }),
    partition: fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 0, max: 15 }).map((n) => String(n).padStart(2, "0")) },
      { weight: 1, arbitrary: fc.constantFrom("99", "x", "-", "ünï") },
    ),
    body,
    headers: headerRecipe,
  });
}

/**
 * The cases issue 12 names, so that every run has them whatever the seed draws: bytes that
 * are no MessagePack, MessagePack that is no envelope, deep nesting, missing and mistyped
 * fields, huge strings, NaN / Infinity / -0 / fractional amounts, `not-an-account!*>`, an
 * unknown type, an unknown schema version, headers missing or lying (a status line too), a
 * Nats-Msg-Id reused, an eventId reused under another body, a message past the size limit.
 */
export function namedCases(subjectTypes: readonly EventType[]): HostileRecipe[] {
  const honest = { kind: "honest" } as const;
  const set = (where: Mutation["where"], key: string, value: unknown): BodyRecipe => ({
    kind: "mutated",
    base: BASE_FIELDS,
    mutations: [{ where, key, op: "set", value }],
  });
  const forge = (over: Partial<ForgedRecipe>): BodyRecipe => ({
    kind: "forged",
    fields: { ...BASE_FIELDS, ...over },
  });
  const cases: Array<[BodyRecipe, HeaderRecipe]> = [
    [{ kind: "bytes", bytes: Uint8Array.of(0xc1) }, { kind: "none" }],
    [{ kind: "bytes", bytes: Uint8Array.of(0x92, 0x01) }, honest],
    [{ kind: "anything", value: { eventId: 1, type: ["x"] }, records: false }, honest],
    [{ kind: "anything", value: new Map([[1, new Set([2n])]]), records: true }, honest],
    [{ kind: "deep", depth: 19_000, shape: "array", inData: false }, honest],
    [{ kind: "deep", depth: 5000, shape: "map", inData: true }, honest],
    [set("data", "amountMinor", Number.NaN), honest],
    [set("data", "amountMinor", Number.POSITIVE_INFINITY), honest],
    [set("data", "amountMinor", 1.5), honest],
    [set("data", "currency", 42), honest],
    [set("data", "to", "x".repeat(30_000)), honest],
    [set("envelope", "type", "transfers.requested.v2"), honest],
    [set("envelope", "version", 2), honest],
    [
      {
        kind: "mutated",
        base: BASE_FIELDS,
        mutations: [{ where: "envelope", key: "eventId", op: "delete" }],
      },
      honest,
    ],
    [forge({ amountMinor: -0 }), honest],
    [forge({ amountMinor: -5000, from: "acc-fzx1", to: "bank:fz-1" }), honest],
    [forge({ from: "not-an-account!*>", to: "not-an-account!*>" }), honest],
    [forge({ occurredAt: "not-a-date", from: "acc-fzx2" }), honest],
    [
      forge({}),
      {
        kind: "lying",
        eventType: EventTypes.LedgerPosted,
        version: "2",
        contentType: "application/json",
        traceparent: "garbage",
      },
    ],
    [forge({}), { kind: "status", code: 409, description: "Consumer Deleted" }],
    [forge({}), { kind: "status", code: 100, description: "Idle Heartbeat" }],
    [forge({}), { kind: "none" }],
    [forge({}), { kind: "reuse-msg-id", pick: 0 }],
    [
      { kind: "replay", pick: 0, fields: BASE_FIELDS },
      { kind: "msg-id", id: "fresh-msg-id-for-a-replay" },
    ],
    [{ kind: "oversized", extra: 1 }, honest],
  ];
  return cases.map(([body, headers], i) => ({
    subjectType: i % subjectTypes.length,
    partition: String(i % 16).padStart(2, "0"),
    body,
    headers,
  }));
}

/** A well-formed event of the subject's type whose occurredAt (any non-empty string) is no time. */
export interface JunkTimeRecipe {
  readonly subjectType: number;
  readonly partition: string;
  readonly occurredAt: string;
  readonly to: "customer" | "bank";
}

/** The arbitrary of {@link JunkTimeRecipe}: what the envelope schema lets through but Date.parse cannot read. */
export function junkTimeMessage(subjectTypes: readonly EventType[]): fc.Arbitrary<JunkTimeRecipe> {
  return fc.record({
    subjectType: fc.nat({ max: subjectTypes.length - 1 }),
    partition: fc.integer({ min: 0, max: 15 }).map((n) => String(n).padStart(2, "0")),
    occurredAt: fc
      .oneof(
        fc.constantFrom("not-a-date", "2026-02-30T25:61:00Z", "yesterday", "∞"),
        fc.string({ minLength: 1, maxLength: 30 }),
      )
      .filter((s) => Number.isNaN(Date.parse(s))),
    to: fc.constantFrom("customer" as const, "bank" as const),
  });
}

/** A valid event (business values a stage acts on) whose only flaw is its occurredAt. */
export function buildJunkTime(
  r: JunkTimeRecipe,
  subjectTypes: readonly EventType[],
  ctx: BuildContext,
): Outgoing {
  const type = subjectTypes[r.subjectType % subjectTypes.length] as EventType;
  const fields: ForgedRecipe = {
    ...BASE_FIELDS,
    occurredAt: r.occurredAt,
    from: "external",
    to: r.to === "bank" ? "bank:fz-1" : "acc-fzx2",
  };
  const env = envelopeOf(type, fields, ctx);
  const data = plain.pack(env);
  const h = headersOf({ kind: "honest" }, env, streamOf(type).name, ctx);
  return {
    label: `valid ${type} at occurredAt ${short(r.occurredAt)}`,
    stream: streamOf(type).name,
    subject: `${type}.${r.partition}`,
    subjectType: type,
    data,
    ...(h.headers ? { headers: h.headers } : {}),
    ...(h.msgID ? { msgID: h.msgID } : {}),
    ...decoded(data),
  };
}

/** A well-formed event of `type` whose type is not the subject's: the body lies about where it belongs. */
export interface WrongTypeRecipe {
  readonly subjectType: number;
  readonly bodyType: number;
  readonly partition: string;
  readonly fields: ForgedRecipe;
}

// ---------------------------------------------------------------------------------------
// Building: recipes become bytes and headers, with what the stream already holds at hand.

/** What a recipe may refer to when it is built: ids already in the stream, fresh unique ids. */
export interface BuildContext {
  /** A new unique token, for transfer and event ids no other message shares. */
  uid(): string;
  /** Event ids of decodable events stored in `stream` so far (pipeline and earlier fuzz). */
  storedEventIds(stream: StreamName): readonly string[];
  /** Nats-Msg-Ids used in `stream` so far. */
  msgIds(stream: StreamName): readonly string[];
  /** The stream's max message size in bytes. */
  maxMsgSize(stream: StreamName): number;
}

/** A message ready to publish. */
export interface Outgoing {
  readonly label: string;
  readonly stream: StreamName;
  readonly subject: string;
  readonly subjectType: EventType;
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs;
  readonly msgID?: string;
  /** The decoded envelope, when the contracts codec accepts the body. */
  readonly env?: AnyEnvelope;
  readonly decodeError?: string;
}

function fieldsOf(type: EventType, f: ForgedRecipe, transferId: string): Record<string, unknown> {
  const core = { transferId, from: f.from, to: f.to, amountMinor: f.amountMinor, currency: f.currency };
  switch (type) {
    case EventTypes.TransferRequested:
      return { ...core, requestedAt: f.requestedAt === "now" ? new Date().toISOString() : f.requestedAt };
    case EventTypes.TransferValidated:
      return core;
    case EventTypes.TransferRejected:
      return { ...core, reasons: [{ field: "/amountMinor", rule: "fuzz" }] };
    case EventTypes.TransferScored:
      return { ...core, score: f.score, decision: f.decision, factors: [...f.factors] };
    case EventTypes.LedgerPosted:
      return { ...core, decision: f.decision };
    case EventTypes.LedgerDeclined:
      return { ...core, reason: f.reason };
    case EventTypes.LedgerReversed:
      return { ...core, reason: f.reason };
    case EventTypes.PayoutCompleted:
      return { ...core, bankReference: `ref-${transferId}` };
    case EventTypes.PayoutFailed:
      return { ...core, reason: f.reason, bankStatus: f.bankStatus };
  }
}

/** An envelope object (not validated) of `type` from forged fields, with unique ids. */
function envelopeOf(
  type: EventType,
  f: ForgedRecipe,
  ctx: BuildContext,
  eventId?: string,
): Record<string, unknown> {
  const transferId = `${f.transferIdPrefix}fz-${ctx.uid()}`;
  return {
    eventId: eventId ?? `${f.eventIdPrefix}ev-${ctx.uid()}`,
    type,
    version: 1,
    occurredAt: f.occurredAt === "now" ? new Date().toISOString() : f.occurredAt,
    correlationId: f.correlation === "transferId" ? transferId : `other-${ctx.uid()}`,
    causationId: f.causationId,
    producer: f.producer,
    ...(f.actor !== undefined ? { actor: f.actor } : {}),
    data: fieldsOf(type, f, transferId),
  };
}

function applyMutations(
  env: Record<string, unknown>,
  mutations: readonly Mutation[],
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...env, data: { ...(env.data as Record<string, unknown>) } };
  for (const m of mutations) {
    const target = m.where === "envelope" ? out : out.data;
    if (typeof target !== "object" || target === null) continue;
    const t = target as Record<string, unknown>;
    // A key such as __proto__ is set as an own property, as a hostile producer's map would carry it.
    if (m.op === "delete") delete t[m.key];
    else
      Object.defineProperty(t, m.key, {
        value: m.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return out;
}

/** MessagePack nested `depth` levels deep, written by hand (no encoder recursion). */
function deepBytes(depth: number, shape: "array" | "map"): Uint8Array {
  const open = shape === "array" ? [0x91] : [0x81, 0xa1, 0x61]; // [x] or {"a": x}
  const out = new Uint8Array(depth * open.length + 1);
  for (let i = 0; i < depth; i++) out.set(open, i * open.length);
  out[out.length - 1] = 0xc0;
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function short(v: unknown): string {
  let s: string;
  try {
    s =
      typeof v === "bigint"
        ? `${v}n`
        : v instanceof Uint8Array
          ? `bytes(${v.length})`
          : typeof v === "string"
            ? JSON.stringify(v.length > 24 ? `${v.slice(0, 24)}…(${v.length})` : v)
            : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function bodyOf(
  r: BodyRecipe,
  type: EventType,
  stream: StreamName,
  ctx: BuildContext,
): { data: Uint8Array; label: string; honest?: Record<string, unknown> } {
  switch (r.kind) {
    case "bytes":
      return { data: r.bytes, label: `bytes(${r.bytes.length})` };
    case "anything": {
      try {
        return {
          data: r.records ? pack(r.value) : plain.pack(r.value),
          label: `msgpack${r.records ? "+records" : ""}(${short(r.value)})`,
        };
      } catch {
        // A value MessagePack cannot carry (a bigint past 64 bits): the reserved byte 0xc1 instead.
        return { data: Uint8Array.of(0xc1), label: "msgpack(unencodable→0xc1)" };
      }
    }
    case "deep": {
      const deep = deepBytes(r.depth, r.shape);
      if (!r.inData) return { data: deep, label: `deep ${r.shape} ×${r.depth}` };
      // An envelope whose data (its last key) is the nesting: pack it with data null, then
      // replace the trailing nil with the nested bytes.
      const head = plain.pack({ ...envelopeOf(type, BASE_FIELDS, ctx), data: null });
      return {
        data: concat(head.subarray(0, head.length - 1), deep),
        label: `envelope, data deep ${r.shape} ×${r.depth}`,
      };
    }
    case "mutated": {
      const env = applyMutations(envelopeOf(type, r.base, ctx), r.mutations);
      const what = r.mutations.map(
        (m) =>
          `${m.where === "data" ? "data." : ""}${m.key}${m.op === "delete" ? " deleted" : `=${short(m.value)}`}`,
      );
      return { data: plainPack(env), label: `envelope with ${what.join(", ")}`, honest: env };
    }
    case "forged": {
      const env = envelopeOf(type, r.fields, ctx);
      return { data: plainPack(env), label: `forged ${describeForged(env)}`, honest: env };
    }
    case "replay": {
      const ids = ctx.storedEventIds(stream);
      const reused = ids.length ? ids[r.pick % ids.length] : undefined;
      const env = envelopeOf(type, r.fields, ctx, reused);
      return {
        data: plainPack(env),
        label: `${reused ? `eventId ${short(reused)} reused by` : "replay (nothing stored yet):"} forged ${describeForged(env)}`,
        honest: env,
      };
    }
    case "oversized": {
      const size = ctx.maxMsgSize(stream) + r.extra;
      return { data: plain.pack({ blob: "x".repeat(size) }), label: `oversized (${size} bytes of string)` };
    }
  }
}

function plainPack(v: unknown): Uint8Array {
  try {
    return plain.pack(v);
  } catch {
    return Uint8Array.of(0xc1);
  }
}

function describeForged(env: Record<string, unknown>): string {
  const d = (env.data ?? {}) as Record<string, unknown>;
  return `${short(d.amountMinor)} ${short(d.currency)} ${short(d.from)}→${short(d.to)} v${short(env.version)} at ${short(env.occurredAt)}`;
}

/** A valid envelope's fields, for the bodies that only need a well-formed shell. */
const BASE_FIELDS: ForgedRecipe = {
  transferIdPrefix: "",
  eventIdPrefix: "",
  correlation: "transferId",
  causationId: "fuzz",
  producer: "fuzz",
  actor: undefined,
  occurredAt: "now",
  from: "external",
  to: "acc-fzx1",
  amountMinor: 100,
  currency: "EUR",
  requestedAt: "now",
  score: 0,
  decision: "allow",
  factors: [],
  reason: "refused",
  bankStatus: 422,
};

/** Sets a header, leaving out values nats.js itself refuses to send (CR or LF). */
function setHeader(h: MsgHdrs, k: string, v: unknown): void {
  if (typeof v !== "string" && typeof v !== "number") return;
  try {
    h.set(k, String(v));
  } catch {
    // not sendable by a NATS client at all
  }
}

function headersOf(
  r: HeaderRecipe,
  honest: Record<string, unknown> | undefined,
  stream: StreamName,
  ctx: BuildContext,
): { headers?: MsgHdrs; msgID?: string; label: string } {
  const fromBody = (h: MsgHdrs) => {
    if (!honest) return;
    setHeader(h, Headers.ContentType, "application/msgpack");
    setHeader(h, Headers.EventType, honest.type);
    setHeader(h, Headers.SchemaVersion, honest.version);
    setHeader(h, Headers.EventId, honest.eventId);
    setHeader(h, Headers.CausationId, honest.causationId);
    setHeader(h, Headers.CorrelationId, honest.correlationId);
    setHeader(h, Headers.Producer, honest.producer);
  };
  switch (r.kind) {
    case "none":
      return { label: "no headers" };
    case "honest": {
      const h = natsHeaders();
      fromBody(h);
      const msgID =
        typeof honest?.eventId === "string" && !/[\r\n]/.test(honest.eventId) ? honest.eventId : undefined;
      return { headers: h, ...(msgID ? { msgID } : {}), label: "headers from the body" };
    }
    case "lying": {
      const h = natsHeaders();
      fromBody(h);
      setHeader(h, Headers.EventType, r.eventType);
      setHeader(h, Headers.SchemaVersion, r.version);
      setHeader(h, Headers.ContentType, r.contentType);
      setHeader(h, Headers.TraceParent, r.traceparent);
      return {
        headers: h,
        label: `lying headers (type ${JSON.stringify(r.eventType)}, version ${r.version}, content-type ${JSON.stringify(r.contentType)})`,
      };
    }
    case "status":
      return { headers: natsHeaders(r.code, r.description), label: `status line ${r.code} ${r.description}` };
    case "reuse-msg-id": {
      const ids = ctx.msgIds(stream);
      const reused = ids.length ? ids[r.pick % ids.length] : undefined;
      const h = natsHeaders();
      fromBody(h);
      return reused
        ? { headers: h, msgID: reused, label: `Nats-Msg-Id ${short(reused)} reused` }
        : { headers: h, label: "headers from the body (no Nats-Msg-Id to reuse yet)" };
    }
    case "msg-id": {
      const h = natsHeaders();
      fromBody(h);
      return { headers: h, msgID: r.id, label: `Nats-Msg-Id ${short(r.id)}` };
    }
  }
}

function decoded(data: Uint8Array): { env?: AnyEnvelope; decodeError?: string } {
  try {
    return { env: decodeEvent(data) };
  } catch (err) {
    return { decodeError: err instanceof Error ? err.message : String(err) };
  }
}

/** Builds a hostile message for the stage whose input types are `subjectTypes`. */
export function buildHostile(
  r: HostileRecipe,
  subjectTypes: readonly EventType[],
  ctx: BuildContext,
): Outgoing {
  const type = subjectTypes[r.subjectType % subjectTypes.length] as EventType;
  const stream = streamOf(type).name;
  const b = bodyOf(r.body, type, stream, ctx);
  const h = headersOf(r.headers, b.honest, stream, ctx);
  return {
    label: `${b.label}; ${h.label}`,
    stream,
    subject: `${type}.${r.partition}`,
    subjectType: type,
    data: b.data,
    ...(h.headers ? { headers: h.headers } : {}),
    ...(h.msgID ? { msgID: h.msgID } : {}),
    ...decoded(b.data),
  };
}

/** The arbitrary of a well-formed event of another type on one of `subjectTypes`' subjects. */
export function wrongTypeMessage(subjectTypes: readonly EventType[]): fc.Arbitrary<WrongTypeRecipe> {
  return fc.record({
    subjectType: fc.nat({ max: subjectTypes.length - 1 }),
    bodyType: fc.nat({ max: ALL_TYPES.length - 2 }),
    partition: fc.integer({ min: 0, max: 15 }).map((n) => String(n).padStart(2, "0")),
    fields: forged,
  });
}

/** A valid event (it decodes) of a type that is not the subject's, with honest headers. */
export function buildWrongType(
  r: WrongTypeRecipe,
  subjectTypes: readonly EventType[],
  ctx: BuildContext,
): Outgoing {
  const type = subjectTypes[r.subjectType % subjectTypes.length] as EventType;
  const others = ALL_TYPES.filter((t) => t !== type);
  const bodyType = others[r.bodyType % others.length] as EventType;
  const stream = streamOf(type).name;
  // Values the schema accepts, so that the body decodes: only the type is wrong.
  const env = envelopeOf(bodyType, { ...BASE_FIELDS, from: "external", to: "acc-fzx1" }, ctx);
  const data = plain.pack(env);
  const h = natsHeaders();
  for (const [k, v] of Object.entries({
    [Headers.ContentType]: "application/msgpack",
    [Headers.EventType]: bodyType,
    [Headers.SchemaVersion]: "1",
    [Headers.EventId]: env.eventId,
  }))
    setHeader(h, k, v);
  return {
    label: `valid ${bodyType} on ${type}.${r.partition}`,
    stream,
    subject: `${type}.${r.partition}`,
    subjectType: type,
    data,
    headers: h,
    msgID: env.eventId as string,
    ...decoded(data),
  };
}

// ---------------------------------------------------------------------------------------
// Accounting: how each stored message ended, for each consumer of its subject.

/** A message as published, with what the stream said. */
export interface Published extends Outgoing {
  /** Where the stream stored it; absent when the stream did not. */
  readonly seq?: number;
  /** Why it is not stored: a duplicate Nats-Msg-Id, or the stream refused it. */
  readonly door?:
    | { readonly kind: "duplicate"; readonly of: number }
    | { readonly kind: "refused"; readonly error: string };
}

/** What the streams and Redis say now. */
export interface OutcomeView {
  /** DLQ entries by `<stage> <stream> <seq>` (from the subject and the Dlq-* headers). */
  readonly parked: ReadonlyMap<string, StoredEvent>;
  /** Decoded events of each output stream, by causationId. */
  readonly byCause: ReadonlyMap<StreamName, ReadonlyMap<string, readonly StoredEvent[]>>;
  /** LEDGER outcomes by transferId: posted, declined, reversed. */
  readonly ledgerByTransfer: ReadonlyMap<string, readonly StoredEvent[]>;
  /** Does the status projection hold this event (status:<transferId> has the eventId)? */
  readonly recorded: ReadonlySet<string>;
}

/** A message no consumer accounted for. */
export interface Unaccounted {
  readonly consumer: string;
  readonly message: Published;
  readonly why: string;
}

/** How one consumer ended one stored message. */
export type Ending = "parked" | "answered" | "ignored";

export const parkedKey = (stage: string, stream: string, seq: number) => `${stage} ${stream} ${seq}`;
export const recordedKey = (transferId: string, eventId: string) => `${transferId} ${eventId}`;

/** The DLQ headers every parked message must carry, checked against where it came from. */
export function dlqProblems(d: StoredEvent, stage: string, p: Published): string[] {
  const h = (k: string) => d.headers[k.toLowerCase()];
  const problems: string[] = [];
  if (!h(Headers.DlqReason)?.trim()) problems.push(`no ${Headers.DlqReason}`);
  if (h(Headers.DlqStage) !== stage) problems.push(`${Headers.DlqStage} ${h(Headers.DlqStage)}`);
  if (h(Headers.DlqStream) !== p.stream) problems.push(`${Headers.DlqStream} ${h(Headers.DlqStream)}`);
  if (h(Headers.DlqSequence) !== String(p.seq))
    problems.push(`${Headers.DlqSequence} ${h(Headers.DlqSequence)}`);
  return problems;
}

/**
 * How `consumer` ended `p` (a stored message), or why it did not: parked with every reason
 * header; answered with its business event (the stage's output caused by it, the ledger's
 * outcome of its transfer, the status projection's record of it); ignored by design (a posting
 * that is no payout); or an earlier message of the same eventId was answered (a replay the
 * idempotency key absorbs).
 */
export function endingOf(
  consumer: string,
  p: Published,
  view: OutcomeView,
  earlier: (eventId: string) => boolean,
): Ending | string {
  const seq = p.seq as number;
  const d = view.parked.get(parkedKey(consumer, p.stream, seq));
  if (d) {
    const problems = dlqProblems(d, consumer, p);
    return problems.length ? `parked without its reason headers: ${problems.join(", ")}` : "parked";
  }
  const env = p.env;
  if (!env) return `not decodable (${p.decodeError?.slice(0, 120)}) and not parked`;
  if (env.type !== p.subjectType) {
    // The status projection records any event of the stream's own types, whatever the
    // subject: what it records is still true of the stream. A stage must not act on a body
    // its subject does not announce, nor acknowledge it unseen.
    const sameStream = streamOf(env.type).name === p.stream;
    if (consumer === STATUS && sameStream && view.recorded.has(recordedKey(env.data.transferId, env.eventId)))
      return "answered";
    return `a well-formed ${env.type} on a ${p.subjectType} subject, acked with neither a DLQ entry nor an answer (skipped)`;
  }
  if (consumer === STATUS) {
    return view.recorded.has(recordedKey(env.data.transferId, env.eventId))
      ? "answered"
      : "decodable, but neither parked nor recorded by the status projection";
  }
  const out = OUTPUT_STREAM[consumer] as StreamName;
  if ((view.byCause.get(out)?.get(env.eventId) ?? []).length > 0) return "answered";
  if (consumer === "ledger") {
    const decided = view.ledgerByTransfer.get(env.data.transferId) ?? [];
    const wanted =
      env.type === EventTypes.PayoutFailed
        ? [EventTypes.LedgerReversed]
        : [EventTypes.LedgerPosted, EventTypes.LedgerDeclined];
    if (decided.some((e) => wanted.includes(e.env?.type as never))) return "answered";
  }
  if (
    consumer === "payout" &&
    env.type === EventTypes.LedgerPosted &&
    !AccountPatterns.bank.test(env.data.to)
  )
    return "ignored";
  if (earlier(env.eventId)) return "answered";
  return `decodable ${env.type}, acked with neither a DLQ entry nor an answer in ${out}`;
}
