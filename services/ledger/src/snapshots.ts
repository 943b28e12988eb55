import { createHash } from "node:crypto";
import { type JetStreamClient, StorageType } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { FoldState, TransferOutcome } from "./fold.ts";

/**
 * Snapshots of the ledger fold in a NATS KV bucket, so a restore replays only the
 * tail of LEDGER.
 *
 * Layout: the snapshot at stream sequence S is one JSON document split into chunks of
 * at most `chunkBytes` under `snap.<stream tag>.<S, 15 digits>.<i>` (the tag hashes the
 * stream's creation time, so a recreated LEDGER never mixes with the old one's
 * snapshots); the key `latest` holds the
 * pointer {seq, chunks, bytes, sha256, streamCreated}. Chunks are written first and the
 * pointer last (compare-and-set on its revision), so a reader never follows a pointer
 * to a half-written snapshot; it checks length and SHA-256 and retries once the pointer
 * moved. The chunks of the previous snapshot are kept (a reader may be on them); older
 * ones are purged.
 *
 * The document keeps insertion order (arrays, not objects), which is the order the
 * log first named each account and transfer: a fold restored from a snapshot then
 * writes byte-identical snapshots to a fold from the first message.
 */

export const SNAPSHOT_FORMAT = 1;
const POINTER_KEY = "latest";
const READ_ATTEMPTS = 3;

/** The `latest` key: where the current snapshot's chunks are and how to check them. */
export interface SnapshotPointer {
  readonly format: number;
  readonly seq: number;
  /**
   * The event id (Nats-Msg-Id) of the message at `seq`: the log the snapshot folds must hold
   * it there, or it is another log (or a broker that lost its tail) and the ledger stops.
   */
  readonly lastEventId?: string;
  /** Creation time of the LEDGER stream the snapshot folds; a recreated stream invalidates it. */
  readonly streamCreated: string;
  readonly chunks: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly writtenAt: string;
}

type OutcomeRow = [string, string, string, string, string, string, number, string, string?, string?];
interface SnapshotDocument {
  format: number;
  seq: number;
  lastEventId?: string;
  streamCreated: string;
  balances: [string, [string, string][]][];
  outcomes: OutcomeRow[];
  /** When each outcome's last event occurred (ms), in the order of `outcomes`; absent in snapshots written before. */
  outcomeTimes?: (number | null)[];
}

/** A snapshot whose pointer or chunks do not check out after retries. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
}

export interface SnapshotStore {
  /**
   * Writes `state` as the snapshot at `state.seq` unless the pointer already names
   * that sequence or a later one of the same stream.
   * @returns the new pointer, or undefined when nothing was written.
   */
  write(state: FoldState, streamCreated: string): Promise<SnapshotPointer | undefined>;
  /**
   * The latest complete snapshot, or undefined when there is none.
   * @throws SnapshotError when the pointer's chunks stay missing or corrupt.
   */
  readLatest(): Promise<{ pointer: SnapshotPointer; state: FoldState } | undefined>;
  /** The current pointer, or undefined. */
  pointer(): Promise<SnapshotPointer | undefined>;
}

/** Opens (creating when missing) the snapshot bucket: one value per key, file storage. */
export async function openSnapshotBucket(js: JetStreamClient, name: string, replicas = 1): Promise<KV> {
  return new Kvm(js).create(name, {
    history: 1,
    replicas,
    storage: StorageType.File,
    description: "snapshots of the ledger fold (see services/ledger)",
  });
}

/** Creates the snapshot store over a KV bucket; chunks are at most `chunkBytes`. */
export function createSnapshotStore(kv: KV, opts: { chunkBytes: number }): SnapshotStore {
  if (opts.chunkBytes < 1024) throw new Error("snapshot chunkBytes must be at least 1024");
  return new KvSnapshotStore(kv, opts.chunkBytes);
}

/** Names the LEDGER stream instance (its creation time) in chunk keys. */
const streamTag = (streamCreated: string) =>
  createHash("sha256").update(streamCreated).digest("hex").slice(0, 12);
const chunkKey = (tag: string, seq: number, i: number) => `snap.${tag}.${String(seq).padStart(15, "0")}.${i}`;

/** Serializes a fold state (insertion order kept). */
export function encodeSnapshot(state: FoldState, streamCreated: string): Uint8Array {
  const doc: SnapshotDocument = {
    format: SNAPSHOT_FORMAT,
    seq: state.seq,
    ...(state.lastEventId !== undefined ? { lastEventId: state.lastEventId } : {}),
    streamCreated,
    balances: [...state.balances].map(([acc, m]) => [acc, [...m].map(([c, v]) => [c, v.toString()])]),
    outcomes: [...state.outcomes.values()].map((o) => {
      const row: OutcomeRow = [
        o.transferId,
        o.status,
        o.detail,
        o.cause,
        o.from,
        o.to,
        o.amountMinor,
        o.currency,
      ];
      if (o.reversal) row.push(o.reversal.reason, o.reversal.cause);
      return row;
    }),
    outcomeTimes: [...state.outcomes.keys()].map((id) => state.outcomeTimes?.get(id) ?? null),
  };
  return new TextEncoder().encode(JSON.stringify(doc));
}

