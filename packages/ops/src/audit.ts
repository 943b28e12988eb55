import { randomUUID } from "node:crypto";
import { auditSubject, StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { OpsError, oneLine } from "./errors.ts";
import { streamInfo } from "./read-stream.ts";

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
export async function requireAudit(jsm: JetStreamManager): Promise<void> {
  try {
    await streamInfo(jsm, StreamNames.Audit);
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
): Promise<E> {
  const event = { id: randomUUID(), at: new Date().toISOString(), ...e } as unknown as E;
  const h = natsHeaders();
  h.set("Content-Type", "application/json");
  try {
    await js.publish(auditSubject(e.action), JSON.stringify(event), {
      msgID: `audit:${event.id}`,
      headers: h,
      expect: { streamName: StreamNames.Audit },
    });
  } catch (err) {
    throw new OpsError(`the ${e.action} was done but could not be recorded on AUDIT: ${oneLine(err)}`, {
      cause: err,
    });
  }
  return event;
}
