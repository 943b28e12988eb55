// The runtime on both: the real runStage with a stage that answers, fails for good, fails
// for a while and fails every time, once over a real nats-server and redis-server (real
// time) and once over the simulated ones (virtual time). What it stored, what it parked with
// which reasons and after how many deliveries, and where its consumer ended must be equal:
// the simulator's worlds are only as good as this agreement. It runs on one nats-server with
// R1 streams and on a 3-node cluster with R3 streams, as production runs.
import {
  deriveId,
  type Envelope,
  EventTypes,
  encodeEvent,
  eventHeaders,
  Headers,
  makeEnvelope,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import {
  createLogger,
  createRedis,
  defineStage,
  emit,
  PermanentError,
  type Redis,
  runStage,
  stageSettings,
  TransientError,
} from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import {
  createPrng,
  readStoredEvents,
  startNats,
  startNatsCluster,
  startRedis,
  stopAllProcesses,
  streamPosition,
} from "@jetmesh/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, expect, it } from "vitest";
import { drive } from "./drive.ts";
import { createSimNats } from "./nats/index.ts";
import { createSimRedis } from "./redis/index.ts";
import { installVirtualTime } from "./virtual-time.ts";

const logger = createLogger({ service: "sim-runtime-conformance", level: "silent" });
const settings = stageSettings({ ackWaitMs: 2000, maxDeliver: 4, retryBaseMs: 50, retryMaxMs: 200 });

/** Inputs by the ending of their transfer id: ok, permanent, transient twice, transient always. */
const KINDS = ["ok", "perm", "flaky", "down"] as const;
const attempts = new Map<string, number>();
const parkStage = defineStage<"transfers.requested", Record<string, never>>({
  name: "simpark",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: async (evt) => {
    const d = evt.data;
    const kind = d.transferId.split("-")[1];
    const n = (attempts.get(d.transferId) ?? 0) + 1;
    attempts.set(d.transferId, n);
    if (kind === "perm") throw new PermanentError(`transfer ${d.transferId} can never be validated`);
    if (kind === "down" || (kind === "flaky" && n <= 2))
      throw new TransientError(`validation service unreachable (attempt ${n})`);
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
  const transferId = `t-${KINDS[i % KINDS.length]}-${i}`;
  return makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: `acc-${i}`,
      to: "acc-z",
      amountMinor: 100 + i,
      currency: "EUR",
      requestedAt: "2026-01-01T00:00:00.000Z",
    },
    {
      eventId: deriveId("conformance", transferId),
      correlationId: transferId,
      causationId: `request:${transferId}`,
      producer: "test",
      occurredAt: "2026-01-01T00:00:00.000Z",
    },
  );
}

/** One run: provision, start the stage, publish 8 inputs, wait until all ended, observe. */
async function scenario(
  nc: NatsConnection,
  producer: NatsConnection,
  redis: Redis,
  sleep: (ms: number) => Promise<void>,
  replicas: number,
) {
  attempts.clear();
  const jsm = await jetstreamManager(nc);
  await provisionStreams(jsm, { replicas, logger });
  const stage = await runStage({ definition: parkStage, deps: {}, nc, redis, logger, settings });
  const js = jetstream(producer);
  for (let i = 0; i < 8; i++) {
    const env = requested(i);
    const h = headers();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    // Published as the ledger appends: with Nats-Expected-Last-Sequence, which the stream
    // keeps in the stored message's headers (a park must not carry it to the DLQ).
    await js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
      msgID: env.eventId,
      headers: h,
      expect: { lastSequence: i },
    });
  }
  // Bounded: every input ends (answered or parked) well within 20 s.
  for (let i = 0; i < 200; i++) {
    const dlq = (await jsm.streams.info(StreamNames.Dlq)).state.messages;
    const out = (await jsm.streams.info(StreamNames.Validation)).state.messages;
    const ci = await jsm.consumers.info(StreamNames.Ingress, "simpark");
    if (dlq === 4 && out === 4 && ci.num_ack_pending === 0 && ci.num_pending === 0) break;
    await sleep(100);
  }
  await stage.stop();
  const read = async (stream: string, decode = true) =>
    readStoredEvents(jetstream(nc), stream, await streamPosition(jsm, stream), { decode });
  const outputs = (await read(StreamNames.Validation))
    .map((e) => `${e.subject} ${e.env?.data.transferId}`)
    .sort();
  const parked = (await read(StreamNames.Dlq, false))
    .map((e) => {
      const h = (k: string) => e.headers[k.toLowerCase()];
      return {
        subject: e.subject,
        stream: h(Headers.DlqStream),
        reason: h(Headers.DlqReason),
        errorClass: h(Headers.DlqErrorClass),
        deliveries: h(Headers.DlqDeliveries),
      };
    })
    .sort((a, b) => String(a.reason).localeCompare(String(b.reason)));
  const ci = await jsm.consumers.info(StreamNames.Ingress, "simpark");
  return {
    outputs,
    parked,
    attempts: Object.fromEntries([...attempts].sort()),
    consumer: {
      ack_floor: ci.ack_floor.stream_seq,
      num_pending: ci.num_pending,
      num_ack_pending: ci.num_ack_pending,
    },
    streams: Object.fromEntries(
      await Promise.all(
        [StreamNames.Ingress, StreamNames.Validation, StreamNames.Dlq].map(async (s) => {
          const si = await jsm.streams.info(s);
          return [s, { messages: si.state.messages, replicas: si.config.num_replicas }] as const;
        }),
      ),
    ),
  };
}

