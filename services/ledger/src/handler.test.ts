import {
  checkEventData,
  type Envelope,
  EventTypes,
  makeEnvelope,
  type TransferScored,
} from "@jetmesh/contracts";
import {
  context as otelContext,
  createLogger,
  type Emission,
  type HandlerContext,
  PermanentError,
  type Plan,
  TransientError,
} from "@jetmesh/stage";
import { describe, expect, it, vi } from "vitest";
import { type LedgerDeps, ledgerStage } from "./handler.ts";
import type { PostResult, ReverseResult } from "./store.ts";

const scoredData: TransferScored = {
  transferId: "t-1",
  from: "acc-alice",
  to: "bank:bob",
  amountMinor: 1250,
  currency: "EUR",
  score: 12,
  decision: "allow",
  factors: [],
};
const scored = makeEnvelope(EventTypes.TransferScored, scoredData, {
  eventId: "e-scored",
  correlationId: "t-1",
  causationId: "e-validated",
  producer: "risk",
});
const failed = makeEnvelope(
  EventTypes.PayoutFailed,
  {
    transferId: "t-1",
    from: "acc-alice",
    to: "bank:bob",
    amountMinor: 1250,
    currency: "EUR",
    reason: "account closed",
    bankStatus: 422,
  },
  { eventId: "e-failed", correlationId: "t-1", causationId: "e-posted", producer: "payout" },
);

function deps(post: PostResult | Error, reverse: ReverseResult | Error = { kind: "unknown" }) {
  const answer = <T>(r: T | Error) => (r instanceof Error ? Promise.reject(r) : Promise.resolve(r));
  return {
    store: { post: vi.fn(() => answer(post)), reverse: vi.fn(() => answer(reverse)) },
    onNotReady: vi.fn(),
  } satisfies LedgerDeps;
}

function context(d: LedgerDeps): HandlerContext<LedgerDeps> {
  return {
    stage: "ledger",
    deps: d,
    logger: createLogger({ service: "ledger", level: "silent" }),
    delivery: { stream: "RISK", subject: "transfers.scored.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal: new AbortController().signal,
  };
}

/** Runs the handler and its effect, as the runtime does. */
async function run(evt: Envelope<"transfers.scored"> | Envelope<"payouts.failed">, d: LedgerDeps) {
  const plan = (await ledgerStage.handle(evt, context(d))) as Plan;
  expect(plan.emit ?? []).toEqual([]);
  expect(plan.effect).toBeTypeOf("function");
  const out = (await plan.effect?.()) ?? [];
  for (const e of out) expect(checkEventData(e.type, e.data)).toEqual([]);
  return out as readonly Emission[];
}

const core = { transferId: "t-1", from: "acc-alice", to: "bank:bob", amountMinor: 1250, currency: "EUR" };

describe("ledger handler", () => {
  it("ledger - declares RISK and PAYOUTS inputs and the three ledger outputs", () => {
    expect(ledgerStage.name).toBe("ledger");
    expect(ledgerStage.inputs).toEqual([
      { stream: "RISK", types: ["transfers.scored"] },
      { stream: "PAYOUTS", types: ["payouts.failed"] },
    ]);
    expect(ledgerStage.emits).toEqual(["ledger.posted", "ledger.declined", "ledger.reversed"]);
  });

  it("ledger - a posted transfer emits ledger.posted with the risk decision, from the effect", async () => {
    const d = deps({ kind: "new", status: "posted", detail: "allow", cause: "e-scored" });
    expect(await run(scored, d)).toEqual([{ type: "ledger.posted", data: { ...core, decision: "allow" } }]);
    expect(d.store.post).toHaveBeenCalledWith({ cause: "e-scored", ...core, decision: "allow" });
  });

  it("ledger - a declined transfer emits ledger.declined with the reason", async () => {
    const d = deps({ kind: "new", status: "declined", detail: "insufficient_funds", cause: "e-scored" });
    expect(await run(scored, d)).toEqual([
      { type: "ledger.declined", data: { ...core, reason: "insufficient_funds" } },
    ]);
  });

  it("ledger - a replay for the same input emits the same event; for another input nothing", async () => {
    const same = deps({ kind: "replay", status: "posted", detail: "review", cause: "e-scored" });
    expect(await run(scored, same)).toEqual([
      { type: "ledger.posted", data: { ...core, decision: "review" } },
    ]);
    const other = deps({ kind: "replay", status: "posted", detail: "review", cause: "e-earlier" });
    expect(await run(scored, other)).toEqual([]);
  });

  it("ledger - a refused script is a transient error and asks for a restore", async () => {
    const d = deps({ kind: "not-ready" }, { kind: "not-ready" });
    const err = await run(scored, d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).retryAfterMs).toBeGreaterThan(0);
    expect(d.onNotReady).toHaveBeenCalledOnce();
    await expect(run(failed, d)).rejects.toBeInstanceOf(TransientError);
    expect(d.onNotReady).toHaveBeenCalledTimes(2);
  });

  it("ledger - a payout refusal emits ledger.reversed with the stored posting's amounts", async () => {
    const d = deps(new Error("unused"), {
      kind: "new",
      reason: "account closed",
      cause: "e-failed",
      ...core,
      amountMinor: 1250,
    });
    expect(await run(failed, d)).toEqual([
      { type: "ledger.reversed", data: { ...core, reason: "account closed" } },
    ]);
    expect(d.store.reverse).toHaveBeenCalledWith({
      cause: "e-failed",
      transferId: "t-1",
      from: "acc-alice",
      to: "bank:bob",
      reason: "account closed",
    });
  });

  it("ledger - a redelivered refusal re-emits the same reversal; another refusal emits nothing", async () => {
    const replay = { kind: "replay", reason: "account closed", cause: "e-failed", ...core } as const;
    expect(await run(failed, deps(new Error("unused"), replay))).toEqual([
      { type: "ledger.reversed", data: { ...core, reason: "account closed" } },
    ]);
    expect(await run(failed, deps(new Error("unused"), { ...replay, cause: "e-other" }))).toEqual([]);
  });

  it("ledger - reversing an unknown transfer is retried, a declined one is parked", async () => {
    await expect(run(failed, deps(new Error("unused"), { kind: "unknown" }))).rejects.toBeInstanceOf(
      TransientError,
    );
    const declinedOne = deps(new Error("unused"), {
      kind: "not-posted",
      status: "declined",
      detail: "risk_denied",
    });
    await expect(run(failed, declinedOne)).rejects.toBeInstanceOf(PermanentError);
    await expect(run(failed, declinedOne)).rejects.toThrow(/declined \(risk_denied\)/);
  });

  it("ledger - a Redis failure travels as an error (retried by the runtime)", async () => {
    await expect(run(scored, deps(new Error("connection lost")))).rejects.toThrow("connection lost");
  });
});
