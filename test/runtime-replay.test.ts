// An operator's replay of a parked message (`jetmesh dlq replay`) is republished to its origin
// subject, where every consumer of the stream sees it. Only the stage it names may run it; the
// others must ack and skip it without relying on their idempotency keys, which expire (7 days
// by default) long before an operator may replay. Real nats-server and redis-server.
import { encodeEvent, EventTypes, eventHeaders, Headers, Streams, subjectFor } from "@jetmesh/contracts";
import {
  defineStage,
  type Redis,
  runStage,
  type StageHandle,
  stageSettings,
  startTelemetry,
} from "@jetmesh/stage";
import { waitFor } from "@jetmesh/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { echoHarness, FAST, logger } from "./support/echo-harness.ts";
import { publishEvent, readStream, requested } from "./support/infra.ts";

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

describe("runtime replay", () => {
  const h = echoHarness();

  it("runtime - an operator's replay runs in the stage it names only; another consumer of the stream skips it, its guard gone or not", async () => {
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
      await publishEvent(h.infra.js, poison);
      const parked = await waitFor(async () => (await readStream(h.infra.jsm, Streams.DLQ.name))[0], {
        what: "the poison message parked",
      });
      await h.quiet();
      await observerQuiet();
      expect(await h.redis.lrange(`echo:deliveries:${poison.eventId}`, 0, -1)).toHaveLength(1);
      expect(await h.redis.get(`observer:runs:${poison.eventId}`)).toBe("1");

      // Days later the observer's guard has expired; an operator replays the parked message for echo.
      expect(await h.redis.del(`observer:${poison.eventId}`)).toBe(1);
      const hdr = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(poison))) if (k !== Headers.MsgId) hdr.set(k, v);
      hdr.set(Headers.ReplayOf, String(parked.seq));
      hdr.set(Headers.ReplayStage, "echo");
      const ack = await h.infra.js.publish(subjectFor(poison.type, poison.data.from), encodeEvent(poison), {
        msgID: `replay:DLQ:${parked.seq}`,
        headers: hdr,
      });
      expect(ack.duplicate).toBe(false);
      await h.quiet();
      await observerQuiet();
      // Echo ran it again (its key was released when it parked; it is still poison, so parked again)...
      expect(await h.redis.lrange(`echo:deliveries:${poison.eventId}`, 0, -1)).toHaveLength(2);
      await waitFor(async () => (await readStream(h.infra.jsm, Streams.DLQ.name)).length === 2 || undefined, {
        what: "the replay parked again",
      });
      // ...and the observer, whose guard was gone, did not run it a second time.
      expect(await h.redis.get(`observer:runs:${poison.eventId}`)).toBe("1");
    } finally {
      await observer.stop();
    }
  });
});
