// Before the ledger decides anything it checks that LEDGER is the log its snapshot and its Redis
// projection were built from; while it runs, its follower keeps checking. Against a real
// nats-server and redis-server: a recreated stream, a log shorter than what was built from it,
// and another event at a recorded sequence all stop the ledger; a healthy log passes.
import { Streams } from "@jetmesh/contracts";
import { context, TransientError } from "@jetmesh/stage";
import { createEventPublisher } from "@jetmesh/stage/internal";
import { waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FoldState } from "./fold.ts";
import { logPosition } from "./ledger-log.ts";
import { createLedgerWriter } from "./ledger-writer.ts";
import { createLogFollower, type LogProblem } from "./log-follower.ts";
import { checkLogIntegrity, type ProjectionMarks } from "./log-integrity.ts";
import { foldLedger } from "./projection-check.ts";
import {
  createSnapshotStore,
  openSnapshotBucket,
  type SnapshotPointer,
  type SnapshotStore,
} from "./snapshots.ts";
import { createLedgerStore, type LedgerStore } from "./store.ts";
import {
  addStream,
  type Core,
  type Infra,
  posted,
  publishEvent,
  reversed,
  scoredInput,
  startInfra,
} from "./test-support.ts";

const LEDGER = Streams.LEDGER.name;
let infra: Infra;
let store: LedgerStore;
let snapshots: SnapshotStore;
let n = 0;

const core = (from: string, to: string, amountMinor: number): Core => ({
  transferId: `t-${++n}`,
  from,
  to,
  amountMinor,
  currency: "EUR",
});

/** Appends `count` postings (every other one reversed) to LEDGER. */
async function append(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const c = core("external", `acc-i${i % 3}`, 10 + i);
    await publishEvent(infra.js, posted(c));
    if (i % 2) await publishEvent(infra.js, reversed(c));
  }
}

/** What the ledger built from the log as it is now: a snapshot and a restored projection. */
async function buildFromLog(): Promise<{
  state: FoldState;
  pointer: SnapshotPointer;
  marks: ProjectionMarks;
}> {
  const { state, position } = await foldLedger({ js: infra.js, jsm: infra.jsm });
  const created = position!.created;
  // (nothing new to write when the pointer already names this sequence)
  const pointer = ((await snapshots.write(state, created)) ?? (await snapshots.pointer()))!;
  expect(pointer).toMatchObject({ seq: state.seq, streamCreated: created });
  await infra.redis.flushall();
  expect(await store.acquireRestoreLock("test", 10_000)).toBe(true);
  expect(await store.writeRestore("test", state, JSON.stringify({ seq: state.seq, stream: created }))).toBe(
    true,
  );
  return { state, pointer, marks: await store.marks() };
}

async function recreateLedger(): Promise<void> {
  const before = (await logPosition(infra.jsm, LEDGER))!.created;
  await infra.jsm.streams.delete(LEDGER);
  await addStream(infra.jsm, LEDGER);
  // creation times have a nanosecond clock, but make sure they differ
  expect((await logPosition(infra.jsm, LEDGER))!.created).not.toBe(before);
}

beforeAll(async () => {
  infra = await startInfra();
  store = createLedgerStore(infra.redis);
  snapshots = createSnapshotStore(await openSnapshotBucket(infra.js, "ledger-snapshots"), {
    chunkBytes: 64 * 1024,
  });
}, 60_000);
afterAll(() => infra?.close());

