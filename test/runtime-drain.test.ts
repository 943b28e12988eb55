// What a stop does to handlers still running: they keep a live signal until just before
// the drain deadline, finish if they can, and are aborted and nak'd if they cannot.
import { EventTypes } from "@jetmesh/contracts";
import { createLogger, defineStage, emit, runStage, stageSettings, startTelemetry } from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-drain-test" });
const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

interface Run {
  started: number;
  abortedAt?: number;
  finished?: number;
}

describe("runtime drain", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
  }, 60_000);
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });

  it("runtime - on stop, a handler that can finish before the drain deadline does, one that cannot is aborted near the deadline and nak'd", async () => {
    const runs = new Map<string, Run>();
    // Each handler works amountMinor milliseconds, unless its signal aborts first.
    const slow = defineStage<"transfers.requested">({
      name: "drainer",
      inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
      emits: [EventTypes.TransferValidated],
      handle: async (evt, ctx) => {
        const run: Run = { started: performance.now() };
        runs.set(evt.data.transferId, run);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, evt.data.amountMinor);
          ctx.signal.addEventListener("abort", () => {
            run.abortedAt = performance.now();
            clearTimeout(timer);
            reject(new Error("aborted by the stop"));
          });
        });
        run.finished = performance.now();
        const { transferId, from, to, amountMinor, currency } = evt.data;
        return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
      },
    });
    const drainTimeoutMs = 3000;
    const stage = await runStage({
      definition: slow,
      deps: {},
      nc: infra.nc,
      redis: infra.redis,
      logger,
      settings: stageSettings({ drainTimeoutMs, handlerTimeoutMs: 25_000, ackWaitMs: 30_000 }),
    });
    await publishEvent(infra.js, requested(1, { transferId: "short", amountMinor: 1000 }));
    await publishEvent(infra.js, requested(2, { transferId: "long", amountMinor: 20_000 }));
    await waitFor(() => runs.size === 2 || undefined, { what: "both handlers running" });

    const stopAt = performance.now();
    await stage.stop();
    const stoppedAfter = performance.now() - stopAt;

    const short = runs.get("short")!;
    const long = runs.get("long")!;
    // The short one was not disturbed by the stop and its output was stored.
    expect(short.abortedAt).toBeUndefined();
    expect(short.finished).toBeDefined();
    // The long one kept its signal until near the deadline (not at the stop) and then lost it.
    expect(long.finished).toBeUndefined();
    expect(long.abortedAt).toBeDefined();
    expect(long.abortedAt! - stopAt).toBeGreaterThanOrEqual(drainTimeoutMs * 0.8);
    expect(stoppedAfter).toBeLessThan(drainTimeoutMs + 2000);
    const out = await readStream(infra.jsm, "VALIDATION");
    expect(out.map((o) => o.env!.correlationId)).toEqual(["short"]);
    // The short input was acked; the long one is back in the stream for the next instance.
    const info = await infra.jsm.consumers.info("INGRESS", "drainer");
    expect(info.ack_floor.stream_seq).toBeGreaterThanOrEqual(1);
    expect(info.num_ack_pending + info.num_pending + info.num_redelivered).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
