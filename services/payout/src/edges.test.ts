// The payout against a bank that behaves like real payment APIs (bank-sim's realistic mode:
// 409 while a key is in flight, answers after the client gave up, keys forgotten after a
// retention) and a real nats-server for its intent records. The handler runs as the runtime
// runs it (plan, then effect), with a plain handler context.
import { randomUUID } from "node:crypto";
import { type BankSimHandle, startBankSim } from "@jetmesh/bank-sim";
import { type Envelope, EventTypes, type LedgerPosted, makeEnvelope } from "@jetmesh/contracts";
import {
  context as otelContext,
  createLogger,
  type Emission,
  type HandlerContext,
  PermanentError,
  type Plan,
  TransientError,
} from "@jetmesh/stage";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBankClient } from "./bank-client.ts";
import { type PayoutDeps, payoutStage } from "./handler.ts";
import { openPayoutRecords, type PayoutRecords } from "./records.ts";

let sim: BankSimHandle;
let nats: NatsServerHandle;
let nc: NatsConnection;
let records: PayoutRecords;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  records = await openPayoutRecords(jetstream(nc), { bucket: "payout-edges", replicas: 1 });
  sim = await startBankSim({ port: 0, seed: "payout-edges" });
});
afterAll(async () => {
  await sim?.close();
  await nc?.close();
  await stopAllProcesses();
});

function posting(transferId = `t-${randomUUID().slice(0, 8)}`, eventId: string = randomUUID()) {
  const data: LedgerPosted = {
    transferId,
    from: "acc-alice",
    to: "bank:acme-1",
    amountMinor: 4200,
    currency: "EUR",
    decision: "allow",
  };
  return makeEnvelope(EventTypes.LedgerPosted, data, {
    eventId,
    correlationId: transferId,
    causationId: `sc-${transferId}`,
    producer: "ledger",
  }) as Envelope<typeof EventTypes.LedgerPosted>;
}

function deps(opts: { timeoutMs?: number; retentionMs?: number } = {}): PayoutDeps {
  return {
    bank: createBankClient({ url: sim.url, timeoutMs: opts.timeoutMs ?? 2000 }),
    records,
    bankRetentionMs: opts.retentionMs ?? 24 * 3600_000,
  };
}

async function run(
  event: Envelope<typeof EventTypes.LedgerPosted>,
  d: PayoutDeps,
): Promise<readonly Emission[]> {
  const ctx: HandlerContext<PayoutDeps> = {
    stage: "payout",
    deps: d,
    logger: createLogger({ service: "payout", level: "silent" }),
    delivery: { stream: "LEDGER", subject: "ledger.posted.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal: new AbortController().signal,
  };
  const out = (await payoutStage.handle(event, ctx)) as readonly Emission[] | Plan;
  if (Array.isArray(out)) return out;
  const plan = out as Plan;
  return [...(plan.emit ?? []), ...((await plan.effect?.()) ?? [])];
}

async function configure(change: Record<string, unknown>) {
  const res = await fetch(`${sim.url}/admin/config`, { method: "POST", body: JSON.stringify(change) });
  expect(res.status, await res.text()).toBe(200);
}
const paidFor = (transferId: string) => sim.bank.payouts().filter((p) => p.transferId === transferId);
const stats = async () => (await (await fetch(`${sim.url}/admin/stats`)).json()) as Record<string, number>;

describe("payout at the edges", () => {
  it("payout - a 409 while the bank still works on the key is retried, never turned into a refusal", async () => {
    // The bank takes 400 ms to decide; the client gives up after 150 ms and tries again at once.
    await configure({ processingMinMs: 400, processingMaxMs: 400, slowRate: 0 });
    const event = posting();
    await expect(run(event, deps({ timeoutMs: 150 }))).rejects.toThrow(TransientError);
    const retry = run(event, deps({ timeoutMs: 150 })).catch((e: unknown) => e);
    const err = await retry;
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/still processing|in progress|409/);
    await new Promise((r) => setTimeout(r, 500));
    const out = await run(event, deps());
    expect(out.map((e) => e.type)).toEqual(["payouts.completed"]);
    expect(paidFor(event.data.transferId)).toHaveLength(1);
    await configure({ processingMinMs: 20, processingMaxMs: 200 });
  });

  it("payout - the bank key is the transfer's: two postings of one transfer are paid once, with one answer", async () => {
    const transferId = `t-${randomUUID().slice(0, 8)}`;
    const first = await run(posting(transferId), deps());
    const second = await run(posting(transferId), deps());
    expect(paidFor(transferId)).toHaveLength(1);
    expect(second).toEqual(first);
  });

  it("payout - an outcome lost with the client's timeout is asked of the bank before anything else", async () => {
    await configure({ slowRate: 1, slowMs: 600 });
    const event = posting();
    await expect(run(event, deps({ timeoutMs: 200 }))).rejects.toThrow(TransientError);
    await configure({ slowRate: 0 });
    const before = await stats();
    const out = await run(event, deps());
    const after = await stats();
    expect(out.map((e) => e.type)).toEqual(["payouts.completed"]);
    expect(after.statusQueries! - before.statusQueries!).toBeGreaterThanOrEqual(1);
    // Answered from the status query: no second payout request.
    expect(after.paid! - before.paid!).toBe(0);
    expect(paidFor(event.data.transferId)).toHaveLength(1);
  });

  it("payout - a decided payout is answered from its record in JetStream, without the bank, byte for byte", async () => {
    const event = posting();
    const first = await run(event, deps());
    const before = await stats();
    // Redis and the runtime's keys may be gone: the record in the KV bucket answers.
    const again = await run(posting(event.data.transferId, event.eventId), deps());
    expect(again).toEqual(first);
    expect((await stats()).requests! - before.requests!).toBe(0);
  });

  it("payout - a key the bank may have forgotten is never paid again by guessing: the input is parked", async () => {
    await configure({ slowRate: 1, slowMs: 800, retentionMs: 300 });
    const event = posting();
    await expect(run(event, deps({ timeoutMs: 150, retentionMs: 300 }))).rejects.toThrow(TransientError);
    // The bank paid, and forgets the key 300 ms after deciding.
    await new Promise((r) => setTimeout(r, 1_300));
    await configure({ slowRate: 0 });
    const err = await run(event, deps({ retentionMs: 300 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(/outcome unknown/);
    expect(paidFor(event.data.transferId)).toHaveLength(1);
    await configure({ retentionMs: 0 });
  });

  it("payout - only a positive refusal emits payouts.failed; an unknown 4xx or a malformed answer is retried", async () => {
    await configure({ refuseAccounts: ["bank:closed"] });
    const refused = posting();
    const closed = makeEnvelope(
      EventTypes.LedgerPosted,
      { ...refused.data, to: "bank:closed" },
      refused,
    ) as Envelope<typeof EventTypes.LedgerPosted>;
    const out = await run(closed, deps());
    expect(out).toEqual([
      {
        type: "payouts.failed",
        data: {
          transferId: closed.data.transferId,
          from: "acc-alice",
          to: "bank:closed",
          amountMinor: 4200,
          currency: "EUR",
          reason: "payout refused: account refused",
          bankStatus: 422,
        },
      },
    ]);
    await configure({ refuseAccounts: [] });
    // Answered from the record afterwards: the refusal is final, and the same.
    expect(await run(closed, deps())).toEqual(out);
  });
});
