import { type AnyEnvelope, decodeMessage } from "@jetmesh/contracts";
import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";

/**
 * One message as stored in a stream, read with a plain JetStream client and decoded with
 * the contracts codec: never through the code of a stage.
 */
export interface StoredEvent {
  readonly stream: string;
  readonly seq: number;
  readonly subject: string;
  /** The stream's store time, ms since the epoch. */
  readonly timestampMs: number;
  /** Header values by lower-cased name (first value of each). */
  readonly headers: Readonly<Record<string, string>>;
  /** The decoded envelope; absent when the body is not a valid contract event. */
  readonly env?: AnyEnvelope;
  /** Why the body did not decode. */
  readonly decodeError?: string;
}

/** Where a stream stood when it was read. */
export interface StreamPosition {
  readonly exists: boolean;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
  /** Store time of the last message (kept by the server after the message itself is gone). */
  readonly lastTimestampMs?: number;
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/** The stream's first and last sequence now; `exists: false` for a missing stream. */
export async function streamPosition(jsm: JetStreamManager, stream: string): Promise<StreamPosition> {
  try {
    const info = await jsm.streams.info(stream);
    return {
      exists: true,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      messages: info.state.messages,
      ...(info.state.last_ts ? { lastTimestampMs: Date.parse(info.state.last_ts) } : {}),
    };
  } catch (err) {
    if (isNotFound(err)) return { exists: false, firstSeq: 0, lastSeq: 0, messages: 0 };
    throw err;
  }
}

/**
 * Reads every message of `stream` from its first sequence through `upTo.lastSeq` with an
 * ordered consumer (an ephemeral consumer the server removes by itself; no durable state
 * is left behind), decoding each body. Messages stored after `upTo` are not read, so the
 * answer is a consistent prefix of the log.
 * @throws on JetStream errors other than a missing stream.
 */
export async function readStoredEvents(
  js: JetStreamClient,
  stream: string,
  upTo: StreamPosition,
  opts: { decode?: boolean } = {},
): Promise<StoredEvent[]> {
  if (!upTo.exists || upTo.messages === 0 || upTo.lastSeq < upTo.firstSeq) return [];
  const decode = opts.decode ?? true;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: 1000 });
  const out: StoredEvent[] = [];
  try {
    for await (const m of messages) {
      if (m.seq > upTo.lastSeq) break;
      const headers: Record<string, string> = {};
      if (m.headers) {
        for (const k of m.headers.keys()) {
          const key = k.toLowerCase();
          if (!(key in headers)) headers[key] = m.headers.get(k);
        }
      }
      let env: AnyEnvelope | undefined;
      let decodeError: string | undefined;
      if (decode) {
        try {
          env = decodeMessage(m.data, m.headers);
        } catch (err) {
          decodeError = err instanceof Error ? err.message : String(err);
        }
      }
      out.push({
        stream,
        seq: m.seq,
        subject: m.subject,
        timestampMs: Number(m.timestampNanos / 1_000_000n),
        headers,
        ...(env ? { env } : {}),
        ...(decodeError !== undefined ? { decodeError } : {}),
      });
      if (m.seq >= upTo.lastSeq || m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return out;
}
