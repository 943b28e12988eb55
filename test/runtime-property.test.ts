// Property: over random interleavings of publishes, duplicate publishes, redeliveries
// and crashes at any recipe step, every input gets exactly one output (I1) and its
// effect applies once (I2). Crashes are simulated in-process (the runtime abandons the
// message as a dead process would: no ack, no nak, no lease release), so JetStream
// redelivers after AckWait, exactly the path a real crash takes.
import { Streams } from "@jetmesh/contracts";
import { createLogger, createRedis, runStage, stageSettings, startTelemetry } from "@jetmesh/stage";
import { type CrashPoint, CrashPoints, SimulatedCrash } from "@jetmesh/stage/internal";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echoStage } from "./fixtures/echo-stage.ts";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-property-test" });
const logger = createLogger({ service: "test", level: "silent" });
const points = Object.values(CrashPoints) as CrashPoint[];

type Command =
  | { kind: "publish"; i: number; delayMs: number }
  | { kind: "duplicate"; i: number; delayMs: number };

describe("runtime property", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterAll(async () => {
    await infra.close();
    await stopAllProcesses();
  });

  it("runtime - random deliveries, duplicates and crash points keep one output and one effect per input", async () => {
    let run = 0;
    let crashesInjected = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(
          fc.record({
            kind: fc.constantFrom<"publish" | "duplicate">("publish", "duplicate"),
            i: fc.nat({ max: 7 }),
            delayMs: fc.integer({ min: 0, max: 30 }),
          }),
          { maxLength: 12 },
        ),
        fc.uniqueArray(
          fc.record({ point: fc.constantFrom(...points), nth: fc.integer({ min: 1, max: 10 }) }),
          {
            maxLength: 4,
            selector: (c) => `${c.point}:${c.nth}`,
          },
        ),
        fc.integer({ min: 1, max: 8 }),
        async (n, extra, crashes, maxInFlight) => {
          run += 1;
          const tag = `p${run}`;
          for (const s of Object.values(Streams)) await infra.jsm.streams.delete(s.name).catch(() => false);
          await infra.redis.flushall();
          const seen = new Map<CrashPoint, number>();
          const crashHook = (point: CrashPoint) => {
            const k = (seen.get(point) ?? 0) + 1;
            seen.set(point, k);
            if (crashes.some((c) => c.point === point && c.nth === k)) {
              crashesInjected += 1;
              throw new SimulatedCrash(point);
            }
          };
          const redis = createRedis({ url: infra.redisServer.url, name: "property" });
          const stage = await runStage({
            definition: echoStage,
            deps: { redis, delayMs: 0, failTimes: 0 },
            nc: infra.nc,
            redis,
            logger,
            crashHook,
            settings: stageSettings({
              ackWaitMs: 600,
              maxDeliver: 30,
              retryBaseMs: 20,
              retryMaxMs: 100,
              maxInFlight,
              publishTimeoutMs: 1000,
              publishRetryHorizonMs: 2000,
            }),
          });
          try {
            const commands: Command[] = [
              ...Array.from({ length: n }, (_, i) => ({ kind: "publish" as const, i, delayMs: 0 })),
              ...extra.filter((c) => c.i < n),
            ];
            await Promise.all(
              commands.map(async (c) => {
                await new Promise((r) => setTimeout(r, c.delayMs));
                await publishEvent(infra.js, requested(c.i, {}, tag));
              }),
            );
            await waitFor(
              async () => {
                const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
                return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
              },
              { what: "quiet", timeoutMs: 30_000, intervalMs: 100 },
            );
            const out = await readStream(infra.jsm, Streams.VALIDATION.name);
            const ids = out.map((o) => o.env!.correlationId).sort();
            expect(ids).toEqual(Array.from({ length: n }, (_, i) => `${tag}-${i}`).sort());
            for (let i = 0; i < n; i++) expect(await infra.redis.get(`echo:effects:${tag}-${i}`)).toBe("1");
            expect(await readStream(infra.jsm, Streams.DLQ.name)).toHaveLength(0);
          } finally {
            await stage.stop();
            redis.disconnect();
          }
        },
      ),
      { numRuns: 25, seed: Number(process.env.PROPERTY_SEED ?? 20261126), endOnFailure: true },
    );
    // The property was exercised: crashes really happened along the way.
    expect(crashesInjected).toBeGreaterThan(10);
  }, 240_000);
});
