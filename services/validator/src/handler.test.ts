import {
  checkEventData,
  type Envelope,
  EventTypes,
  makeEnvelope,
  type TransferRequested,
} from "@jetmesh/contracts";
import {
  context as otelContext,
  createLogger,
  type Emission,
  type HandlerContext,
  type Plan,
} from "@jetmesh/stage";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ValidationRules, type ValidatorDeps, validateTransfer, validatorStage } from "./handler.ts";

const rules: ValidationRules = {
  maxAmountMinor: 10_000_000,
  currencies: new Set(["EUR", "USD", "GBP", "CHF", "JPY"]),
};
const valid: TransferRequested = {
  transferId: "t-1",
  from: "acc-alice",
  to: "acc-bob",
  amountMinor: 1250,
  currency: "EUR",
  requestedAt: "2026-11-26T10:00:00.000Z",
};

function context(deps: ValidatorDeps = { rules }): HandlerContext<ValidatorDeps> {
  return {
    stage: "validator",
    deps,
    logger: createLogger({ service: "validator", level: "silent" }),
    delivery: { stream: "INGRESS", subject: "transfers.requested.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal: new AbortController().signal,
  };
}

async function handle(data: TransferRequested): Promise<readonly Emission[]> {
  const event = makeEnvelope(EventTypes.TransferRequested, data, {
    eventId: "e-1",
    correlationId: data.transferId,
    causationId: "req-1",
    producer: "gateway",
  }) as Envelope<typeof EventTypes.TransferRequested>;
  const out: readonly Emission[] | Plan = await validatorStage.handle(event, context());
  if (Array.isArray(out)) return out;
  throw new Error("validator must not plan an effect");
}

const reasonsOf = (data: Partial<TransferRequested>) => validateTransfer({ ...valid, ...data }, rules);

describe("validator", () => {
  it("validator - a valid transfer is emitted as transfers.validated without requestedAt", async () => {
    const out = await handle(valid);
    expect(out).toEqual([
      {
        type: "transfers.validated",
        data: { transferId: "t-1", from: "acc-alice", to: "acc-bob", amountMinor: 1250, currency: "EUR" },
      },
    ]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
  });

  it("validator - a v2 request's reference and metadata change nothing it emits", async () => {
    const v2 = await handle({ ...valid, reference: "invoice 42", metadata: { order: "o-9" } });
    expect(v2).toEqual(await handle(valid));
    const rejected = await handle({ ...valid, amountMinor: 0, reference: "r" });
    expect(Object.keys(rejected[0]!.data).sort()).toEqual(
      ["amountMinor", "currency", "from", "reasons", "to", "transferId"].sort(),
    );
  });

  it("validator - money in from external and payouts to a bank account are valid", () => {
    expect(reasonsOf({ from: "external", to: "acc-bob" })).toEqual([]);
    expect(reasonsOf({ from: "acc-alice", to: "bank:acme-1" })).toEqual([]);
  });

  it("validator - a zero or negative amount is rejected", () => {
    for (const amountMinor of [0, -1, -10_000]) {
      expect(reasonsOf({ amountMinor })).toEqual([
        { field: "/amountMinor", rule: "must be a positive integer" },
      ]);
    }
  });

  it("validator - an amount above the limit is rejected and the limit itself passes", () => {
    expect(reasonsOf({ amountMinor: 10_000_000 })).toEqual([]);
    expect(reasonsOf({ amountMinor: 10_000_001 })).toEqual([
      { field: "/amountMinor", rule: "must be at most 10000000" },
    ]);
    expect(validateTransfer({ ...valid, amountMinor: 501 }, { ...rules, maxAmountMinor: 500 })).toHaveLength(
      1,
    );
  });

  it("validator - an unknown currency is rejected naming the known ones", () => {
    expect(reasonsOf({ currency: "XXX" })).toEqual([
      { field: "/currency", rule: "must be one of EUR, USD, GBP, CHF, JPY" },
    ]);
    expect(reasonsOf({ currency: "eur" })).toHaveLength(1);
  });

  it("validator - from must be external or a customer account", () => {
    for (const from of ["bank:acme-1", "acc-", "ACC-1", "acc-UPPER", "externals", "x"]) {
      expect(reasonsOf({ from })).toEqual([
        { field: "/from", rule: expect.stringMatching(/^must be external or match/) },
      ]);
    }
  });

  it("validator - to must be a customer or a bank account", () => {
    for (const to of ["external", "bank:", "bank:UPPER", "acc-with_underscore", "y"]) {
      expect(reasonsOf({ to })).toEqual([
        { field: "/to", rule: expect.stringMatching(/^must match \^acc-/) },
      ]);
    }
  });

  it("validator - a transfer to its own source account is rejected", () => {
    expect(reasonsOf({ from: "acc-alice", to: "acc-alice" })).toEqual([
      { field: "/to", rule: "must differ from /from" },
    ]);
  });

  it("validator - every broken rule is reported in one rejection", async () => {
    const out = await handle({ ...valid, from: "bank:x", to: "bank:x", amountMinor: 0, currency: "ABC" });
    expect(out).toHaveLength(1);
    expect(out[0]!.type).toBe("transfers.rejected");
    const data = out[0]!.data as { reasons: { field: string }[] };
    expect(data.reasons.map((r) => r.field)).toEqual(["/amountMinor", "/currency", "/from", "/to"]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);

    const external = await handle({ ...valid, from: "external", to: "external", amountMinor: 20_000_000 });
    expect((external[0]!.data as { reasons: { field: string }[] }).reasons.map((r) => r.field)).toEqual([
      "/amountMinor",
      "/to",
      "/to",
    ]);
  });

  it("validator - any transfer gets exactly one contract-valid outcome (property)", async () => {
    const account = fc.oneof(
      fc.constant("external"),
      fc.stringMatching(/^acc-[a-z0-9]{1,8}$/),
      fc.stringMatching(/^bank:[a-z0-9-]{1,8}$/),
      fc.string({ minLength: 1, maxLength: 12 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          transferId: fc.string({ minLength: 1, maxLength: 20 }),
          from: account,
          to: account,
          amountMinor: fc.integer({ min: -5, max: 20_000_000 }),
          currency: fc.constantFrom("EUR", "USD", "XYZ", "JPY", "abc"),
          requestedAt: fc.constant("2026-11-26T10:00:00.000Z"),
        }),
        async (data) => {
          const out = await handle(data);
          expect(out).toHaveLength(1);
          const [only] = out;
          expect(checkEventData(only!.type, only!.data)).toEqual([]);
          expect(only!.type).toBe(
            validateTransfer(data, rules).length === 0 ? "transfers.validated" : "transfers.rejected",
          );
        },
      ),
    );
  });
});
