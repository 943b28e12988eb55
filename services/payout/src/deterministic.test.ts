// A redelivered posting gives byte-identical outputs (payload and headers, trace context
// aside), paid or refused, whatever was paid in between: the outcome is answered from the
// transfer's record in JetStream, as the bank first gave it.
import { randomUUID } from "node:crypto";
import { type BankSimHandle, startBankSim } from "@jetmesh/bank-sim";
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { handlerContext, publishedBytes, runPlan } from "@jetmesh/stage/testing";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBankClient } from "./bank-client.ts";
import { type PayoutDeps, payoutStage } from "./handler.ts";
import { openPayoutRecords } from "./records.ts";

let sim: BankSimHandle;
let nats: NatsServerHandle;
let nc: NatsConnection;
let deps: PayoutDeps;
beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  sim = await startBankSim({
    port: 0,
    seed: "payout-determinism",
    behaviour: { processingMinMs: 0, processingMaxMs: 5, refuseAccounts: ["bank:closed"] },
  });
  deps = {
    bank: createBankClient({ url: sim.url, timeoutMs: 2000 }),
    records: await openPayoutRecords(jetstream(nc), { bucket: "payout-determinism", replicas: 1 }),
    bankRetentionMs: 24 * 3600_000,
  };
});
afterAll(async () => {
  await sim?.close();
  await nc?.close();
  await stopAllProcesses();
});

const posting = (to: string, amountMinor: number) => {
  const transferId = `t-${randomUUID().slice(0, 12)}`;
  return makeEnvelope(
    EventTypes.LedgerPosted,
    { transferId, from: "acc-a", to, amountMinor, currency: "EUR", decision: "allow" },
    {
      eventId: `p-${transferId}`,
      correlationId: transferId,
      causationId: `s-${transferId}`,
      producer: "ledger",
      occurredAt: "2026-11-29T10:00:00.000Z",
    },
  ) as AnyEnvelope;
};

describe("payout determinism", () => {
  it("payout - a redelivered posting gives byte-identical outputs, paid or refused (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            to: fc.constantFrom("bank:acme-1", "bank:closed", "acc-c"),
            amountMinor: fc.integer({ min: 1, max: 1_000_000 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (postings) => {
          const inputs = postings.map((p) => posting(p.to, p.amountMinor));
          const first = [];
          for (const input of inputs)
            first.push(
              publishedBytes(
                payoutStage,
                input,
                await runPlan(payoutStage, input, handlerContext("payout", deps)),
              ),
            );
          for (const [i, input] of [...inputs.entries()].reverse()) {
            const again = publishedBytes(
              payoutStage,
              input,
              await runPlan(payoutStage, input, handlerContext("payout", deps)),
            );
            expect(again).toEqual(first[i]);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
