// The stage contract suite every stage runs (@jetmesh/stage/testing). The ledger's handler
// emits nothing itself: its effect hands the input to the writer, which appends the decision
// to LEDGER with optimistic concurrency (ledger-writer.test.ts, stage.test.ts). Here the writer
// is a fake that records what it is asked, so the suite checks the handler's own promises: a
// replay asks the writer for the same decision, nothing undeclared is emitted, and an input
// that breaks its schema never reaches the writer.
import type { AnyEnvelope } from "@jetmesh/contracts";
import { stageContract } from "@jetmesh/stage/testing";
import { expect, it } from "vitest";
import { type LedgerDeps, ledgerStage } from "./handler.ts";
import { failedInput, scoredInput } from "./test-support.ts";

const asked: unknown[] = [];
const deps: LedgerDeps = {
  writer: {
    decide: async (input) => {
      asked.push(input);
      return { appended: asked.length === 1 };
    },
  },
};
const transfer = { transferId: "t-1", from: "acc-alice", to: "bank:bob", amountMinor: 1250, currency: "EUR" };

stageContract(ledgerStage, {
  deps,
  inputs: [scoredInput(transfer) as AnyEnvelope, failedInput(transfer) as AnyEnvelope],
});

it("ledger - contract: the writer was asked only for the contract's valid inputs", () => {
  expect(asked.length).toBeGreaterThan(0);
  for (const input of asked) expect((input as AnyEnvelope).data).toMatchObject({ transferId: "t-1" });
});
