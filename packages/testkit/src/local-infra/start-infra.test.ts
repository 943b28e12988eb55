import { afterAll, describe, expect, test } from "vitest";
import { startInfra, stopAllProcesses } from "./index.ts";

describe("local infra", () => {
  afterAll(() => stopAllProcesses());

  test("local infra - startInfra starts both servers, reuses what answers, and stops only its own", async () => {
    const own = await startInfra();
    expect(own.nats?.url).toBe(own.natsUrl);
    expect(own.redis?.url).toBe(own.redisUrl);
    const lines: string[] = [];
    const reused = await startInfra({
      natsUrl: own.natsUrl,
      redisUrl: own.redisUrl,
      onStatus: (l) => lines.push(l),
    });
    expect([reused.natsUrl, reused.redisUrl, reused.nats, reused.redis]).toEqual([
      own.natsUrl,
      own.redisUrl,
      undefined,
      undefined,
    ]);
    expect([...lines].sort()).toEqual([`nats: reusing ${own.natsUrl}`, `redis: reusing ${own.redisUrl}`]);
    await reused.stop();
    expect(own.nats?.isRunning()).toBe(true);
    // Nothing answers at a closed port: a server is started instead.
    const fresh = await startInfra({ natsUrl: "nats://127.0.0.1:1", redisUrl: "redis://127.0.0.1:1" });
    expect(fresh.natsUrl).not.toBe("nats://127.0.0.1:1");
    expect(fresh.redis).toBeDefined();
    await Promise.all([own.stop(), fresh.stop()]);
    expect(own.nats?.isRunning()).toBe(false);
  });
});
