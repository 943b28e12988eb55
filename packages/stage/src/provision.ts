import { type StreamDefinition, toStreamConfig } from "@jetmesh/contracts";
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
  ReplayPolicy,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { Logger } from "pino";

const NS = 1_000_000;

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/**
 * Creates the stream when it is missing (idempotent; a concurrent creator is fine) and
 * reports how an existing one differs from its definition. Never changes an existing
 * stream: its owner team does that deliberately.
 * @returns the stream's info and the list of drifted settings.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  def: StreamDefinition,
  opts: { replicas: number; logger: Logger },
): Promise<{ info: StreamInfo; created: boolean; drift: string[] }> {
  const want = toStreamConfig(def, { replicas: opts.replicas });
  let created = false;
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(def.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      info = await jsm.streams.add(want as unknown as StreamConfig);
      created = true;
      opts.logger.info({ stream: def.name, replicas: opts.replicas }, "stream created");
    } catch (addErr) {
      // Another process created it between our info and add.
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      info = await jsm.streams.info(def.name);
    }
  }
  const have = info.config;
  const drift: string[] = [];
  const cmp = (name: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b))
      drift.push(`${name}: server ${JSON.stringify(a)}, declared ${JSON.stringify(b)}`);
  };
  cmp("subjects", [...(have.subjects ?? [])].sort(), [...want.subjects].sort());
  cmp("storage", have.storage, want.storage);
  cmp("retention", have.retention, want.retention);
  cmp("discard", have.discard, want.discard);
  cmp("duplicate_window", have.duplicate_window, want.duplicate_window);
  cmp("num_replicas", have.num_replicas, want.num_replicas);
  if (drift.length)
    opts.logger.warn({ stream: def.name, drift }, "stream settings differ from its definition");
  return { info, created, drift };
}

/** The consumer a stage declares on one input stream. */
export interface ConsumerSpec {
  readonly stream: string;
  readonly durable: string;
  /** Single filter (nats-server 2.9 has no multi-filter); undefined = whole stream. */
  readonly filterSubject?: string;
  readonly ackWaitMs: number;
  readonly backoffMs: readonly number[];
  readonly maxDeliver: number;
  readonly maxAckPending: number;
}

/** The server ConsumerConfig of a {@link ConsumerSpec}: durable, pull, explicit acks. */
export function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> {
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: spec.ackWaitMs * NS,
    // The server takes backoff[0] as the ack wait when BackOff is set (nats-server#2812).
    backoff: [spec.ackWaitMs, ...spec.backoffMs].map((ms) => ms * NS),
    max_deliver: spec.maxDeliver,
    max_ack_pending: spec.maxAckPending,
    max_waiting: 512,
    ...(spec.filterSubject ? { filter_subject: spec.filterSubject } : {}),
  };
}

/**
 * Creates the durable consumer when missing. An existing consumer whose settings
 * differ is reported (returned and logged), not changed: a silent update could
 * shorten a redelivery horizon other instances rely on.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  logger: Logger,
): Promise<{ created: boolean; drift: string[] }> {
  const want = consumerConfig(spec);
  try {
    const info = await jsm.consumers.info(spec.stream, spec.durable);
    const have = info.config;
    const drift: string[] = [];
    const keys = [
      "ack_policy",
      "ack_wait",
      "backoff",
      "max_deliver",
      "max_ack_pending",
      "filter_subject",
    ] as const;
    for (const k of keys) {
      const a = JSON.stringify(have[k] ?? null);
      const b = JSON.stringify(want[k] ?? null);
      if (a !== b) drift.push(`${k}: server ${a}, declared ${b}`);
    }
    if (drift.length)
      logger.warn(
        { stream: spec.stream, consumer: spec.durable, drift },
        "consumer settings drifted; not changed",
      );
    return { created: false, drift };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await jsm.consumers.add(spec.stream, want);
  logger.info({ stream: spec.stream, consumer: spec.durable }, "consumer created");
  return { created: true, drift: [] };
}
