// The ledger as operators run it: `pnpm start` and `pnpm rebuild` (the bundles of
// src/main.ts and src/rebuild.ts) as child processes against real servers, including a
// real SIGKILL at a crash point. The streams are created first, as the deploy step does:
// the ledger never creates LEDGER.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import {
  bundleOf,
  type ChildHandle,
  freePort,
  spawnProcess,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLog } from "./ledger-log.ts";
import { LedgerKeys } from "./store.ts";
import { type Infra, provision, publishEvent, startInfra } from "./test-support.ts";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
let infra: Infra;
let env: Record<string, string>;

const FAST: Record<string, string> = {
  JETMESH_ACK_WAIT_MS: "1500",
  JETMESH_MAX_DELIVER: "6",
  JETMESH_RETRY_BASE_MS: "50",
  JETMESH_RETRY_MAX_MS: "500",
  JETMESH_PUBLISH_TIMEOUT_MS: "1000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "5000",
  JETMESH_DRAIN_TIMEOUT_MS: "2000",
  OTEL_SDK_DISABLED: "true",
  LOG_LEVEL: "info",
};

beforeAll(async () => {
  infra = await startInfra();
  await provision(infra.jsm, infra.logger);
  env = { NATS_URL: infra.nats.url, REDIS_URL: infra.redisServer.url, ...FAST };
});
afterAll(async () => {
  await stopAllProcesses();
  await infra?.close();
});

async function startLedger(
  extra: Record<string, string> = {},
): Promise<{ child: ChildHandle; port: number }> {
  const port = await freePort();
  const child = await spawnProcess({
    name: "ledger",
    command: process.execPath,
    args: [bundleOf(join(packageDir, "src/main.ts"))],
    cwd: packageDir,
    env: { ...env, HTTP_PORT: String(port), ...extra },
  });
  return { child, port };
}

async function readyz(port: number): Promise<{ status: number; body: { ready: boolean } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean } };
}

async function runRebuild(): Promise<{ code: number | null; out: string }> {
  const child = await spawnProcess({
    name: "ledger-rebuild",
    command: process.execPath,
    args: [bundleOf(join(packageDir, "src/rebuild.ts"))],
    cwd: packageDir,
    env: { ...env, LEDGER_REBUILD_SETTLE_MS: "100" },
  });
  const { code } = await child.exited;
  return { code, out: child.lines().join("\n") };
}

let n = 0;
function scored(from: string, to: string, amountMinor: number): AnyEnvelope {
  const transferId = `tp-${++n}`;
  return makeEnvelope(
    EventTypes.TransferScored,
    { transferId, from, to, amountMinor, currency: "EUR", score: 1, decision: "allow", factors: [] },
    {
      eventId: `sc-${transferId}`,
      correlationId: transferId,
      causationId: `va-${transferId}`,
      producer: "risk",
    },
  ) as AnyEnvelope;
}

async function postings(transferId: string): Promise<number> {
  const last = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
  let count = 0;
  await readLog(infra.js, "LEDGER", 1, last, (e) => {
    if (e.env?.correlationId === transferId && e.env.type === EventTypes.LedgerPosted) count++;
  });
  return count;
}

const bal = async (account: string) => (await infra.redis.hget(LedgerKeys.balance(account), "EUR")) ?? "0";

describe("ledger process", () => {
  it("ledger - the service restores an empty Redis, becomes ready, posts, and drains on SIGTERM", async () => {
    const { child, port } = await startLedger();
    await waitFor(async () => (await readyz(port)).status === 200, {
      what: "/readyz 200",
      timeoutMs: 90_000,
    });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/jetmesh_/);
    expect(metrics).toMatch(/ledger_projection_ready 1/);
    // Redis started empty: the projection was restored (from the empty fold) before it was ready
    expect(metrics).toMatch(/^ledger_projection_restores 1$/m);
    expect(await infra.redis.get(LedgerKeys.epoch)).toMatch(/"seq":0/);
    const fund = scored("external", "acc-p1", 1000);
    await publishEvent(infra.js, fund);
    await waitFor(async () => (await bal("acc-p1")) === "1000", { what: "funded", timeoutMs: 60_000 });
    await waitFor(async () => (await postings(fund.correlationId)) === 1, {
      what: "logged",
      timeoutMs: 60_000,
    });
    await child.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 0, signal: null });
  }, 240_000);

  it("ledger - killed at after-effect and restarted, a transfer posts once", async () => {
    const crashing = await startLedger({ JETMESH_CRASH_AT: "after-effect" });
    const pay = scored("acc-p1", "bank:p1", 250);
    await publishEvent(infra.js, pay);
    expect((await crashing.child.exited).signal).toBe("SIGKILL");
    // the effect is the append: the decision is in the log, the input neither done nor acked
    expect(await postings(pay.correlationId)).toBe(1);
    const last = (await infra.jsm.streams.info("LEDGER")).state.last_seq;
    const { child, port } = await startLedger();
    // the redelivery finds its decision in the log and appends nothing
    await waitFor(
      async () => {
        const c = await infra.jsm.consumers.info("RISK", "ledger");
        return c.num_pending === 0 && c.num_ack_pending === 0;
      },
      { what: "the input acked after restart", timeoutMs: 90_000 },
    );
    await waitFor(async () => (await readyz(port)).status === 200, {
      what: "/readyz 200",
      timeoutMs: 30_000,
    });
    expect(await postings(pay.correlationId)).toBe(1);
    expect((await infra.jsm.streams.info("LEDGER")).state.last_seq).toBe(last);
    await waitFor(async () => (await bal("bank:p1")) === "250", { what: "projected", timeoutMs: 30_000 });
    expect(await bal("acc-p1")).toBe("750");
    expect((await infra.jsm.streams.info("DLQ")).state.messages).toBe(0);
    await child.stop();
  }, 240_000);

  it("ledger - rebuild exits 0 when the projection equals the fold and 1 naming a tampered balance", async () => {
    const clean = await runRebuild();
    expect(clean.out).toMatch(/0 difference\(s\)/);
    expect(clean.code).toBe(0);
    await infra.redis.hincrby(LedgerKeys.balance("acc-p1"), "EUR", 1);
    const tampered = await runRebuild();
    expect(tampered.code).toBe(1);
    expect(tampered.out).toContain("balance acc-p1 EUR: log 750, projection 751");
    expect(tampered.out).toContain("total EUR: projection sums to 1, not 0");
    await infra.redis.hincrby(LedgerKeys.balance("acc-p1"), "EUR", -1);
  }, 240_000);
});
