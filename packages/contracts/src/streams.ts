import { EventTypes, type EventType } from "./schemas.ts";
import { subjectFilter } from "./subjects.ts";
import { type TeamStream, TeamStreams } from "./team-streams.ts";

const NANOS_PER_MS = 1_000_000;

/**
 * Names of the reference pipeline's streams, one per producing stage, plus the DLQ, the
 * reconciler's RECONCILE, the operators' AUDIT and REPLAY (parked messages an operator sends
 * back to their stage). Teams' streams are in team-streams.ts.
 */
export const StreamNames = {
  Ingress: "INGRESS",
  Validation: "VALIDATION",
  Risk: "RISK",
  Ledger: "LEDGER",
  Payouts: "PAYOUTS",
  Dlq: "DLQ",
  Reconcile: "RECONCILE",
  Audit: "AUDIT",
  Replay: "REPLAY",
} as const;
/** A stream's name: the reference pipeline's, or a team's (team-streams.ts). */
export type StreamName = (typeof StreamNames)[keyof typeof StreamNames] | (keyof typeof TeamStreams & string);

/**
 * A stream as data: what the runtime provisions and what deploy/streams/*.json
 * holds for `nats stream add --config`. Durations are milliseconds here and
 * nanoseconds in the server config ({@link toStreamConfig}).
 */
export interface StreamDefinition<Name extends string = StreamName> {
  /** The contract's name; `StreamDefinition<string>` in a namespace, the name on the server (`namesFor`). */
  readonly name: Name;
  readonly description: string;
  /** Team that owns the stream (the producing stage). */
  readonly owner: string;
  readonly subjects: readonly string[];
  readonly eventTypes: readonly EventType[];
  /** JetStream drops a second message with the same Nats-Msg-Id inside this window. */
  readonly duplicateWindowMs: number;
  /** The stream's size limit in bytes; -1 for none (LEDGER: the server's storage bounds it). */
  readonly maxBytes: number;
  readonly maxMsgSize: number;
  /** True for streams whose loss breaks an invariant; production demands R3 for them. */
  readonly critical: boolean;
  /**
   * False for a stream only the deploy step creates (`nats stream add --config
   * deploy/streams/<NAME>.json`), never a process at run time: a source of truth (LEDGER), so
   * a stage started while it is missing (deleted, or on the wrong server) waits and says so
   * instead of starting an empty log over the real one; and REPLAY, which a stage consumes
   * when it exists and runs without otherwise.
   */
  readonly createdAtRuntime: boolean;
  /** Refuse `nats stream purge` (and the API call): for a log nothing may shorten. */
  readonly denyPurge: boolean;
  /**
   * The server drops messages older than this; 0 keeps them for ever (a full stream then
   * refuses writes). The retention plan (README.md): an event stream's messages leave by
   * age, never by size, and every idempotency guard of a stage reading it outlives this
   * (the settings check refuses a JETMESH_IDEMPOTENCY_TTL_MS that does not).
   */
  readonly maxAgeMs: number;
  /** A message-count limit besides {@link maxBytes}; absent for none (-1). */
  readonly maxMsgs?: number;
}

const GiB = 1024 ** 3;
/**
 * How long an event stream (every stream with event types but LEDGER) keeps a message: the
 * longest a stage may be down and still find its unprocessed inputs, and at least three
 * times the gateway's default idempotency horizon (24 h), so a client's repeated request is
 * answered from INGRESS even after a Redis rollback. Shorter than the default idempotency
 * key TTL (7 days): a message that can still be delivered always finds its guard.
 */
export const EVENT_MAX_AGE_MS = 3 * 24 * 3600_000;
/** How long a replay waits on REPLAY for its stage before the server drops it. */
export const REPLAY_MAX_AGE_MS = 7 * 24 * 3600_000;
// The window covers the default redelivery horizon (about 10 minutes), so even a
// redelivery that re-runs a stage after a crash between publish and done is dropped
// by the stream and never stored twice.
const common = {
  duplicateWindowMs: 15 * 60_000,
  maxBytes: 2 * GiB,
  maxMsgSize: 64 * 1024,
  critical: true,
  createdAtRuntime: true,
  denyPurge: false,
  maxAgeMs: 0,
} as const;

