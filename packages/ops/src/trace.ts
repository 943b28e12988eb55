import { Headers, type Names, namesFor, PipelineStreams, StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { decodeStored } from "./decode.ts";
import { OpsError } from "./errors.ts";
import { headerOf, readStream, type StoredMessage } from "./read-stream.ts";
import { formatDuration, renderTable } from "./table.ts";

/** One event of a transfer's lineage, as stored. */
export interface TraceHop {
  readonly type: string;
  readonly stream: string;
  readonly seq: number;
  readonly subject: string;
  /** Store time. */
  readonly time: string;
  /** The envelope's occurredAt. */
  readonly occurredAt: string | null;
  /** Store time minus the previous hop's; null on the first. */
  readonly delayMs: number | null;
  readonly eventId: string | null;
  readonly causationId: string | null;
  /** The trace id of the `traceparent` header, when there is one. */
  readonly traceId: string | null;
}

/** A DLQ message that belongs to the transfer. */
export interface TraceDeadLetter {
  readonly seq: number;
  readonly subject: string;
  readonly time: string;
  readonly type: string | null;
  readonly reason: string | null;
  readonly originStream: string | null;
  readonly originSeq: number | null;
  readonly traceId: string | null;
}

export interface Trace {
  readonly transferId: string;
  readonly hops: readonly TraceHop[];
  readonly deadLetters: readonly TraceDeadLetter[];
  /** Streams that do not exist on the server (skipped). */
  readonly missingStreams: readonly string[];
}

/** The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`). */
export function traceIdOf(traceparent: string | undefined): string | null {
  const id = traceparent?.split("-")[1];
  return id && /^[0-9a-f]{32}$/.test(id) ? id : null;
}

function belongs(msg: StoredMessage, transferId: string): ReturnType<typeof decodeStored> | null {
  const body = decodeStored(msg);
  const value = (body.valid ? body.event : body.value) as {
    correlationId?: unknown;
    data?: { transferId?: unknown };
  } | null;
  const hit =
    headerOf(msg, Headers.CorrelationId) === transferId ||
    value?.correlationId === transferId ||
    value?.data?.transferId === transferId;
  return hit ? body : null;
}

/**
 * Every stored event of one transfer, read from the pipeline's streams and the DLQ
 * themselves (not from any stage's state), ordered by store time. Reads each stream whole:
 * fine for an operator's question, not for a loop.
 * @throws OpsError when no stream holds anything of the transfer.
 */
export async function readTrace(
  js: JetStreamClient,
  jsm: JetStreamManager,
  transferId: string,
  names: Names = namesFor(),
): Promise<Trace> {
  const matches: Array<{ msg: StoredMessage; body: ReturnType<typeof decodeStored> }> = [];
  const missingStreams: string[] = [];
  for (const stream of [...PipelineStreams, StreamNames.Dlq]) {
    let msgs: StoredMessage[];
    try {
      msgs = await readStream(js, jsm, names.stream(stream));
    } catch (err) {
      if (err instanceof OpsError) {
        missingStreams.push(stream);
        continue;
      }
      throw err;
    }
    for (const msg of msgs) {
      const body = belongs(msg, transferId);
      if (body) matches.push({ msg, body });
    }
  }
  matches.sort((a, b) => a.msg.timestampMs - b.msg.timestampMs);
  const hops: TraceHop[] = [];
  const deadLetters: TraceDeadLetter[] = [];
  let prev: number | null = null;
  for (const { msg, body } of matches) {
    const traceId = traceIdOf(headerOf(msg, Headers.TraceParent));
    if (msg.stream === names.stream(StreamNames.Dlq)) {
      const originSeq = headerOf(msg, Headers.DlqSequence);
      deadLetters.push({
        seq: msg.seq,
        subject: msg.subject,
        time: new Date(msg.timestampMs).toISOString(),
        type: body.valid ? body.event.type : (headerOf(msg, Headers.EventType) ?? null),
        reason: headerOf(msg, Headers.DlqReason) ?? null,
        originStream: headerOf(msg, Headers.DlqStream) ?? null,
        originSeq: originSeq === undefined ? null : Number(originSeq),
        traceId,
      });
      continue;
    }
    hops.push({
      type: body.valid ? body.event.type : (headerOf(msg, Headers.EventType) ?? "?"),
      stream: msg.stream,
      seq: msg.seq,
      subject: msg.subject,
      time: new Date(msg.timestampMs).toISOString(),
      occurredAt: body.valid ? body.event.occurredAt : null,
      delayMs: prev === null ? null : msg.timestampMs - prev,
      eventId: body.valid ? body.event.eventId : null,
      causationId: body.valid ? body.event.causationId : null,
      traceId,
    });
    prev = msg.timestampMs;
  }
  if (hops.length === 0 && deadLetters.length === 0)
    throw new OpsError(
      `no events of transfer ${transferId} in ${[...PipelineStreams, StreamNames.Dlq].join(", ")}`,
    );
  return { transferId, hops, deadLetters, missingStreams };
}

/** The hops as a table, then one line per dead letter. */
export function renderTrace(t: Trace): string {
  const out = [`transfer ${t.transferId}: ${t.hops.length} events, ${t.deadLetters.length} dead letters`];
  if (t.hops.length)
    out.push(
      renderTable(
        ["TIME", "DELAY", "STREAM", "SEQ", "TYPE", "TRACE_ID"],
        t.hops.map((h) => [
          h.time,
          h.delayMs === null ? "-" : `+${formatDuration(h.delayMs)}`,
          h.stream,
          String(h.seq),
          h.type,
          h.traceId ?? "-",
        ]),
      ),
    );
  for (const d of t.deadLetters)
    out.push(
      `DLQ #${d.seq} ${d.subject} ${d.time} ${d.type ?? "?"} from ${d.originStream ?? "?"} #${d.originSeq ?? "?"}: ${d.reason ?? "no reason"}`,
    );
  if (t.missingStreams.length) out.push(`missing streams (skipped): ${t.missingStreams.join(", ")}`);
  return out.join("\n");
}
