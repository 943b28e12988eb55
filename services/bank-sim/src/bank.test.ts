import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Bank, type CreateBankOptions, createBank } from "./bank.ts";

const request = { transferId: "t-1", account: "bank:acme-1", amountMinor: 2500, currency: "EUR" };
const made: Bank[] = [];

function make(opts: CreateBankOptions = {}): Bank {
  const bank = createBank(opts);
  made.push(bank);
  return bank;
}

/** How long a new key stays processing, found by stepping fake time 1 ms at a time. */
async function processingTime(bank: Bank, key: string): Promise<number> {
  const answer = bank.answer(key, request);
  let ms = 0;
  while (bank.status(key)?.status === "processing") {
    await vi.advanceTimersByTimeAsync(1);
    ms++;
  }
  expect((await answer).status).toBe(201);
  return ms;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  for (const bank of made.splice(0)) bank.close();
  vi.useRealTimers();
});

describe("bank-sim bank", () => {
  it("bank-sim - a new key is reserved before answer() returns, so a second request in the same tick gets 409 in use", async () => {
    const bank = make({ seed: "s" });
    const first = bank.answer("k", request);
    const second = await bank.answer("k", request);
    expect(second).toMatchObject({ status: 409, body: { code: "idempotency_key_in_use" }, replayed: false });
    expect(bank.status("k")).toEqual({ status: "processing" });
    expect(bank.payouts()).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect((await first).status).toBe(201);
    expect(bank.payouts()).toHaveLength(1);
  });

  it("bank-sim - processing time is drawn per key between the bounds and replays with the seed", async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `k-${i}`);
    const times = async (seed: string) => {
      const bank = make({ seed, behaviour: { processingMinMs: 20, processingMaxMs: 120 } });
      const out: number[] = [];
      for (const key of keys) out.push(await processingTime(bank, key));
      return out;
    };
    const a = await times("s");
    expect(await times("s")).toEqual(a);
    expect(await times("other")).not.toEqual(a);
    expect(a.every((t) => t >= 20 && t <= 120)).toBe(true);
    expect(new Set(a).size).toBeGreaterThan(1);
  });

  it("bank-sim - slowRate marks the same keys slow for the same seed", async () => {
    const slow = async (seed: string) => {
      const bank = make({ seed, behaviour: { processingMinMs: 0, processingMaxMs: 0, slowRate: 0.5 } });
      const out: boolean[] = [];
      for (let i = 0; i < 20; i++) out.push((await bank.answer(`k-${i}`, request)).slow);
      // a replay is never held back
      expect((await bank.answer("k-0", request)).slow).toBe(false);
      expect(bank.stats().slowAnswers).toBe(out.filter(Boolean).length);
      return out;
    };
    const a = await slow("s");
    expect(await slow("s")).toEqual(a);
    expect(new Set(a)).toEqual(new Set([true, false]));
  });

  it("bank-sim - a key whose processing ends during an outage is decided when the outage ends", async () => {
    const bank = make({ behaviour: { processingMinMs: 100, processingMaxMs: 100 } });
    const answer = bank.answer("k", request);
    await vi.advanceTimersByTimeAsync(50);
    expect(bank.startOutage(1000)).toEqual({ active: true, remainingMs: 1000 });
    expect(await bank.answer("other", request)).toMatchObject({
      status: 503,
      body: { error: "bank unavailable" },
    });
    await vi.advanceTimersByTimeAsync(500);
    expect(bank.status("k")).toEqual({ status: "processing" });
    expect(bank.payouts()).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    expect(bank.outage().active).toBe(false);
    expect(bank.status("k")?.status).toBe("paid");
    expect((await answer).status).toBe(201);

    // ended on demand, the held decision is made at once
    const next = bank.answer("k-2", request);
    await vi.advanceTimersByTimeAsync(10);
    bank.startOutage(60_000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(bank.status("k-2")).toEqual({ status: "processing" });
    bank.startOutage(0);
    expect(bank.status("k-2")?.status).toBe("paid");
    expect((await next).status).toBe(201);
    expect(bank.stats()).toMatchObject({ outageRejections: 1, paid: 2 });
  });

  it("bank-sim - a decided key is forgotten retentionMs after its decision and its next request pays again", async () => {
    const bank = make({ behaviour: { processingMinMs: 0, processingMaxMs: 0, retentionMs: 1000 } });
    const first = await bank.answer("k", request);
    await vi.advanceTimersByTimeAsync(999);
    expect((await bank.answer("k", request)).replayed).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(bank.status("k")).toBeUndefined();
    expect(bank.stats().forgottenKeys).toBe(1);
    const second = await bank.answer("k", request);
    expect(second).toMatchObject({ status: 201, replayed: false });
    expect(second.body.reference).not.toBe(first.body.reference);
    expect(bank.payouts().map((p) => p.reference)).toEqual([first.body.reference, second.body.reference]);
    expect(bank.stats()).toMatchObject({
      forgottenKeys: 1,
      requestsForForgottenKeys: 1,
      paid: 2,
      replayed: 1,
    });
  });

  it("bank-sim - close cancels every timer and rejects the caller still waiting", async () => {
    const bank = createBank({ behaviour: { processingMinMs: 5000, processingMaxMs: 5000 } });
    const waiting = bank.answer("k", request);
    bank.startOutage(60_000);
    expect(vi.getTimerCount()).toBe(2);
    bank.close();
    expect(vi.getTimerCount()).toBe(0);
    await expect(waiting).rejects.toThrow("bank closed");
    expect(bank.status("k")).toBeUndefined();
    expect(bank.payouts()).toEqual([]);
  });
});