function eventStream(
  name: StreamName,
  owner: string,
  description: string,
  eventTypes: readonly EventType[],
): StreamDefinition {
  return {
    name,
    owner,
    description,
    eventTypes,
    subjects: eventTypes.map(subjectFilter),
    ...common,
    maxAgeMs: EVENT_MAX_AGE_MS,
  };
}

/** The teams' streams, defined as the pipeline's are from their entries in team-streams.ts. */
const teamStreams = Object.fromEntries(
  Object.entries(TeamStreams as Readonly<Record<string, TeamStream>>).map(([name, t]) => [
    name,
    eventStream(name as StreamName, t.owner, t.description, Object.keys(t.events) as EventType[]),
  ]),
) as Readonly<Record<keyof typeof TeamStreams, StreamDefinition>>;

/** Every stream of the pipeline, keyed by name: the reference pipeline's, the teams', then the DLQ. */
export const Streams: Readonly<Record<StreamName, StreamDefinition>> = {
  INGRESS: eventStream("INGRESS", "gateway", "transfer requests accepted over HTTP", [
    EventTypes.TransferRequested,
  ]),
  VALIDATION: eventStream("VALIDATION", "validator", "transfers validated or rejected", [
    EventTypes.TransferValidated,
    EventTypes.TransferRejected,
  ]),
  RISK: eventStream("RISK", "risk", "risk scores and decisions", [EventTypes.TransferScored]),
  LEDGER: {
    ...eventStream("LEDGER", "ledger", "the ledger's event log: the source of truth for balances", [
      EventTypes.LedgerPosted,
      EventTypes.LedgerDeclined,
      EventTypes.LedgerReversed,
    ]),
    createdAtRuntime: false,
    denyPurge: true,
    // The source of truth keeps everything: I4 folds it from its first message, `rebuild`
    // reads it whole. No size limit either: at 2 GiB with discard new it stopped the pipeline
    // after about 2.8 million transfers (770 B per event, bench/src/ledger-memory.ts). What
    // bounds it is JetStream's storage on each server (max_file_store), which the reconciler
    // exports and JetmeshNatsStorageNearlyFull watches; what a running ledger holds is
    // bounded by its horizon (services/ledger/src/outcome-ttl.ts).
    maxAgeMs: 0,
    maxBytes: -1,
  },
  PAYOUTS: eventStream("PAYOUTS", "payout", "outcomes of calls to the external bank", [
    EventTypes.PayoutCompleted,
    EventTypes.PayoutFailed,
  ]),
  ...teamStreams,
  DLQ: {
    name: "DLQ",
    owner: "platform",
    description:
      "messages a stage could not process, with the reason in headers; limits retention so it can be peeked",
    subjects: ["dlq.>"],
    eventTypes: [],
    ...common,
    critical: false,
    maxMsgSize: 1024 * 1024,
  },
  // Not a pipeline stream: no stage consumes it, so it stores no event type (PipelineStreams
  // leaves it out) and losing it breaks no invariant; the reconciler writes each finding's
  // history on its own subject (contracts reconcile.ts).
  RECONCILE: {
    name: "RECONCILE",
    owner: "reconciler",
    description: "discrepancies the reconciler found, opened and closed, one subject per finding",
    subjects: ["reconcile.>"],
    eventTypes: [],
    ...common,
    critical: false,
    maxBytes: GiB,
  },
  AUDIT: {
    name: "AUDIT",
    owner: "operators",
    description:
      "operators' actions on the pipeline (jetmesh dlq replay, drop): who, what, which messages, when",
    subjects: ["audit.>"],
    eventTypes: [],
    ...common,
    // No invariant rests on it, but an audit trail nobody may shorten: replicated like the
    // event streams, deny delete and purge.
    denyPurge: true,
  },
  REPLAY: {
    name: "REPLAY",
    owner: "operators",
    description:
      "parked messages an operator sent back to the stage that parked them (jetmesh dlq replay), on replay.<stage>; never a fact",
    subjects: ["replay.>"],
    eventTypes: [],
    ...common,
    // Whatever the DLQ took must fit (original body and headers).
    maxMsgSize: 1024 * 1024,
    critical: false,
    // Stages consume it when it exists; only the deploy step creates it.
    createdAtRuntime: false,
    // A replay waits here for its stage: long enough for a stage that is down over a long
    // weekend, then it expires (its AUDIT event still says it was sent).
    maxAgeMs: REPLAY_MAX_AGE_MS,
  },
};

