// The bank client against a real HTTP server that records what it receives.
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { type BankSimHandle, startBankSim } from "@jetmesh/bank-sim";
import { context, TransientError, trace } from "@jetmesh/stage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBankClient } from "./bank-client.ts";

describe("bank client", () => {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on("end", () => {
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ reference: "ref-1" }));
    });
  });
  let url: string;
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("bank client - the call carries the idempotency key and the caller's trace as traceparent", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parent = trace.setSpan(
      context.active(),
      trace.wrapSpanContext({ traceId, spanId: "00f067aa0ba902b7", traceFlags: 1 }),
    );
    const bank = createBankClient({ url, timeoutMs: 2000 });
    const outcome = await bank.pay(
      { transferId: "t-1", account: "bank:acme-1", amountMinor: 100, currency: "EUR" },
      "evt-1",
      { parent },
    );
    expect(outcome).toEqual({ paid: true, reference: "ref-1" });
    const h = seen.at(-1)!;
    expect(h["idempotency-key"]).toBe("evt-1");
    expect(h.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
  });
});

describe("bank client against a realistic bank", () => {
  let sim: BankSimHandle;
  beforeAll(async () => {
    sim = await startBankSim({
      port: 0,
      seed: "bank-client",
      behaviour: { processingMinMs: 300, processingMaxMs: 300 },
    });
  });
  afterAll(() => sim.close());
  const order = { transferId: "t-9", account: "bank:acme-1", amountMinor: 100, currency: "EUR" };

  it("bank client - a key in flight answers 409, which is a retry, and its status says processing, then paid", async () => {
    const bank = createBankClient({ url: sim.url, timeoutMs: 2000 });
    const first = bank.pay(order, "k-409");
    await new Promise((r) => setTimeout(r, 50));
    const second = await bank.pay(order, "k-409").catch((e: unknown) => e);
    expect(second).toBeInstanceOf(TransientError);
    expect((second as TransientError).message).toMatch(/bank answered 409 \(idempotency_key_in_use/);
    expect((second as TransientError).dependency).toBeUndefined();
    expect(await bank.status("k-409")).toEqual({ state: "processing" });
    const paid = await first;
    expect(paid.paid).toBe(true);
    expect(await bank.status("k-409")).toEqual({ state: "decided", outcome: paid });
    expect(await bank.status("never-seen")).toEqual({ state: "unknown" });
  });

  it("bank client - the probe answers while the bank answers at all, and fails through an outage", async () => {
    const bank = createBankClient({ url: sim.url, timeoutMs: 2000 });
    await expect(bank.probe()).resolves.toBeUndefined();
    await fetch(`${sim.url}/admin/outage`, { method: "POST", body: JSON.stringify({ durationMs: 5000 }) });
    const err = await bank.probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).dependency).toBe("bank");
    await fetch(`${sim.url}/admin/outage`, { method: "POST", body: JSON.stringify({ durationMs: 0 }) });
    await expect(bank.probe()).resolves.toBeUndefined();
  });
});
