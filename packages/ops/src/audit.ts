import { randomUUID } from "node:crypto";
import { auditSubject, type Names, namesFor, StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { OpsError, oneLine } from "./errors.ts";
import { readStream, streamInfo } from "./read-stream.ts";
import { renderTable } from "./table.ts";

/** What an operator's action did to one DLQ entry. */
export interface AuditedEntry {
  readonly dlqSeq: number;
  readonly stage: string | null;
  readonly originStream: string | null;
  readonly originSeq: number | null;
  readonly eventId: string | null;
  readonly transferId: string | null;
  /** e.g. `replayed`, `held`, `dropped`, `failed`, `would-replay`. */
  readonly outcome: string;
  readonly detail: string;
}

/** One event on AUDIT (`audit.<action>`), JSON: who did what, when. */
export type AnyAuditEvent = AuditEvent | RepairAuditEvent | RewindAuditEvent;

/** `rebuild --repair`: the live ledger projection brought to the fold of LEDGER. */
export interface RepairAuditEvent {
  readonly id: string;
  readonly action: "rebuild-repair";
  readonly actor: string;
  readonly at: string;
  readonly dryRun: false;
  readonly stream: string;
  /** `in-sync` (nothing written) or `repaired`. */
  readonly outcome: string;
  readonly foldSeq: number;
  readonly appliedSeqBefore: number;
  readonly restoredSeq: number | null;
  /** The differences found before the repair (at most 100), and how many there were. */
  readonly differences: readonly string[];
  readonly differenceCount: number;
  readonly remaining: readonly string[];
}

/** `rewind`: a stage's durable consumer moved back. */
export interface RewindAuditEvent {
  readonly id: string;
  readonly action: "rewind";
  readonly actor: string;
  readonly at: string;
  readonly dryRun: boolean;
  readonly stage: string;
  readonly stream: string;
  readonly consumer: string;
  readonly fromSeq: number;
  readonly filter: readonly string[];
  readonly messages: number;
  readonly previousAckFloor: number;
}

/** A DLQ action on AUDIT: which DLQ entries, chosen how, and what became of each. */
export interface AuditEvent {
  readonly id: string;
  readonly action: "replay" | "drop";
  readonly actor: string;
  readonly at: string;
  readonly dryRun: boolean;
  /** How the entries were chosen, as given on the command line. */
  readonly selection: {
    readonly seqs?: readonly number[];
    readonly stage?: string;
    readonly reason?: string;
    readonly all?: boolean;
  };
  readonly seqs: readonly number[];
  readonly entries: readonly AuditedEntry[];
}

/** Omit over each member of a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Who acts: `--actor`, else `$USER`, else `unknown`. */
export function actorOf(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag?.trim() || env.USER?.trim() || "unknown";
}

/**
 * Fails before any action when the AUDIT stream is missing: an action that could not be
 * recorded is not taken.
 * @throws OpsError naming the deploy file that creates it.
 */
export async function requireAudit(jsm: JetStreamManager, names: Names = namesFor()): Promise<void> {
  try {
    await streamInfo(jsm, names.stream(StreamNames.Audit));
  } catch (err) {
    if (err instanceof OpsError)
      throw new OpsError(
        "no AUDIT stream to record the action on: create it with `nats stream add --config deploy/streams/AUDIT.json`; nothing done",
        { cause: err },
      );
    throw err;
  }
}

/**
 * Publishes the event on `audit.<action>` and resolves when AUDIT stored it.
 * @throws OpsError when it was not stored.
 */
export async function recordAudit<E extends AnyAuditEvent>(
  js: JetStreamClient,
  e: DistributiveOmit<E, "id" | "at">,
  names: Names = namesFor(),
): Promise<E> {
  const event = { id: randomUUID(), at: new Date().toISOString(), ...e } as unknown as E;
  const h = natsHeaders();
  h.set("Content-Type", "application/json");
  try {
    await js.publish(names.subject(auditSubject(e.action)), JSON.stringify(event), {
      msgID: `audit:${event.id}`,
      headers: h,
      expect: { streamName: names.stream(StreamNames.Audit) },
    });
  } catch (err) {
    throw new OpsError(`the ${e.action} was done but could not be recorded on AUDIT: ${oneLine(err)}`, {
      cause: err,
    });
  }
  return event;
}

/** One operator action as `jetmesh audit` lists it. */
export interface AuditRow {
  readonly seq: number;
  readonly event: AnyAuditEvent;
}

/**
 * Every operator action recorded on AUDIT, oldest first, optionally of one action and since
 * a time. Reads the stream itself: what was done stays visible however it was done.
 * @throws OpsError when there is no AUDIT stream.
 */
export async function listAudit(
  js: JetStreamClient,
  jsm: JetStreamManager,
  filter: { action?: string; since?: Date } = {},
  names: Names = namesFor(),
): Promise<{ rows: AuditRow[]; undecodable: { seq: number; reason: string }[] }> {
  await requireAudit(jsm, names);
  const rows: AuditRow[] = [];
  const undecodable: { seq: number; reason: string }[] = [];
  for (const m of await readStream(js, jsm, names.stream(StreamNames.Audit))) {
    let event: AnyAuditEvent;
    try {
      event = JSON.parse(new TextDecoder().decode(m.data)) as AnyAuditEvent;
    } catch (err) {
      undecodable.push({ seq: m.seq, reason: oneLine(err) });
      continue;
    }
    if (filter.action && event.action !== filter.action) continue;
    if (filter.since && Date.parse(event.at) < filter.since.getTime()) continue;
    rows.push({ seq: m.seq, event });
  }
  return { rows, undecodable };
}

/** What an action touched, in a few words. */
function whatOf(e: AnyAuditEvent): string {
  switch (e.action) {
    case "replay":
    case "drop":
      return `DLQ ${e.seqs.join(",") || "-"}: ${e.entries.map((x) => x.outcome).join(",") || "nothing"}`;
    case "rebuild-repair":
      return `${e.stream}: ${e.outcome}, ${e.differenceCount} difference(s)`;
    case "rewind":
      return `${e.stage} on ${e.stream} from seq ${e.fromSeq} (${e.messages} message(s))`;
  }
}

/** The listing as a table, one action a row. */
export function renderAudit(l: { rows: readonly AuditRow[] }): string {
  if (l.rows.length === 0) return "no operator actions recorded";
  return `${renderTable(
    ["seq", "at", "actor", "action", "dry run", "what"],
    l.rows.map((r) => [
      String(r.seq),
      r.event.at,
      r.event.actor,
      r.event.action,
      r.event.dryRun ? "yes" : "no",
      whatOf(r.event),
    ]),
  )}\n${l.rows.length} action(s)`;
}
