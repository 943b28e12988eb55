import { FindingKinds, Headers } from "@jetmesh/contracts";
import type { JsMsg, StreamInfo } from "@nats-io/jetstream";
import type { Discrepancy } from "./book.ts";

/** One message parked in the DLQ, from its headers. */
export interface Parked {
  readonly seq: number;
  readonly subject: string;
  readonly at: number;
  readonly stage: string;
  readonly errorClass: string;
  readonly reason: string;
  readonly originStream?: string;
  readonly originSeq?: string;
  readonly transferId?: string;
  readonly eventType?: string;
}

/**
 * The DLQ as it stands: every message parked and not removed yet (an operator removes one once
 * handled), with its age and reason. Messages are added as the follower reads them and
 * dropped when the stream no longer holds them (below its first sequence, or deleted).
 */
export class DlqLedger {
  readonly #parked = new Map<number, Parked>();

  read(m: JsMsg): void {
    const h = m.headers;
    const get = (k: string) => h?.get(k) || undefined;
    const originStream = get(Headers.DlqStream);
    const originSeq = get(Headers.DlqSequence);
    const transferId = get(Headers.CorrelationId);
    const eventType = get(Headers.EventType);
    this.#parked.set(m.seq, {
      seq: m.seq,
      subject: m.subject,
      at: Number(m.timestampNanos / 1_000_000n),
      stage: get(Headers.DlqStage) ?? m.subject.replace(/^dlq\./, ""),
      errorClass: get(Headers.DlqErrorClass) ?? "unknown",
      reason: get(Headers.DlqReason) ?? "no reason given",
      ...(originStream ? { originStream } : {}),
      ...(originSeq ? { originSeq } : {}),
      ...(transferId ? { transferId } : {}),
      ...(eventType ? { eventType } : {}),
    });
  }

  /** Drops what the stream no longer holds (info asked with `deleted_details`). */
  sync(info: StreamInfo): void {
    const { first_seq: first, last_seq: last, messages } = info.state;
    const deleted = new Set(info.state.deleted ?? []);
    for (const seq of this.#parked.keys()) {
      // A message parked after the info was asked is not in it: only what it covers is judged.
      if (seq > last) continue;
      if (seq < first || deleted.has(seq) || messages === 0) this.#parked.delete(seq);
    }
  }

  /** The messages of a transfer waiting in the DLQ (a scan: asked for stuck transfers only). */
  parkedFor(transferId: string): Parked[] {
    return [...this.#parked.values()].filter((p) => p.transferId === transferId);
  }

  has(seq: number): boolean {
    return this.#parked.has(seq);
  }

  /** Count per stage and error class, and the oldest store time. */
  summary(): { counts: Map<string, { stage: string; errorClass: string; count: number }>; oldest?: Parked } {
    const counts = new Map<string, { stage: string; errorClass: string; count: number }>();
    let oldest: Parked | undefined;
    for (const p of this.#parked.values()) {
      const k = `${p.stage}\u0000${p.errorClass}`;
      const c = counts.get(k) ?? { stage: p.stage, errorClass: p.errorClass, count: 0 };
      c.count++;
      counts.set(k, c);
      if (!oldest || p.at < oldest.at) oldest = p;
    }
    return oldest ? { counts, oldest } : { counts };
  }

  /** Messages parked longer than `maxAgeMs`. */
  aged(now: number, maxAgeMs: number): Discrepancy[] {
    const out: Discrepancy[] = [];
    for (const p of this.#parked.values()) {
      const age = now - p.at;
      if (age <= maxAgeMs) continue;
      out.push({
        kind: FindingKinds.DlqAged,
        key: `DLQ#${p.seq}`,
        ...(p.transferId ? { transferId: p.transferId } : {}),
        summary: `DLQ message ${p.seq} from ${p.stage} has waited ${Math.round(age / 1000)} s: ${p.reason}`,
        evidence: {
          seq: p.seq,
          subject: p.subject,
          stage: p.stage,
          errorClass: p.errorClass,
          reason: p.reason,
          parkedAt: new Date(p.at).toISOString(),
          ageMs: age,
          maxAgeMs,
          ...(p.originStream ? { originStream: p.originStream, originSeq: p.originSeq } : {}),
          ...(p.eventType ? { eventType: p.eventType } : {}),
        },
        command: `pnpm jetmesh dlq show ${p.seq}`,
      });
    }
    return out;
  }
}
