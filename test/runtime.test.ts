import { EventTypes, Headers, Streams } from "@jetmesh/contracts";
import { createLogger, runStage, stageSettings, type StageHandle, startTelemetry } from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { createRedis } from "@jetmesh/stage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echoStage } from "./fixtures/echo-stage.ts";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-test" });
const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

describe("runtime", () => {
  let infra: Infra;
  let stage: StageHandle | undefined;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterAll(async () => {
    await stage?.stop();
    await infra?.close();
    await stopAllProcesses();
  });

  it("runtime - a stage consumes, publishes once with derived ids and lineage, and acks", async () => {
    const redis = createRedis({ url: infra.redisServer.url, name: "test" });
    stage = await runStage({
      definition: echoStage,
      deps: { redis, delayMs: 0, failTimes: 0 },
      nc: infra.nc,
      redis,
      logger,
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });
    for (let i = 0; i < 20; i++) await publishEvent(infra.js, requested(i));
    // the same request again: the stream's duplicate window drops it
    const again = await publishEvent(infra.js, requested(3));
    expect(again.duplicate).toBe(true);
    const out = await waitFor(
      async () => {
        const v = await readStream(infra.jsm, Streams.VALIDATION.name);
        return v.length >= 20 ? v : undefined;
      },
      { what: "20 validated events", timeoutMs: 20_000 },
    );
    expect(out).toHaveLength(20);
    const ingress = await readStream(infra.jsm, Streams.INGRESS.name);
    const byId = new Map(ingress.map((e) => [e.env!.eventId, e.env!]));
    for (const o of out) {
      expect(o.env?.type).toBe(EventTypes.TransferValidated);
      expect(o.headers[Headers.MsgId]).toBe(o.env?.eventId);
      expect(byId.get(o.env!.causationId)?.correlationId).toBe(o.env?.correlationId);
      expect(o.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    }
    await waitFor(
      async () => (stage!.stats().ackPending === 0 && stage!.stats().pending === 0) || undefined,
      {
        what: "consumer drained",
        timeoutMs: 15_000,
      },
    );
    redis.disconnect();
  });
});
