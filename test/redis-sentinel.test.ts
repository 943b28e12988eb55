// Redis failing over (issue 17): the one Redis client every service builds (createRedis),
// configured from REDIS_SENTINELS / REDIS_SENTINEL_NAME as a service parses them, against a
// real primary, replica and three sentinels on loopback. A killed primary whose replica
// lagged (the rolled-back tail), then a paused one: the client finds the new primary
// through the sentinels and writes again, without a restart.
import { createRedis, loadStageConfig, type Redis } from "@jetmesh/stage";
import { type RedisSentinelHandle, startRedisSentinel, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { Redis as IORedis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";

/** INCR in a loop, 10 ms apart: the values acknowledged, the failures counted. */
function writer(redis: Redis) {
  const acked: number[] = [];
  let failures = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        acked.push(await redis.incr("sentinel-test:counter"));
      } catch {
        failures++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    acked,
    failures: () => failures,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The port of the server the client is connected to, from its own INFO. */
async function connectedPort(redis: Redis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(String(await redis.info("server")))?.[1]);
}

describe("redis sentinel", () => {
  const groups: RedisSentinelHandle[] = [];
  const clients: Redis[] = [];
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(groups.map((g) => g.stop()));
    await stopAllProcesses();
  });

  const connect = (g: RedisSentinelHandle) => {
    // REDIS_URL's host is never used with sentinels: port 1 would refuse every connection.
    const config = loadStageConfig({ REDIS_URL: "redis://127.0.0.1:1", ...g.env });
    const redis = createRedis({
      url: config.redisUrl,
      name: "sentinel-test",
      commandTimeoutMs: 1000,
      ...(config.redisSentinel ? { sentinel: config.redisSentinel } : {}),
      onError: () => {},
    });
    clients.push(redis);
    return redis;
  };

  it("redis sentinel - a killed primary whose replica lagged, then a paused one: the client follows each promotion, the unreplicated tail is gone", async () => {
    const g = await startRedisSentinel();
    groups.push(g);
    const redis = connect(g);
    const first = await g.primary();
    expect(await connectedPort(redis)).toBe(first.port);
    const w = writer(redis);
    await waitFor(() => (w.acked.length >= 50 ? true : undefined), { timeoutMs: 10_000, what: "50 writes" });
    const failed = await g.failPrimary({ lagMs: 300 });
    const before = w.acked.length;
    const lastBefore = w.acked.at(-1) as number;
    const promoted = await g.waitForFailover(failed.server, 30_000);
    expect(promoted.server).not.toBe(first);
    // The replica lacked the primary's last writes: a rolled-back tail.
    expect(promoted.promotedAtOffset).toBeLessThan(failed.offset);
    await waitFor(() => (w.acked.length >= before + 20 ? true : undefined), {
      timeoutMs: 20_000,
      what: "writes on the new primary",
    });
    await w.stop();
    expect(await connectedPort(redis)).toBe(promoted.server.port);
    // INCR on the new primary continued from the replica's (older) value.
    const firstAfter = w.acked[before] as number;
    expect(firstAfter).toBeLessThanOrEqual(lastBefore);
    expect(w.failures()).toBeGreaterThan(0);

    // The killed server comes back as a replica, and takes over again at the next failover.
    await g.rejoin(failed.server);
    const again = writer(redis);
    await waitFor(() => (again.acked.length >= 20 ? true : undefined), { timeoutMs: 10_000, what: "writes" });
    const paused = await g.failPrimary({ signal: "SIGSTOP" });
    expect(paused.server).toBe(promoted.server);
    const back = await g.waitForFailover(paused.server, 30_000);
    expect(back.server).toBe(first);
    const count = again.acked.length;
    await waitFor(() => (again.acked.length >= count + 20 ? true : undefined), {
      timeoutMs: 20_000,
      what: "writes on the first server, promoted again",
    });
    await again.stop();
    expect(await connectedPort(redis)).toBe(first.port);
  }, 90_000);

  it("redis sentinel - the primary killed while the sentinel a reconnecting client asks first hangs: the client still follows the failover", async () => {
    // Found by test/e2e/redis-failover.test.ts: a +switch-master that arrives while the client
    // is asking the sentinels for the primary made ioredis's own failover detector end the
    // client for good (status "end", "Connection is closed.", never retried). A hung sentinel,
    // the first one asked, holds each reconnection in that state for seconds.
    const g = await startRedisSentinel();
    groups.push(g);
    const redis = connect(g);
    const w = writer(redis);
    await waitFor(() => (w.acked.length >= 20 ? true : undefined), { timeoutMs: 10_000, what: "20 writes" });
    const resume = g.pauseSentinel(0);
    const failed = await g.failPrimary();
    const promoted = await g.waitForFailover(failed.server, 30_000);
    const before = w.acked.length;
    await waitFor(() => (w.acked.length >= before + 20 ? true : undefined), {
      timeoutMs: 30_000,
      what: `writes on the new primary (client status ${redis.status})`,
    });
    // The resumed sentinel learns of the failover from the others and announces it late
    // (+switch-master to the primary the client is already on): the client keeps its connection.
    let reconnects = 0;
    redis.on("reconnecting", () => reconnects++);
    resume();
    const [host0, port0] = (g.sentinels.split(",")[0] as string).split(":");
    const sentinel0 = new IORedis({ host: host0, port: Number(port0) });
    clients.push(sentinel0);
    await waitFor(
      async () => {
        const addr = (await sentinel0.call("SENTINEL", "get-master-addr-by-name", g.name)) as string[];
        return Number(addr[1]) === promoted.server.port ? true : undefined;
      },
      { timeoutMs: 20_000, what: "the resumed sentinel knowing the new primary" },
    );
    await new Promise((r) => setTimeout(r, 1000));
    await w.stop();
    expect(reconnects).toBe(0);
    expect(redis.status).toBe("ready");
    expect(await connectedPort(redis)).toBe(promoted.server.port);
  }, 90_000);
});
