import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";

/**
 * What the payout stage knows of one transfer's payout, kept in JetStream (a KV bucket,
 * replicated like the streams) and not in Redis: Redis can lose its latest writes, and a
 * payout whose intent or outcome it forgot would be paid again or reversed by guessing.
 * - `intent`: a call may have reached the bank; its outcome is not known here yet;
 * - `paid` / `refused`: the bank's final answer, replayed for every later delivery.
 */
export type PayoutRecord =
  | { readonly state: "intent"; readonly bankKey: string; readonly since: string }
  | {
      readonly state: "paid";
      readonly bankKey: string;
      readonly since: string;
      readonly reference: string;
    }
  | {
      readonly state: "refused";
      readonly bankKey: string;
      readonly since: string;
      readonly status: number;
      readonly reason: string;
    };

/** A record and the revision it was read at (the fence of the next write). */
export interface Versioned {
  readonly record: PayoutRecord;
  readonly revision: number;
}

/** What {@link PayoutRecords.begin} found: the intent it created, or the record that was there. */
export interface Begun extends Versioned {
  readonly created: boolean;
}

/** Payout records per transfer; every write is a compare-and-set on the revision read. */
export interface PayoutRecords {
  get(transferId: string): Promise<Versioned | undefined>;
  /**
   * Records the intent before the first call, unless a record exists: then returns it (an
   * earlier attempt, perhaps paused or crashed, already went to the bank).
   */
  begin(transferId: string, bankKey: string): Promise<Begun>;
  /**
   * Stores the bank's final answer over the intent read at `revision`.
   * @returns the record that stands: this outcome, or the one another attempt stored first.
   */
  settle(transferId: string, outcome: PayoutRecord, revision: number): Promise<PayoutRecord>;
}

/** KV keys allow [-/_=.a-zA-Z0-9]; a transfer id outside that (never one the gateway makes) is hashed. */
function keyOf(transferId: string): string {
  return /^[-_=a-zA-Z0-9]{1,128}$/.test(transferId)
    ? `t.${transferId}`
    : `h.${createHash("sha256").update(transferId).digest("hex")}`;
}

class KvPayoutRecords implements PayoutRecords {
  readonly #kv: KV;
  constructor(kv: KV) {
    this.#kv = kv;
  }

  async get(transferId: string): Promise<Versioned | undefined> {
    const e = await this.#kv.get(keyOf(transferId));
    return e?.operation === "PUT" ? { record: e.json<PayoutRecord>(), revision: e.revision } : undefined;
  }

  async begin(transferId: string, bankKey: string): Promise<Begun> {
    const existing = await this.get(transferId);
    if (existing) return { ...existing, created: false };
    const record: PayoutRecord = { state: "intent", bankKey, since: new Date().toISOString() };
    try {
      const revision = await this.#kv.create(keyOf(transferId), JSON.stringify(record));
      return { record, revision, created: true };
    } catch (err) {
      // Another attempt created it between our read and our create.
      const now = await this.get(transferId);
      if (now) return { ...now, created: false };
      throw err;
    }
  }

  async settle(transferId: string, outcome: PayoutRecord, revision: number): Promise<PayoutRecord> {
    try {
      await this.#kv.update(keyOf(transferId), JSON.stringify(outcome), revision);
      return outcome;
    } catch (err) {
      // Another attempt wrote first: its outcome stands (the bank answers one key once).
      const now = await this.get(transferId);
      if (now && now.record.state !== "intent") return now.record;
      throw err;
    }
  }
}

/** Opens (creating when missing) the payout records bucket. */
export async function openPayoutRecords(
  js: JetStreamClient,
  opts: { bucket: string; replicas: number },
): Promise<PayoutRecords> {
  const kv = await new Kvm(js).create(opts.bucket, {
    history: 1,
    replicas: opts.replicas,
    description: "payout intent and outcome per transfer (see services/payout)",
  });
  return new KvPayoutRecords(kv);
}
