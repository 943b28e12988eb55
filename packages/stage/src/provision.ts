import {
  type EventType,
  replayDurable,
  replaySubject,
  type StreamConfigJson,
  type StreamDefinition,
  type StreamLimits,
  namesFor,
  type StreamName,
  StreamNames,
  subjectFilter,
  toStreamConfig,
  withLimits,
} from "@jetmesh/contracts";
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
  ReplayPolicy,
  type StreamConfig,
  type StreamInfo,
  StorageType,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { PermissionViolationError } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ConfigError } from "./errors.ts";
import { openPositions, type PositionStore, positionOf } from "./positions.ts";
import { publishSchemaRegistry } from "./schema-registry.ts";

const NS = 1_000_000;

/**
 * A stream only the deploy step creates is missing. The stage does not create it (an empty
 * log started over the real one would lose the books); it waits and says so.
 */
export class StreamMissingError extends Error {
  override readonly name = "StreamMissingError";
  readonly stream: string;
  constructor(stream: string, why = "it is created only by the deploy step") {
    super(`stream ${stream} is missing: ${why} (nats stream add --config deploy/streams/${stream}.json)`);
    this.stream = stream;
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/**
 * Creates the stream when it is missing (idempotent; a concurrent creator is fine) and
 * reports how an existing one differs from its definition. Never changes an existing
 * stream: its owner team does that deliberately. A stream that only the deploy step creates
 * (`createdAtRuntime: false`, LEDGER) is never created here, unless `opts.deploy` says this
 * call is the deploy step.
 * @returns the stream's info and the list of drifted settings.
 * @throws StreamMissingError for a missing deploy-only stream.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  def: StreamDefinition<string>,
  opts: { replicas: number; logger: Logger; deploy?: boolean },
): Promise<{ info: StreamInfo; created: boolean; drift: string[] }> {
  const want = toStreamConfig(def, { replicas: opts.replicas });
  let created = false;
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(def.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    if (!def.createdAtRuntime && !opts.deploy) throw new StreamMissingError(def.name);
    try {
      info = await jsm.streams.add(want as unknown as StreamConfig);
      created = true;
      opts.logger.info({ stream: def.name, replicas: opts.replicas }, "stream created");
    } catch (addErr) {
      // NATS permissions that leave stream creation to the deploy user (jetmesh-access
      // --no-runtime-creates): wait for the deploy step as for a deploy-only stream.
      if (isPermissionViolation(addErr))
        throw new StreamMissingError(def.name, "this service may not create it; the deploy step does");
      // Another process created it between our info and add.
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      info = await jsm.streams.info(def.name);
    }
  }
  const drift = streamDrift(info.config, want);
  if (drift.length)
    opts.logger.warn({ stream: def.name, drift }, "stream settings differ from its definition");
  return { info, created, drift };
}

/**
 * How a stream's server config differs from its declared config (`toStreamConfig`): one
 * `<setting>: server <value>, declared <value>` per difference, empty when none. Pure: the
 * start-up check and the reconciler's running check read the same list.
 */
export function streamDrift(have: StreamConfig, want: StreamConfigJson): string[] {
  const drift: string[] = [];
  const cmp = (name: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b))
      drift.push(`${name}: server ${JSON.stringify(a)}, declared ${JSON.stringify(b)}`);
  };
  cmp("subjects", [...(have.subjects ?? [])].sort(), [...want.subjects].sort());
  cmp("storage", have.storage, want.storage);
  cmp("retention", have.retention, want.retention);
  cmp("discard", have.discard, want.discard);
  cmp("duplicate_window", have.duplicate_window, want.duplicate_window);
  // The retention plan: an event stream that keeps messages for ever (or shorter than
  // planned) outgrows its disk or drops what a guard still protects.
  cmp("max_age", have.max_age ?? 0, want.max_age);
  cmp("num_replicas", have.num_replicas, want.num_replicas);
  cmp("deny_delete", have.deny_delete ?? false, want.deny_delete);
  cmp("deny_purge", have.deny_purge ?? false, want.deny_purge);
  return drift;
}

/**
 * How a durable consumer's server config differs from {@link consumerConfig} of its spec, in
 * the settings the runtime's redelivery horizon rests on: one `<setting>: server <value>,
 * declared <value>` per difference, empty when none. Pure.
 */
export function consumerDrift(have: ConsumerConfig, spec: ConsumerSpec): string[] {
  const want = consumerConfig(spec);
  const drift: string[] = [];
  const keys = [
    "ack_policy",
    "ack_wait",
    "backoff",
    "max_deliver",
    "max_ack_pending",
    "filter_subject",
  ] as const;
  for (const k of keys) {
    const a = JSON.stringify(have[k] ?? null);
    const b = JSON.stringify(want[k] ?? null);
    if (a !== b) drift.push(`${k}: server ${a}, declared ${b}`);
  }
  return drift;
}

