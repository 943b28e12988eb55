// The reconciler as deployed (its bundle, plain node, its own process) next to the real mesh
// (every service as its own process, real HTTP to the bank): after real traffic, including
// refused payouts, it reports nothing; a balance altered in Redis and a consumer changed by
// hand appear on RECONCILE and in its /metrics within their check interval, and close after
// repair; SIGTERM stops it cleanly.
import { FindingKinds, LedgerProjection, StreamNames } from "@jetmesh/contracts";
import { sendTraffic, waitForQuiet } from "@jetmesh/mesh";
import {
  bundleOf,
  type ChildHandle,
  freePort,
  spawnProcess,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { readFindings } from "@jetmesh/reconciler/test-support";
import { E2E_SETTINGS, REFUSED_BANK_ACCOUNTS, startTestMesh, type TestMesh } from "../support/mesh.ts";

const root = `${import.meta.dirname}/../..`;

describe("e2e reconciler", () => {
  let t: TestMesh | undefined;
  let child: ChildHandle | undefined;
  let redis: Redis | undefined;
  afterAll(async () => {
    redis?.disconnect();
    await child?.kill();
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - the reconciler's bundle finds nothing after real traffic, then reports and closes a planted projection change and consumer drift", async () => {
    t = await startTestMesh();
    const port = await freePort();
    child = await spawnProcess({
      name: "reconciler",
      command: process.execPath,
      args: [bundleOf("services/reconciler/src/main.ts")],
      cwd: root,
      env: {
        NATS_URL: t.mesh.natsUrl,
        REDIS_URL: t.mesh.redisUrl,
        RECONCILE_BANK_URL: t.mesh.bankUrl,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(port),
        LOG_LEVEL: "warn",
        OTEL_SDK_DISABLED: "true",
        ...E2E_SETTINGS,
        RECONCILE_DEADLINE_VALIDATE_MS: "30000",
        RECONCILE_DEADLINE_SCORE_MS: "30000",
        RECONCILE_DEADLINE_DECIDE_MS: "30000",
        RECONCILE_DEADLINE_PAYOUT_MS: "60000",
        RECONCILE_DEADLINE_REVERSE_MS: "30000",
        RECONCILE_SAMPLE_MS: "500",
        RECONCILE_FULL_CHECK_MS: "1000",
        RECONCILE_BANK_CHECK_MS: "1000",
        RECONCILE_BANK_GRACE_MS: "3000",
        RECONCILE_DLQ_CHECK_MS: "500",
        RECONCILE_SETTINGS_CHECK_MS: "500",
        // the brokers' health and Redis's keys by kind, read well within the 5 s quiet wait below
        RECONCILE_INFRA_MS: "500",
      },
    });
    const url = `http://127.0.0.1:${port}`;
    const metrics = async () => (await fetch(`${url}/metrics`)).text();
    const value = (text: string, series: string) =>
      Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, "m").exec(text)?.[1]);
    await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, {
      timeoutMs: 30_000,
      what: `reconciler ready\n${child.lines().slice(-10).join("\n")}`,
    });

    // Real traffic: transfers between customers, payouts, refused payouts (reversed).
    const traffic = await sendTraffic({
      gatewayUrl: t.mesh.gatewayUrl,
      apiKeys: t.mesh.apiKeys,
      transfers: 300,
      rate: 150,
      accounts: 10,
      maxInFlight: 32,
      runId: "e2e-reconciler",
      refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
    });
    expect(traffic.failed).toEqual([]);
    await waitForQuiet(t.jsm, { timeoutMs: 120_000 });
    // Read to the end, every scheduled check run after the quiet point (bank grace included).
    const quietAt = Date.now();
    await waitFor(
      async () => {
        const m = await metrics();
        const behind = [...m.matchAll(/^jetmesh_reconcile_lag_messages\{stream="[A-Z]+"\} (\S+)$/gm)].some(
          (x) => x[1] !== "0",
        );
        return !behind && Date.now() - quietAt > 5000;
      },
      { timeoutMs: 60_000, what: "the reconciler caught up" },
    );
    const js = jetstream(t.nc);
    const rw = { js, jsm: t.jsm };
    expect(await readFindings(rw), child.lines().slice(-20).join("\n")).toEqual([]);
    const clean = await metrics();
    for (const kind of Object.values(FindingKinds))
      expect(value(clean, `jetmesh_reconcile_open_findings{kind="${kind}"}`), kind).toBe(0);
    expect(value(clean, 'jetmesh_reconcile_checks_total{check="event"}')).toBeGreaterThan(1000);
    expect(value(clean, 'jetmesh_reconcile_checks_total{check="bank"}')).toBeGreaterThan(0);
    expect(value(clean, 'jetmesh_reconcile_check_failures_total{check="bank"}')).toBe(0);
    // The brokers' health, as the bundle exports it (single server: each stream led, R1)
    expect(value(clean, 'jetmesh_nats_stream_leader{stream="LEDGER"}')).toBe(1);
    expect(value(clean, 'jetmesh_nats_stream_replicas{stream="LEDGER"}')).toBe(1);
    const redisServer = new URL(t.mesh.redisUrl).host;
    expect(value(clean, `jetmesh_redis_up{server="${redisServer}"}`)).toBe(1);
    const balances = /^jetmesh_redis_keys_by_kind\{server="[^"]+",kind="ledger:bal:\*"\} (\S+)$/m.exec(clean);
    expect(Number(balances?.[1])).toBeGreaterThan(0);

    // A balance altered in Redis behind the ledger's back.
    redis = new Redis(t.mesh.redisUrl);
    const balanceKey = LedgerProjection.balanceKey("acc-3");
    const served = await redis.hget(balanceKey, "EUR");
    expect(served).not.toBeNull();
    await redis.hincrby(balanceKey, "EUR", 1);
    const opened = await waitFor(
      async () => (await readFindings(rw)).find((f) => f.kind === FindingKinds.ProjectionMismatch),
      { timeoutMs: 10_000, what: "the projection finding" },
    );
    expect(opened).toMatchObject({
      state: "opened",
      key: "acc-3/EUR",
      account: "acc-3",
      evidence: { served: String(Number(served) + 1), fold: served },
    });
    expect(value(await metrics(), 'jetmesh_reconcile_open_findings{kind="projection_mismatch"}')).toBe(1);
    await redis.hincrby(balanceKey, "EUR", -1);
    await waitFor(
      async () => (await readFindings(rw)).some((f) => f.state === "closed" && f.key === "acc-3/EUR"),
      {
        timeoutMs: 10_000,
        what: "the projection finding closed",
      },
    );

    // The risk stage's consumer changed by hand.
    await t.jsm.consumers.update(StreamNames.Validation, "risk", { max_ack_pending: 3 });
    const drift = await waitFor(
      async () => (await readFindings(rw)).find((f) => f.kind === FindingKinds.SettingsDrift),
      { timeoutMs: 10_000, what: "the drift finding" },
    );
    expect(drift).toMatchObject({
      key: "consumer:VALIDATION/risk",
      evidence: { drift: ["max_ack_pending: server 3, declared 1024"] },
    });
    await t.jsm.consumers.update(StreamNames.Validation, "risk", { max_ack_pending: 1024 });
    await waitFor(
      async () =>
        (await readFindings(rw)).some((f) => f.state === "closed" && f.key === "consumer:VALIDATION/risk"),
      { timeoutMs: 10_000, what: "the drift finding closed" },
    );
    await waitFor(
      async () => {
        const m = await metrics();
        return Object.values(FindingKinds).every(
          (kind) => value(m, `jetmesh_reconcile_open_findings{kind="${kind}"}`) === 0,
        );
      },
      { timeoutMs: 5000, what: "no open finding in /metrics" },
    );
    expect((await readFindings(rw)).map((f) => `${f.key} ${f.state}`)).toEqual([
      "acc-3/EUR opened",
      "acc-3/EUR closed",
      "consumer:VALIDATION/risk opened",
      "consumer:VALIDATION/risk closed",
    ]);
    expect((await child.stop()).code).toBe(0);
  }, 240_000);
});
