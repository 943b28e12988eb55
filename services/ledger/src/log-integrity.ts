import { Headers, StreamNames } from "@jetmesh/contracts";
import type { JetStreamManager } from "@nats-io/jetstream";
import { type LogPosition, logPosition } from "./ledger-log.ts";
import type { LogProblem } from "./log-follower.ts";
import type { SnapshotPointer } from "./snapshots.ts";

/** What the projection in Redis says it was built from (null fields: unknown). */
export interface ProjectionMarks {
  readonly appliedSeq: number;
  readonly appliedId: string | null;
  /** The epoch value (JSON, with the LEDGER creation time it was restored from), or null. */
  readonly epoch: string | null;
}

/**
 * Checks, before the ledger decides anything, that the log is the one its state was built
 * from: the snapshot's and the projection's sequences exist in it and hold the event ids they
 * recorded, in a stream of the same creation time. A log recreated, restored from an older
 * backup, or that lost its tail on the broker fails here; the ledger then stops with this
 * problem instead of restoring the projection from a log that forgot what was paid out.
 * @returns the log's position when it checks out.
 */
export async function checkLogIntegrity(o: {
  jsm: JetStreamManager;
  stream?: string;
  snapshot?: SnapshotPointer;
  projection?: ProjectionMarks;
}): Promise<
  { position: LogPosition; problem?: undefined } | { position?: LogPosition; problem: LogProblem }
> {
  const stream = o.stream ?? StreamNames.Ledger;
  const position = await logPosition(o.jsm, stream);
  if (!position)
    return {
      problem: {
        kind: "missing",
        message: `stream ${stream} is missing: the deploy step creates it (nats stream add --config deploy/streams/${stream}.json); the ledger never does`,
      },
    };
  const idAt = async (seq: number): Promise<string | null | undefined> => {
    if (seq < position.firstSeq) return undefined; // not in the log any more: cannot tell
    const m = await o.jsm.streams.getMessage(stream, { seq }).catch(() => null);
    return m ? (m.header?.get(Headers.MsgId) ?? null) : null;
  };
  const checks: Array<{ what: string; seq: number; id: string | null | undefined; created?: string }> = [];
  if (o.snapshot)
    checks.push({
      what: "its latest snapshot",
      seq: o.snapshot.seq,
      id: o.snapshot.lastEventId,
      created: o.snapshot.streamCreated,
    });
  if (o.projection?.epoch) {
    let created: string | undefined;
    try {
      created = (JSON.parse(o.projection.epoch) as { stream?: string }).stream;
    } catch {
      created = undefined;
    }
    checks.push({
      what: "its projection in Redis",
      seq: o.projection.appliedSeq,
      id: o.projection.appliedId,
      ...(created ? { created } : {}),
    });
  }
  for (const c of checks) {
    if (c.created !== undefined && c.created !== position.created)
      return {
        position,
        problem: {
          kind: "recreated",
          message: `stream ${stream} was recreated (created ${position.created}); ${c.what} is of the one created ${c.created}`,
        },
      };
    if (c.seq > position.lastSeq)
      return {
        position,
        problem: {
          kind: "shorter",
          message: `stream ${stream} is shorter than ${c.what}: the log ends at seq ${position.lastSeq}, ${c.what} is at seq ${c.seq} (the broker lost its tail, or the stream was restored from an older backup)`,
        },
      };
    if (c.seq > 0 && c.id) {
      const stored = await idAt(c.seq);
      if (stored !== undefined && stored !== c.id)
        return {
          position,
          problem: {
            kind: "mismatch",
            message: `stream ${stream} holds ${stored ?? "nothing"} at seq ${c.seq} where ${c.what} recorded ${c.id}: it is not the log the ledger's state was built from`,
          },
        };
    }
  }
  return { position };
}
