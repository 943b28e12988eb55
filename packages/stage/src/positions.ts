import { namesFor } from "@jetmesh/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";

/** The settings a stage runs its durable consumer with (what the reconciler checks the server against). */
export interface DeclaredConsumerSettings {
  readonly filterSubject?: string;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
}

/** Where a durable consumer stood: every message up to `ackFloor` was acknowledged. */
export interface ConsumerPosition {
  readonly ackFloor: number;
  /** When it was recorded (ISO 8601). */
  readonly at: string;
  /**
   * The settings the stage that records it declares for the consumer: each stage may run its
   * own (a payout with a longer ack wait), so a checker in another process reads them here.
   */
  readonly declared?: DeclaredConsumerSettings;
}

/**
 * The last known position of every durable consumer, kept in JetStream (the KV bucket
 * {@link POSITIONS_BUCKET}) rather than in Redis: a consumer lost long after the idempotency
 * keys of the messages it had acknowledged expired must resume where it was, not replay its
 * stream from the start with no guard left. Recorded by each stage's consume loop every few
 * seconds while its ack floor moves, and when it stops.
 */
export interface PositionStore {
  read(stream: string, durable: string): Promise<ConsumerPosition | undefined>;
  record(stream: string, durable: string, ackFloor: number): Promise<void>;
  /** Records the settings the stage declares for the consumer, with its ack floor now. */
  declare(
    stream: string,
    durable: string,
    ackFloor: number,
    declared: DeclaredConsumerSettings,
  ): Promise<void>;
}

/** The parts of a consumer's info a position is read from. */
export interface ConsumerProgress {
  readonly ack_floor: { readonly consumer_seq: number; readonly stream_seq: number };
  readonly delivered: { readonly consumer_seq: number; readonly stream_seq: number };
}

/**
 * The position to record for a consumer as the server reports it, or undefined when the report
 * says nothing yet. nats-server 2.9 reports `ack_floor.stream_seq` 0 until the consumer's first
 * ack, also for a consumer created at a start sequence (recreated at its recorded position, or
 * moved back by `jetmesh rewind`); recording that 0 would make the next recreation start at the
 * stream's first message. Until it delivers, such a consumer's floor is `delivered.stream_seq`
 * (its start − 1); once it delivered but acked nothing, the last record stands.
 */
export function positionOf(info: ConsumerProgress): number | undefined {
  if (info.ack_floor.consumer_seq > 0) return info.ack_floor.stream_seq;
  if (info.delivered.consumer_seq === 0) return info.delivered.stream_seq;
  return undefined;
}

/** The KV bucket holding consumer positions. */
export const POSITIONS_BUCKET = "jetmesh-positions";

const keyOf = (stream: string, durable: string) => `${stream}.${durable}`;

class KvPositionStore implements PositionStore {
  readonly #kv: KV;
  readonly #last = new Map<string, number>();
  readonly #declared = new Map<string, DeclaredConsumerSettings>();
  constructor(kv: KV) {
    this.#kv = kv;
  }
  async read(stream: string, durable: string): Promise<ConsumerPosition | undefined> {
    const e = await this.#kv.get(keyOf(stream, durable));
    return e?.operation === "PUT" ? e.json<ConsumerPosition>() : undefined;
  }
  async record(stream: string, durable: string, ackFloor: number): Promise<void> {
    const key = keyOf(stream, durable);
    if (this.#last.get(key) === ackFloor) return;
    await this.#put(key, ackFloor);
  }
  async declare(
    stream: string,
    durable: string,
    ackFloor: number,
    declared: DeclaredConsumerSettings,
  ): Promise<void> {
    const key = keyOf(stream, durable);
    this.#declared.set(key, declared);
    await this.#put(key, ackFloor);
  }
  async #put(key: string, ackFloor: number): Promise<void> {
    const declared = this.#declared.get(key);
    const value: ConsumerPosition = {
      ackFloor,
      at: new Date().toISOString(),
      ...(declared ? { declared } : {}),
    };
    await this.#kv.put(key, JSON.stringify(value));
    this.#last.set(key, ackFloor);
  }
}

/** Opens (creating when missing) the positions bucket: one value per key, file storage. */
export async function openPositions(
  js: JetStreamClient,
  replicas: number,
  namespace = "",
): Promise<PositionStore> {
  const kv = await new Kvm(js).create(namesFor(namespace).bucket(POSITIONS_BUCKET), {
    history: 1,
    replicas,
    description: "last acknowledged position of every jetmesh durable consumer (see packages/stage)",
  });
  return new KvPositionStore(kv);
}
