import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { type BankSimHandle, startBankSim } from "@jetmesh/bank-sim";
import {
  checkEventData,
  type Envelope,
  EventTypes,
  type LedgerPosted,
  makeEnvelope,
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
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createBankClient } from "./bank-client.ts";
import { type PayoutDeps, payoutStage } from "./handler.ts";

const posted: LedgerPosted = {
  transferId: "t-1",
  from: "acc-alice",
  to: "bank:acme-1",
  amountMinor: 4200,
  currency: "EUR",
  decision: "allow",
};
const transfer = {
  transferId: "t-1",
  from: "acc-alice",
  to: "bank:acme-1",
  amountMinor: 4200,
  currency: "EUR",
};

let sim: BankSimHandle;

function envelope(data: LedgerPosted = posted, eventId: string = randomUUID()) {
  return makeEnvelope(EventTypes.LedgerPosted, data, {
    eventId,
    correlationId: data.transferId,
    causationId: "cause-1",
    producer: "ledger",
  }) as Envelope<typeof EventTypes.LedgerPosted>;
}

function deps(opts: { url?: string; timeoutMs?: number } = {}): PayoutDeps {
  return { bank: createBankClient({ url: opts.url ?? sim.url, timeoutMs: opts.timeoutMs ?? 2000 }) };
}

