import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BankBehaviour, Payout } from "./bank.ts";
import { loadConfig } from "./config.ts";
import { type BankSimHandle, startBankSim } from "./server.ts";

const body = { transferId: "t-1", account: "bank:acme-1", amountMinor: 2500, currency: "EUR" };

let sim: BankSimHandle;
const extra: BankSimHandle[] = [];

async function pay(key: string | undefined, payload: unknown = body, on: BankSimHandle = sim) {
  const res = await fetch(`${on.url}/v1/payouts`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { "idempotency-key": key }) },
    body: JSON.stringify(payload),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function configure(change: Partial<BankBehaviour> | Record<string, unknown>, on: BankSimHandle = sim) {
  const res = await fetch(`${on.url}/admin/config`, { method: "POST", body: JSON.stringify(change) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function payouts(on: BankSimHandle = sim): Promise<Payout[]> {
  const res = await fetch(`${on.url}/admin/payouts`);
  return ((await res.json()) as { payouts: Payout[] }).payouts;
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

beforeEach(async () => {
  sim = await startBankSim({ port: 0, seed: "test" });
});

afterEach(async () => {
  await sim.close();
  await Promise.all(extra.splice(0).map((s) => s.close()));
});

describe("bank-sim", () => {
  it("bank-sim - answers healthz", async () => {
    const res = await fetch(`${sim.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("bank-sim - a replayed key and body get the same answer and no second payout", async () => {
    const first = await pay("k-1");
    expect(first.status).toBe(201);
    expect(first.body.reference).toMatch(/^bnk-[0-9a-f]{20}$/);
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    const again = await pay("k-1");
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");

    const paid = await payouts();
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({ ...body, idempotencyKey: "k-1", reference: first.body.reference });
  });

  it("bank-sim - concurrent requests with one key pay once", async () => {
    await configure({ latencyMs: 50 });
    const answers = await Promise.all(Array.from({ length: 10 }, () => pay("k-race")));
    expect(new Set(answers.map((a) => a.body.reference)).size).toBe(1);
    expect(answers.every((a) => a.status === 201)).toBe(true);
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - the same key with a different body is 409", async () => {
    expect((await pay("k-2")).status).toBe(201);
    const conflict = await pay("k-2", { ...body, amountMinor: 2501 });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatch(/different body/);
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - a missing idempotency key or a bad body is 400 naming the field", async () => {
    const noKey = await pay(undefined);
    expect(noKey.status).toBe(400);
    expect(noKey.body.issues).toEqual([
      { field: "Idempotency-Key", rule: expect.stringMatching(/required/) },
    ]);

    const bad = await pay("k-3", { transferId: "", account: "x", amountMinor: -1, currency: "eur" });
    expect(bad.status).toBe(400);
    expect((bad.body.issues as { field: string }[]).map((i) => i.field)).toEqual([
      "transferId",
      "amountMinor",
      "currency",
    ]);
    // a refused request is not an answer: the key stays free
    expect((await pay("k-3")).status).toBe(201);
  });

  it("bank-sim - refuseAccounts refuses with 422 and a retry gets the stored 422", async () => {
    await configure({ refuseAccounts: ["bank:closed"] });
    const refused = await pay("k-4", { ...body, account: "bank:closed" });
    expect(refused.status).toBe(422);
    expect(refused.body).toEqual({ error: "payout refused", reason: "account refused" });

    // lifting the switch does not change a decided key
    await configure({ refuseAccounts: [] });
    const retry = await pay("k-4", { ...body, account: "bank:closed" });
    expect(retry.status).toBe(422);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect((await pay("k-5", { ...body, account: "bank:closed" })).status).toBe(201);
    expect((await payouts()).map((p) => p.idempotencyKey)).toEqual(["k-5"]);
  });

  it("bank-sim - refusalRate refuses new keys; decided keys keep their answer", async () => {
    expect((await pay("k-6")).status).toBe(201);
    await configure({ refusalRate: 1 });
    expect((await pay("k-6")).status).toBe(201);
    const refused = await pay("k-7");
    expect(refused.status).toBe(422);
    expect(refused.body.reason).toBe("refused by bank");
    await configure({ refusalRate: 0 });
    expect((await pay("k-7")).status).toBe(422);
  });

  it("bank-sim - errorRate answers 503 without paying; the retry after pays once", async () => {
    await configure({ errorRate: 1 });
    const failed = await pay("k-8");
    expect(failed.status).toBe(503);
    expect(await payouts()).toHaveLength(0);
    await configure({ errorRate: 0 });
    expect((await pay("k-8")).status).toBe(201);
    expect((await pay("k-8")).status).toBe(201);
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - a partial errorRate lets retries through eventually", async () => {
    await configure({ errorRate: 0.5 });
    const statuses: number[] = [];
    for (let i = 0; i < 40 && statuses.at(-1) !== 201; i++) statuses.push((await pay("k-9")).status);
    expect(statuses.at(-1)).toBe(201);
    expect(new Set(statuses)).toEqual(new Set(statuses.length > 1 ? [503, 201] : [201]));
  });

  it("bank-sim - latencyMs delays every payout answer", async () => {
    await configure({ latencyMs: 300 });
    const started = performance.now();
    expect((await pay("k-10")).status).toBe(201);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await configure({ latencyMs: 0 });
    const again = performance.now();
    expect((await pay("k-10")).status).toBe(201);
    expect(performance.now() - again).toBeLessThan(250);
  });

  it("bank-sim - a client that gives up during latency has still been paid", async () => {
    await configure({ latencyMs: 5000 });
    const ac = new AbortController();
    const call = fetch(`${sim.url}/v1/payouts`, {
      method: "POST",
      headers: { "idempotency-key": "k-11" },
      body: JSON.stringify(body),
      signal: ac.signal,
    });
    // the outcome is stored as soon as the body is in, before the delay
    await until(() => sim.bank.payouts().length === 1);
    ac.abort();
    await expect(call).rejects.toThrow();
    await configure({ latencyMs: 0 });
    const retry = await pay("k-11");
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - admin config merges settings and refuses bad ones naming the field", async () => {
    const ok = await configure({ latencyMs: 5 });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ latencyMs: 5, errorRate: 0, refusalRate: 0, refuseAccounts: [] });
    const bad = await configure({ errorRate: 2, refuseAccounts: "x", speed: 1 });
    expect(bad.status).toBe(400);
    expect((bad.body.issues as { field: string }[]).map((i) => i.field).sort()).toEqual([
      "errorRate",
      "refuseAccounts",
      "speed",
    ]);
    expect(await (await fetch(`${sim.url}/admin/config`)).json()).toMatchObject({
      latencyMs: 5,
      errorRate: 0,
    });
  });

  it("bank-sim - the same seed decides the same refusals and references", async () => {
    const other = await startBankSim({ port: 0, seed: "test" });
    const third = await startBankSim({ port: 0, seed: "other" });
    extra.push(other, third);
    for (const s of [sim, other, third]) await configure({ refusalRate: 0.5 }, s);
    const keys = Array.from({ length: 20 }, (_, i) => `seeded-${i}`);
    const outcome = async (s: BankSimHandle) => {
      const answers = [];
      for (const k of keys) answers.push(await pay(k, body, s));
      return answers.map((a) => `${a.status}:${a.body.reference ?? a.body.reason}`);
    };
    const a = await outcome(sim);
    expect(await outcome(other)).toEqual(a);
    expect(await outcome(third)).not.toEqual(a);
    expect(a.some((x) => x.startsWith("422"))).toBe(true);
    expect(a.some((x) => x.startsWith("201"))).toBe(true);
  });

  it("bank-sim - the state file keeps payouts and refusals across a restart", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bank-sim-"));
    try {
      const stateFile = join(dir, "state.jsonl");
      const first = await startBankSim({
        port: 0,
        stateFile,
        behaviour: { refuseAccounts: ["bank:closed"] },
      });
      const paid = await pay("s-1", body, first);
      expect((await pay("s-2", { ...body, account: "bank:closed" }, first)).status).toBe(422);
      await first.close();

      const second = await startBankSim({ port: 0, stateFile });
      extra.push(second);
      const replay = await pay("s-1", body, second);
      expect(replay.status).toBe(201);
      expect(replay.body.reference).toBe(paid.body.reference);
      expect((await pay("s-2", { ...body, account: "bank:closed" }, second)).status).toBe(422);
      expect((await pay("s-1", { ...body, amountMinor: 1 }, second)).status).toBe(409);
      expect((await payouts(second)).map((p) => p.idempotencyKey)).toEqual(["s-1"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("bank-sim - unknown routes are 404 and wrong methods 405", async () => {
    expect((await fetch(`${sim.url}/nope`)).status).toBe(404);
    expect((await fetch(`${sim.url}/v1/payouts`)).status).toBe(405);
  });

  it("bank-sim - loadConfig reads the switches and lists every bad key", () => {
    const c = loadConfig({
      BANK_PORT: "9191",
      BANK_LATENCY_MS: "20",
      BANK_ERROR_RATE: "0.1",
      BANK_REFUSAL_RATE: "",
      BANK_REFUSE_ACCOUNTS: "bank:a, bank:b",
      BANK_STATE_FILE: "/tmp/x.jsonl",
    });
    expect(c).toEqual({
      host: "127.0.0.1",
      port: 9191,
      seed: "jetmesh",
      stateFile: "/tmp/x.jsonl",
      behaviour: { latencyMs: 20, errorRate: 0.1, refusalRate: 0, refuseAccounts: ["bank:a", "bank:b"] },
    });
    expect(loadConfig({}).port).toBe(9090);
    expect(() => loadConfig({ BANK_PORT: "x", BANK_ERROR_RATE: "2", BANK_LATENCY_MS: "-1" })).toThrow(
      /BANK_PORT .*; BANK_LATENCY_MS .*; BANK_ERROR_RATE/,
    );
  });
});
