import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Payout, Refusal } from "./records.ts";
import { type BankBehaviour, POLITE_BEHAVIOUR } from "./settings.ts";
import type { BankStats } from "./stats.ts";
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

async function refusals(on: BankSimHandle = sim): Promise<Refusal[]> {
  const res = await fetch(`${on.url}/admin/refusals`);
  return ((await res.json()) as { refusals: Refusal[] }).refusals;
}

async function stats(on: BankSimHandle = sim): Promise<BankStats> {
  return (await (await fetch(`${on.url}/admin/stats`)).json()) as BankStats;
}

async function statusOf(key: string, on: BankSimHandle = sim) {
  const res = await fetch(`${on.url}/v1/payouts/${encodeURIComponent(key)}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function outage(durationMs: unknown, on: BankSimHandle = sim) {
  const res = await fetch(`${on.url}/admin/outage`, { method: "POST", body: JSON.stringify({ durationMs }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
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

  it("bank-sim - concurrent requests with one key pay once and the others get 409 in use", async () => {
    await configure({ processingMinMs: 300, processingMaxMs: 300 });
    const answers = await Promise.all(Array.from({ length: 10 }, () => pay("k-race")));
    const paid = answers.filter((a) => a.status === 201);
    const conflicts = answers.filter((a) => a.status === 409);
    expect(paid).toHaveLength(1);
    expect(conflicts).toHaveLength(9);
    for (const c of conflicts) {
      expect(c.body).toEqual({ error: "idempotency key in use", code: "idempotency_key_in_use" });
    }
    expect(await payouts()).toHaveLength(1);
    // once decided, the retry a client makes after its 409 replays the one payout
    const retry = await pay("k-race");
    expect(retry.status).toBe(201);
    expect(retry.body).toEqual(paid[0]!.body);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await stats()).toMatchObject({ requests: 11, paid: 1, conflictsInProgress: 9, replayed: 1 });
  });

  it("bank-sim - POLITE_BEHAVIOUR decides at once, so concurrent requests all get the one payout", async () => {
    const polite = await startBankSim({
      port: 0,
      seed: "test",
      behaviour: { ...POLITE_BEHAVIOUR, latencyMs: 50 },
    });
    extra.push(polite);
    const answers = await Promise.all(Array.from({ length: 10 }, () => pay("k-race", body, polite)));
    expect(answers.every((a) => a.status === 201)).toBe(true);
    expect(new Set(answers.map((a) => a.body.reference)).size).toBe(1);
    expect(await payouts(polite)).toHaveLength(1);
  });

  it("bank-sim - the same key with a different body is 409 reused, while processing and once decided", async () => {
    await configure({ processingMinMs: 200, processingMaxMs: 200 });
    const first = pay("k-2");
    await until(() => sim.bank.status("k-2")?.status === "processing");
    const reused = { error: "idempotency key reused with a different body", code: "idempotency_key_reused" };
    const during = await pay("k-2", { ...body, amountMinor: 2501 });
    expect(during).toMatchObject({ status: 409, body: reused });
    expect((await first).status).toBe(201);
    const after = await pay("k-2", { ...body, amountMinor: 2501 });
    expect(after).toMatchObject({ status: 409, body: reused });
    expect(await payouts()).toHaveLength(1);
    expect((await stats()).conflictsReused).toBe(2);
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

  it("bank-sim - refuseAccounts refuses with 422, a retry gets the stored 422, /admin/refusals lists it", async () => {
    await configure({ refuseAccounts: ["bank:closed"] });
    const refused = await pay("k-4", { ...body, account: "bank:closed" });
    expect(refused.status).toBe(422);
    expect(refused.body).toEqual({ error: "payout refused", reason: "account refused", status: "refused" });

    // lifting the switch does not change a decided key
    await configure({ refuseAccounts: [] });
    const retry = await pay("k-4", { ...body, account: "bank:closed" });
    expect(retry.status).toBe(422);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect((await pay("k-5", { ...body, account: "bank:closed" })).status).toBe(201);
    expect((await payouts()).map((p) => p.idempotencyKey)).toEqual(["k-5"]);
    expect(await refusals()).toEqual([
      { idempotencyKey: "k-4", transferId: "t-1", reason: "account refused", refusedAt: expect.any(String) },
    ]);
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
    expect((await refusals()).map((r) => r.reason)).toEqual(["refused by bank"]);
  });

  it("bank-sim - errorRate answers 503 without paying; the retry after pays once", async () => {
    await configure({ errorRate: 1 });
    const failed = await pay("k-8");
    expect(failed).toMatchObject({ status: 503, body: { error: "bank unavailable" } });
    expect(await payouts()).toHaveLength(0);
    expect(sim.bank.status("k-8")).toBeUndefined();
    await configure({ errorRate: 0 });
    expect((await pay("k-8")).status).toBe(201);
    expect((await pay("k-8")).status).toBe(201);
    expect(await payouts()).toHaveLength(1);
    expect((await stats()).unavailable503).toBe(1);
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
    // the outcome is stored as soon as processing ends, before the delay
    await until(() => sim.bank.payouts().length === 1);
    ac.abort();
    await expect(call).rejects.toThrow();
    await configure({ latencyMs: 0 });
    const retry = await pay("k-11");
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - a client that times out before a slow answer has been paid and the status query says paid", async () => {
    await configure({ slowRate: 1, slowMs: 800 });
    // processing takes at most 200 ms, so the bank decides well before this client gives up
    const call = fetch(`${sim.url}/v1/payouts`, {
      method: "POST",
      headers: { "idempotency-key": "k-slow" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(400),
    });
    await expect(call).rejects.toThrow();
    const paid = await payouts();
    expect(paid).toHaveLength(1);
    expect(await statusOf("k-slow")).toEqual({
      status: 200,
      body: {
        status: "paid",
        reference: paid[0]!.reference,
        transferId: "t-1",
        amountMinor: 2500,
        currency: "EUR",
      },
    });
    // the answer falls due slowMs after the decision, to a client already gone
    await until(() => sim.bank.stats().answersAfterClientLeft === 1);
    expect(await stats()).toMatchObject({ slowAnswers: 1, answersAfterClientLeft: 1, paid: 1 });
    // only the deciding request is held back: the retry gets the stored answer at once
    const started = performance.now();
    const retry = await pay("k-slow");
    expect(performance.now() - started).toBeLessThan(400);
    expect(retry).toMatchObject({ status: 201, body: { reference: paid[0]!.reference } });
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await payouts()).toHaveLength(1);
  });

  it("bank-sim - a status query says processing, paid, refused or unknown and changes nothing", async () => {
    const unknown = { status: 404, body: { error: "unknown idempotency key" } };
    expect(await statusOf("never")).toEqual(unknown);
    await configure({ processingMinMs: 300, processingMaxMs: 300, refuseAccounts: ["bank:closed"] });
    const call = pay("q/1");
    await until(() => sim.bank.status("q/1") !== undefined);
    expect(await statusOf("q/1")).toEqual({ status: 200, body: { status: "processing" } });
    const paid = await call;
    expect(await statusOf("q/1")).toEqual({
      status: 200,
      body: {
        status: "paid",
        reference: paid.body.reference,
        transferId: "t-1",
        amountMinor: 2500,
        currency: "EUR",
      },
    });
    expect((await pay("q-2", { ...body, account: "bank:closed" })).status).toBe(422);
    expect(await statusOf("q-2")).toEqual({
      status: 200,
      body: { status: "refused", reason: "account refused" },
    });
    // asking created nothing
    expect(await statusOf("never")).toEqual(unknown);
    expect(await payouts()).toHaveLength(1);
    expect(await stats()).toMatchObject({ statusQueries: 5, requests: 2, paid: 1, refused: 1, replayed: 0 });
  });

  it("bank-sim - a key forgotten after retentionMs is paid again and both payouts stay in /admin/payouts", async () => {
    await configure({ retentionMs: 300 });
    const first = await pay("k-old");
    expect(first.status).toBe(201);
    expect((await pay("k-old")).headers.get("idempotent-replayed")).toBe("true");
    await until(() => sim.bank.status("k-old") === undefined);
    expect(await statusOf("k-old")).toEqual({ status: 404, body: { error: "unknown idempotency key" } });

    // the same request again: a real bank that forgot the key pays it a second time
    const second = await pay("k-old");
    expect(second.status).toBe(201);
    expect(second.headers.get("idempotent-replayed")).toBeNull();
    expect(second.body.reference).not.toBe(first.body.reference);
    const paid = (await payouts()).filter((p) => p.idempotencyKey === "k-old");
    expect(paid.map((p) => [p.transferId, p.reference])).toEqual([
      ["t-1", first.body.reference],
      ["t-1", second.body.reference],
    ]);
    expect(await stats()).toMatchObject({
      forgottenKeys: 1,
      requestsForForgottenKeys: 1,
      paid: 2,
      replayed: 1,
    });
  });

  it("bank-sim - an outage answers 503 to every /v1 request, keeps healthz up, and ends on time or on demand", async () => {
    const unavailable = { status: 503, body: { error: "bank unavailable" } };
    expect((await pay("k-paid")).status).toBe(201);
    expect(await outage(60_000)).toMatchObject({ status: 200, body: { active: true } });
    expect(await pay("k-out")).toMatchObject(unavailable);
    expect(await pay("k-paid")).toMatchObject(unavailable);
    expect(await statusOf("k-paid")).toEqual(unavailable);
    expect((await fetch(`${sim.url}/healthz`)).status).toBe(200);
    expect(sim.bank.status("k-out")).toBeUndefined();

    expect(await outage(0)).toEqual({ status: 200, body: { active: false, remainingMs: 0 } });
    expect((await pay("k-out")).status).toBe(201);

    await outage(300);
    expect(await pay("k-out2")).toMatchObject(unavailable);
    await until(() => !sim.bank.outage().active);
    expect((await pay("k-out2")).status).toBe(201);
    expect((await payouts()).map((p) => p.idempotencyKey)).toEqual(["k-paid", "k-out", "k-out2"]);
    expect(await stats()).toMatchObject({ outageRejections: 4, requests: 6, statusQueries: 1, paid: 3 });
  });

  it("bank-sim - stats count every kind of answer", async () => {
    await configure({ processingMinMs: 200, processingMaxMs: 200, refuseAccounts: ["bank:closed"] });
    const both = await Promise.all([pay("s-1"), pay("s-1")]);
    expect(both.map((a) => a.status).sort()).toEqual([201, 409]);
    await pay("s-1");
    await pay("s-1", { ...body, amountMinor: 1 });
    await pay("s-2", { ...body, account: "bank:closed" });
    await configure({ errorRate: 1 });
    await pay("s-3");
    await configure({ errorRate: 0 });
    await pay(undefined);
    await statusOf("s-1");
    await outage(60_000);
    await pay("s-4");
    await statusOf("s-4");
    await outage(0);
    expect(await stats()).toEqual({
      requests: 8,
      paid: 1,
      refused: 1,
      replayed: 1,
      conflictsInProgress: 1,
      conflictsReused: 1,
      unavailable503: 1,
      outageRejections: 2,
      answersAfterClientLeft: 0,
      slowAnswers: 0,
      forgottenKeys: 0,
      requestsForForgottenKeys: 0,
      statusQueries: 2,
    });
  });

  it("bank-sim - admin config merges settings and refuses bad ones naming the field", async () => {
    const ok = await configure({ latencyMs: 5, retentionMs: 60_000 });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({
      latencyMs: 5,
      errorRate: 0,
      refusalRate: 0,
      refuseAccounts: [],
      processingMinMs: 20,
      processingMaxMs: 200,
      slowRate: 0,
      slowMs: 3000,
      retentionMs: 60_000,
    });
    const bad = await configure({
      errorRate: 2,
      refuseAccounts: "x",
      speed: 1,
      processingMinMs: -1,
      slowRate: "half",
      slowMs: 1.5,
      retentionMs: 2 ** 31,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid config");
    expect((bad.body.issues as { field: string }[]).map((i) => i.field).sort()).toEqual([
      "errorRate",
      "processingMinMs",
      "refuseAccounts",
      "retentionMs",
      "slowMs",
      "slowRate",
      "speed",
    ]);
    // a bound that only breaks against the current other bound names the field sent
    expect((await configure({ processingMaxMs: 10 })).body.issues).toEqual([
      { field: "processingMaxMs", rule: "must not be below processingMinMs" },
    ]);
    expect((await configure({ processingMinMs: 500 })).body.issues).toEqual([
      { field: "processingMinMs", rule: "must not exceed processingMaxMs" },
    ]);
    const badOutage = await outage(-1);
    expect(badOutage.status).toBe(400);
    expect(badOutage.body.issues).toEqual([{ field: "durationMs", rule: expect.stringMatching(/integer/) }]);
    expect(await (await fetch(`${sim.url}/admin/config`)).json()).toMatchObject({
      latencyMs: 5,
      errorRate: 0,
      processingMinMs: 20,
      processingMaxMs: 200,
      retentionMs: 60_000,
    });
    expect(sim.bank.outage().active).toBe(false);
  });

  it("bank-sim - the same seed decides the same refusals and references", async () => {
    const other = await startBankSim({ port: 0, seed: "test" });
    const third = await startBankSim({ port: 0, seed: "other" });
    extra.push(other, third);
    for (const s of [sim, other, third]) {
      await configure({ refusalRate: 0.5, processingMinMs: 0, processingMaxMs: 0 }, s);
    }
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
      expect((await refusals(second)).map((r) => r.idempotencyKey)).toEqual(["s-2"]);
      expect((await statusOf("s-1", second)).body.status).toBe("paid");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("bank-sim - a key processing at a stop is unknown after the restart and its retry pays once", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bank-sim-"));
    try {
      const stateFile = join(dir, "state.jsonl");
      const first = await startBankSim({
        port: 0,
        stateFile,
        behaviour: { processingMinMs: 5000, processingMaxMs: 5000 },
      });
      const call = pay("p-1", body, first).catch((err: unknown) => err);
      await until(() => first.bank.status("p-1")?.status === "processing");
      const stopping = performance.now();
      await first.close();
      // close cancels the processing timer instead of waiting for it
      expect(performance.now() - stopping).toBeLessThan(1000);
      expect(await call).toBeInstanceOf(Error);

      const second = await startBankSim({ port: 0, stateFile });
      extra.push(second);
      expect(await statusOf("p-1", second)).toEqual({
        status: 404,
        body: { error: "unknown idempotency key" },
      });
      expect((await pay("p-1", body, second)).status).toBe(201);
      expect((await payouts(second)).map((p) => p.idempotencyKey)).toEqual(["p-1"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("bank-sim - both payouts of a forgotten key survive a restart and retention counts from the decision", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bank-sim-"));
    try {
      const stateFile = join(dir, "state.jsonl");
      const behaviour = { retentionMs: 200, processingMinMs: 0, processingMaxMs: 0 };
      const first = await startBankSim({ port: 0, stateFile, behaviour });
      const one = await pay("r-1", body, first);
      await until(() => first.bank.status("r-1") === undefined);
      const two = await pay("r-1", body, first);
      await first.close();

      // kept forever now: the key answers with its last decision
      const second = await startBankSim({ port: 0, stateFile, behaviour: { retentionMs: 0 } });
      extra.push(second);
      expect((await payouts(second)).map((p) => p.reference)).toEqual([
        one.body.reference,
        two.body.reference,
      ]);
      expect((await pay("r-1", body, second)).body.reference).toBe(two.body.reference);

      // the decision is older than 200 ms by now, so a bank with that retention starts without it
      await new Promise((resolve) => setTimeout(resolve, 250));
      const third = await startBankSim({ port: 0, stateFile, behaviour });
      extra.push(third);
      expect((await statusOf("r-1", third)).status).toBe(404);
      expect(await payouts(third)).toHaveLength(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("bank-sim - unknown routes are 404 and wrong methods 405", async () => {
    expect((await fetch(`${sim.url}/nope`)).status).toBe(404);
    expect((await fetch(`${sim.url}/v1/nope`)).status).toBe(404);
    expect((await fetch(`${sim.url}/v1/payouts`)).status).toBe(405);
    expect((await fetch(`${sim.url}/v1/payouts/k`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${sim.url}/admin/stats`, { method: "POST" })).status).toBe(405);
  });

  it("bank-sim - loadConfig reads the switches and lists every bad key", () => {
    const c = loadConfig({
      BANK_PORT: "9191",
      BANK_LATENCY_MS: "20",
      BANK_ERROR_RATE: "0.1",
      BANK_REFUSAL_RATE: "",
      BANK_REFUSE_ACCOUNTS: "bank:a, bank:b",
      BANK_STATE_FILE: "/tmp/x.jsonl",
      BANK_PROCESSING_MIN_MS: "5",
      BANK_PROCESSING_MAX_MS: "50",
      BANK_SLOW_RATE: "0.25",
      BANK_SLOW_MS: "2500",
      BANK_RETENTION_MS: "60000",
      BANK_OUTAGE_MS: "1000",
    });
    expect(c).toEqual({
      host: "127.0.0.1",
      port: 9191,
      seed: "jetmesh",
      stateFile: "/tmp/x.jsonl",
      outageMs: 1000,
      behaviour: {
        latencyMs: 20,
        errorRate: 0.1,
        refusalRate: 0,
        refuseAccounts: ["bank:a", "bank:b"],
        processingMinMs: 5,
        processingMaxMs: 50,
        slowRate: 0.25,
        slowMs: 2500,
        retentionMs: 60_000,
      },
    });
    expect(loadConfig({})).toMatchObject({
      port: 9090,
      outageMs: 0,
      behaviour: { processingMinMs: 20, processingMaxMs: 200, slowRate: 0, slowMs: 3000, retentionMs: 0 },
    });
    expect(() => loadConfig({ BANK_PORT: "x", BANK_ERROR_RATE: "2", BANK_LATENCY_MS: "-1" })).toThrow(
      /BANK_PORT .*; BANK_LATENCY_MS .*; BANK_ERROR_RATE/,
    );
    expect(() =>
      loadConfig({
        BANK_PROCESSING_MIN_MS: "500",
        BANK_SLOW_RATE: "2",
        BANK_RETENTION_MS: "x",
        BANK_OUTAGE_MS: "-5",
      }),
    ).toThrow(
      /BANK_SLOW_RATE must be .*; BANK_RETENTION_MS must be .*; BANK_PROCESSING_MIN_MS must not exceed processingMaxMs; BANK_OUTAGE_MS must be/,
    );
  });

  it("bank-sim - the manifest documents every variable loadConfig reads, with its default", async () => {
    const manifest = JSON.parse(await readFile(new URL("../manifest.json", import.meta.url), "utf8")) as {
      env: Record<string, { default: unknown }>;
    };
    const defaults = loadConfig({});
    const expected: Record<string, unknown> = {
      BANK_HOST: defaults.host,
      BANK_PORT: defaults.port,
      BANK_SEED: defaults.seed,
      BANK_STATE_FILE: null,
      BANK_OUTAGE_MS: defaults.outageMs,
      BANK_LATENCY_MS: defaults.behaviour.latencyMs,
      BANK_ERROR_RATE: defaults.behaviour.errorRate,
      BANK_REFUSAL_RATE: defaults.behaviour.refusalRate,
      BANK_REFUSE_ACCOUNTS: defaults.behaviour.refuseAccounts.join(","),
      BANK_PROCESSING_MIN_MS: defaults.behaviour.processingMinMs,
      BANK_PROCESSING_MAX_MS: defaults.behaviour.processingMaxMs,
      BANK_SLOW_RATE: defaults.behaviour.slowRate,
      BANK_SLOW_MS: defaults.behaviour.slowMs,
      BANK_RETENTION_MS: defaults.behaviour.retentionMs,
    };
    expect(Object.fromEntries(Object.entries(manifest.env).map(([k, v]) => [k, v.default]))).toEqual(
      expected,
    );
  });
});
