import { dlqSubject, Headers, namesFor } from "@jetmesh/contracts";
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { ReplayOrigin } from "./replay.ts";

/** Why a message was parked: the error's class and its message. */
export interface ParkReason {
  readonly errorClass: string;
  readonly reason: string;
}

/** What identifies the original message when it is parked. */
export interface ParkedOrigin {
  readonly stage: string;
  readonly stream: string;
  readonly subject: string;
  readonly streamSequence: number;
  readonly deliveries: number;
  readonly data: Uint8Array;
  readonly headers?: { keys(): string[]; values(k: string): string[] };
  /**
   * Where the parked delivery itself is stored when that is not the origin: an operator's
   * replay, delivered from REPLAY. Its park takes its Nats-Msg-Id from there, or the DLQ would
   * drop it as a duplicate of the original's park within the window.
   */
  readonly delivered?: { readonly stream: string; readonly streamSequence: number };
}

/**
 * Parks a message on `dlq.<stage>` (stream DLQ; in `namespace`, its subject there): the original bytes and headers (but the
 * `Nats-*` ones, which would be publish instructions there), plus the reason, error class, origin stream, subject, sequence and delivery count.
 * The `Nats-Msg-Id` is derived from the origin so that two instances parking the same
 * message store it once. Resolves when the DLQ stream stored it; throws otherwise
 * (the caller must then not term the original).
 */
export async function park(
  js: JetStreamClient,
  origin: ParkedOrigin,
  why: ParkReason,
  namespace = "",
): Promise<void> {
  const h = natsHeaders();
  if (origin.headers) {
    for (const k of origin.headers.keys()) {
      // The stream keeps the headers its publisher sent, Nats-Expected-Last-Sequence (the
      // ledger's appends) and Nats-Msg-Id included; copied to the DLQ they would be checked
      // again there and refuse the park forever. The server's own headers stay behind.
      if (k.toLowerCase().startsWith("nats-")) continue;
      for (const v of origin.headers.values(k)) h.append(k, v);
    }
  }
  h.set(Headers.DlqReason, why.reason.slice(0, 1024));
  h.set(Headers.DlqErrorClass, why.errorClass);
  h.set(Headers.DlqStage, origin.stage);
  h.set(Headers.DlqStream, origin.stream);
  h.set(Headers.DlqSubject, origin.subject);
  h.set(Headers.DlqSequence, String(origin.streamSequence));
  h.set(Headers.DlqDeliveries, String(origin.deliveries));
  const from = origin.delivered ?? origin;
  const msgID = `dlq:${origin.stage}:${from.stream}:${from.streamSequence}`;
  await js.publish(namesFor(namespace).subject(dlqSubject(origin.stage)), origin.data, { msgID, headers: h });
}

/**
 * The origin of a JetStream message, for {@link park}; for a replay, the original it replays
 * (so the DLQ entry names where the message really came from and can be replayed again).
 */
export function originOf(stage: string, m: JsMsg, replay?: ReplayOrigin): ParkedOrigin {
  return {
    stage,
    stream: replay?.stream ?? m.info.stream,
    subject: replay?.subject ?? m.subject,
    streamSequence: replay?.streamSequence ?? m.seq,
    ...(replay ? { delivered: { stream: m.info.stream, streamSequence: m.seq } } : {}),
    deliveries: m.info.deliveryCount,
    data: m.data,
    ...(m.headers ? { headers: m.headers } : {}),
  };
}
