// Redis failing over (issue 17): the whole mesh on NATS and a Sentinel-managed Redis (a
// primary, one replica, three sentinels on loopback; every service configured with
// REDIS_SENTINELS / REDIS_SENTINEL_NAME). Mid-traffic the replica's link is cut, so the
// primary's last writes never reach it, and the primary is killed: the sentinels promote
// the replica, which lacks that tail (guards, balances, positions: Redis rolled back). The
// services find the new primary through the sentinels and traffic completes. The killed
// server then rejoins as a replica and the new primary hangs (SIGSTOP, connections open):
// the services move back on the sentinels' word. I1 to I6 hold, every accepted transfer has
// its one outcome and nothing is parked.
import {
  gatewayBalances,
  type RedisSentinelHandle,
  redisBalances,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sendTraffic } from "@jetmesh/mesh";
import {
  describeViolations,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

const TRANSFERS = 600;

describe("e2e redis failover", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - the Redis primary killed mid-traffic with its tail unreplicated, then the new one paused: the sentinels promote the other server each time, the services follow, I1 to I6 hold", async () => {
    t = await startTestMesh({ sentinel: true });
    const { mesh } = t;
    const group = t.sentinel as RedisSentinelHandle;

    /** One wave of traffic; `fail` runs once a third of it is answered, while it flows. */
    const wave = async (runId: string, fail: () => Promise<void>) => {
      let answered = 0;
      const traffic = sendTraffic({
        gatewayUrl: mesh.gatewayUrl,
        apiKeys: mesh.apiKeys,
        transfers: TRANSFERS,
        rate: 100,
        accounts: 20,
        maxInFlight: 32,
        runId,
        refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
        onProgress: (p) => {
          if (p.phase === "transfers") answered = p.done;
        },
      });
      await waitFor(() => (answered >= TRANSFERS / 3 ? true : undefined), {
        timeoutMs: 60_000,
        what: `a third of ${runId}`,
      });
      await fail();
      const sent = await traffic;
      expect(sent.retries.mismatched).toEqual([]);
      expect(sent.failed).toEqual([]);
      expect(sent.invalid.unexpected).toEqual([]);
      return sent;
    };

    // 1. Killed, its last writes never replicated.
    const first = await group.primary();
    let killedInMs = 0;
    let lostBytes = 0;
    const one = await wave("e2e-redis-killed", async () => {
      const failed = await group.failPrimary({ lagMs: 500 });
      const at = Date.now();
      const promoted = await group.waitForFailover(failed.server, 30_000);
      killedInMs = Date.now() - at;
      // The promoted replica lacks the primary's last writes: the rolled-back tail.
      lostBytes = failed.offset - promoted.promotedAtOffset;
    });
    expect(lostBytes).toBeGreaterThan(0);

    // 2. The killed server rejoins as a replica; the new primary hangs (SIGSTOP): its
    //    connections stay open, only the sentinels' +switch-master moves the services.
    await group.rejoin(first);
    let pausedInMs = 0;
    const two = await wave("e2e-redis-paused", async () => {
      const failed = await group.failPrimary({ signal: "SIGSTOP" });
      const at = Date.now();
      const promoted = await group.waitForFailover(failed.server, 30_000);
      pausedInMs = Date.now() - at;
      expect(promoted.server).toBe(first);
    });
    const sent = { accepted: [...one.accepted, ...two.accepted] };
    // Every service is ready again, on the new primary.
    for (const s of Object.values(mesh.services)) await s.waitReady(30_000);

    const report = await quietThenCheck(
      t,
      sent.accepted,
      gatewayBalances(mesh.gatewayUrl, { apiKey: mesh.apiKeys.operator }),
    );
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.checked).toEqual(expect.arrayContaining(["I1", "I2", "I3", "I4", "I5", "I6"]));
    expect(report.counts.accepted).toBe(sent.accepted.length);
    expect(report.counts.lost + report.counts.multiple).toBe(0);
    expect(report.counts.dlq).toBe(0);
    // The projection on the primary now is the fold of LEDGER too (I3, I4 from Redis itself).
    const fromRedis = await quietThenCheck(t, sent.accepted, redisBalances(first.url), ["I3", "I4"]);
    expect(fromRedis.violations, describeViolations(fromRedis)).toEqual([]);
    console.log(
      `redis failover: killed primary replaced in ${killedInMs} ms (${lostBytes} bytes of replication lost), paused one in ${pausedInMs} ms; ${sent.accepted.length} accepted`,
    );
  }, 180_000);
});
