// The contract suite on a small stage that keeps it, and each check against a stage that
// breaks exactly the promise it guards: a suite that passes everything proves nothing.
import { type AnyEnvelope, EventTypes, makeEnvelope, type TransferValidated } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { defineStage, emit, type StageDefinition } from "./define-stage.ts";
import { StageContractChecks, StageContractViolation, stageContract } from "./testing.ts";

const validated: TransferValidated = {
  transferId: "t-1",
  from: "acc-alice",
  to: "acc-bob",
  amountMinor: 1250,
  currency: "EUR",
};
const input = makeEnvelope(EventTypes.TransferValidated, validated, {
  eventId: "e-1",
  correlationId: "t-1",
  causationId: "c-1",
  producer: "validator",
}) as AnyEnvelope;

type In = typeof EventTypes.TransferValidated;
const scorer = (over: Partial<StageDefinition<In, { n: number }>> = {}) =>
  defineStage<In, { n: number }>({
    name: "scorer",
    inputs: [{ stream: "VALIDATION", types: [EventTypes.TransferValidated] }],
    emits: [EventTypes.TransferScored],
    handle: (evt) => [
      emit(EventTypes.TransferScored, { ...evt.data, score: 10, decision: "allow", factors: [] }),
    ],
    ...over,
  });

stageContract(scorer(), { deps: { n: 0 }, inputs: [input] });

describe("stage contract suite", () => {
  it("stage - contract: an effect that is not keyed by the input fails the replay check", async () => {
    const counter = scorer({
      handle: (evt, ctx) => ({
        effect: async () => [
          emit(EventTypes.TransferScored, {
            ...evt.data,
            score: ++ctx.deps.n,
            decision: "allow",
            factors: [],
          }),
        ],
      }),
    });
    await expect(StageContractChecks.replay(counter, { n: 0 }, input)).rejects.toThrow(
      StageContractViolation,
    );
  });

  it("stage - contract: emitting an undeclared type fails the declared check", async () => {
    const leaky = scorer({ emits: [] });
    await expect(StageContractChecks.declared(leaky, { n: 0 }, input)).rejects.toThrow(
      /emitted transfers.scored, not in emits/,
    );
  });

  it("stage - contract: an output that differs per run, or breaks its schema, fails the determinism check", async () => {
    const clocked = scorer({
      handle: (evt) => [
        emit(EventTypes.TransferScored, {
          ...evt.data,
          score: 10,
          decision: "allow",
          factors: [String(process.hrtime.bigint())],
        }),
      ],
    });
    await expect(StageContractChecks.deterministic(clocked, { n: 0 }, input)).rejects.toThrow(
      /different encoded outputs/,
    );
    const invalid = scorer({
      handle: (evt) => [
        emit(EventTypes.TransferScored, { ...evt.data, score: 101, decision: "allow", factors: [] }),
      ],
    });
    await expect(StageContractChecks.deterministic(invalid, { n: 0 }, input)).rejects.toThrow(/contract/);
  });

  it("stage - contract: a bad input never reaches the handler and is refused naming its field", async () => {
    await expect(StageContractChecks.badInput(scorer(), { n: 0 }, input)).resolves.toBeUndefined();
  });
});
