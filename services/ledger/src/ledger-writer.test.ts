// The ledger's writer of LEDGER against a real nats-server: the append is the commit point,
// with optimistic concurrency between instances, and an unanswered append settled by reading
// the log. Two writers here are two ledger instances (each its own connection, follower,
// projection and writer) on one LEDGER and one Redis.
import { EventTypes, Streams } from "@jetmesh/contracts";
import { context, PermanentError, TransientError } from "@jetmesh/stage";
import { type FaultProxy, overdrafts, startFaultProxy, waitFor } from "@jetmesh/testkit";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LedgerInput } from "./ledger-writer.ts";
import { readLog } from "./ledger-log.ts";
import { rebuild } from "./projection-check.ts";
import { createLedgerStore, type LedgerStore } from "./store.ts";
import {
  type Core,
  failedInput,
  type Infra,
  type LedgerParts,
  provision,
  readLedger,
  scoredInput,
  startInfra,
  startLedgerParts,
} from "./test-support.ts";

/** The trace context decisions are made under (no span: traces are not under test here). */
const ROOT = context.active();
let infra: Infra;
let store: LedgerStore;
const connections: NatsConnection[] = [];
const parts: LedgerParts[] = [];
let proxy: FaultProxy | undefined;

/** A ledger instance on its own connection (through `via` when given). */
async function instance(via?: FaultProxy): Promise<LedgerParts> {
  const nc = await connect({
    servers: via ? via.url("nats") : infra.nats.url,
    ...(via ? { ignoreClusterUpdates: true } : {}),
  });
  connections.push(nc);
  const p = await startLedgerParts({
    nc,
    logger: infra.logger,
    store,
    snapshotEvery: 50,
    publishTimeoutMs: 1000,
    catchUpTimeoutMs: 10_000,
  });
  parts.push(p);
  return p;
}

beforeAll(async () => {
  infra = await startInfra();
  await provision(infra.jsm, infra.logger);
  store = createLedgerStore(infra.redis);
}, 60_000);
afterAll(async () => {
  for (const p of parts) await p.stop();
  for (const nc of connections) await nc.close().catch(() => {});
  await proxy?.close();
  await infra?.close();
});

const core = (transferId: string, from: string, to: string, amountMinor: number): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency: "EUR",
});
const scored = (c: Core) => scoredInput(c) as LedgerInput;

/** LEDGER's decisions per transfer, as stored. */
async function decisionsByTransfer(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const e of await readLedger(infra.js, infra.jsm)) {
    if (!e.env) continue;
    const id = e.env.correlationId;
    out.set(id, [...(out.get(id) ?? []), e.env.type]);
  }
  return out;
}

