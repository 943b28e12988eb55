// The ledger as deployed (its bundle) against state that production loses: Redis rolled
// back to an older dataset, the broker's log shorter than the projection, LEDGER missing at
// start, Redis wiped while decisions flow. The streams are the truth; every check reads
// LEDGER with the contracts codec, never through the ledger's code.
import { cp, rm } from "node:fs/promises";
import { LedgerProjection, Streams } from "@jetmesh/contracts";
import { overdrafts, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type Infra, readStream, startInfra } from "./support/infra.ts";
import {
  failPayout,
  foldBalances,
  provision,
  type ServiceProcess,
  score,
  servedBalance,
  startService,
  waitForLedger,
  waitReady,
  waitServedEqualsFold,
} from "./support/ledger.ts";

let infra: Infra | undefined;
const running: ServiceProcess[] = [];

async function start(service: "ledger" | "payout", env: Record<string, string> = {}) {
  const svc = await startService(service, infra!, env);
  running.push(svc);
  return svc;
}

afterEach(async () => {
  for (const s of running.splice(0)) await s.child.stop(3_000);
  await infra?.close();
  infra = undefined;
});
afterAll(() => stopAllProcesses());

const ledgerEvents = () => readStream(infra!.jsm, Streams.LEDGER.name);

describe("ledger state", () => {
  it("ledger - Redis rolled back to an older dataset: no decision on the lost balances, compensation still found", async () => {
    infra = await startInfra();
    await provision(infra.jsm);
    const ledger = await start("ledger");
    await waitReady(ledger);

    await score(infra, "t1", "external", "acc-1", 100);
    await waitForLedger(infra.jsm, "t1", ["ledger.posted"]);
    await waitFor(async () => (await servedBalance(infra!.redis, "acc-1")) === 100n, {
      what: "acc-1 = 100 in Redis",
    });
    const backup = await infra.redisServer.snapshot();

    await score(infra, "t2", "acc-1", "bank:acme", 100);
    const t2 = await waitForLedger(infra.jsm, "t2", ["ledger.posted"]);
    await waitFor(async () => (await servedBalance(infra!.redis, "acc-1")) === 0n, {
      what: "acc-1 = 0 in Redis",
    });

    // A failover to a replica that had not seen t2: Redis says acc-1 still holds 100 (until
    // the projection notices the rollback and re-applies the log).
    // (The repair takes milliseconds, so the test reads it from the metric at the end.)
    await infra.redisServer.rollbackTo(backup);
    await waitFor(async () => (await infra!.redis.ping()) === "PONG", { what: "redis back" });

    // The log says acc-1 is empty: spending its 100 again must be declined.
    await score(infra, "t3", "acc-1", "acc-3", 100);
    const t3 = await waitForLedger(infra.jsm, "t3", ["ledger.posted", "ledger.declined"]);
    expect(t3.env?.type).toBe("ledger.declined");
    expect(overdrafts(await ledgerEvents())).toEqual([]);

    // The posting Redis forgot is still compensated when the bank refuses it.
    await failPayout(infra, t2.env!);
    await waitForLedger(infra.jsm, "t2", ["ledger.reversed"]);
    // Redis is repaired from the log: it serves the fold again.
    await waitServedEqualsFold(infra, ["external", "acc-1", "acc-3", "bank:acme"]);
    expect((await infra.jsm.streams.info(Streams.DLQ.name)).state.messages).toBe(0);
    expect((await ledger.get("/metrics")).body).toMatch(/^ledger_projection_repairs [1-9]/m);
  }, 90_000);

  it("ledger - a log shorter than its projection stops the ledger and leaves Redis as it was", async () => {
    infra = await startInfra();
    await provision(infra.jsm);
    let ledger = await start("ledger");
    await waitReady(ledger);
    await score(infra, "s1", "external", "acc-1", 100);
    await waitForLedger(infra.jsm, "s1", ["ledger.posted"]);
    // A copy of the broker's store while LEDGER holds one event (the server stopped cleanly).
    await ledger.child.stop(3_000);
    running.splice(0);
    await infra.nats.kill("SIGTERM");
    const backup = `${infra.nats.storeDir}-backup`;
    await cp(infra.nats.storeDir, backup, { recursive: true });
    await infra.nats.restart();
    await waitFor(() => infra!.jsm.streams.info(Streams.LEDGER.name), { what: "LEDGER after restart" });

    ledger = await start("ledger");
    await waitReady(ledger);
    await score(infra, "s2", "external", "acc-2", 200);
    await score(infra, "s3", "acc-1", "acc-2", 50);
    await waitForLedger(infra.jsm, "s3", ["ledger.posted"]);
    await waitFor(async () => Number(await infra!.redis.get(LedgerProjection.appliedSeqKey)) === 3, {
      what: "Redis applied-seq 3",
    });
    await ledger.child.stop(3_000);
    running.splice(0);
    const before = {
      applied: await infra.redis.get(LedgerProjection.appliedSeqKey),
      acc1: await servedBalance(infra.redis, "acc-1"),
      acc2: await servedBalance(infra.redis, "acc-2"),
    };

    // The broker loses its tail: its store is the copy holding one event.
    await infra.nats.kill("SIGKILL");
    await rm(infra.nats.storeDir, { recursive: true, force: true });
    await cp(backup, infra.nats.storeDir, { recursive: true });
    await infra.nats.restart();
    const lastSeq = () =>
      waitFor(() => infra!.jsm.streams.info(Streams.LEDGER.name), { what: "LEDGER info" }).then(
        (i) => i.state.last_seq,
      );
    expect(await lastSeq()).toBe(1);

    ledger = await start("ledger");
    await waitFor(() => ledger.child.lines().some((l) => /shorter than/.test(l)), {
      timeoutMs: 20_000,
      what: "the ledger to report a log shorter than its projection",
    });
    const readyz = await ledger.get("/readyz");
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(/LEDGER/);
    expect((await ledger.get("/metrics")).body).toMatch(/^ledger_log_mismatch 1$/m);
    // Nothing was restored over the projection, and no decision was taken.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await infra.redis.get(LedgerProjection.appliedSeqKey)).toBe(before.applied);
    expect(await servedBalance(infra.redis, "acc-1")).toBe(before.acc1);
    expect(await servedBalance(infra.redis, "acc-2")).toBe(before.acc2);
    await score(infra, "s4", "external", "acc-4", 10);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lastSeq()).toBe(1);
    await rm(backup, { recursive: true, force: true });
  }, 90_000);

  it("ledger - stages started while LEDGER is missing do not create it and say so in /readyz", async () => {
    infra = await startInfra();
    await provision(infra.jsm, [Streams.LEDGER.name]);
    const ledger = await start("ledger");
    const payout = await start("payout", {
      PAYOUT_BANK_URL: "http://127.0.0.1:9",
      PAYOUT_BANK_TIMEOUT_MS: "500",
    });
    await new Promise((r) => setTimeout(r, 3000));
    await expect(infra.jsm.streams.info(Streams.LEDGER.name)).rejects.toThrow(/stream not found/);
    for (const svc of [ledger, payout]) {
      expect((await svc.get("/healthz")).status).toBe(200);
      const readyz = await svc.get("/readyz");
      expect(readyz.status).toBe(503);
      expect(readyz.body).toMatch(/LEDGER/);
    }
    // Once the deploy step creates it, both become ready.
    await infra.jsm.streams.add((await import("@jetmesh/contracts")).toStreamConfig(Streams.LEDGER) as never);
    await waitReady(ledger);
    await waitReady(payout);
  }, 60_000);

  it("ledger - Redis wiped twice while transfers flow: every prefix solvent, served balances = fold", async () => {
    infra = await startInfra();
    await provision(infra.jsm);
    const ledger = await start("ledger");
    await waitReady(ledger);
    const accounts = ["acc-1", "acc-2", "acc-3", "acc-4"];
    for (const [i, a] of accounts.entries()) await score(infra, `f${i}`, "external", a, 1_000);
    await waitForLedger(infra.jsm, "f3", ["ledger.posted"]);
    for (let i = 0; i < 120; i++) {
      const from = accounts[i % 4]!;
      const to = accounts[(i + 1) % 4]!;
      await score(infra, `m${i}`, from, to, 150 + (i % 7) * 40);
      if (i === 40 || i === 80) await infra.redisServer.flushAll();
    }
    await waitForLedger(infra.jsm, "m119", ["ledger.posted", "ledger.declined"], 30_000);
    const events = await ledgerEvents();
    expect(overdrafts(events)).toEqual([]);
    expect(events.filter((e) => e.env?.type.startsWith("ledger.")).length).toBe(124);
    await waitServedEqualsFold(infra, ["external", ...accounts]);
    const fold = foldBalances(events);
    expect([...fold.values()].reduce((a, b) => a + b, 0n)).toBe(0n);
  }, 90_000);

  it("ledger - LEDGER deleted under a running ledger: it turns unready, decides nothing, debits nothing, and the transfers wait on RISK", async () => {
    infra = await startInfra();
    await provision(infra.jsm);
    const ledger = await start("ledger");
    await waitReady(ledger);
    await score(infra, "fund", "external", "acc-1", 10_000);
    await waitForLedger(infra.jsm, "fund", ["ledger.posted"]);
    await waitServedEqualsFold(infra, ["external", "acc-1"]);
    const before = await servedBalance(infra.redis, "acc-1");
    // The attack of issue 12 (without credentials before NATS permissions): delete the log.
    await infra.jsm.streams.delete(Streams.LEDGER.name);
    for (let i = 0; i < 20; i++) await score(infra, `after-${i}`, "acc-1", "acc-2", 100);
    const readyz = await waitFor(
      async () => {
        const r = await ledger.get("/readyz");
        return r.status === 503 ? r : undefined;
      },
      { what: "ledger unready after LEDGER disappeared", timeoutMs: 15_000 },
    );
    expect(readyz.body).toMatch(/LEDGER/);
    await new Promise((r) => setTimeout(r, 2000));
    // Nothing was debited, and nothing recreated the stream.
    expect(await servedBalance(infra.redis, "acc-1")).toBe(before);
    expect(await servedBalance(infra.redis, "acc-2")).toBe(0n);
    await expect(infra.jsm.streams.info(Streams.LEDGER.name)).rejects.toThrow(/stream not found/);
    // The scored transfers are not lost: they wait, unacknowledged, on the ledger's consumer.
    const consumer = await infra.jsm.consumers.info(Streams.RISK.name, "ledger");
    expect(consumer.num_pending + consumer.num_ack_pending).toBeGreaterThanOrEqual(20);
  }, 60_000);
});
