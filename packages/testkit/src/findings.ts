import { Headers, namesFor, StreamNames } from "@jetmesh/contracts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { readStoredEvents, streamPosition } from "./invariants-read.ts";

/** A discrepancy the reconciler opened on RECONCILE and has not closed. */
export interface OpenFinding {
  readonly kind: string;
  readonly key: string;
  readonly subject: string;
  readonly seq: number;
}

/**
 * The findings open on RECONCILE now: one subject per finding, whose last message says
 * `opened` (header Jetmesh-Finding-State). Read from the stream itself, like the invariant
 * checker, never from the reconciler: [] when the server has no RECONCILE.
 */
export async function openFindings(nc: NatsConnection, namespace = ""): Promise<OpenFinding[]> {
  const stream = namesFor(namespace).stream(StreamNames.Reconcile);
  const position = await streamPosition(await jetstreamManager(nc), stream);
  const events = await readStoredEvents(jetstream(nc), stream, position, { decode: false });
  const last = new Map<string, (typeof events)[number]>();
  for (const e of events) last.set(e.subject, e);
  const h = (e: (typeof events)[number], name: string) => e.headers[name.toLowerCase()] ?? "";
  return [...last.values()]
    .filter((e) => h(e, Headers.FindingState) === "opened")
    .map((e) => ({
      kind: h(e, Headers.FindingKind),
      key: h(e, Headers.FindingKey),
      subject: e.subject,
      seq: e.seq,
    }));
}
