import type { EventType } from "./schemas.ts";

/** Number of partitions per event subject; subjects end with a two-digit token. */
export const PARTITIONS = 16;

/** FNV-1a 32-bit: stable across processes and languages, cheap per message. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The partition token of an account: `00` … `15`. Per-account order lives within one. */
export function partitionOf(accountId: string, partitions: number = PARTITIONS): string {
  return String(fnv1a(accountId) % partitions).padStart(2, "0");
}

/** `<domain>.<event>.<partition>`, partition from the source account. */
export function subjectFor(type: EventType, sourceAccount: string): string {
  return `${type}.${partitionOf(sourceAccount)}`;
}

/** The subject filter that matches every partition of an event type. */
export function subjectFilter(type: EventType): string {
  return `${type}.*`;
}

/** Event type of a subject (`ledger.posted.07` → `ledger.posted`), or undefined. */
export function typeOfSubject(subject: string): string | undefined {
  const parts = subject.split(".");
  return parts.length >= 2 ? `${parts[0]}.${parts[1]}` : undefined;
}

/** The DLQ subject of a stage: `dlq.<stage>`. */
export function dlqSubject(stage: string): string {
  return `dlq.${stage}`;
}

/** The AUDIT subject of an operator's action: `audit.<action>` (e.g. `audit.replay`). */
export function auditSubject(action: string): string {
  return `audit.${action}`;
}

/** The REPLAY subject of a stage: `replay.<stage>`, where an operator sends its parked messages back. */
export function replaySubject(stage: string): string {
  return `replay.${stage}`;
}
