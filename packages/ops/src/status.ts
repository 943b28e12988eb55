import { type Names, namesFor } from "@jetmesh/contracts";
import type { ConsumerInfo, JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import { formatDuration, renderTable } from "./table.ts";

/** A stream's fill and position. Percentages are null when the limit is unset. */
export interface StreamStatus {
  readonly name: string;
  readonly messages: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly maxMsgs: number;
  readonly bytesPct: number | null;
  readonly msgsPct: number | null;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** A consumer's backlog. */
export interface ConsumerStatus {
  readonly stream: string;
  readonly name: string;
  /** Messages not yet delivered. */
  readonly pending: number;
  /** Delivered, not yet acked. */
  readonly ackPending: number;
  readonly redelivered: number;
  /** Age of the oldest unacked message (store time), null when none is pending or it cannot be read. */
  readonly oldestUnackedMs: number | null;
}

export interface Status {
  readonly streams: readonly StreamStatus[];
  readonly consumers: readonly ConsumerStatus[];
}

const pct = (n: number, max: number) => (max > 0 ? Math.round((n / max) * 10_000) / 100 : null);

function streamStatus(si: StreamInfo): StreamStatus {
  const { config: c, state: s } = si;
  return {
    name: c.name,
    messages: s.messages,
    bytes: s.bytes,
    maxBytes: c.max_bytes,
    maxMsgs: c.max_msgs,
    bytesPct: pct(s.bytes, c.max_bytes),
    msgsPct: pct(s.messages, c.max_msgs),
    firstSeq: s.first_seq,
    lastSeq: s.last_seq,
  };
}

/**
 * The store time of the consumer's oldest unacked message: with explicit acks every message
 * below the ack floor is acked, so the first message past it that the consumer's filter matches
 * is the oldest unacked one. One direct get per consumer with acks pending (the server has no
 * field for it); a consumer with several filters reads the first message past the floor on any subject.
 */
async function oldestUnackedMs(jsm: JetStreamManager, si: StreamInfo, ci: ConsumerInfo, now: number) {
  if (ci.num_ack_pending === 0) return null;
  const seq = ci.ack_floor.stream_seq + 1;
  const filters = ci.config.filter_subjects ?? (ci.config.filter_subject ? [ci.config.filter_subject] : []);
  try {
    const m =
      si.config.allow_direct && filters.length === 1 && filters[0]
        ? await jsm.direct.getMessage(si.config.name, { seq, next_by_subj: filters[0] })
        : await jsm.streams.getMessage(si.config.name, { seq });
    return m ? Math.max(0, now - m.time.getTime()) : null;
  } catch {
    // Deleted or aged out between the info and the get: not worth failing the whole status for.
    return null;
  }
}

/** Every stream of the server and every consumer of each, read once. */
export async function readStatus(
  jsm: JetStreamManager,
  now = Date.now(),
  names: Names = namesFor(),
): Promise<Status> {
  const streams: StreamStatus[] = [];
  const consumers: ConsumerStatus[] = [];
  const infos: StreamInfo[] = [];
  // The namespace's streams and buckets (KV_<bucket>) only: another developer's are not ours.
  const ours = (name: string) => names.streamOf(name.replace(/^(KV|OBJ)_/, "")) !== undefined;
  for await (const si of jsm.streams.list()) if (ours(si.config.name)) infos.push(si);
  infos.sort((a, b) => a.config.name.localeCompare(b.config.name));
  for (const si of infos) {
    streams.push(streamStatus(si));
    const cis: ConsumerInfo[] = [];
    for await (const ci of jsm.consumers.list(si.config.name)) cis.push(ci);
    cis.sort((a, b) => a.name.localeCompare(b.name));
    for (const ci of cis)
      consumers.push({
        stream: si.config.name,
        name: ci.name,
        pending: ci.num_pending,
        ackPending: ci.num_ack_pending,
        redelivered: ci.num_redelivered,
        oldestUnackedMs: await oldestUnackedMs(jsm, si, ci, now),
      });
  }
  return { streams, consumers };
}

const limit = (v: number | null) => (v === null ? "-" : `${v}%`);

/** Two tables: streams, then consumers. */
export function renderStatus(s: Status): string {
  const streams = renderTable(
    ["STREAM", "MESSAGES", "BYTES", "%MAX_BYTES", "%MAX_MSGS", "FIRST", "LAST"],
    s.streams.map((x) => [
      x.name,
      String(x.messages),
      String(x.bytes),
      limit(x.bytesPct),
      limit(x.msgsPct),
      String(x.firstSeq),
      String(x.lastSeq),
    ]),
  );
  const consumers = s.consumers.length
    ? renderTable(
        ["STREAM", "CONSUMER", "PENDING", "ACK_PENDING", "REDELIVERED", "OLDEST_UNACKED"],
        s.consumers.map((c) => [
          c.stream,
          c.name,
          String(c.pending),
          String(c.ackPending),
          String(c.redelivered),
          c.oldestUnackedMs === null ? "-" : formatDuration(c.oldestUnackedMs),
        ]),
      )
    : "no consumers";
  return `${streams}\n\n${consumers}`;
}