/**
 * Whether the stream exists for this user: false when the server says it does not, or when
 * this user may not even ask (permissions generated before the stream was). Other errors
 * (no answer) are thrown.
 */
export async function streamPresent(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (isNotFound(err) || isPermissionViolation(err)) return false;
    throw err;
  }
}

/** A refusal by the server's permissions; nats.js wraps it in the request's error. */
function isPermissionViolation(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (e instanceof PermissionViolationError) return true;
  return false;
}

/**
 * The deploy step: creates every stream of the contracts that is missing, LEDGER included,
 * as `nats stream add --config deploy/streams/<NAME>.json` would, the runtime's positions
 * bucket, and the KV buckets named in `buckets` (history 1, file storage: a service's own,
 * such as the ledger's `ledger-snapshots`). The mesh runner, chaos and tests call it before
 * starting services; with NATS permissions generated by `jetmesh-access nats
 * --no-runtime-creates` it is the only way anything gets created. Existing streams and
 * buckets are left as they are. With `schemas`, it publishes the schema registry too (idempotent).
 * buckets are left as they are. `limits` shrinks streams for a test that must go through
 * their capacity quickly (test/e2e/long-run.test.ts); a deployment never passes it.
 * @returns the names of the streams it created.
 */
export async function provisionStreams(
  jsm: JetStreamManager,
  opts: {
    replicas: number;
    logger: Logger;
    buckets?: readonly string[];
    /** The schema registry's documents to publish (`registryDocuments`; `pnpm contracts:publish` does the same). */
    schemas?: ReadonlyMap<string, unknown>;
    limits?: Readonly<Record<string, StreamLimits>>;
    /** JETMESH_NAMESPACE: every stream and bucket is created under its name there (`namesFor`). */
    namespace?: string;
  },
): Promise<string[]> {
  const names = namesFor(opts.namespace);
  const created: string[] = [];
  for (const [name, def] of Object.entries(names.streams)) {
    const r = await ensureStream(jsm, withLimits(def, opts.limits?.[name]), { ...opts, deploy: true });
    if (r.created) created.push(def.name);
  }
  const js = jsm.jetstream();
  await openPositions(js, opts.replicas, opts.namespace);
  for (const bucket of opts.buckets ?? [])
    await new Kvm(js).create(names.bucket(bucket), {
      history: 1,
      replicas: opts.replicas,
      storage: StorageType.File,
    });
  if (opts.schemas) {
    const r = await publishSchemaRegistry(js, opts.schemas, {
      replicas: opts.replicas,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
    });
    opts.logger.info(
      { written: r.written.length, unchanged: r.unchanged.length },
      "schema registry published",
    );
  }
  return created;
}

export interface ConsumerSpec {
  readonly stream: string;
  readonly durable: string;
  /** Single filter (nats-server 2.9 has no multi-filter); undefined = whole stream. */
  readonly filterSubject?: string;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
}

/**
 * The durable consumer of one input of a stage, as the runtime creates it (runStage) and as
 * deploy/consumers/ declares it (scripts/gen-deploy.ts): named after the stage; nats-server 2.9
 * takes one filter subject, so it filters when the stage wants one type of a stream with
 * several, and otherwise takes the stream and skips other types in the processor.
 */
export function inputConsumerSpec(
  stage: string,
  input: { readonly stream: StreamName; readonly types: readonly string[] },
  s: { readonly ackWaitMs: number; readonly maxAckPending: number; readonly namespace?: string },
): ConsumerSpec {
  const names = namesFor(s.namespace);
  const streamDef = names.streams[input.stream];
  const wholeStream = streamDef.eventTypes.every((t) => input.types.includes(t));
  const filterSubject =
    !wholeStream && input.types.length === 1
      ? names.subject(subjectFilter(input.types[0] as EventType))
      : undefined;
  return {
    stream: streamDef.name,
    durable: stage,
    ...(filterSubject ? { filterSubject } : {}),
    ackWaitMs: s.ackWaitMs,
    maxAckPending: s.maxAckPending,
  };
}

/** The durable `<stage>-replay` on REPLAY (filter `replay.<stage>`) through which a stage takes its replays. */
export function replayConsumerSpec(
  stage: string,
  s: { readonly ackWaitMs: number; readonly maxAckPending: number; readonly namespace?: string },
): ConsumerSpec {
  const names = namesFor(s.namespace);
  return {
    stream: names.stream(StreamNames.Replay),
    durable: replayDurable(stage),
    filterSubject: names.subject(replaySubject(stage)),
    ackWaitMs: s.ackWaitMs,
    maxAckPending: s.maxAckPending,
  };
}