/** A small deterministic generator, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("ledger writer", () => {
  it("ledger - two writers deciding interleaved transfers concurrently never append two decisions for one transfer, and every prefix is solvent", async () => {
    const [a, b] = [await instance(), await instance()];
    const accounts = Array.from({ length: 10 }, (_, i) => `acc-race${i}`);
    await Promise.all(
      accounts.map((acc, i) =>
        (i % 2 ? b : a).writer.decide(scored(core(`fund-${acc}`, "external", acc, 1000)), ROOT),
      ),
    );
    const rnd = lcg(7);
    const inputs = Array.from({ length: 200 }, (_, i) => {
      const from = accounts[Math.floor(rnd() * 10)]!;
      let to = accounts[Math.floor(rnd() * 10)]!;
      if (to === from) to = accounts[(accounts.indexOf(from) + 1) % 10]!;
      return scored(core(`race-${i}`, from, to, 100 + Math.floor(rnd() * 500)));
    });
    // half to each instance, arriving over ~150 ms in a random order, as two consumers take
    // them: both writers keep appending while the other does
    const before = [a.writer.status(), b.writer.status()];
    const delays = inputs.map(() => Math.floor(rnd() * 150));
    const results = await Promise.allSettled(
      inputs.map(async (input, i) => {
        await new Promise((r) => setTimeout(r, delays[i]));
        return (i % 2 ? b : a).writer.decide(input, ROOT);
      }),
    );
    const rejected = results.filter((r) => r.status === "rejected");
    expect(rejected.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);

    const decisions = await decisionsByTransfer();
    for (const input of inputs) {
      const types = decisions.get(input.data.transferId) ?? [];
      expect(types, input.data.transferId).toHaveLength(1);
      expect(["ledger.posted", "ledger.declined"]).toContain(types[0]);
    }
    const events = await readLedger(infra.js, infra.jsm);
    expect(overdrafts(events)).toEqual([]);
    const declinedCount = [...decisions.values()].filter((t) => t[0] === EventTypes.LedgerDeclined).length;
    expect(declinedCount).toBeGreaterThan(0); // the funds rule was really exercised
    const [sa, sb] = [a.writer.status(), b.writer.status()];
    // they really raced: appends were refused because the other instance had appended first
    // (which of the two loses is up to timing: the one holding the tail keeps it while busy)
    expect(sa.conflicts + sb.conflicts).toBeGreaterThan(before[0]!.conflicts + before[1]!.conflicts);
    expect(sa.appends + sb.appends).toBe(210);
    // both folds, and the Redis projection both instances feed, are the fold of LEDGER
    const last = (await infra.jsm.streams.info(Streams.LEDGER.name)).state.last_seq;
    for (const p of [a, b]) expect(await p.follower.caughtUp(last, 10_000)).toBe(true);
    await waitFor(async () => (await store.appliedSeq()) >= last, { what: "projection caught up" });
    const report = await rebuild({ js: infra.js, jsm: infra.jsm, store, attempts: 3, settleMs: 200 });
    expect(report.differences).toEqual([]);
    expect(a.follower.fold().balances).toEqual(report.fold.state.balances);
    expect(b.follower.fold().balances).toEqual(report.fold.state.balances);
  }, 60_000);

  it("ledger - a refusal reverses a posting another instance appended; a refusal of a transfer never posted is refused after catching up with the log", async () => {
    const [a, b] = [parts[0]!, parts[1]!];
    const pay = core("t-cross", "acc-race0", "bank:x", 1);
    await a.writer.decide(scored(pay), ROOT);
    // b decides right away, whether or not its fold has seen a's posting yet
    expect(await b.writer.decide(failedInput(pay) as LedgerInput, ROOT)).toMatchObject({ appended: true });
    const never = core("t-never-posted", "acc-race0", "bank:x", 1);
    const err = await b.writer.decide(failedInput(never) as LedgerInput, ROOT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(/no posting of transfer t-never-posted in LEDGER to reverse/);
    expect((await decisionsByTransfer()).get("t-cross")).toEqual(["ledger.posted", "ledger.reversed"]);
    expect((await decisionsByTransfer()).has("t-never-posted")).toBe(false);
  });

  it("ledger - an append left unanswered is settled by reading the log: the input resolves once and LEDGER holds its decision once", async () => {
    proxy = await startFaultProxy({ targetPort: infra.nats.port });
    const slow = await instance(proxy);
    const before = slow.writer.status();
    // every chunk takes 700 ms each way: the append lands, its PubAck comes after the 1 s timeout
    proxy.setLatency(700);
    const input = scored(core("t-unanswered", "external", "acc-slow", 5));
    const committed = await slow.writer.decide(input, ROOT);
    proxy.setLatency(0);
    const after = slow.writer.status();
    expect(after.conflicts).toBeGreaterThan(before.conflicts);
    expect(after.resyncs).toBeGreaterThan(before.resyncs);
    expect(committed).toEqual({ appended: false });
    expect((await decisionsByTransfer()).get("t-unanswered")).toEqual(["ledger.posted"]);
    // the same input again: found in the log, nothing appended
    expect(await slow.writer.decide(input, ROOT)).toEqual({ appended: false });
    expect((await decisionsByTransfer()).get("t-unanswered")).toEqual(["ledger.posted"]);
  }, 60_000);

  it("ledger - an input whose decision the contract refuses is refused once, and the writer goes on", async () => {
    const a = parts[0]!;
    const pay = core("t-bad-reason", "acc-race1", "bank:x", 1);
    await a.writer.decide(scored(pay), ROOT);
    const before = a.writer.status();
    // a payouts.failed no contract allows (an empty reason): its ledger.reversed cannot be encoded
    const bad = failedInput(pay, "pf-bad", "") as LedgerInput;
    const [err, next] = await Promise.all([
      a.writer.decide(bad, ROOT).catch((e: unknown) => e),
      a.writer.decide(scored(core("t-after-bad", "external", "acc-race1", 3)), ROOT),
    ]);
    expect(err).toBeInstanceOf(PermanentError);
    expect(next).toMatchObject({ appended: true });
    // give a writer that would decide the refused input again the time to do it
    await new Promise((r) => setTimeout(r, 300));
    const after = a.writer.status();
    expect(after.resyncs - before.resyncs).toBeLessThanOrEqual(2);
    expect((await decisionsByTransfer()).get("t-bad-reason")).toEqual(["ledger.posted"]);
  });

  it("ledger - a halted writer refuses every input (retried later by the runtime)", async () => {
    const a = parts[0]!;
    a.writer.halt("test");
    const err = await a.writer
      .decide(scored(core("t-halted", "external", "acc-h", 1)), ROOT)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/ledger halted: test/);
    const seen: string[] = [];
    await readLog(infra.js, "LEDGER", 1, (await infra.jsm.streams.info("LEDGER")).state.last_seq, (e) => {
      if (e.env) seen.push(e.env.correlationId);
    });
    expect(seen).not.toContain("t-halted");
  });
});
