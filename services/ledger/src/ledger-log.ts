import { type AnyEnvelope, decodeEvent } from "@jetmesh/contracts";
import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";

/** Where the LEDGER stream stands: its identity (creation time) and last sequence. */
export interface LogPosition {
  readonly created: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** One message of the log: decoded, or the reason it could not be. */
export type LogEntry =
  | { readonly seq: number; readonly env: AnyEnvelope; readonly error?: undefined }
  | { readonly seq: number; readonly env?: undefined; readonly error: Error };

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/** The stream's position, or undefined while it does not exist. */
export async function logPosition(jsm: JetStreamManager, stream: string): Promise<LogPosition | undefined> {
  try {
    const info = await jsm.streams.info(stream);
    return { created: info.created, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Decodes one stored message with the contracts codec; a bad one is reported, not thrown. */
export function toEntry(m: JsMsg): LogEntry {
  try {
    return { seq: m.seq, env: decodeEvent(m.data) };
  } catch (err) {
    return { seq: m.seq, error: err as Error };
  }
}

/**
 * Reads the stream from `fromSeq` through `toSeq` with an ordered consumer (no server
 * state left behind) and calls `onEntry` for each message, in order. Stops early when
 * the stream has nothing more (a deleted tail).
 */
export async function readLog(
  js: JetStreamClient,
  stream: string,
  fromSeq: number,
  toSeq: number,
  onEntry: (e: LogEntry) => void,
): Promise<void> {
  if (toSeq < fromSeq || toSeq <= 0) return;
  const consumer = await js.consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(1, fromSeq),
  });
  const messages = await consumer.consume({ max_messages: 1000 });
  try {
    for await (const m of messages) {
      onEntry(toEntry(m));
      if (m.seq >= toSeq || m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
}
