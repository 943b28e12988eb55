// The stage contract suite every stage runs (@jetmesh/stage/testing), with the bank as
// payout's other tests have it (the bank simulator, refusing bank:closed) and the payout
// records in a real nats-server: the replay check is the bank asked again under the same key.
import { type BankSimHandle, startBankSim } from "@jetmesh/bank-sim";
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { stageContract } from "@jetmesh/stage/testing";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll } from "vitest";
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
    seed: "payout-contract",
    behaviour: { processingMinMs: 0, processingMaxMs: 5, refuseAccounts: ["bank:closed"] },
  });
  deps = {
    bank: createBankClient({ url: sim.url, timeoutMs: 2000 }),
    records: await openPayoutRecords(jetstream(nc), { bucket: "payout-contract", replicas: 1 }),
    bankRetentionMs: 24 * 3600_000,
  };
});
afterAll(async () => {
  await sim?.close();
  await nc?.close();
  await stopAllProcesses();
});

const posting = (transferId: string, to: string) =>
  makeEnvelope(
    EventTypes.LedgerPosted,
    { transferId, from: "acc-alice", to, amountMinor: 4200, currency: "EUR", decision: "allow" },
    {
      eventId: `po-${transferId}`,
      correlationId: transferId,
      causationId: `sc-${transferId}`,
      producer: "ledger",
      occurredAt: "2026-11-29T10:00:00.000Z",
    },
  ) as AnyEnvelope;

stageContract(payoutStage, {
  deps: () => deps,
  // paid, refused by the bank, and a posting to a customer account (nothing to pay out)
  inputs: [
    posting("t-paid", "bank:acme-1"),
    posting("t-refused", "bank:closed"),
    posting("t-internal", "acc-bob"),
  ],
});
