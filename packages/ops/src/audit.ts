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

/** One event on AUDIT (`audit.<action>`), JSON: who did what to which DLQ entries, when. */
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
export async function recordAudit(
  js: JetStreamClient,
  e: Omit<AuditEvent, "id" | "at">,
): Promise<AuditEvent> {
  const event: AuditEvent = { id: randomUUID(), at: new Date().toISOString(), ...e };
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