/** Parses a snapshot document. @throws SnapshotError on an unknown format. */
export function decodeSnapshot(bytes: Uint8Array): { state: FoldState; streamCreated: string } {
  const doc = JSON.parse(new TextDecoder().decode(bytes)) as SnapshotDocument;
  if (doc.format !== SNAPSHOT_FORMAT) throw new SnapshotError(`unknown snapshot format ${doc.format}`);
  const balances = new Map<string, Map<string, bigint>>();
  for (const [acc, rows] of doc.balances) balances.set(acc, new Map(rows.map(([c, v]) => [c, BigInt(v)])));
  const outcomes = new Map<string, TransferOutcome>();
  const outcomeTimes = new Map<string, number>();
  for (const [i, at] of (doc.outcomeTimes ?? []).entries()) {
    const id = doc.outcomes[i]?.[0];
    if (id !== undefined && at !== null) outcomeTimes.set(id, at);
  }
  for (const [
    transferId,
    status,
    detail,
    cause,
    from,
    to,
    amountMinor,
    currency,
    revReason,
    revCause,
  ] of doc.outcomes) {
    outcomes.set(transferId, {
      transferId,
      status: status === "posted" ? "posted" : "declined",
      detail,
      cause,
      from,
      to,
      amountMinor,
      currency,
      ...(revReason !== undefined ? { reversal: { reason: revReason, cause: revCause ?? "" } } : {}),
    });
  }
  return {
    state: {
      seq: doc.seq,
      ...(doc.lastEventId !== undefined ? { lastEventId: doc.lastEventId } : {}),
      balances,
      outcomes,
      ...(outcomeTimes.size ? { outcomeTimes } : {}),
    },
    streamCreated: doc.streamCreated,
  };
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

class KvSnapshotStore implements SnapshotStore {
  readonly #kv: KV;
  readonly #chunkBytes: number;

  constructor(kv: KV, chunkBytes: number) {
    this.#kv = kv;
    this.#chunkBytes = chunkBytes;
  }

  async #pointerEntry(): Promise<{ pointer: SnapshotPointer | undefined; revision: number }> {
    const e = await this.#kv.get(POINTER_KEY);
    if (e?.operation !== "PUT") return { pointer: undefined, revision: e?.revision ?? 0 };
    return { pointer: e.json<SnapshotPointer>(), revision: e.revision };
  }

  async pointer(): Promise<SnapshotPointer | undefined> {
    return (await this.#pointerEntry()).pointer;
  }

  async write(state: FoldState, streamCreated: string): Promise<SnapshotPointer | undefined> {
    const before = await this.#pointerEntry();
    const newer = (p: SnapshotPointer | undefined) =>
      p?.streamCreated === streamCreated && p.seq >= state.seq;
    if (newer(before.pointer)) return undefined;
    const bytes = encodeSnapshot(state, streamCreated);
    const chunks = Math.max(1, Math.ceil(bytes.length / this.#chunkBytes));
    const tag = streamTag(streamCreated);
    for (let i = 0; i < chunks; i++) {
      await this.#kv.put(
        chunkKey(tag, state.seq, i),
        bytes.subarray(i * this.#chunkBytes, (i + 1) * this.#chunkBytes),
      );
    }
    const pointer: SnapshotPointer = {
      format: SNAPSHOT_FORMAT,
      seq: state.seq,
      ...(state.lastEventId !== undefined ? { lastEventId: state.lastEventId } : {}),
      streamCreated,
      chunks,
      bytes: bytes.length,
      sha256: sha256(bytes),
      writtenAt: new Date().toISOString(),
    };
    let current = before;
    for (;;) {
      try {
        // The pointer moves only from the revision we read: two writers never interleave.
        if (current.revision === 0) await this.#kv.create(POINTER_KEY, JSON.stringify(pointer));
        else await this.#kv.update(POINTER_KEY, JSON.stringify(pointer), current.revision);
        break;
      } catch (err) {
        const again = await this.#pointerEntry();
        if (again.revision === current.revision) throw err;
        current = again;
        if (newer(current.pointer)) {
          // Another writer got further; our chunks are nobody's (unless it wrote the same seq).
          if (current.pointer?.seq !== state.seq)
            await this.#purge((t, seq) => t === tag && seq === state.seq);
          return undefined;
        }
      }
    }
    // Keep the snapshot just replaced (a reader may be on it) and anything newer (a
    // concurrent writer may be writing it); purge older ones and other streams'.
    const prev = current.pointer?.streamCreated === streamCreated ? current.pointer.seq : state.seq;
    await this.#purge((t, seq) => t !== tag || seq < prev);
    return pointer;
  }

  async #purge(match: (tag: string, seq: number) => boolean): Promise<void> {
    const doomed: string[] = [];
    for await (const k of await this.#kv.keys("snap.>")) {
      const [, tag = "", seq = ""] = k.split(".");
      if (match(tag, Number(seq))) doomed.push(k);
    }
    for (const k of doomed) await this.#kv.purge(k);
  }

  async readLatest(): Promise<{ pointer: SnapshotPointer; state: FoldState } | undefined> {
    let problem = "";
    for (let attempt = 1; attempt <= READ_ATTEMPTS; attempt++) {
      const { pointer } = await this.#pointerEntry();
      if (!pointer) return undefined;
      const parts: Uint8Array[] = [];
      const tag = streamTag(pointer.streamCreated);
      for (let i = 0; i < pointer.chunks; i++) {
        const e = await this.#kv.get(chunkKey(tag, pointer.seq, i));
        if (e?.operation !== "PUT") {
          problem = `chunk ${i} of snapshot ${pointer.seq} is missing`;
          break;
        }
        parts.push(e.value);
      }
      if (parts.length !== pointer.chunks) continue;
      const bytes = Buffer.concat(parts);
      if (bytes.length !== pointer.bytes || sha256(bytes) !== pointer.sha256) {
        problem = `snapshot ${pointer.seq} does not match its checksum`;
        continue;
      }
      const { state } = decodeSnapshot(bytes);
      return { pointer, state };
    }
    throw new SnapshotError(problem);
  }
}
