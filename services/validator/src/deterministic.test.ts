// A redelivered input gives byte-identical outputs (payload and headers, trace context
// aside), for any input: what lets a duplicate PubAck be checked against the stored event.
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { handlerContext, publishedBytes, runPlan } from "@jetmesh/stage/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ValidatorDeps, validatorStage } from "./handler.ts";

const deps: ValidatorDeps = {
  rules: { maxAmountMinor: 10_000_000, currencies: new Set(["EUR", "USD", "GBP"]) },
};
const account = fc.oneof(
  fc.constantFrom("external", "acc-a", "acc-b", "bank:acme-1"),
  fc.string({ minLength: 1, maxLength: 40 }),
);

describe("validator determinism", () => {
  it("validator - a redelivered input gives byte-identical outputs (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          from: account,
          to: account,
          amountMinor: fc.integer({ min: -1_000, max: 20_000_000 }),
          currency: fc.constantFrom("EUR", "USD", "XYZ"),
          // Event times the contract accepts: RFC 3339, four-digit years.
          occurredAt: fc
            .date({
              noInvalidDate: true,
              min: new Date("0000-01-01T00:00:00Z"),
              max: new Date("9999-12-31T23:59:59.999Z"),
            })
            .map((d) => d.toISOString()),
        }),
        async (t) => {
          const input = makeEnvelope(
            EventTypes.TransferRequested,
            {
              transferId: "t-1",
              from: t.from,
              to: t.to,
              amountMinor: t.amountMinor,
              currency: t.currency,
              requestedAt: t.occurredAt,
            },
            {
              eventId: "e-1",
              correlationId: "t-1",
              causationId: "k",
              producer: "gateway",
              occurredAt: t.occurredAt,
            },
          ) as AnyEnvelope;
          const first = publishedBytes(
            validatorStage,
            input,
            await runPlan(validatorStage, input, handlerContext("validator", deps)),
          );
          const again = publishedBytes(
            validatorStage,
            input,
            await runPlan(
              validatorStage,
              input,
              handlerContext("validator", deps, {
                delivery: { stream: "INGRESS", subject: "x", streamSequence: 1, deliveryCount: 2 },
              }),
            ),
          );
          expect(first).toHaveLength(1);
          expect(again).toEqual(first);
        },
      ),
      { numRuns: 200 },
    );
  });
});
