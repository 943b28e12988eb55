import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type OrderedConsumerOptions,
  type StreamInfo,
} from "@nats-io/jetstream";
import { OpsError } from "./errors.ts";

/** One stored message: where it sits, its headers and its raw body. */
export interface StoredMessage {
  readonly stream: string;
  readonly seq: number;
  readonly subject: string;
  /** The stream's store time, ms since the epoch. */
  readonly timestampMs: number;
  /** Header values by name as written (every value of each). */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  readonly data: Uint8Array;
}

/** Which part of a stream to read; every field optional. */
export interface ReadRange {
  /** Subject filter (wildcards allowed). */
  readonly subject?: string;
  /** First stream sequence to read. Excludes `since`. */
  readonly fromSeq?: number;
  /** Read messages stored at or after this time. Excludes `fromSeq`. */
  readonly since?: Date;
  /** Keep only the last N of the matching messages. */
  readonly last?: number;
  /** Give up waiting for the next message after this long (default 3 s). */
  readonly idleMs?: number;
}

const NOT_FOUND = new Set([10059, 10014]);

/** Stream info, or an OpsError naming the stream when it does not exist. */
export async function streamInfo(
  jsm: JetStreamManager,
  stream: string,
  opts?: { subjects_filter?: string },
): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(stream, opts);
  } catch (err) {
    if (err instanceof JetStreamApiError && NOT_FOUND.has(err.code))
      throw new OpsError(`no stream named ${stream}`, { cause: err });
    throw err;
  }
}

/**
 * Reads a stream's messages in sequence order, from where `range` says through the last
 * message stored when the read began (later messages are not waited for), with an ordered
 * consumer: an ephemeral consumer the server removes by itself, so nothing durable is left
 * behind. Every wait is bounded by `idleMs`.
 * @throws OpsError when the stream does not exist; JetStream errors otherwise.
 */
export async function readStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  range: ReadRange = {},
): Promise<StoredMessage[]> {
  const info = await streamInfo(jsm, stream, range.subject ? { subjects_filter: range.subject } : undefined);
  const { first_seq: firstSeq, last_seq: lastSeq, messages } = info.state;
  if (messages === 0) return [];
  if (range.subject && Object.keys(info.state.subjects ?? {}).length === 0) return [];
  if (range.since && Date.parse(info.state.last_ts) < range.since.getTime()) return [];
  let fromSeq = range.fromSeq;
  // Without a filter the last N are the last N sequences (give or take deleted ones): start there
  // instead of reading the whole stream.
  if (range.last !== undefined && !range.subject && fromSeq === undefined && !range.since)
    fromSeq = Math.max(firstSeq, lastSeq - range.last + 1);
  if (fromSeq !== undefined && fromSeq > lastSeq) return [];

  // One filter as a string: the client sends it as `filter_subject`, which nats-server 2.9 takes; an
  // array becomes `filter_subjects`, which needs 2.10 (the client refuses it on 2.9).
  const opts: Partial<OrderedConsumerOptions> = range.subject ? { filter_subjects: range.subject } : {};
  if (fromSeq !== undefined)
    Object.assign(opts, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(fromSeq, firstSeq),
    });
  else if (range.since)
    Object.assign(opts, {
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: range.since.toISOString(),
    });
  else opts.deliver_policy = DeliverPolicy.All;

  const consumer = await js.consumers.get(stream, opts);
  const iter = await consumer.consume({ max_messages: 256 });
  const idleMs = range.idleMs ?? 3_000;
  let idle = setTimeout(() => void iter.close(), idleMs);
  const out: StoredMessage[] = [];
  try {
    for await (const m of iter) {
      clearTimeout(idle);
      if (m.seq > lastSeq) break;
      const headers: Record<string, string[]> = {};
      if (m.headers) for (const k of m.headers.keys()) headers[k] = m.headers.values(k);
      out.push({
        stream,
        seq: m.seq,
        subject: m.subject,
        timestampMs: Number(m.timestampNanos / 1_000_000n),
        headers,
        data: m.data,
      });
      if (m.seq >= lastSeq || m.info.pending === 0) break;
      idle = setTimeout(() => void iter.close(), idleMs);
    }
  } finally {
    clearTimeout(idle);
    await iter.close();
  }
  return range.last !== undefined ? out.slice(-range.last) : out;
}

/** The first value of a header, matched without regard to case (NATS header names are). */
export function headerOf(msg: StoredMessage, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(msg.headers)) if (k.toLowerCase() === want) return v[0];
  return undefined;
}
