// Redis loses everything (FLUSHALL) twice while transfers flow: once under the running
// ledger (it restores from the fold it follows), once together with a ledger crash (the
// new process restores from the latest KV snapshot and replays LEDGER after it). The
// final balances must equal the fold of LEDGER, account by account.
import { Streams } from "@jetmesh/contracts";
import { redisBalances, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sendTraffic } from "@jetmesh/mesh";
import {
  describeViolations,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  readiness,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

const TRANSFERS = 450;

describe("e2e redis wipe", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - Redis wiped mid-run: the ledger restores from snapshot and replay, balances equal the fold", async () => {
    t = await startTestMesh({ serviceEnv: { ledger: { LEDGER_SNAPSHOT_EVERY: "50" } } });
    const { mesh, redis, jsm } = t;
    let answered = 0;
    const traffic = sendTraffic({
      gatewayUrl: mesh.gatewayUrl,
      apiKeys: mesh.apiKeys,
      transfers: TRANSFERS,
      rate: 150,
      accounts: 20,
      maxInFlight: 32,
      runId: "e2e-redis-wipe",
      refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
      onProgress: (p) => {
        if (p.phase === "transfers") answered = p.done;
      },
    });
    const ledgerSeq = async () => (await jsm.streams.info(Streams.LEDGER.name)).state.last_seq;

    // 1. FLUSHALL under a running ledger, a third of the way in.
    await waitFor(() => answered >= TRANSFERS / 3, { timeoutMs: 120_000, what: "a third of the traffic" });
    await redis.flushAll();
    await waitFor(
      async () => {
        const r = await readiness(mesh.services.ledger.url).catch(() => undefined);
        const p = r?.checks.projection;
        return r?.ready === true && Number(p?.restores) >= 1 ? p : undefined;
      },
      { timeoutMs: 60_000, what: "the running ledger to restore after FLUSHALL" },
    );

    // 2. Two thirds in: the ledger dies and Redis is wiped while it is down.
    await waitFor(() => answered >= (2 * TRANSFERS) / 3, { timeoutMs: 120_000, what: "two thirds" });
    await mesh.services.ledger.kill();
    await redis.flushAll();
    const seqAtRestart = await ledgerSeq();
    await mesh.services.ledger.start({ LOG_LEVEL: "info" });
    // The new process read the latest snapshot (one every 50 events) and replayed the rest.
    const restart = (await mesh.services.ledger.log()).split("--- mesh: starting ledger").at(-1) ?? "";
    const loaded = restart
      .split("\n")
      .filter((l) => l.includes('"snapshot loaded"'))
      .map((l) => JSON.parse(l) as { snapshot_seq: number });
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.snapshot_seq).toBeGreaterThan(0);
    expect(loaded[0]!.snapshot_seq).toBeLessThanOrEqual(seqAtRestart);
    const after = (await readiness(mesh.services.ledger.url)).checks.projection as Record<string, unknown>;
    expect(after.mode).toBe("live");
    expect(Number(after.foldSeq)).toBeGreaterThanOrEqual(seqAtRestart);

    const sent = await traffic;
    expect(sent.retries.mismatched).toEqual([]);
    expect(sent.failed).toEqual([]);
    const report = await quietThenCheck(t, sent.accepted, redisBalances(redis.url));
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.checked).toContain("I4");
    expect(report.counts.lost + report.counts.multiple).toBe(0);
    expect(report.counts.accounts).toBeGreaterThan(20);
  }, 240_000);
});
