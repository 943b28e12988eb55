import { Headers, StreamNames } from "@jetmesh/contracts";
import type { JsMsg } from "@nats-io/jetstream";

/**
 * Where an operator's replay (`jetmesh dlq replay`, stored on `replay.<stage>` in REPLAY)
 * came from: the original message the stage parked, as its Jetmesh-Replay-* headers name it.
 * The stage processes a replay as a delivery of that original: same event, same key, same
 * outputs; only the acks, retries and park are the replay's own.
 */
export interface ReplayOrigin {
  /** The DLQ sequence the message was parked at (Jetmesh-Replay-Of). */
  readonly dlqSeq?: number;
  readonly stream: string;
  readonly subject: string;
  readonly streamSequence: number;
}

const positive = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v && Number.isSafeInteger(n) && n > 0 ? n : undefined;
};

/**
 * Undefined for a message of an event stream; for a message delivered from REPLAY (its name on
 * the server, `namesFor(namespace).stream("REPLAY")`, resolved once by the caller), its
 * origin, or `"unnamed"` when its headers do not name one (not a replay `jetmesh dlq replay`
 * made: the processor parks it).
 */
export function replayOriginOf(
  m: JsMsg,
  replayStream: string = StreamNames.Replay,
): ReplayOrigin | "unnamed" | undefined {
  if (m.info.stream !== replayStream) return undefined;
  const h = m.headers;
  const stream = h?.get(Headers.ReplayStream);
  const subject = h?.get(Headers.ReplaySubject);
  const streamSequence = positive(h?.get(Headers.ReplaySequence));
  if (!stream || !subject || streamSequence === undefined) return "unnamed";
  const dlqSeq = positive(h?.get(Headers.ReplayOf));
  return { stream, subject, streamSequence, ...(dlqSeq !== undefined ? { dlqSeq } : {}) };
}