function context(d: PayoutDeps, signal = new AbortController().signal): HandlerContext<PayoutDeps> {
  return {
    stage: "payout",
    deps: d,
    logger: createLogger({ service: "payout", level: "silent" }),
    delivery: { stream: "LEDGER", subject: "ledger.posted.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal,
  };
}

/** Runs the handler the way the runtime does: plan, then effect. */
async function run(
  event: Envelope<typeof EventTypes.LedgerPosted>,
  d: PayoutDeps = deps(),
  signal?: AbortSignal,
): Promise<readonly Emission[]> {
  const out: readonly Emission[] | Plan = await payoutStage.handle(event, context(d, signal));
  if (Array.isArray(out)) return out;
  const plan = out as Plan;
  return [...(plan.emit ?? []), ...((await plan.effect?.()) ?? [])];
}

async function configure(change: Record<string, unknown>) {
  const res = await fetch(`${sim.url}/admin/config`, { method: "POST", body: JSON.stringify(change) });
  expect(res.status).toBe(200);
}

beforeAll(async () => {
  sim = await startBankSim({ port: 0, seed: "payout-test" });
});

afterAll(async () => {
  await sim?.close();
});

beforeEach(async () => {
  await configure({ latencyMs: 0, errorRate: 0, refusalRate: 0, refuseAccounts: [] });
});

describe("payout", () => {
  it("payout - postings to accounts other than a bank are acknowledged with no output", async () => {
    const before = sim.bank.payouts().length;
    for (const to of ["acc-bob", "external"]) {
      const out = await payoutStage.handle(envelope({ ...posted, to }), context(deps()));
      expect(out).toEqual([]);
    }
    expect(sim.bank.payouts()).toHaveLength(before);
  });

  it("payout - a paid payout emits payouts.completed with the bank reference", async () => {
    const event = envelope();
    const out = await run(event);
    const paid = sim.bank.payouts().filter((p) => p.idempotencyKey === event.eventId);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({
      transferId: "t-1",
      account: "bank:acme-1",
      amountMinor: 4200,
      currency: "EUR",
    });
    expect(out).toEqual([
      { type: "payouts.completed", data: { ...transfer, bankReference: paid[0]!.reference } },
    ]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
  });

  it("payout - the bank call waits for the runtime to apply the effect", async () => {
    const event = envelope();
    const plan = (await payoutStage.handle(event, context(deps()))) as Plan;
    expect(plan.emit ?? []).toEqual([]);
    expect(sim.bank.payouts().some((p) => p.idempotencyKey === event.eventId)).toBe(false);
    await plan.effect?.();
    expect(sim.bank.payouts().some((p) => p.idempotencyKey === event.eventId)).toBe(true);
  });

  it("payout - a re-applied effect after a crash pays once and emits the same event", async () => {
    const event = envelope();
    const first = await run(event);
    const again = await run(event);
    const concurrent = await Promise.all([run(event), run(event), run(event)]);
    expect(again).toEqual(first);
    for (const c of concurrent) expect(c).toEqual(first);
    expect(sim.bank.payouts().filter((p) => p.idempotencyKey === event.eventId)).toHaveLength(1);
  });

  it("payout - a refusal (422) emits payouts.failed with the reason and status, also on replay", async () => {
    await configure({ refuseAccounts: ["bank:closed"] });
    const event = envelope({ ...posted, to: "bank:closed" });
    const out = await run(event);
    expect(out).toEqual([
      {
        type: "payouts.failed",
        data: { ...transfer, to: "bank:closed", reason: "payout refused: account refused", bankStatus: 422 },
      },
    ]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
    await configure({ refuseAccounts: [] });
    expect(await run(event)).toEqual(out);
    expect(sim.bank.payouts().some((p) => p.idempotencyKey === event.eventId)).toBe(false);
  });

  it("payout - a 409 from the bank emits payouts.failed", async () => {
    const event = envelope();
    // someone already used this key with another body
    const res = await fetch(`${sim.url}/v1/payouts`, {
      method: "POST",
      headers: { "idempotency-key": event.eventId },
      body: JSON.stringify({ ...transfer, account: "bank:acme-1", amountMinor: 1 }),
    });
    expect(res.status).toBe(201);
    const out = await run(event);
    expect(out[0]?.type).toBe("payouts.failed");
    expect(out[0]?.data).toMatchObject({
      bankStatus: 409,
      reason: "idempotency key reused with a different body",
    });
  });

  it("payout - a 5xx is transient and the retry pays once", async () => {
    await configure({ errorRate: 1 });
    const event = envelope();
    const failed = run(event);
    await expect(failed).rejects.toThrow(TransientError);
    await expect(failed).rejects.toThrow("bank answered 503");
    await configure({ errorRate: 0 });
    expect((await run(event))[0]?.type).toBe("payouts.completed");
    expect(sim.bank.payouts().filter((p) => p.idempotencyKey === event.eventId)).toHaveLength(1);
  });

  it("payout - a bank slower than the timeout is transient and the retry gets the first answer", async () => {
    await configure({ latencyMs: 1500 });
    const event = envelope();
    const mine = () => sim.bank.payouts().filter((p) => p.idempotencyKey === event.eventId);
    const slow = run(event, deps({ timeoutMs: 300 }));
    await expect(slow).rejects.toThrow(TransientError);
    await expect(slow).rejects.toThrow("bank timed out after 300 ms");
    // the bank paid although its answer never arrived
    expect(mine()).toHaveLength(1);
    await configure({ latencyMs: 0 });
    const out = await run(event);
    expect(out[0]?.data).toMatchObject({ bankReference: mine()[0]!.reference });
    expect(mine()).toHaveLength(1);
  });

  it("payout - an unreachable bank is transient", async () => {
    const closed = await startBankSim({ port: 0 });
    const url = closed.url;
    await closed.close();
    await expect(run(envelope(), deps({ url }))).rejects.toThrow(/bank unreachable/);
  });

  it("payout - a stopping runtime aborts the call as transient", async () => {
    await configure({ latencyMs: 1000 });
    const ac = new AbortController();
    const call = run(envelope(), deps(), ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(call).rejects.toThrow(/call aborted by the runtime/);
  });

  it("payout - a 2xx without a reference is permanent, 408 and 429 are transient", async () => {
    let status = 200;
    const odd = createServer((_req, res) => {
      res.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => odd.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
    try {
      await expect(run(envelope(), deps({ url }))).rejects.toThrow(PermanentError);
      for (status of [408, 429, 500, 502])
        await expect(run(envelope(), deps({ url }))).rejects.toThrow(TransientError);
      status = 400;
      expect((await run(envelope(), deps({ url })))[0]?.data).toMatchObject({
        bankStatus: 400,
        reason: "bank answered 400",
      });
    } finally {
      odd.closeAllConnections();
      await new Promise((resolve) => odd.close(resolve));
    }
  });
});
