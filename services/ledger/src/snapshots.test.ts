import type { KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyLedgerEvent, emptyFold, type FoldState } from "./fold.ts";
import {
  createSnapshotStore,
  decodeSnapshot,
  encodeSnapshot,
  openSnapshotBucket,
  SnapshotError,
  type SnapshotStore,
} from "./snapshots.ts";
import { type Infra, posted, reversed, startInfra } from "./test-support.ts";

const CREATED = "2026-11-26T10:00:00.000000000Z";
let infra: Infra;
let bucketNo = 0;

beforeAll(async () => {
  infra = await startInfra();
});
afterAll(() => infra?.close());

async function freshBucket(chunkBytes = 512 * 1024): Promise<{ kv: KV; snaps: SnapshotStore }> {
  const kv = await openSnapshotBucket(infra.js, `snap-test-${++bucketNo}`);
  return { kv, snaps: createSnapshotStore(kv, { chunkBytes }) };
}

/** A fold of `n` transfers from external to a few accounts, every third one reversed. */
function foldOf(n: number, upTo = Number.POSITIVE_INFINITY): FoldState {
  const s = emptyFold();
  let seq = 0;
  for (let i = 0; i < n && seq < upTo; i++) {
    const core = {
      transferId: `t-${i}`,
      from: "external",
      to: `acc-${i % 7}`,
      amountMinor: 100 + i,
      currency: i % 2 ? "EUR" : "USD",
    };
    applyLedgerEvent(s, ++seq, posted(core));
    if (i % 3 === 0 && seq < upTo) applyLedgerEvent(s, ++seq, reversed(core));
  }
  return s;
}

async function keysOf(kv: KV, filter = "snap.>"): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys(filter)) out.push(k);
  return out.sort();
}

