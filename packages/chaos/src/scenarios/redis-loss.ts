import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

/** Redis killed and restarted empty, and FLUSHALL while traffic flows. */
export const redisLoss: Scenario = {
  name: "redis",
  title: "Redis killed and restarted empty, and FLUSHALL while traffic flows",
  kinds: ["redis-kill", "redis-flushall"],
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 15_000));
    const window = durationMs / count;
    const kinds = [...prng.shuffle(["redis-kill", "redis-flushall"])];
    while (kinds.length < count) kinds.push(prng.pick(["redis-kill", "redis-flushall"]));
    const actions: Omit<FaultAction, "id">[] = kinds.map((kind, k) => ({
      atMs: Math.round(k * window + prng.float(0.15, 0.45) * window),
      kind,
      target: "redis",
      holdMs: kind === "redis-kill" ? prng.int(1000, 4000) : 0,
    }));
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const redis = ctx.env.redis;
    if (a.kind === "redis-flushall") {
      await redis.flushAll();
      return { endedAtMs: Date.now(), detail: "FLUSHALL" };
    }
    const pid = redis.pid;
    await redis.kill("SIGKILL");
    await pause(a.holdMs, ctx.signal);
    const endedAtMs = Date.now();
    // No persistence: it comes back empty.
    await redis.restart();
    return { endedAtMs, detail: `kill -9 pid ${pid}; restarted empty after ${a.holdMs} ms` };
  },
};
