import {
  deriveId,
  type Envelope,
  EventTypes,
  eventHeaders,
  encodeEvent,
  makeEnvelope,
  Streams,
  subjectFor,
} from "@jetmesh/contracts";
import { createLogger, createRedis, defineStage, emit, runStage, stageSettings } from "@jetmesh/stage";
import { type RedisServerHandle, startRedis, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createSimNats } from "./index.ts";

// The real runtime over the simulator, in real time, with a real redis-server: the point is
// that runStage's provisioning, consume loop, publisher, acks and positions KV all work
// against the simulated JetStream unmodified.
const logger = createLogger({ service: "sim-nats-test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

const echo = defineStage<"transfers.requested", Record<string, never>>({
  name: "simecho",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: async (evt) => {
    const d = evt.data;
    return [
      emit(EventTypes.TransferValidated, {
        transferId: d.transferId,
        from: d.from,
        to: d.to,
        amountMinor: d.amountMinor,
        currency: d.currency,
      }),
    ];
  },
});

function requested(i: number): Envelope<"transfers.requested"> {
  const transferId = `sim-${i}`;
  return makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: `acc-${i % 3}`,
      to: `acc-${(i % 3) + 1}`,
      amountMinor: 100 + i,
      currency: "EUR",
      requestedAt: new Date(0).toISOString(),
    },
    {
      eventId: deriveId("sim-request", transferId),
      correlationId: transferId,
      causationId: `request:${transferId}`,
      producer: "test",
    },
  );
}

let redisServer: RedisServerHandle;
beforeAll(async () => {
  redisServer = await startRedis();
});
afterAll(async () => {
  await stopAllProcesses();
});

it("sim nats - the real runStage provisions, consumes, publishes and acks over the simulator, and survives a restart", async () => {
  let s = 7;
  const random = () => {
    s = (s * 16807) % 2147483647;
    return (s - 1) / 2147483646;
  };
  const sim = createSimNats({ random });
  const nc = await sim.connect({ name: "simecho" });
  const redis = createRedis({ url: redisServer.url, name: "sim-nats-test" });
  const stage = await runStage({
    definition: echo,
    deps: {},
    nc,
    redis,
    logger,
    settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
  });
  const producer = await sim.connect({ name: "producer" });
  const js = jetstream(producer);
  const publish = async (env: Envelope<"transfers.requested">) => {
    const h = headers();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    return js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
      msgID: env.eventId,
      headers: h,
    });
  };
  const validated = () =>
    sim.inspect().streams.find((x) => x.name === Streams.VALIDATION.name)?.messages ?? [];
  try {
    for (let i = 0; i < 10; i++) await publish(requested(i));
    expect((await publish(requested(3))).duplicate).toBe(true);
    await waitFor(async () => validated().length >= 10 || undefined, {
      what: "10 validated",
      timeoutMs: 15_000,
    });

    await sim.restart();
    // nats.js redials after its reconnect wait (2 s since the last connect); a publish sent
    // before that would be lost with the connection, as with a real server.
    await waitFor(async () => sim.inspect().connections.length >= 2 || undefined, {
      what: "both reconnected",
      timeoutMs: 10_000,
    });
    for (let i = 10; i < 15; i++) await publish(requested(i));
    await waitFor(async () => validated().length >= 15 || undefined, {
      what: "15 validated after a restart",
      timeoutMs: 20_000,
    });
    await waitFor(async () => (stage.stats().ackPending === 0 && stage.stats().pending === 0) || undefined, {
      what: "consumer drained",
      timeoutMs: 15_000,
    });
    const ids = validated().map((m) => m.headers["Nats-Msg-Id"]);
    expect(new Set(ids).size).toBe(15);
  } finally {
    await stage.stop();
    await nc.close();
    await producer.close();
    redis.disconnect();
    sim.close();
  }
});
