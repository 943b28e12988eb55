// An operator's replay of a parked message (`jetmesh dlq replay`) is stored on
// `replay.<stage>` in REPLAY, never in an event stream: only the stage that parked it sees it,
// through its durable `<stage>-replay`, and processes it as a delivery of the original (same
// event id and key, same output ids). Real nats-server and redis-server.
import {
  EventTypes,
  Headers,
  replayDurable,
  replaySubject,
  StreamNames,
  Streams,
  toStreamConfig,
} from "@jetmesh/contracts";
import {
  createLogger,
  defineStage,
  type Redis,
  runStage,
  type StageHandle,
  stageSettings,
  startTelemetry,
} from "@jetmesh/stage";
import { waitFor } from "@jetmesh/testkit";
import type { JetStreamClient, StreamConfig } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { echoHarness, FAST, logger } from "./support/echo-harness.ts";
import { publishEvent, readStream, requested, type StoredEvent } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-replay-test" });

/** Another consumer of INGRESS: counts every run of its handler per event id. */
const observerStage = defineStage<"transfers.requested", { redis: Redis }>({
  name: "observer",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [],
  handle: async (evt, ctx) => {
    await ctx.deps.redis.incr(`observer:runs:${evt.eventId}`);
    return [];
  },
});

/**
 * What `jetmesh dlq replay` stores for a DLQ entry (packages/ops, dlq-actions.ts): the original
 * body and headers (minus Nats-* and Jetmesh-Dlq-*), its origin, Msg-Id from the DLQ seq.
 */
async function sendReplay(js: JetStreamClient, parked: StoredEvent, msgID = `replay:DLQ:${parked.seq}`) {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(parked.headers)) {
    const lower = k.toLowerCase();
    if (lower.startsWith("nats-") || lower.startsWith("jetmesh-dlq-") || lower.startsWith("jetmesh-replay-"))
      continue;
    h.set(k, v);
  }
  h.set(Headers.ReplayOf, String(parked.seq));
  h.set(Headers.ReplayStream, parked.headers[Headers.DlqStream]!);
  h.set(Headers.ReplaySubject, parked.headers[Headers.DlqSubject]!);
  h.set(Headers.ReplaySequence, parked.headers[Headers.DlqSequence]!);
  const stage = parked.headers[Headers.DlqStage]!;
  return js.publish(replaySubject(stage), parked.data, {
    msgID,
    headers: h,
    expect: { streamName: StreamNames.Replay },
  });
}

