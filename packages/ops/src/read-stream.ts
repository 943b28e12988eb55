import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type OrderedConsumerOptions,
  type StoredMsg,
  type StreamInfo,
} from "@nats-io/jetstream";
import { TimeoutError } from "@nats-io/transport-node";
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

  let out: StoredMessage[];
  try {
    out = await consumeRange(js, stream, opts, lastSeq, range.idleMs ?? 3_000);
  } catch (err) {
    // On a cluster with a node lost, nats-server (2.9) may assign the ordered consumer to that
    // node, and creating it times out, again and again: read message by message from the
    // stream's leader instead (slower, and always answered while the stream has a quorum).
    if (!(err instanceof TimeoutError)) throw err;
    out = await getRange(jsm, stream, Math.max(fromSeq ?? firstSeq, firstSeq), lastSeq, range);
  }
  return range.last !== undefined ? out.slice(-range.last) : out;
}

/** Whether `subject` matches the NATS filter `filter` (`*` one token, `>` the rest). */
function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

/** A message got from the stream, as the readers use it. */
export function storedMessageOf(stream: string, m: StoredMsg): StoredMessage {
  const headers: Record<string, string[]> = {};
  if (m.header) for (const k of m.header.keys()) headers[k] = m.header.values(k);
  return { stream, seq: m.seq, subject: m.subject, timestampMs: m.time.getTime(), headers, data: m.data };
}

/** The messages `fromSeq` through `lastSeq` one get each (deleted ones skipped), filtered as `range` says. */
async function getRange(
  jsm: JetStreamManager,
  stream: string,
  fromSeq: number,
  lastSeq: number,
  range: ReadRange,
): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for (let seq = fromSeq; seq <= lastSeq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (!m) continue;
    if (range.subject && !subjectMatches(range.subject, m.subject)) continue;
    if (range.since && m.time.getTime() < range.since.getTime()) continue;
    out.push(storedMessageOf(stream, m));
  }
  return out;
}

/** One ordered consumer from `opts` through `lastSeq`; every wait bounded by `idleMs`. */
async function consumeRange(
  js: JetStreamClient,
  stream: string,
  opts: Partial<OrderedConsumerOptions>,
  lastSeq: number,
  idleMs: number,
): Promise<StoredMessage[]> {
  const consumer = await js.consumers.get(stream, opts);
  const iter = await consumer.consume({ max_messages: 256 });
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
  return out;
}

/** The first value of a header, matched without regard to case (NATS header names are). */
export function headerOf(msg: StoredMessage, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(msg.headers)) if (k.toLowerCase() === want) return v[0];
  return undefined;
}
