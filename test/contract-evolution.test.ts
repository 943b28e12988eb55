// transfers.requested v1 and v2 side by side in INGRESS, read by the real validator stage on a
// real nats-server: each validated exactly once, with outputs of one shape, and the stream
// replayed from its start reads as v2 throughout.
import {
  type Envelope,
  EventTypes,
  encodeEvent,
  eventHeaders,
  Headers,
  Streams,
  subjectFor,
  TransferValidatedV1,
} from "@jetmesh/contracts";
import { createLogger, createRedis, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { validatorStage } from "@jetmesh/validator/stage";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";

const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const rules = { maxAmountMinor: 10_000_000, currencies: new Set(["EUR", "USD"]) };

/** Input `i` as an older gateway wrote it (v1), or as the current one does (v2, with the new fields on odd ones). */
function input(i: number): Envelope<"transfers.requested"> {
  const env = requested(i, {}, "evo");
  if (i % 3 === 0) return { ...env, version: 1 };
  return i % 2
    ? { ...env, data: { ...env.data, reference: `inv-${i}`, metadata: { order: `o-${i}` } } }
    : env;
}

describe("contract evolution", () => {
  let infra: Infra;
  let stage: StageHandle | undefined;
  beforeAll(async () => {
    infra = await startInfra();
  });
  /** The real validator stage on its own Redis connection (returned: the test closes it). */
  async function startValidator() {
    await stage?.stop();
    const redis = createRedis({ url: infra.redisServer.url, name: "evolution" });
    stage = await runStage({
      definition: validatorStage,
      deps: { rules },
      nc: infra.nc,
      redis,
      logger,
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });
    return redis;
  }
  afterAll(async () => {
    await stage?.stop();
    await infra?.close();
    await stopAllProcesses();
  });

  it("contract evolution - the validator reads v1 and v2 from INGRESS, each validated once, outputs of one shape", async () => {
    const redis = await startValidator();
    const inputs = Array.from({ length: 24 }, (_, i) => input(i));
    for (const env of inputs) await publishEvent(infra.js, env);

    const out = await waitFor(
      async () => {
        const v = await readStream(infra.jsm, Streams.VALIDATION.name);
        return v.length >= inputs.length ? v : undefined;
      },
      { what: "24 outputs", timeoutMs: 20_000 },
    );
    await waitFor(
      async () => (stage!.stats().ackPending === 0 && stage!.stats().pending === 0) || undefined,
      {
        what: "consumer drained",
        timeoutMs: 15_000,
      },
    );
    const again = await readStream(infra.jsm, Streams.VALIDATION.name);
    expect(again).toHaveLength(inputs.length);
    const dlq = await readStream(infra.jsm, Streams.DLQ.name);
    expect(dlq).toHaveLength(0);

    // exactly one output per input, every one validated, all of one shape: v2's fields stop here
    const byCause = new Map(out.map((o) => [o.env?.causationId, o]));
    expect(byCause.size).toBe(inputs.length);
    const shape = Object.keys(TransferValidatedV1.properties).sort();
    for (const env of inputs) {
      const o = byCause.get(env.eventId);
      expect(o?.env?.type, env.eventId).toBe(EventTypes.TransferValidated);
      expect(o?.headers[Headers.SchemaVersion]).toBe("1");
      expect(Object.keys(o?.env?.data ?? {}).sort()).toEqual(shape);
      expect(o?.env?.data).toMatchObject({
        transferId: env.data.transferId,
        amountMinor: env.data.amountMinor,
      });
    }

    // INGRESS holds both versions; read from its first message, every event is v2
    const ingress = await readStream(infra.jsm, Streams.INGRESS.name);
    expect(new Set(ingress.map((m) => m.headers[Headers.SchemaVersion]))).toEqual(new Set(["1", "2"]));
    expect(ingress.map((m) => m.env?.version)).toEqual(inputs.map(() => 2));
    expect(
      ingress.filter((m) => (m.env?.data as { reference?: string } | undefined)?.reference),
    ).toHaveLength(8);
    redis.disconnect();
  });

  it("contract evolution - the client identity: the envelope's actor first, the Jetmesh-Client-Id header as the fallback; outputs carry both", async () => {
    const redis = await startValidator();
    const before = (await readStream(infra.jsm, Streams.VALIDATION.name)).length;
    /** Publishes `env` with its own headers plus a Jetmesh-Client-Id of `header`. */
    const publish = async (env: Envelope<"transfers.requested">, header: string) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
      h.set(Headers.ClientId, header);
      await infra.js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
        msgID: env.eventId,
        headers: h,
      });
    };
    // Envelope v1 (a producer that writes the client in the header only), a v2 envelope whose
    // header says otherwise, and a header that is no client id.
    const headerOnly = requested(100, {}, "client");
    const both = { ...requested(101, {}, "client"), actor: "acme-pay" };
    const badHeader = requested(102, {}, "client");
    await publish(headerOnly, "acme-pay");
    await publish(both, "someone-else");
    await publish(badHeader, "not a client!*>");
    const out = await waitFor(
      async () => {
        const v = await readStream(infra.jsm, Streams.VALIDATION.name);
        return v.length >= before + 3 ? v : undefined;
      },
      { what: "3 more outputs", timeoutMs: 20_000 },
    );
    const of = (input: Envelope) => out.find((o) => o.env?.causationId === input.eventId);
    for (const input of [headerOnly, both]) {
      expect(of(input)?.env?.actor, input.eventId).toBe("acme-pay");
      expect(of(input)?.headers[Headers.ClientId], input.eventId).toBe("acme-pay");
    }
    expect(of(badHeader)?.env).toBeDefined();
    expect(of(badHeader)?.env?.actor).toBeUndefined();
    expect(of(badHeader)?.headers[Headers.ClientId]).toBeUndefined();
    expect(await readStream(infra.jsm, Streams.DLQ.name)).toHaveLength(0);
    redis.disconnect();
  });
});