describe("ledger snapshots", () => {
  it("ledger - a snapshot round-trips through KV with its insertion order", async () => {
    const { snaps } = await freshBucket();
    expect(await snaps.readLatest()).toBeUndefined();
    const state = foldOf(50);
    const p = await snaps.write(state, CREATED);
    expect(p).toMatchObject({ seq: state.seq, chunks: 1, streamCreated: CREATED });
    const back = await snaps.readLatest();
    expect(back?.state).toEqual(state);
    expect(encodeSnapshot(back!.state, CREATED)).toEqual(encodeSnapshot(state, CREATED));
    expect([...back!.state.outcomes.keys()]).toEqual([...state.outcomes.keys()]);
  });

  it("ledger - the id of the last folded event round-trips, in the pointer and the document; absent stays absent", async () => {
    const { snaps } = await freshBucket();
    const state = foldOf(12);
    expect(state.lastEventId).toBeDefined();
    const p = await snaps.write(state, CREATED);
    expect(p?.lastEventId).toBe(state.lastEventId);
    expect((await snaps.pointer())?.lastEventId).toBe(state.lastEventId);
    const back = await snaps.readLatest();
    expect(back?.pointer.lastEventId).toBe(state.lastEventId);
    expect(back?.state.lastEventId).toBe(state.lastEventId);
    expect(decodeSnapshot(encodeSnapshot(state, CREATED)).state.lastEventId).toBe(state.lastEventId);
    // a fold whose last message did not decode records no id (log-follower.ts): none comes back
    const undecodable = foldOf(20);
    undecodable.seq += 1;
    delete undecodable.lastEventId;
    const p2 = await snaps.write(undecodable, CREATED);
    expect(p2).toBeDefined();
    expect(p2 && "lastEventId" in p2).toBe(false);
    const back2 = await snaps.readLatest();
    expect(back2?.state).toEqual(undecodable);
    expect(back2 && "lastEventId" in back2.state).toBe(false);
  });

  it("ledger - a snapshot larger than a KV value is chunked across keys and read back whole", async () => {
    const chunkBytes = 16 * 1024;
    const { kv, snaps } = await freshBucket(chunkBytes);
    const state = foldOf(3000);
    const size = encodeSnapshot(state, CREATED).length;
    expect(size).toBeGreaterThan(10 * chunkBytes);
    const p = await snaps.write(state, CREATED);
    expect(p?.chunks).toBe(Math.ceil(size / chunkBytes));
    const keys = await keysOf(kv);
    expect(keys).toHaveLength(p!.chunks);
    for (const k of keys.slice(0, 3)) expect((await kv.get(k))!.value.length).toBeLessThanOrEqual(chunkBytes);
    expect((await snaps.readLatest())?.state).toEqual(state);
  });

  it("ledger - a snapshot over the server's max payload cannot go in one value, and chunked it does", async () => {
    const { kv, snaps } = await freshBucket(512 * 1024);
    const state = foldOf(20_000);
    const bytes = encodeSnapshot(state, CREATED);
    expect(bytes.length).toBeGreaterThan(1024 * 1024);
    await expect(kv.put("whole", bytes)).rejects.toThrow();
    const p = await snaps.write(state, CREATED);
    expect(p!.chunks).toBeGreaterThan(2);
    expect((await snaps.readLatest())?.state.outcomes.size).toBe(20_000);
  });

  it("ledger - a reader never sees a half-written snapshot: chunks without the pointer are invisible", async () => {
    const { kv, snaps } = await freshBucket(2048);
    const first = foldOf(40, 20);
    await snaps.write(first, CREATED);
    // a writer that died after its chunks, before the pointer
    const second = foldOf(40);
    const bytes = encodeSnapshot(second, CREATED);
    const [any] = await keysOf(kv);
    const tag = any!.split(".")[1];
    await kv.put(`snap.${tag}.${String(second.seq).padStart(15, "0")}.0`, bytes.subarray(0, 2048));
    const back = await snaps.readLatest();
    expect(back?.state).toEqual(first);
    // the next writer finishes the job and moves the pointer
    await snaps.write(second, CREATED);
    expect((await snaps.readLatest())?.state).toEqual(second);
  });

  it("ledger - a pointer to missing or corrupt chunks is a SnapshotError, not a wrong state", async () => {
    const { kv, snaps } = await freshBucket(2048);
    await snaps.write(foldOf(40), CREATED);
    const keys = await keysOf(kv);
    await kv.put(keys[1]!, new TextEncoder().encode("garbage"));
    await expect(snaps.readLatest()).rejects.toBeInstanceOf(SnapshotError);
    await kv.purge(keys[1]!);
    await expect(snaps.readLatest()).rejects.toThrow(/missing/);
  });

  it("ledger - old snapshots are purged, the one just replaced is kept, and the pointer never moves back", async () => {
    const { kv, snaps } = await freshBucket();
    const full = foldOf(60);
    for (const upTo of [10, 20, 30]) await snaps.write(foldOf(60, upTo), CREATED);
    const seqs = (await keysOf(kv)).map((k) => Number(k.split(".")[2]));
    expect(seqs).toEqual([20, 30]);
    expect(await snaps.write(foldOf(60, 25), CREATED)).toBeUndefined();
    expect((await snaps.pointer())?.seq).toBe(30);
    expect(await snaps.write(foldOf(60, 30), CREATED)).toBeUndefined();
    await snaps.write(full, CREATED);
    expect((await snaps.pointer())?.seq).toBe(full.seq);
  });

  it("ledger - two writers of the same sequence agree; a snapshot of a recreated stream replaces the old stream's", async () => {
    const { kv, snaps } = await freshBucket();
    const other = createSnapshotStore(kv, { chunkBytes: 512 * 1024 });
    const state = foldOf(30);
    const [a, b] = await Promise.all([snaps.write(state, CREATED), other.write(state, CREATED)]);
    expect([a, b].filter(Boolean).length).toBeGreaterThanOrEqual(1);
    expect((await snaps.readLatest())?.state).toEqual(state);
    const recreated = "2026-11-27T10:00:00.000000000Z";
    const small = foldOf(30, 5);
    await snaps.write(small, recreated);
    const back = await snaps.readLatest();
    expect(back?.pointer.streamCreated).toBe(recreated);
    expect(back?.state).toEqual(small);
    expect((await keysOf(kv)).every((k) => k.includes(".000000000000005."))).toBe(true);
  });
});
