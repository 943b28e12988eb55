// The stage contract suite every stage runs (@jetmesh/stage/testing), on a valid transfer and
// on one the rules reject: both outcomes replay, stay declared and encode the same bytes.
import { type AnyEnvelope, EventTypes, makeEnvelope, type TransferRequested } from "@jetmesh/contracts";
import { stageContract } from "@jetmesh/stage/testing";
import { type ValidatorDeps, validatorStage } from "./handler.ts";

const deps: ValidatorDeps = {
  rules: { maxAmountMinor: 10_000_000, currencies: new Set(["EUR", "USD", "GBP"]) },
};
const requested = (transferId: string, data: Partial<TransferRequested> = {}) =>
  makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: "acc-alice",
      to: "acc-bob",
      amountMinor: 1250,
      currency: "EUR",
      requestedAt: "2026-11-29T10:00:00.000Z",
      ...data,
    },
    { eventId: `rq-${transferId}`, correlationId: transferId, causationId: "k-1", producer: "gateway" },
  ) as AnyEnvelope;

stageContract(validatorStage, {
  deps,
  inputs: [requested("t-valid"), requested("t-rejected", { currency: "XYZ", amountMinor: 0 })],
});
