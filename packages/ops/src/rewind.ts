import { type Names, namesFor } from "@jetmesh/contracts";
import { type ConsumerPosition, POSITIONS_BUCKET } from "@jetmesh/stage/internal";
import {
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";
import { streamInfo } from "./read-stream.ts";

/**
 * `jetmesh rewind`: moves a stage's durable consumer back so that the stage reprocesses its
 * input from a sequence or a time, the way the runtime itself recreates a lost consumer
 * (packages/stage/src/provision.ts `ensureConsumer`): the durable is deleted and created again
 * with the same config but `deliver_policy: by_start_sequence` at the first sequence to
 * reprocess, and the stage's recorded position (`jetmesh-positions`, `<STREAM>.<durable>`) is
 * set to the sequence before it, so a consumer lost later resumes there too. A running stage
 * finds its consumer gone, pulls again from the recreated one (consume-loop.ts) and processes
 * the messages again, each under its idempotency key `{stage}:{eventId}`: a message whose key
 * is done is acked without running the handler or publishing (process-message.ts).
 */

/** Where a rewind starts: a stream sequence or a store time. */
export type RewindFrom = { readonly seq: number } | { readonly time: Date };

/** What a rewind will do, printed before it is done. */
export interface RewindPlan {
  readonly stage: string;
  readonly stream: string;
  readonly consumer: string;
  /** The consumer's filter subject ("" = the whole stream). */
  readonly filter: string;
  /** The first stream sequence delivered again (null: nothing to reprocess). */
  readonly fromSeq: number | null;
  readonly lastSeq: number;
  /** Messages the consumer will deliver again (matching its filter, from fromSeq on). */
  readonly messages: number;
  /** With --partition: how many of them are on that partition. */
  readonly partition?: { readonly id: string; readonly messages: number };
  /** Where the consumer stands now. */
  readonly ackFloor: number;
  readonly delivered: number;
  readonly numPending: number;
  readonly numAckPending: number;
}

const NOT_FOUND = new Set([10014, 10059]);
const isNotFound = (err: unknown) => err instanceof JetStreamApiError && NOT_FOUND.has(err.code);

/**
 * The durable consumer named after the stage (the durable name is the service name), on
 * `stream` when given, else on whichever stream holds one.
 * @throws OpsError when there is none, or several and no `stream` says which.
 */
export async function findStageConsumer(
  jsm: JetStreamManager,
  stage: string,
  given?: string,
  names: Names = namesFor(),
): Promise<ConsumerInfo> {
  if (given) {
    // A contract name (`RISK`) or the server's (`alice_RISK`).
    const stream = names.streamOf(given) === undefined ? names.stream(given) : given;
    await streamInfo(jsm, stream);
    try {
      return await jsm.consumers.info(stream, stage);
    } catch (err) {
      if (isNotFound(err)) throw new OpsError(`no consumer ${stage} on stream ${stream}`, { cause: err });
      throw err;
    }
  }
  const found: ConsumerInfo[] = [];
  for await (const name of jsm.streams.names()) {
    if (names.streamOf(name) === undefined) continue; // another namespace's
    try {
      found.push(await jsm.consumers.info(name, stage));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (found.length === 0) throw new OpsError(`no durable consumer named ${stage} on any stream`);
  if (found.length > 1)
    throw new OpsError(
      `${stage} consumes several streams (${found.map((c) => c.stream_name).join(", ")}): say which with --stream`,
      { exitCode: ExitCodes.Usage },
    );
  return found[0] as ConsumerInfo;
}

/** The first sequence of `stream` matching `filter` at or after `from`, with the count from there; null when none. */
async function firstFrom(
  js: JetStreamClient,
  stream: string,
  filter: string,
  from: RewindFrom,
): Promise<{ seq: number; count: number } | null> {
  const consumer = await js.consumers.get(stream, {
    ...(filter ? { filter_subjects: filter } : {}),
    ...("seq" in from
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from.seq }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: from.time.toISOString() }),
  });
  const m = await consumer.next({ expires: 2_000 });
  if (!m) return null;
  return { seq: m.seq, count: m.info.pending + 1 };
}

/**
 * Works out the rewind without changing anything.
 * @throws OpsError when the stage has no consumer, or the stream has nothing from there.
 */
export async function planRewind(
  js: JetStreamClient,
  jsm: JetStreamManager,
  o: { stage: string; stream?: string; from: RewindFrom; partition?: string; names?: Names },
): Promise<RewindPlan> {
  const names = o.names ?? namesFor();
  const ci = await findStageConsumer(jsm, o.stage, o.stream, names);
  const stream = ci.stream_name;
  const filter = ci.config.filter_subject ?? "";
  const info = await streamInfo(jsm, stream);
  const base = {
    stage: o.stage,
    stream,
    consumer: ci.name,
    filter,
    lastSeq: info.state.last_seq,
    ackFloor: ci.ack_floor.stream_seq,
    delivered: ci.delivered.stream_seq,
    numPending: ci.num_pending,
    numAckPending: ci.num_ack_pending,
  };
  const from: RewindFrom = "seq" in o.from ? { seq: Math.max(o.from.seq, info.state.first_seq) } : o.from;
  if ("seq" in from && from.seq > info.state.last_seq) return { ...base, fromSeq: null, messages: 0 };
  // With a partition the start is that partition's first message from there (subjects end in
  // `.<partition>`); the durable has one position, so every partition's messages from that
  // sequence on are delivered again, and the other partitions' find their keys done.
  let startFrom = from;
  let partition: RewindPlan["partition"];
  if (o.partition !== undefined) {
    // One filter per subject of the stream when the consumer has none (nats-server 2.9 takes
    // one filter per consumer, and a subset of the stream's subjects only).
    const subjects = filter ? [filter] : (info.config.subjects ?? []);
    let seq: number | undefined;
    let count = 0;
    for (const subject of subjects) {
      const narrowed = names.subject(partitionFilter(names.local(subject), o.partition));
      const first = await firstFrom(js, stream, narrowed, from);
      if (!first) continue;
      seq = seq === undefined ? first.seq : Math.min(seq, first.seq);
      count += first.count;
    }
    partition = { id: o.partition, messages: count };
    if (seq === undefined) return { ...base, fromSeq: null, messages: 0, partition };
    startFrom = { seq };
  }
  const first = await firstFrom(js, stream, filter, startFrom);
  if (!first) return { ...base, fromSeq: null, messages: 0, ...(partition ? { partition } : {}) };
  return { ...base, fromSeq: first.seq, messages: first.count, ...(partition ? { partition } : {}) };
}

/** The consumer's filter narrowed to one partition (the last token of `<domain>.<event>.<partition>`). */
function partitionFilter(filter: string, partition: string): string {
  if (!filter || filter === ">") return `*.*.${partition}`;
  const tokens = filter.split(".");
  if (tokens.at(-1) === ">")
    return [...tokens.slice(0, -1), ...Array(Math.max(0, 3 - tokens.length)).fill("*"), partition].join(".");
  if (tokens.length === 3) return [...tokens.slice(0, 2), partition].join(".");
  return filter;
}

export function renderPlan(p: RewindPlan, o: { dryRun: boolean; keyTtl?: string }): string {
  const lines = [
    `rewind plan for stage ${p.stage}${o.dryRun ? " (dry run: nothing changes)" : ""}:`,
    `  consumer   ${p.consumer} on stream ${p.stream}${p.filter ? ` (filter ${p.filter})` : ""}`,
    `  now        ack floor ${p.ackFloor}, delivered up to ${p.delivered}, ${p.numPending} pending, ${p.numAckPending} awaiting ack`,
  ];
  if (p.fromSeq === null) {
    lines.push(
      `  from       nothing: ${p.stream} holds no matching message from there (last seq ${p.lastSeq})`,
    );
    return lines.join("\n");
  }
  lines.push(
    `  from       seq ${p.fromSeq} through ${p.lastSeq}: ${p.messages} message(s) delivered again${
      p.partition
        ? ` (${p.partition.messages} on partition ${p.partition.id}; the others find their keys done)`
        : ""
    }`,
    `  how        delete ${p.consumer} and create it again with the same config, deliver_policy by_start_sequence ${p.fromSeq}; record position ${p.fromSeq - 1} in ${POSITIONS_BUCKET}`,
    `  guarded    every message runs under its idempotency key ${p.stage}:<eventId>: one whose key is done is acked without its handler, effect or outputs; one whose key expired${o.keyTtl ? ` (older than ${o.keyTtl})` : ""} runs again, its effects keyed by its event id and its outputs' ids derived from it`,
  );
  return lines.join("\n");
}

/** Fields the server reports in a consumer's config that a create must not carry over as they were. */
function recreateConfig(c: ConsumerConfig, fromSeq: number): Partial<ConsumerConfig> {
  const { opt_start_time: _t, opt_start_seq: _s, deliver_policy: _d, ...rest } = c;
  return { ...rest, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq };
}

/**
 * Moves the consumer back as planned: delete, create at `fromSeq` with the config it had
 * (tried again when a running stage recreated it in between, at its recorded position), then
 * the recorded position. @returns the consumer as created.
 */
export async function applyRewind(
  js: JetStreamClient,
  jsm: JetStreamManager,
  plan: RewindPlan,
  names: Names = namesFor(),
): Promise<ConsumerInfo> {
  if (plan.fromSeq === null) throw new OpsError("nothing to rewind");
  const fromSeq = plan.fromSeq;
  const before = await jsm.consumers.info(plan.stream, plan.consumer);
  const want = recreateConfig(before.config, fromSeq);
  let created: ConsumerInfo | undefined;
  for (let attempt = 1; attempt <= 5 && !created; attempt++) {
    try {
      await jsm.consumers.delete(plan.stream, plan.consumer);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      created = await jsm.consumers.add(plan.stream, want);
    } catch (err) {
      // The stage recreated it between the delete and the add (at its recorded position): again.
      if (!(err instanceof JetStreamApiError) || attempt === 5)
        throw new OpsError(`could not create ${plan.consumer} again on ${plan.stream}: ${oneLine(err)}`, {
          cause: err,
        });
    }
  }
  const kv = await new Kvm(js).open(names.bucket(POSITIONS_BUCKET));
  await kv.put(
    `${plan.stream}.${plan.consumer}`,
    JSON.stringify({ ackFloor: fromSeq - 1, at: new Date().toISOString() } satisfies ConsumerPosition),
  );
  return created as ConsumerInfo;
}
