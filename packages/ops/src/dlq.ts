import { Headers, type Names, namesFor, StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { decodeStored } from "./decode.ts";
import { OpsError } from "./errors.ts";
import { headerOf, readStream, type StoredMessage, storedMessageOf, streamInfo } from "./read-stream.ts";
import { formatDuration, renderTable } from "./table.ts";

/** One message a stage parked on `dlq.<stage>`, read from its Jetmesh-Dlq-* headers and body. */
export interface DlqEntry {
  /** Its sequence in the DLQ stream: how operators name it. */
  readonly dlqSeq: number;
  readonly subject: string;
  /** When the DLQ stored it. */
  readonly time: string;
  readonly ageMs: number;
  readonly stage: string | null;
  readonly originStream: string | null;
  readonly originSubject: string | null;
  readonly originSeq: number | null;
  readonly type: string | null;
  readonly eventId: string | null;
  readonly transferId: string | null;
  readonly reason: string | null;
  readonly errorClass: string | null;
  readonly deliveries: number | null;
}

/** `jetmesh dlq ls`: the entries that matched, and how many per stage and per reason. */
export interface DlqListing {
  readonly total: number;
  readonly entries: readonly DlqEntry[];
  readonly byStage: Readonly<Record<string, number>>;
  readonly byReason: Readonly<Record<string, number>>;
}

/** Which parked messages a command is about; the fields combine (all must match). */
export interface DlqFilter {
  readonly stage?: string;
  /** Case-insensitive substring of Jetmesh-Dlq-Reason. */
  readonly reason?: string;
}

const intOrNull = (v: string | undefined): number | null => {
  const n = Number(v);
  return v !== undefined && Number.isSafeInteger(n) ? n : null;
};

/** A stored DLQ message as an entry; never throws (a body that does not decode leaves fields null). */
export function entryOf(msg: StoredMessage, nowMs = Date.now()): DlqEntry {
  const body = decodeStored(msg);
  const value = (body.valid ? body.event : body.value) as {
    type?: unknown;
    eventId?: unknown;
    correlationId?: unknown;
    data?: { transferId?: unknown };
  } | null;
  const str = (v: unknown): string | null => (typeof v === "string" && v.length > 0 ? v : null);
  return {
    dlqSeq: msg.seq,
    subject: msg.subject,
    time: new Date(msg.timestampMs).toISOString(),
    ageMs: Math.max(0, nowMs - msg.timestampMs),
    stage: headerOf(msg, Headers.DlqStage) ?? (msg.subject.startsWith("dlq.") ? msg.subject.slice(4) : null),
    originStream: headerOf(msg, Headers.DlqStream) ?? null,
    originSubject: headerOf(msg, Headers.DlqSubject) ?? null,
    originSeq: intOrNull(headerOf(msg, Headers.DlqSequence)),
    type: str(value?.type) ?? headerOf(msg, Headers.EventType) ?? null,
    eventId: str(value?.eventId) ?? headerOf(msg, Headers.EventId) ?? null,
    transferId:
      str(value?.data?.transferId) ??
      str(value?.correlationId) ??
      headerOf(msg, Headers.CorrelationId) ??
      null,
    reason: headerOf(msg, Headers.DlqReason) ?? null,
    errorClass: headerOf(msg, Headers.DlqErrorClass) ?? null,
    deliveries: intOrNull(headerOf(msg, Headers.DlqDeliveries)),
  };
}

/** True when the entry matches every field of the filter. */
export function matches(e: DlqEntry, f: DlqFilter): boolean {
  if (f.stage !== undefined && e.stage !== f.stage) return false;
  if (f.reason !== undefined && !(e.reason ?? "").toLowerCase().includes(f.reason.toLowerCase()))
    return false;
  return true;
}

/**
 * Every parked message in the DLQ stream (as stored when the read began) with its raw
 * message, matching `filter`.
 * @throws OpsError when there is no DLQ stream.
 */
export async function readParked(
  js: JetStreamClient,
  jsm: JetStreamManager,
  filter: DlqFilter = {},
  names: Names = namesFor(),
): Promise<Array<{ entry: DlqEntry; msg: StoredMessage }>> {
  // The whole stream, filtered here: an ordered consumer's filter_subjects needs nats-server
  // 2.10, and the DLQ is small enough to read at an operator's request.
  const msgs = await readStream(js, jsm, names.stream(StreamNames.Dlq));
  const now = Date.now();
  return msgs.map((msg) => ({ entry: entryOf(msg, now), msg })).filter(({ entry }) => matches(entry, filter));
}

/** The listing of `jetmesh dlq ls`. */
export async function listParked(
  js: JetStreamClient,
  jsm: JetStreamManager,
  filter: DlqFilter = {},
  names: Names = namesFor(),
): Promise<DlqListing> {
  const entries = (await readParked(js, jsm, filter, names)).map((p) => p.entry);
  const byStage: Record<string, number> = {};
  const byReason: Record<string, number> = {};
  for (const e of entries) {
    const s = e.stage ?? "?";
    byStage[s] = (byStage[s] ?? 0) + 1;
    const r = e.reason ?? "no reason";
    byReason[r] = (byReason[r] ?? 0) + 1;
  }
  return { total: entries.length, entries, byStage, byReason };
}

const storedOf = (m: StoredMsg, stream: string): StoredMessage => storedMessageOf(stream, m);

/**
 * One DLQ message by sequence.
 * @throws OpsError (exit 1) when the DLQ has no message at `seq` (never parked, replayed or
 *   dropped since), or there is no DLQ stream.
 */
export async function getParked(
  jsm: JetStreamManager,
  seq: number,
  names: Names = namesFor(),
): Promise<StoredMessage> {
  const dlq = names.stream(StreamNames.Dlq);
  await streamInfo(jsm, dlq);
  const m = await jsm.streams.getMessage(dlq, { seq });
  if (!m) throw new OpsError(`no DLQ entry #${seq} (never parked, or replayed or dropped since)`);
  return storedOf(m, dlq);
}

const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The entries as a table, then the counts per stage and per reason. */
export function renderListing(l: DlqListing): string {
  if (l.total === 0) return "no parked messages";
  const table = renderTable(
    ["DLQ_SEQ", "STAGE", "ORIGIN", "TYPE", "EVENT_ID", "TRANSFER_ID", "ERROR", "DELIVERIES", "AGE", "REASON"],
    l.entries.map((e) => [
      String(e.dlqSeq),
      e.stage ?? "?",
      `${e.originStream ?? "?"}#${e.originSeq ?? "?"}`,
      e.type ?? "?",
      e.eventId ?? "-",
      e.transferId ?? "-",
      e.errorClass ?? "-",
      e.deliveries === null ? "-" : String(e.deliveries),
      formatDuration(e.ageMs),
      cut(e.reason ?? "no reason", 80),
    ]),
  );
  const counts = (title: string, c: Readonly<Record<string, number>>) =>
    `${title}: ${Object.entries(c)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([k, n]) => `${n} ${cut(k, 80)}`)
      .join(", ")}`;
  return [
    table,
    "",
    `${l.total} parked`,
    counts("by stage", l.byStage),
    counts("by reason", l.byReason),
  ].join("\n");
}
