// Redis bounded (issue 17): `maxmemory` with `noeviction`, so a full Redis refuses writes
// instead of evicting a guard. A real redis-server is squeezed to a tiny maxmemory under a
// running stage: the stage pauses (its breaker on "redis-memory", probed with a write) and
// parks nothing, every guard stays, and once Redis has room again every message is
// processed exactly once.
import { Streams } from "@jetmesh/contracts";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";
import { startEchoProcess } from "./support/stage-process.ts";

const num = (info: string, field: string) => Number(new RegExp(`${field}:(\\d+)`).exec(info)?.[1]);
/** The echo stage's guard of the i-th request: `{stage}:{eventId}`. */
const guardOf = (i: number) => `echo:${requested(i, {}, "full").eventId}`;
const guardsDone = async (infra: Infra, from: number, to: number) => {
  let done = 0;
  for (let i = from; i < to; i++) if ((await infra.redis.get(guardOf(i)))?.startsWith("D|")) done++;
  return done;
};

describe("redis full", () => {
  afterAll(() => stopAllProcesses());

  it("runtime - Redis at maxmemory (noeviction) pauses the stage: no guard evicted, nothing parked, then every message once", async () => {
    const infra: Infra = await startInfra();
    try {
      await infra.redis.config("SET", "maxmemory-policy", "noeviction");
      await infra.redis.config("SET", "maxmemory", String(64 * 1024 * 1024));
      const stage = await startEchoProcess(
        { natsUrl: infra.nats.url, redisUrl: infra.redisServer.url },
        { JETMESH_BREAKER_THRESHOLD: "3", JETMESH_BREAKER_COOLDOWN_MS: "200" },
      );
      const outputs = async () => (await readStream(infra.jsm, Streams.VALIDATION.name)).length;
      for (let i = 0; i < 50; i++) await publishEvent(infra.js, requested(i, {}, "full"));
      await waitFor(async () => ((await outputs()) === 50 ? true : undefined), {
        what: "the first 50 processed",
        timeoutMs: 30_000,
      });
      expect(await guardsDone(infra, 0, 50)).toBe(50);

      // Every line the stage logs from here (its buffer keeps only the last ones).
      const seen: string[] = [];
      let last = "";
      const collector = setInterval(() => {
        const lines = stage.lines();
        const from = last ? lines.lastIndexOf(last) + 1 : 0;
        seen.push(...lines.slice(from));
        last = lines.at(-1) ?? last;
      }, 20);
      // Full: any write is refused with OOM from now on (1 byte is far below what it uses).
      await infra.redis.config("SET", "maxmemory", "1");
      for (let i = 50; i < 100; i++) await publishEvent(infra.js, requested(i, {}, "full"));
      await new Promise((r) => setTimeout(r, 5000));
      expect(seen.some((l) => /dependency down; circuit open, not pulling/.test(l))).toBe(true);
      // Paused: nothing new went out, nothing was parked, no guard was evicted or lost.
      expect(await outputs()).toBe(50);
      expect(await readStream(infra.jsm, Streams.DLQ.name)).toEqual([]);
      const stats = await infra.redis.info("stats");
      expect(num(stats, "evicted_keys")).toBe(0);
      expect(await guardsDone(infra, 0, 50)).toBe(50);

      // Room again: the probe's write succeeds, the stage pulls, each message is processed once.
      await infra.redis.config("SET", "maxmemory", String(64 * 1024 * 1024));
      await stage.waitForLine(/dependency back; pulling/, 30_000);
      clearInterval(collector);
      expect(seen.filter((l) => /parked in the DLQ|lost its lease/.test(l))).toEqual([]);
      await waitFor(async () => ((await outputs()) >= 100 ? true : undefined), {
        what: "the other 50 processed",
        timeoutMs: 60_000,
      });
      const out = await readStream(infra.jsm, Streams.VALIDATION.name);
      const ids = out.map((o) => o.env?.correlationId);
      expect(new Set(ids).size).toBe(100);
      expect(out).toHaveLength(100);
      expect(await readStream(infra.jsm, Streams.DLQ.name)).toEqual([]);
      expect(await guardsDone(infra, 0, 100)).toBe(100);
      await stage.stop(5000);
    } finally {
      await infra.close();
    }
  }, 180_000);
});
