import { createRedis, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { waitFor } from "@jetmesh/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerStage } from "./handler.ts";
import { compactionHorizonMs, decisionHorizonMs } from "./outcome-ttl.ts";
import { rebuild } from "./projection-check.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys } from "./store.ts";
import {
  type Core,
  failedInput,
  type Infra,
  type LedgerParts,
  provision,
  publishEvent,
  readLedger,
  scoredInput,
  startInfra,
  eur,
  ledgerQuiet,
  parkedReasons,
  startLedgerParts,
} from "./test-support.ts";

const TTL_MS = 6000;
let infra: Infra;
let redis: Redis;
let store: LedgerStore;
let ledger: LedgerParts;
let stage: StageHandle;

/** The ledger's parts and its stage, as main.ts wires them, with the shrunk horizon. */
async function startLedger(): Promise<void> {
  ledger = await startLedgerParts({
    nc: infra.nc,
    logger: infra.logger,
    store,
    snapshotEvery: 3,
    outcomeTtlMs: TTL_MS,
  });
  stage = await runStage({
    definition: ledgerStage,
    deps: { writer: ledger.writer },
    nc: infra.nc,
    redis,
    logger: infra.logger,
    settings: stageSettings({
      ackWaitMs: 2000,
      maxDeliver: 5,
      retryBaseMs: 20,
      retryMaxMs: 200,
      publishTimeoutMs: 1000,
      publishRetryHorizonMs: 2000,
      idempotencyTtlMs: 4 * 24 * 3_600_000,
      idempotencyHorizonMs: 600_000,
    }),
  });
}

beforeAll(async () => {
  infra = await startInfra();
  await provision(infra.jsm, infra.logger);
  redis = createRedis({ url: infra.redisServer.url, name: "ledger-horizon-test" });
  store = createLedgerStore(redis, { outcomeTtlMs: TTL_MS });
  await startLedger();
}, 60_000);
afterAll(async () => {
  await stage?.stop();
  await ledger?.stop();
  redis?.disconnect();
  await infra?.close();
});

let n = 0;
const core = eur;
/** transfers.scored with a new event id (its runtime guard is not the first one's), occurred at `at`. */
const scoredAt = (c: Core, at: number) => ({
  ...scoredInput(c, "allow", `sc-${c.transferId}-${++n}`),
  occurredAt: new Date(at).toISOString(),
});

const bal = async (account: string) => BigInt((await redis.hget(LedgerKeys.balance(account), "EUR")) ?? "0");
const postingsOf = async (transferId: string) =>
  (await readLedger(infra.js, infra.jsm)).filter(
    (e) => e.env?.correlationId === transferId && e.env.type === "ledger.posted",
  ).length;

const quiet = () => ledgerQuiet(infra, ledger, store);

const parked = () => parkedReasons(infra);

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

describe("the ledger's horizon (LEDGER_OUTCOME_TTL_MS = 6 s)", () => {
  it("ledger - an old input comes back past the horizon: parked, never posted twice; memory and Redis let the outcome go", async () => {
    const fund = core("h-fund", "external", "acc-h", 1000);
    const pay = core("h-pay", "acc-h", "bank:h", 300);
    await publishEvent(infra.js, scoredAt(fund, Date.now()));
    await quiet();
    const sentAt = Date.now();
    await publishEvent(infra.js, scoredAt(pay, sentAt));
    await quiet();
    const postedAt = Date.now();
    expect(await bal("acc-h")).toBe(700n);
    // A bank posting not reversed has a lifetime too now.
    const pttl = await redis.pttl(LedgerKeys.outcome(pay.transferId));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(TTL_MS);
    expect(ledger.follower.status().outcomes).toBe(2);

    // Before the decision horizon, the same input under a new id (its guard gone) is a duplicate.
    await publishEvent(infra.js, scoredAt(pay, sentAt));
    await quiet();
    expect(await postingsOf(pay.transferId)).toBe(1);

    // Past the decision horizon (3H/4) and the input horizon (H/2), before compaction (5H/4):
    // the fold still holds the posting, and decides as if it did not.
    await sleepUntil(postedAt + decisionHorizonMs(TTL_MS) + 100);
    expect(ledger.follower.fold().outcomes.has(pay.transferId)).toBe(true);
    await publishEvent(infra.js, scoredAt(pay, sentAt));
    await publishEvent(infra.js, failedInput(pay, `pf-${pay.transferId}-${++n}`));
    await quiet();
    await waitFor(async () => (await parked()).length >= 2, { what: "both inputs parked" });
    const reasons = await parked();
    expect(
      reasons.some((r) => /h-pay refused: its input occurred at .* past the ledger's input horizon/.test(r)),
    ).toBe(true);
    expect(reasons.some((r) => /no posting of transfer h-pay .* decision horizon/.test(r))).toBe(true);
    expect(await postingsOf(pay.transferId)).toBe(1);
    expect(await bal("acc-h")).toBe(700n);
    expect(await bal("bank:h")).toBe(300n);

    // Past 5H/4 the outcomes leave the fold (balances stay), and Redis let the hashes expire.
    await waitFor(async () => ledger.follower.status().outcomes === 0, {
      what: "outcomes compacted",
      timeoutMs: compactionHorizonMs(TTL_MS) + 5000,
      intervalMs: 100,
    });
    expect(ledger.follower.status().compacted).toBe(2);
    expect(await redis.exists(LedgerKeys.outcome(pay.transferId))).toBe(0);
    expect(await bal("acc-h")).toBe(700n);

    // Compaction changed no decision: the old input is still refused, a new transfer posts.
    const fresh = core("h-fresh", "acc-h", "acc-h2", 50);
    await publishEvent(infra.js, scoredAt(pay, sentAt));
    await publishEvent(infra.js, scoredAt(fresh, Date.now()));
    await quiet();
    await waitFor(async () => (await parked()).length >= 3, { what: "the third parked input" });
    expect(await postingsOf(pay.transferId)).toBe(1);
    expect(await bal("acc-h")).toBe(650n);
    expect(await bal("acc-h2")).toBe(50n);

    // rebuild --check: the whole log folded again agrees with the projection (I4).
    const report = await rebuild({ js: infra.js, jsm: infra.jsm, store, attempts: 3, settleMs: 200 });
    expect(report.differences).toEqual([]);
    expect(report.fold.state.outcomes.size).toBe(3);
  }, 60_000);

  it("ledger - restarted from its compacted snapshot, it decides as before", async () => {
    await stage.stop();
    await ledger.stop();
    await startLedger();
    // The snapshot was written from the compacted fold: h-pay is not in it.
    expect(ledger.follower.fold().outcomes.has("h-pay")).toBe(false);
    const before = (await parked()).length;
    await publishEvent(infra.js, scoredAt(core("h-pay", "acc-h", "bank:h", 300), Date.now() - TTL_MS));
    await quiet();
    await waitFor(async () => (await parked()).length > before, { what: "parked after restart" });
    expect(await postingsOf("h-pay")).toBe(1);
    expect(await bal("acc-h")).toBe(650n);
  }, 60_000);
});
