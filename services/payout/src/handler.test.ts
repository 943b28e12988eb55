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
  type Plan,
  TransientError,
} from "@jetmesh/stage";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createBankClient } from "./bank-client.ts";
import { bankKeyOf, type PayoutDeps, payoutStage } from "./handler.ts";
import { openPayoutRecords, type PayoutRecords } from "./records.ts";

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
let nats: NatsServerHandle;
let nc: NatsConnection;
let records: PayoutRecords;
let n = 0;

/** A posting of a fresh transfer (each test pays its own), or of `data`'s transfer. */
function envelope(
  data: LedgerPosted = { ...posted, transferId: `t-${++n}` },
  eventId: string = randomUUID(),
) {
  return makeEnvelope(EventTypes.LedgerPosted, data, {
    eventId,
    correlationId: data.transferId,
    causationId: "cause-1",
    producer: "ledger",
  }) as Envelope<typeof EventTypes.LedgerPosted>;
}

function deps(opts: { url?: string; timeoutMs?: number } = {}): PayoutDeps {
  return {
    bank: createBankClient({ url: opts.url ?? sim.url, timeoutMs: opts.timeoutMs ?? 2000 }),
    records,
    bankRetentionMs: 24 * 3600_000,
  };
}
const paidFor = (transferId: string) => sim.bank.payouts().filter((p) => p.transferId === transferId);

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
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  records = await openPayoutRecords(jetstream(nc), { bucket: "payout-test", replicas: 1 });
  sim = await startBankSim({ port: 0, seed: "payout-test" });
});

afterAll(async () => {
  await sim?.close();
  await nc?.close();
  await stopAllProcesses();
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

  it("payout - a paid payout emits payouts.completed with the bank reference, keyed by the transfer", async () => {
    const event = envelope();
    const out = await run(event);
    const paid = paidFor(event.data.transferId);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({
      idempotencyKey: bankKeyOf(event.data.transferId),
      transferId: event.data.transferId,
      account: "bank:acme-1",
      amountMinor: 4200,
      currency: "EUR",
    });
    expect(out).toEqual([
      {
        type: "payouts.completed",
        data: { ...transfer, transferId: event.data.transferId, bankReference: paid[0]!.reference },
      },
    ]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
  });

  it("payout - the bank call waits for the runtime to apply the effect", async () => {
    const event = envelope();
    const plan = (await payoutStage.handle(event, context(deps()))) as Plan;
    expect(plan.emit ?? []).toEqual([]);
    expect(paidFor(event.data.transferId)).toHaveLength(0);
    await plan.effect?.();
    expect(paidFor(event.data.transferId)).toHaveLength(1);
  });

  it("payout - a re-applied effect after a crash pays once and emits the same event", async () => {
    const event = envelope();
    const first = await run(event);
    const again = await run(event);
    const concurrent = await Promise.all([run(event), run(event), run(event)]);
    expect(again).toEqual(first);
    for (const c of concurrent) expect(c).toEqual(first);
    expect(paidFor(event.data.transferId)).toHaveLength(1);
  });

  it("payout - a refusal (422) emits payouts.failed with the reason and status, also on replay", async () => {
    await configure({ refuseAccounts: ["bank:closed"] });
    const event = envelope({ ...posted, transferId: `t-${++n}`, to: "bank:closed" });
    const out = await run(event);
    expect(out).toEqual([
      {
        type: "payouts.failed",
        data: {
          ...transfer,
          transferId: event.data.transferId,
          to: "bank:closed",
          reason: "payout refused: account refused",
          bankStatus: 422,
        },
      },
    ]);
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
    await configure({ refuseAccounts: [] });
    expect(await run(event)).toEqual(out);
    expect(paidFor(event.data.transferId)).toHaveLength(0);
  });

  it("payout - a 409 (the key used with another body) is retried, never a refusal to compensate", async () => {
    const event = envelope();
    // someone else used this transfer's key with another body: the bank paid that one
    const res = await fetch(`${sim.url}/v1/payouts`, {
      method: "POST",
      headers: { "idempotency-key": bankKeyOf(event.data.transferId) },
      body: JSON.stringify({ ...transfer, account: "bank:acme-1", amountMinor: 1 }),
    });
    expect(res.status).toBe(201);
    await new Promise((r) => setTimeout(r, 300)); // decided
    // The intent is new, so the call goes out and meets the 409: retried, then parked, never reversed.
    const err = await run(event).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/bank answered 409 \(idempotency_key_reused/);
  });

  it("payout - a 5xx is transient, blamed on the bank (its circuit breaker counts it), and the retry pays once", async () => {
    await configure({ errorRate: 1 });
    const event = envelope();
    const err = await run(event).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).message).toBe("bank answered 503");
    expect((err as TransientError).dependency).toBe("bank");
    await configure({ errorRate: 0 });
    expect((await run(event))[0]?.type).toBe("payouts.completed");
    expect(paidFor(event.data.transferId)).toHaveLength(1);
  });

  it("payout - a bank slower than the timeout is transient and the retry gets the first answer", async () => {
    await configure({ latencyMs: 1500 });
    const event = envelope();
    const mine = () => paidFor(event.data.transferId);
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

  it("payout - a 2xx without a reference and an unknown 4xx are retried, never final; 408, 429 and 5xx are the bank's", async () => {
    let status = 200;
    const odd = createServer((_req, res) => {
      res.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => odd.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
    const attempt = (e = envelope()) =>
      run(e, deps({ url })).then(
        (): TransientError => {
          throw new Error("expected the call to fail");
        },
        (err: unknown) => err as TransientError,
      );
    try {
      for (status of [200, 201, 400, 401, 403, 404]) {
        const err = await attempt();
        expect(err, `status ${status}`).toBeInstanceOf(TransientError);
        expect(err.dependency, `status ${status}`).toBeUndefined();
        expect(err.message).toMatch(/not a final answer; retrying/);
      }
      for (status of [408, 429, 500, 502]) {
        const err = await attempt();
        expect(err, `status ${status}`).toBeInstanceOf(TransientError);
        expect(err.dependency, `status ${status}`).toBe("bank");
      }
    } finally {
      odd.closeAllConnections();
      await new Promise((resolve) => odd.close(resolve));
    }
  });
});