describe("ledger log integrity", () => {
  it("ledger - a missing LEDGER is reported as missing: the deploy step creates it, the ledger never does", async () => {
    const verdict = await checkLogIntegrity({ jsm: infra.jsm });
    expect(verdict.problem?.kind).toBe("missing");
    expect(verdict.problem?.message).toMatch(/stream LEDGER is missing: the deploy step creates it/);
    expect(await logPosition(infra.jsm, LEDGER)).toBeUndefined();
  });

  it("ledger - a healthy log passes the check of its snapshot and its projection, and so does one that grew since", async () => {
    await addStream(infra.jsm, LEDGER);
    expect((await checkLogIntegrity({ jsm: infra.jsm })).problem).toBeUndefined();
    await append(6);
    const { state, pointer, marks } = await buildFromLog();
    expect(pointer.lastEventId).toBe(state.lastEventId);
    expect(marks).toMatchObject({ appliedSeq: state.seq, appliedId: state.lastEventId });
    const verdict = await checkLogIntegrity({ jsm: infra.jsm, snapshot: pointer, projection: marks });
    expect(verdict.problem).toBeUndefined();
    expect(verdict.position?.lastSeq).toBe(state.seq);
    await append(2);
    const later = await checkLogIntegrity({ jsm: infra.jsm, snapshot: pointer, projection: marks });
    expect(later.problem).toBeUndefined();
    expect(later.position!.lastSeq).toBeGreaterThan(state.seq);
  });

  it("ledger - a log shorter than the snapshot or the projection is reported shorter", async () => {
    const { pointer, marks } = await buildFromLog();
    const last = (await logPosition(infra.jsm, LEDGER))!.lastSeq;
    // as after the broker lost its tail: the snapshot and Redis were built past the log's end
    const ahead = { ...pointer, seq: last + 3 };
    const v1 = await checkLogIntegrity({ jsm: infra.jsm, snapshot: ahead, projection: marks });
    expect(v1.problem?.kind).toBe("shorter");
    expect(v1.problem?.message).toMatch(
      new RegExp(`log ends at seq ${last}, its latest snapshot is at seq ${last + 3}`),
    );
    const v2 = await checkLogIntegrity({
      jsm: infra.jsm,
      snapshot: pointer,
      projection: { ...marks, appliedSeq: last + 1 },
    });
    expect(v2.problem?.kind).toBe("shorter");
    expect(v2.problem?.message).toMatch(/its projection in Redis is at seq/);
  });

  it("ledger - another event at the sequence the snapshot or the projection recorded is a mismatch", async () => {
    const { pointer, marks } = await buildFromLog();
    const v1 = await checkLogIntegrity({
      jsm: infra.jsm,
      snapshot: { ...pointer, lastEventId: "someone-else" },
    });
    expect(v1.problem?.kind).toBe("mismatch");
    expect(v1.problem?.message).toContain(
      `holds ${pointer.lastEventId} at seq ${pointer.seq} where its latest snapshot recorded someone-else`,
    );
    const earlier = { ...marks, appliedSeq: marks.appliedSeq - 1 }; // the id of seq N recorded at N-1
    const v2 = await checkLogIntegrity({ jsm: infra.jsm, snapshot: pointer, projection: earlier });
    expect(v2.problem?.kind).toBe("mismatch");
    expect(v2.problem?.message).toMatch(/where its projection in Redis recorded/);
  });

  it("ledger - a recreated LEDGER is reported recreated, even once it holds as many events again", async () => {
    const { pointer, marks } = await buildFromLog();
    await recreateLedger();
    await append(8);
    expect((await logPosition(infra.jsm, LEDGER))!.lastSeq).toBeGreaterThanOrEqual(pointer.seq);
    const v1 = await checkLogIntegrity({ jsm: infra.jsm, snapshot: pointer });
    expect(v1.problem?.kind).toBe("recreated");
    expect(v1.problem?.message).toMatch(/its latest snapshot is of the one created/);
    const v2 = await checkLogIntegrity({ jsm: infra.jsm, projection: marks });
    expect(v2.problem?.kind).toBe("recreated");
    expect(v2.problem?.message).toMatch(/its projection in Redis is of the one created/);
  });

  it("ledger - a follower started from a snapshot folds the tail to the fold from the first message, and snapshots as it goes", async () => {
    const { pointer } = await buildFromLog();
    const from = (await snapshots.readLatest())!.state;
    await append(4);
    const position = (await logPosition(infra.jsm, LEDGER))!;
    const follower = createLogFollower({
      js: infra.js,
      jsm: infra.jsm,
      snapshots,
      logger: infra.logger,
      snapshotEvery: 3,
      from,
      streamCreated: position.created,
    });
    try {
      await follower.start();
      const full = await foldLedger({ js: infra.js, jsm: infra.jsm });
      expect(follower.fold()).toEqual(full.state);
      await waitFor(async () => ((await snapshots.pointer())?.seq ?? 0) > pointer.seq, {
        what: "a newer snapshot",
      });
      expect((await snapshots.pointer())?.streamCreated).toBe(position.created);
    } finally {
      await follower.stop();
    }
  });

  it("ledger - a follower whose stream is recreated under it reports the problem and stops deciding", async () => {
    const position = (await logPosition(infra.jsm, LEDGER))!;
    const follower = createLogFollower({
      js: infra.js,
      jsm: infra.jsm,
      snapshots,
      logger: infra.logger,
      snapshotEvery: 1000,
      streamCreated: position.created,
    });
    const reported: LogProblem[] = [];
    follower.onProblem((p) => reported.push(p));
    const writer = createLedgerWriter({
      follower,
      publisher: createEventPublisher({
        js: infra.js,
        settings: { publishTimeoutMs: 1000, publishRetryHorizonMs: 0 },
        logger: infra.logger,
        stage: "ledger",
      }),
      logger: infra.logger,
      catchUpTimeoutMs: 1000,
    });
    try {
      await follower.start();
      expect(follower.fold().seq).toBe(position.lastSeq);
      await recreateLedger();
      await append(3);
      await waitFor(() => follower.problem(), {
        what: "the follower to report the recreated stream",
        timeoutMs: 20_000,
      });
      expect(follower.problem()?.kind).toBe("recreated");
      expect(reported.map((p) => p.kind)).toEqual(["recreated"]);
      // the fold is not the new log's and does not move: a caller waiting on it is told no
      expect(follower.fold().seq).toBe(position.lastSeq);
      expect(await follower.caughtUp(position.lastSeq + 1, 100)).toBe(false);
      // a writer on it decides nothing on the new log: the input goes back to be retried
      const newLast = (await logPosition(infra.jsm, LEDGER))!.lastSeq;
      const input = scoredInput(core("external", "acc-new", 5));
      const err = await writer.decide(input, context.active()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(((err as Error).cause as Error | undefined)?.message ?? (err as Error).message).toMatch(
        /recreated/,
      );
      expect((await logPosition(infra.jsm, LEDGER))!.lastSeq).toBe(newLast);
      // and, given back its input, it waits for the next one instead of reading the stream again and again
      const apiCalls = async () => (await infra.nats.monitor<{ api: { total: number } }>("/jsz")).api.total;
      const calls = await apiCalls();
      await new Promise((r) => setTimeout(r, 500));
      expect((await apiCalls()) - calls).toBeLessThan(10);
    } finally {
      writer.halt("test over");
      await follower.stop();
    }
  }, 30_000);
});