afterAll(() => stopAllProcesses());

/** The real servers for one topology: a client URL list and how to stop them. */
const TOPOLOGIES = {
  "one nats-server, R1": {
    replicas: 1,
    start: async () => {
      const server = await startNats();
      return { servers: [server.url], stop: () => server.stop() };
    },
  },
  "a 3-node nats-server cluster, R3": {
    replicas: 3,
    start: async () => {
      const cluster = await startNatsCluster({ size: 3 });
      return { servers: cluster.urls, stop: () => cluster.stop() };
    },
  },
} as const;

for (const [label, topology] of Object.entries(TOPOLOGIES)) {
  it(`sim runtime - ${label} - runStage answers, parks (permanent and after its deliveries) and retries alike on the real servers and the simulator`, async () => {
    const [natsServer, redisServer] = await Promise.all([topology.start(), startRedis()]);
    const nc = await connect({ servers: natsServer.servers, name: "simpark" });
    const producer = await connect({ servers: natsServer.servers, name: "producer" });
    const realRedis = createRedis({ url: redisServer.url, name: "simpark" });
    let real: Awaited<ReturnType<typeof scenario>>;
    try {
      real = await scenario(
        nc,
        producer,
        realRedis,
        (ms) => new Promise((r) => setTimeout(r, ms)),
        topology.replicas,
      );
    } finally {
      realRedis.disconnect();
      await nc.close();
      await producer.close();
      await Promise.all([natsServer.stop(), redisServer.stop()]);
    }

    const vt = installVirtualTime();
    let simulated: Awaited<ReturnType<typeof scenario>>;
    try {
      const sim = createSimNats({ random: createPrng("runtime-conformance").next });
      const simNc = await drive(vt, sim.connect({ name: "simpark" }), { maxMs: 10_000, what: "connect" });
      const simProducer = await drive(vt, sim.connect({ name: "producer" }), {
        maxMs: 10_000,
        what: "connect",
      });
      simulated = await drive(
        vt,
        scenario(
          simNc,
          simProducer,
          createSimRedis(),
          (ms) => new Promise((r) => setTimeout(r, ms)),
          topology.replicas,
        ),
        { maxMs: 60_000, what: "the scenario on the simulator" },
      );
      await drive(vt, Promise.all([simNc.close(), simProducer.close()]), { maxMs: 10_000, what: "close" });
      sim.close();
    } finally {
      vt.uninstall();
    }
    // What the real servers did is the reference, and it is what the runtime promises.
    expect(real.outputs).toHaveLength(4);
    expect(real.parked.map((p) => p.deliveries)).toEqual(expect.arrayContaining(["1", "4"]));
    expect(simulated).toEqual(real);
  }, 90_000);
}