describe("runtime replay", () => {
  const h = echoHarness();
  /** REPLAY as the deploy step creates it (a stage never does). */
  const deployReplay = () =>
    h.infra.jsm.streams.add(toStreamConfig(Streams.REPLAY) as unknown as StreamConfig);
  const dlq = () => readStream(h.infra.jsm, StreamNames.Dlq);
  const validatedOf = async (transferId: string) =>
    (await readStream(h.infra.jsm, StreamNames.Validation)).filter(
      (e) => e.headers[Headers.CorrelationId] === transferId,
    );
  const replayQuiet = () =>
    waitFor(
      async () => {
        const c = await h.infra.jsm.consumers.info(StreamNames.Replay, replayDurable("echo"));
        return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
      },
      { what: "echo's replay durable quiet", timeoutMs: 30_000 },
    );

  it("runtime - a replay runs in the stage that parked it only; another consumer of the origin stream never sees it, its guard gone or not", async () => {
    await deployReplay();
    await h.start();
    const observer: StageHandle = await runStage({
      definition: observerStage,
      deps: { redis: h.redis },
      nc: h.infra.nc,
      redis: h.redis,
      logger,
      settings: stageSettings(FAST),
    });
    try {
      const observerQuiet = () =>
        waitFor(
          async () => {
            const c = await h.infra.jsm.consumers.info(Streams.INGRESS.name, "observer");
            return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
          },
          { what: "observer quiet", timeoutMs: 30_000 },
        );
      // A poison message: echo parks it, the observer handles it once.
      const poison = requested(1, { currency: "XXX" });
      const original = await publishEvent(h.infra.js, poison);
      const [parked] = await waitFor(async () => ((await dlq()).length === 1 ? dlq() : undefined), {
        what: "the poison message parked",
      });
      await h.quiet();
      const observed = await observerQuiet();
      expect(await h.redis.lrange(`echo:deliveries:${poison.eventId}`, 0, -1)).toHaveLength(1);
      expect(await h.redis.get(`observer:runs:${poison.eventId}`)).toBe("1");
      const ingressBefore = (await h.infra.jsm.streams.info(StreamNames.Ingress)).state;

      // Days later the observer's guard has expired; an operator replays the parked message.
      expect(await h.redis.del(`observer:${poison.eventId}`)).toBe(1);
      const ack = await sendReplay(h.infra.js, parked!);
      expect([ack.stream, ack.duplicate]).toEqual([StreamNames.Replay, false]);
      await replayQuiet();
      await h.quiet();
      // Echo ran it again (its key was released when it parked; still poison, so parked again)...
      expect(await h.redis.lrange(`echo:deliveries:${poison.eventId}`, 0, -1)).toHaveLength(2);
      const [, reparked] = await waitFor(async () => ((await dlq()).length === 2 ? dlq() : undefined), {
        what: "the replay parked again",
      });
      // ...and its new DLQ entry names the original (so it can be replayed again), and the replay.
      expect(reparked!.headers).toMatchObject({
        [Headers.DlqStage]: "echo",
        [Headers.DlqStream]: StreamNames.Ingress,
        [Headers.DlqSubject]: parked!.headers[Headers.DlqSubject],
        [Headers.DlqSequence]: String(original.seq),
        [Headers.ReplayOf]: String(parked!.seq),
        [Headers.EventId]: poison.eventId,
      });
      // INGRESS holds nothing new, and the observer was delivered nothing more: it never saw the replay.
      const ingressAfter = (await h.infra.jsm.streams.info(StreamNames.Ingress)).state;
      expect(ingressAfter.last_seq).toBe(ingressBefore.last_seq);
      const observedAfter = await observerQuiet();
      expect(observedAfter.delivered.stream_seq).toBe(observed.delivered.stream_seq);
      expect(await h.redis.get(`observer:runs:${poison.eventId}`)).toBe("1");
      // The observer has no replay durable of its own with anything in it for echo.
      const observerReplay = await h.infra.jsm.consumers.info(StreamNames.Replay, replayDurable("observer"));
      expect(observerReplay.delivered.stream_seq).toBe(0);
    } finally {
      await observer.stop();
    }
  });

  it("runtime - a parked message replayed after its cause is fixed is processed once, as its original: same key, same output id; replayed twice, once", async () => {
    await deployReplay();
    // Transient failures on every delivery of the original: parked after max deliver (4).
    await h.start({ failTimes: FAST.maxDeliver! });
    const evt = requested(2);
    const original = await publishEvent(h.infra.js, evt);
    const [parked] = await waitFor(async () => ((await dlq()).length === 1 ? dlq() : undefined), {
      what: "the message parked after its deliveries",
      timeoutMs: 30_000,
    });
    expect(parked!.headers[Headers.DlqSequence]).toBe(String(original.seq));
    await h.quiet();
    expect(await h.redis.get(`echo:effects:${evt.data.transferId}`)).toBeNull();
    expect(await validatedOf(evt.data.transferId)).toHaveLength(0);

    // The dependency is fine now (its planned failures are spent): the replay runs once.
    await sendReplay(h.infra.js, parked!);
    await waitFor(async () => (await validatedOf(evt.data.transferId)).length === 1 || undefined, {
      what: "the replay processed",
    });
    await replayQuiet();
    expect(await h.redis.get(`echo:effects:${evt.data.transferId}`)).toBe("1");
    // The key is the original's: `echo:<eventId>`, done.
    expect(await h.redis.exists(`echo:${evt.eventId}`)).toBe(1);
    const [out] = await validatedOf(evt.data.transferId);
    expect(out!.env?.causationId).toBe(evt.eventId);

    // The same replay again within REPLAY's duplicate window: dropped by the stream...
    const again = await sendReplay(h.infra.js, parked!);
    expect(again.duplicate).toBe(true);
    // ...and past it (another Msg-Id): the stage finds the key done, acks, runs nothing.
    const late = await sendReplay(h.infra.js, parked!, "replay:after-the-window");
    expect(late.duplicate).toBe(false);
    await replayQuiet();
    expect(await h.redis.get(`echo:effects:${evt.data.transferId}`)).toBe("1");
    expect(await validatedOf(evt.data.transferId)).toHaveLength(1);
    expect((await h.infra.jsm.streams.info(StreamNames.Ingress)).state.last_seq).toBe(original.seq);
    expect(await dlq()).toHaveLength(1);
  });

  it("runtime - a message on REPLAY that names no origin is parked with the reason, not run", async () => {
    await deployReplay();
    await h.start();
    const evt = requested(3);
    const hdr = natsHeaders();
    hdr.set(Headers.EventId, evt.eventId);
    await h.infra.js.publish(replaySubject("echo"), new Uint8Array([1, 2, 3]), { headers: hdr });
    const [parked] = await waitFor(async () => ((await dlq()).length === 1 ? dlq() : undefined), {
      what: "the message parked",
    });
    expect(parked!.headers[Headers.DlqReason]).toMatch(/^a message on REPLAY without Jetmesh-Replay-Stream/);
    expect(parked!.headers[Headers.DlqStream]).toBe(StreamNames.Replay);
    await replayQuiet();
  });

  it("runtime - a stage starts without REPLAY, says so in one log line, and processes its inputs", async () => {
    const lines: string[] = [];
    const capture = createLogger({
      service: "runtime-replay-test",
      level: "warn",
      destination: { write: (l: string) => void lines.push(l) },
    });
    const stage = await runStage({
      definition: observerStage,
      deps: { redis: h.redis },
      nc: h.infra.nc,
      redis: h.redis,
      logger: capture,
      settings: stageSettings(FAST),
    });
    try {
      expect(await h.infra.jsm.streams.info(StreamNames.Replay).catch(() => null)).toBeNull();
      const said = lines.map((l) => JSON.parse(l) as { msg: string; stream?: string; subject?: string });
      const about = said.filter((l) => /REPLAY/.test(l.msg));
      expect(about).toHaveLength(1);
      expect(about[0]).toMatchObject({ stream: "REPLAY", subject: "replay.observer" });
      expect(about[0]!.msg).toMatch(/^no REPLAY stream: operators' replays .* are not consumed/);
      const evt = requested(4);
      await publishEvent(h.infra.js, evt);
      await waitFor(async () => (await h.redis.get(`observer:runs:${evt.eventId}`)) === "1" || undefined, {
        what: "the stage processed its input",
      });
      expect(stage.ready()).toBe(true);
    } finally {
      await stage.stop();
    }
  });
});
