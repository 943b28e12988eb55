// The cost of the exactly-once recipe with nothing else: what a careful engineer writes by
// hand without the runtime. Decode (contracts codec) → claim the event id with Redis SET NX
// → publish the output with a Nats-Msg-Id derived from the input id → ack; K in flight.
// No tracing, no metrics, no logs, no retries or DLQ, and one Redis round trip instead of the
// runtime's lease + done: a crash between the SET and the publish loses that output (the key
// says done), which is the gap the runtime's second round trip closes.
// Run as a child of the bench, bundled: `node dist/handwritten-stage.mjs`.
import {
  decodeEvent,
  EventTypes,
  encodeEvent,
  eventHeaders,
  makeEnvelope,
  outputEventId,
  subjectFor,
} from "@jetmesh/contracts";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { Redis } from "ioredis";

export interface HandwrittenOptions {
  readonly natsUrl: string;
  readonly redisUrl: string;
  /** Durable consumer (created by the caller) and key prefix. */
  readonly stage: string;
  readonly inFlight: number;
  readonly confirmedAcks: boolean;
  readonly keyTtlMs: number;
}

export async function runHandwrittenStage(o: HandwrittenOptions): Promise<() => Promise<void>> {
  const nc = await connect({ servers: o.natsUrl, name: o.stage });
  const redis = new Redis(o.redisUrl);
  const js = jetstream(nc);
  const messages = await (await js.consumers.get("INGRESS", o.stage)).consume({ max_messages: o.inFlight });

  const handle = async (m: JsMsg): Promise<void> => {
    try {
      const input = decodeEvent(m.data);
      if (input.type !== EventTypes.TransferRequested) throw new Error(`unexpected ${input.type}`);
      const first = await redis.set(`${o.stage}:${input.eventId}`, "1", "PX", o.keyTtlMs, "NX");
      if (first === "OK") {
        const { transferId, from, to, amountMinor, currency } = input.data;
        const out = makeEnvelope(
          EventTypes.TransferValidated,
          { transferId, from, to, amountMinor, currency },
          {
            eventId: outputEventId(o.stage, input.eventId, "transfers.validated"),
            correlationId: input.correlationId,
            causationId: input.eventId,
            producer: o.stage,
            occurredAt: input.occurredAt,
          },
        );
        const h = headers();
        for (const [k, v] of Object.entries(eventHeaders(out))) h.set(k, v);
        await js.publish(subjectFor(out.type, from), encodeEvent(out), { msgID: out.eventId, headers: h });
      }
      if (o.confirmedAcks) await m.ackAck();
      else m.ack();
    } catch {
      m.nak(1000);
    }
  };

  let free = o.inFlight;
  const waiting: Array<() => void> = [];
  const release = () => (waiting.length ? waiting.shift()!() : free++);
  const loop = (async () => {
    for await (const m of messages) {
      if (free === 0) await new Promise<void>((r) => waiting.push(r));
      else free--;
      void handle(m).finally(release);
    }
  })();
  return async () => {
    messages.stop();
    await loop;
    await nc.drain();
    redis.disconnect();
  };
}

// Main when run as the bundle (or as the source, through tsx), not when imported.
if (/handwritten-stage\.(ts|mjs)$/.test(process.argv[1] ?? "")) {
  const env = process.env;
  const stop = await runHandwrittenStage({
    natsUrl: env.NATS_URL ?? "",
    redisUrl: env.REDIS_URL ?? "",
    stage: env.BENCH_STAGE ?? "handwritten",
    inFlight: Number(env.BENCH_IN_FLIGHT ?? 64),
    confirmedAcks: env.BENCH_ACK_MODE === "confirmed",
    keyTtlMs: 7 * 24 * 3600_000,
  });
  console.log("bench stage ready");
  process.once("SIGTERM", () => void stop().then(() => process.exit(0)));
}
