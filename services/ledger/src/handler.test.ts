// The ledger stage's handler with a fake context: it plans the writer's decision as its effect
// and emits nothing itself. The decisions are decide.test.ts's; the stage under the real
// runtime, servers and writer is stage.test.ts's.
import { type AnyEnvelope, type Envelope, EventTypes } from "@jetmesh/contracts";
import {
  context as otelContext,
  createLogger,
  type HandlerContext,
  PermanentError,
  type Plan,
  TransientError,
} from "@jetmesh/stage";
import { describe, expect, it } from "vitest";
import { type LedgerDeps, ledgerStage } from "./handler.ts";
import type { LedgerInput } from "./ledger-writer.ts";
import { failedInput, scoredInput } from "./test-support.ts";

const transfer = { transferId: "t-1", from: "acc-alice", to: "bank:bob", amountMinor: 1250, currency: "EUR" };

/** A writer that records what it is asked and answers as told. */
function writer(answer: () => Promise<{ appended: boolean }> = async () => ({ appended: true })) {
  const calls: Array<{ input: LedgerInput; parent: unknown }> = [];
  const deps: LedgerDeps = {
    writer: {
      decide: (input, parent) => {
        calls.push({ input, parent });
        return answer();
      },
    },
  };
  return { deps, calls };
}

function context(deps: LedgerDeps): HandlerContext<LedgerDeps> {
  return {
    stage: "ledger",
    deps,
    logger: createLogger({ service: "ledger", level: "silent" }),
    delivery: { stream: "RISK", subject: "transfers.scored.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal: new AbortController().signal,
  };
}

async function plan(evt: Envelope | AnyEnvelope, deps: LedgerDeps): Promise<Plan> {
  return (await ledgerStage.handle(evt as never, context(deps))) as Plan;
}

describe("ledger handler", () => {
  it("ledger - declares RISK and PAYOUTS inputs and the three ledger outputs", () => {
    expect(ledgerStage.name).toBe("ledger");
    expect(ledgerStage.inputs).toEqual([
      { stream: "RISK", types: ["transfers.scored"] },
      { stream: "PAYOUTS", types: ["payouts.failed"] },
    ]);
    expect(ledgerStage.emits).toEqual(["ledger.posted", "ledger.declined", "ledger.reversed"]);
  });

  it("ledger - the decision is the effect: nothing is decided before it runs, and the runtime publishes nothing", async () => {
    for (const input of [scoredInput(transfer), failedInput(transfer)]) {
      const w = writer();
      const ctx = context(w.deps);
      const p = (await ledgerStage.handle(input as never, ctx)) as Plan;
      expect(p.emit ?? []).toEqual([]);
      expect(w.calls).toEqual([]);
      expect(await p.effect?.()).toEqual([]);
      expect(w.calls).toHaveLength(1);
      expect(w.calls[0]?.input).toBe(input);
      expect(w.calls[0]?.parent).toBe(ctx.traceContext);
    }
  });

  it("ledger - the writer's errors travel as they are: permanent ones are parked, transient ones retried", async () => {
    for (const err of [new PermanentError("refused"), new TransientError("log unreadable")]) {
      const w = writer(() => Promise.reject(err));
      await expect((await plan(scoredInput(transfer), w.deps)).effect?.()).rejects.toBe(err);
    }
  });

  it("ledger - an input of another type is a permanent error", async () => {
    const other = { ...scoredInput(transfer), type: EventTypes.TransferValidated } as unknown as AnyEnvelope;
    await expect(plan(other, writer().deps)).rejects.toBeInstanceOf(PermanentError);
  });
});
