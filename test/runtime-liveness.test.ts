// Readiness that tells the truth (issue 17): a Redis or NATS that keeps its connection but
// stops answering (a paused process, a black-holed network) turns the stage unready within
// seconds, and it stops pulling; as one that refuses connections already did. Real servers,
// paused with SIGSTOP and resumed with SIGCONT.
import { EventTypes } from "@jetmesh/contracts";
import { createLogger, defineStage, emit, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, startInfra } from "./support/infra.ts";

const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
// The probe's bound is 2 s unanswered after a probe each second; ioredis' own command
// timeout (5 s) and nats.js' missed pings (two of 5 s) would come later.
const WITHIN_MS = 4500;

const echo = defineStage<"transfers.requested">({
  name: "liveness",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: async (evt) => {
    const { transferId, from, to, amountMinor, currency } = evt.data;
    return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
  },
});

describe("runtime liveness", () => {
  let infra: Infra;
  let stage: StageHandle;
  beforeAll(async () => {
    infra = await startInfra();
    stage = await runStage({
      definition: echo,
      deps: {},
      nc: infra.nc,
      redis: infra.redis,
      logger,
      settings: stageSettings({}),
    });
    await waitFor(() => stage.health().ok, { timeoutMs: 10_000, what: "the stage ready" });
  }, 60_000);
  afterAll(async () => {
    for (const pid of [infra?.redisServer.pid, infra?.nats.pid])
      if (pid && pid > 0) process.kill(pid, "SIGCONT");
    await stage?.stop();
    await infra?.close();
    await stopAllProcesses();
  });

  it("runtime - a paused redis-server turns the stage unready within seconds (its connection still open), and ready again once it answers", async () => {
    process.kill(infra.redisServer.pid, "SIGSTOP");
    const t0 = Date.now();
    try {
      await waitFor(() => !stage.health().ok, { timeoutMs: WITHIN_MS, what: "the stage unready" });
      const h = stage.health();
      expect(h).toMatchObject({ ok: false, redis: false, nats: true });
      expect(infra.redis.status).toBe("ready");
      expect(Date.now() - t0).toBeLessThan(WITHIN_MS);
    } finally {
      process.kill(infra.redisServer.pid, "SIGCONT");
    }
    await waitFor(() => stage.health().ok, { timeoutMs: 10_000, what: "the stage ready again" });
    expect(stage.health()).toMatchObject({ ok: true, redis: true, nats: true });
  });

  it("runtime - a paused nats-server turns the stage unready within seconds, before nats.js notices, and ready again once it answers", async () => {
    process.kill(infra.nats.pid, "SIGSTOP");
    const t0 = Date.now();
    try {
      await waitFor(() => !stage.health().ok, { timeoutMs: WITHIN_MS, what: "the stage unready" });
      expect(stage.health()).toMatchObject({ ok: false, nats: false, redis: true });
      expect(infra.nc.isClosed()).toBe(false);
      expect(Date.now() - t0).toBeLessThan(WITHIN_MS);
    } finally {
      process.kill(infra.nats.pid, "SIGCONT");
    }
    await waitFor(() => stage.health().ok, { timeoutMs: 15_000, what: "the stage ready again" });
  });
});
