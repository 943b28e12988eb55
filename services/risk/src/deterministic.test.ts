// A redelivered input gives byte-identical outputs (payload and headers, trace context
// aside), however many other transfers moved the velocity window in between: the window
// answers a replayed event with its first answer.
import { randomUUID } from "node:crypto";
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { handlerContext, publishedBytes, runPlan } from "@jetmesh/stage/testing";
import { type RedisServerHandle, startRedis } from "@jetmesh/testkit";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RiskDeps, riskStage } from "./handler.ts";
import { createVelocityStore } from "./velocity.ts";

let server: RedisServerHandle;
let redis: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const validated = (i: number, from: string, to: string, amountMinor: number) =>
  makeEnvelope(
    EventTypes.TransferValidated,
    { transferId: `t-${i}`, from, to, amountMinor, currency: "EUR" },
    {
      eventId: `e-${i}-${randomUUID()}`,
      correlationId: `t-${i}`,
      causationId: `r-${i}`,
      producer: "validator",
      occurredAt: "2026-11-29T10:00:00.000Z",
    },
  ) as AnyEnvelope;

describe("risk determinism", () => {
  it("risk - a redelivered input gives byte-identical outputs, whatever moved the window in between (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            from: fc.constantFrom("external", "acc-a", "acc-b"),
            to: fc.constantFrom("acc-c", "bank:acme-1"),
            amountMinor: fc.integer({ min: 1, max: 9_000_000 }),
          }),
          { minLength: 2, maxLength: 12 },
        ),
        async (transfers) => {
          const deps: RiskDeps = {
            velocity: createVelocityStore(redis, {
              windowMs: 60_000,
              retentionMs: 3_600_000,
              keyPrefix: `v-${randomUUID()}`,
            }),
            thresholds: { reviewScore: 60, denyScore: 85 },
          };
          const inputs = transfers.map((t, i) => validated(i, t.from, t.to, t.amountMinor));
          const first = [];
          for (const input of inputs)
            first.push(
              publishedBytes(riskStage, input, await runPlan(riskStage, input, handlerContext("risk", deps))),
            );
          // Every input again, in reverse order: the window has moved since each was first scored.
          for (const [i, input] of [...inputs.entries()].reverse()) {
            const again = publishedBytes(
              riskStage,
              input,
              await runPlan(riskStage, input, handlerContext("risk", deps)),
            );
            expect(again).toEqual(first[i]);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