/**
 * The server ConsumerConfig of a {@link ConsumerSpec}: durable, pull, explicit acks, and
 * redelivery timing the runtime owns (packages/stage/SERVER-BEHAVIOUR.md, measured on
 * nats-server 2.9.10 and read from its source):
 * - no BackOff: with BackOff the server replaces ack_wait by backoff[0] and adds the current
 *   step's excess to every nak delay (a nak at delivery 2 came back at once); without it an
 *   ack timeout redelivers after exactly ack_wait and `nak(d)` after exactly d, so the
 *   runtime's exponential backoff with jitter is what the server does;
 * - max_deliver -1 (unlimited, refused by the server only together with BackOff): the server
 *   never drops a message after its last delivery, where a failed park would have lost it.
 *   The runtime counts deliveries itself (JETMESH_MAX_DELIVER) and parks a message in the DLQ
 *   once they are spent, retrying the park until the DLQ takes it.
 */
export function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> {
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: spec.ackWaitMs * NS,
    max_deliver: -1,
    max_ack_pending: spec.maxAckPending,
    max_waiting: 512,
    ...(spec.filterSubject ? { filter_subject: spec.filterSubject } : {}),
  };
}

/**
 * Where a durable consumer that is missing starts: `resume` (the default) from the position
 * recorded for it, or at the stream's start when the stream holds nothing (a fresh
 * deployment), and otherwise refuses; `all` from the first message (a new stage that must
 * see the whole stream), `new` from the next message stored.
 */
export type ConsumerStart = "resume" | "all" | "new";

/** What {@link ensureConsumer} needs to recreate a lost consumer where it was. */
export interface ConsumerStartOptions {
  readonly positions?: PositionStore;
  readonly start?: ConsumerStart;
  /**
   * With `resume`, where a consumer with no recorded position starts in a stream that holds
   * messages, instead of refusing: `all` for a stage's replay durable, whose every message is
   * an operator's request to that stage (a replay already processed finds its key done).
   */
  readonly unrecorded?: "all";
}

/**
 * The start of a consumer being created: its recorded position when there is one, else as
 * `start` says. Never the first message of a stream that holds messages unless told: a
 * consumer lost after the idempotency keys of what it had acknowledged expired would run
 * every one of them again.
 * @throws ConfigError naming JETMESH_CONSUMER_START when it cannot know where to start.
 */
async function startOf(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  o: ConsumerStartOptions,
  logger: Logger,
): Promise<Partial<ConsumerConfig>> {
  const start = o.start ?? "resume";
  if (start === "all") return { deliver_policy: DeliverPolicy.All };
  if (start === "new") return { deliver_policy: DeliverPolicy.New };
  const recorded = await o.positions?.read(spec.stream, spec.durable);
  if (recorded) {
    logger.warn(
      { stream: spec.stream, consumer: spec.durable, ack_floor: recorded.ackFloor, recorded_at: recorded.at },
      "consumer was missing; recreating it at its recorded position",
    );
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: recorded.ackFloor + 1 };
  }
  const state = (await jsm.streams.info(spec.stream)).state;
  if (state.messages === 0 || o.unrecorded === "all") return { deliver_policy: DeliverPolicy.All };
  throw new ConfigError([
    `consumer ${spec.durable} on stream ${spec.stream} is missing and no position is recorded for it, while ${spec.stream} holds ${state.messages} messages (seq ${state.first_seq}..${state.last_seq}): starting at the first would process them all again. Set JETMESH_CONSUMER_START=all (a new stage that must see every message) or new (only messages from now on)`,
  ]);
}

/**
 * Creates the durable consumer when missing, where {@link startOf} says. An existing
 * consumer whose settings differ is reported (returned and logged), not changed: a silent
 * update could shorten a redelivery horizon other instances rely on.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  logger: Logger,
  start: ConsumerStartOptions = {},
): Promise<{ created: boolean; drift: string[] }> {
  const want = consumerConfig(spec);
  try {
    const info = await jsm.consumers.info(spec.stream, spec.durable);
    const drift = consumerDrift(info.config, spec);
    if (drift.length)
      logger.warn(
        { stream: spec.stream, consumer: spec.durable, drift },
        "consumer settings drifted; not changed",
      );
    const position = positionOf(info);
    if (position !== undefined) await start.positions?.record(spec.stream, spec.durable, position);
    return { created: false, drift };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const from = await startOf(jsm, spec, start, logger);
  const created = await jsm.consumers.add(spec.stream, { ...want, ...from });
  // A position from the first moment on: a consumer lost before its first record resumes here.
  const position = positionOf(created);
  if (position !== undefined) await start.positions?.record(spec.stream, spec.durable, position);
  logger.info({ stream: spec.stream, consumer: spec.durable, ...from }, "consumer created");
  return { created: true, drift: [] };
}