/** The durable consumer through which a stage takes its replays on REPLAY: `<stage>-replay`. */
export function replayDurable(stage: string): string {
  return `${stage}-replay`;
}

/**
 * The streams that carry events, in pipeline order (every stream but DLQ, RECONCILE, AUDIT
 * and REPLAY, which hold copies, findings and operators' records, never facts), the teams'
 * after the reference pipeline's: the one list the quiet wait, chaos and `jetmesh trace` read
 * (the gateway's status projection takes the reference ones from it), so that a stream added
 * to {@link Streams} is never silently left out of them.
 */
export const PipelineStreams: readonly StreamName[] = Object.values(Streams)
  .filter((d) => d.eventTypes.length > 0)
  .map((d) => d.name);

/** The stream that stores events of `type`. */
export function streamOf(type: EventType): StreamDefinition {
  for (const s of Object.values(Streams)) if (s.eventTypes.includes(type)) return s;
  throw new Error(`no stream stores ${type}`);
}

/**
 * Limits a test may shrink (never a deployment: deploy/streams/*.json come from the
 * definitions as they are), so that a short run goes through a stream's capacity many times.
 */
export interface StreamLimits {
  readonly maxBytes?: number;
  readonly maxMsgs?: number;
  readonly maxAgeMs?: number;
  readonly duplicateWindowMs?: number;
}

/** `def` with `limits` applied: what a test provisions instead of the definition. */
export function withLimits<D extends StreamDefinition<string>>(def: D, limits: StreamLimits | undefined): D {
  if (!limits) return def;
  return {
    ...def,
    ...(limits.maxBytes !== undefined ? { maxBytes: limits.maxBytes } : {}),
    ...(limits.maxMsgs !== undefined ? { maxMsgs: limits.maxMsgs } : {}),
    ...(limits.maxAgeMs !== undefined ? { maxAgeMs: limits.maxAgeMs } : {}),
    ...(limits.duplicateWindowMs !== undefined ? { duplicateWindowMs: limits.duplicateWindowMs } : {}),
  };
}

/**
 * The server's StreamConfig (snake_case, nanoseconds) as `nats stream add
 * --config` and the JetStream API accept it: file storage, limits retention,
 * discard new (a full stream refuses writes rather than dropping a message a consumer
 * may not have seen), the definition's age limit (event streams and REPLAY: old data
 * leaves by age), an explicit duplicate window.
 */
export function toStreamConfig(def: StreamDefinition<string>, opts: { replicas?: number } = {}) {
  return {
    name: def.name,
    description: def.description,
    subjects: [...def.subjects],
    retention: "limits",
    storage: "file",
    discard: "new",
    max_consumers: -1,
    max_msgs: def.maxMsgs ?? -1,
    max_bytes: def.maxBytes,
    max_age: def.maxAgeMs * NANOS_PER_MS,
    max_msgs_per_subject: -1,
    max_msg_size: def.maxMsgSize,
    num_replicas: opts.replicas ?? 1,
    duplicate_window: def.duplicateWindowMs * NANOS_PER_MS,
    allow_direct: true,
    deny_delete: def.critical,
    deny_purge: def.denyPurge,
    allow_rollup_hdrs: false,
  } as const;
}
export type StreamConfigJson = ReturnType<typeof toStreamConfig>;
