// The event publisher's headers against a real nats-server: what is stored, and what is refused.
import { ContractError, eventHeaders, Headers, makeEnvelope } from "@jetmesh/contracts";
import { createLogger, stageSettings, startTelemetry } from "@jetmesh/stage";
import { createEventPublisher } from "@jetmesh/stage/internal";
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, readStream, requested, startInfra } from "./support/infra.ts";

startTelemetry({ serviceName: "publisher-test" });
const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("event publisher", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
    await infra.jsm.streams.add({ name: "INGRESS", subjects: ["transfers.requested.>"] });
  }, 60_000);
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });
  const publisher = () =>
    createEventPublisher({ js: infra.js, nc: infra.nc, settings: stageSettings({}), logger, stage: "test" });

  it("publisher - stores the event's contract headers and a traceparent, with Nats-Msg-Id only when deduping", async () => {
    const deduped = requested(1);
    const plain = requested(2);
    await publisher().publish(deduped);
    await publisher().publish(plain, { dedupe: false });
    const [a, b] = await readStream(infra.jsm, "INGRESS");
    expect(a!.headers).toMatchObject(eventHeaders(deduped));
    expect(a!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    const { [Headers.MsgId]: _, ...withoutId } = eventHeaders(plain);
    expect(b!.headers).toMatchObject(withoutId);
    expect(b!.headers[Headers.MsgId]).toBeUndefined();
  });

  it("publisher - a header value with a line break is refused with the header named, and nothing is stored", async () => {
    const before = (await readStream(infra.jsm, "INGRESS")).length;
    const evil = { ...requested(3), correlationId: "t-3\r\nJetmesh-Producer: someone-else" };
    const err = await publisher()
      .publish(makeEnvelope(evil.type, evil.data, evil))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContractError);
    expect((err as ContractError).issues).toEqual([
      { field: `header:${Headers.CorrelationId}`, rule: "must not contain a line break" },
    ]);
    expect(await readStream(infra.jsm, "INGRESS")).toHaveLength(before);
  });

  it("publisher - a duplicate PubAck for the same event is success; for a different stored event it is an error", async () => {
    const first = requested(4);
    const stored = await publisher().publish(first);
    // A retry of the same event (a lost PubAck): the stream drops it and says where it is.
    const again = await publisher().publish(makeEnvelope(first.type, first.data, first));
    expect(again).toMatchObject({ duplicate: true, seq: stored.seq });
    // Another decision under the same id: the duplicate window would drop it silently.
    const other = makeEnvelope(first.type, { ...first.data, amountMinor: 999_999 }, first);
    const err = await publisher()
      .publish(other)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe("DuplicateMismatchError");
    expect((err as Error).message).toMatch(new RegExp(`INGRESS seq ${stored.seq}`));
    const copies = (await readStream(infra.jsm, "INGRESS")).filter((e) => e.env?.eventId === first.eventId);
    expect(copies.map((e) => e.env?.data)).toEqual([first.data]);
  });

  it("publisher - a duplicate check that failed once (JetStream unanswered during a broker restart) does not fail every later one", async () => {
    // Found by the simulator (seed sim-585): the manager's promise was cached rejected, so after
    // one blip every duplicate PubAck of the stage failed until the process restarted.
    let unanswered = 1;
    const js = new Proxy(infra.js, {
      get(target, prop, receiver) {
        if (prop === "jetstreamManager")
          return (...args: Parameters<typeof target.jetstreamManager>) =>
            unanswered-- > 0 ? Promise.reject(new Error("timeout")) : target.jetstreamManager(...args);
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const p = createEventPublisher({ js, nc: infra.nc, settings: stageSettings({}), logger, stage: "test" });
    const event = requested(7);
    const stored = await p.publish(event);
    await expect(p.publish(event)).rejects.toThrow(/timeout/);
    await expect(p.publish(event)).resolves.toMatchObject({ duplicate: true, seq: stored.seq });
  });
});
