// The simulated Redis' faults (restart, rollback, lost writes, outage), latency and events,
// on virtual time.
import { createIdempotencyStore } from "@jetmesh/stage/internal";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { installVirtualTime, type VirtualTime } from "../virtual-time.ts";
import { createSimRedis } from "./index.ts";

let time: VirtualTime;
beforeEach(() => {
  time = installVirtualTime();
});
afterEach(() => time.uninstall());

const BUMP = "return redis.call('HINCRBY', KEYS[1], 'n', 1)";

describe("simulated redis: faults", () => {
  it("sim redis - wipe loses every key and the script cache", async () => {
    const redis = createSimRedis();
    await redis.set("a", "1");
    const sha = (await redis.script("LOAD", BUMP)) as string;
    expect(await redis.evalsha(sha, 1, "h")).toBe(1);
    redis.wipe();
    expect(redis.dump()).toEqual({});
    await expect(redis.evalsha(sha, 1, "h")).rejects.toThrow(/^NOSCRIPT/);
    expect(await redis.eval(BUMP, 1, "h")).toBe(1);
  });

  it("sim redis - rollback returns to the snapshot, losing later writes; expired keys stay gone", async () => {
    const redis = createSimRedis();
    await redis.set("kept", "1");
    await redis.set("short", "1", "PX", 100);
    await redis.hset("h", "a", "1");
    const snap = redis.snapshot();
    await redis.hset("h", "b", "2");
    await redis.set("later", "x");
    await redis.del("kept");
    await time.advance(200);
    redis.rollback(snap);
    expect(redis.dump()).toEqual({
      h: { type: "hash", value: { a: "1" } },
      kept: { type: "string", value: "1" },
    });
    // A snapshot can be rolled back to again, and is untouched by writes after the rollback.
    await redis.set("kept", "2");
    redis.rollback(snap);
    expect(await redis.get("kept")).toBe("1");
    expect(() => createSimRedis().rollback(snap)).toThrow(/another server/);
  });

  it("sim redis - loseLastWrites undoes whole steps (a script, a MULTI), newest first; reads do not count", async () => {
    const redis = createSimRedis();
    await redis.set("a", "1", "PX", 10_000);
    await redis.eval(
      "redis.call('SET', KEYS[1], 'x') redis.call('HSET', KEYS[2], 'f', 'v') return 1",
      2,
      "a",
      "h",
    );
    await redis.multi().sadd("s", "m1", "m2").pexpire("a", 50_000).exec();
    await redis.get("a");
    await redis.set("n", "1", "NX");
    await redis.set("n", "2", "NX"); // changed nothing: not a write step
    expect(redis.loseLastWrites(2)).toBe(2);
    expect(redis.dump()).toEqual({
      // The script's SET dropped the TTL, as SET does.
      a: { type: "string", value: "x" },
      h: { type: "hash", value: { f: "v" } },
    });
    expect(redis.loseLastWrites(5)).toBe(2);
    expect(redis.dump()).toEqual({});
  });

  it("sim redis - loseLastWrites restores deleted keys, hash fields and TTLs", async () => {
    const redis = createSimRedis();
    await redis.hset("h", "a", "1", "b", "2");
    await redis.pexpire("h", 5000);
    await redis.hdel("h", "a", "b");
    await redis.hincrby("h", "c", 5);
    expect(redis.dump()).toEqual({ h: { type: "hash", value: { c: "5" } } });
    redis.loseLastWrites(2);
    expect(redis.dump()).toEqual({
      h: { type: "hash", value: { a: "1", b: "2" }, expiresAt: Date.now() + 5000 },
    });
  });

  it("sim redis - the undo log is bounded", async () => {
    const redis = createSimRedis({ undoLimit: 3 });
    for (let i = 0; i < 5; i++) await redis.incr("n");
    expect(redis.loseLastWrites(10)).toBe(3);
    expect(await redis.get("n")).toBe("2");
  });

  it("sim redis - while down every command fails as ioredis fails it; events and status follow", async () => {
    const redis = createSimRedis();
    const other = redis.duplicate();
    const events: string[] = [];
    for (const e of ["error", "close", "reconnecting", "connect", "ready"]) redis.on(e, () => events.push(e));
    await redis.set("a", "1");
    redis.setDown(true);
    expect(redis.status).toBe("reconnecting");
    expect(redis.isDown).toBe(true);
    await expect(redis.get("a")).rejects.toMatchObject({
      name: "MaxRetriesPerRequestError",
      message: expect.stringContaining("(which is 1)"),
    });
    await expect(other.get("a")).rejects.toThrow(/max retries per request/);
    await expect(redis.eval("return 1", 0)).rejects.toThrow(/max retries/);
    expect((await redis.pipeline().get("a").get("a").exec())?.map(([e]) => e?.name)).toEqual([
      "MaxRetriesPerRequestError",
      "MaxRetriesPerRequestError",
    ]);
    await expect(redis.multi().get("a").exec()).rejects.toThrow(/max retries/);
    await expect(createIdempotencyStore(redis).claim("k", "a1", 1000, "tp")).rejects.toThrow(/max retries/);
    redis.setDown(false);
    expect(redis.status).toBe("ready");
    expect(await redis.get("a")).toBe("1");
    expect(events).toEqual(["error", "close", "reconnecting", "connect", "ready"]);
    await redis.quit();
    expect(redis.status).toBe("end");
    await expect(redis.get("a")).rejects.toThrow("Connection is closed.");
    expect(await other.get("a")).toBe("1");
  });

  it("sim redis - latency delays answers on virtual time without reordering one client's commands", async () => {
    const delays = [50, 10, 0, 30];
    const redis = createSimRedis({ delayMs: () => delays.shift() ?? 0 });
    const order: string[] = [];
    const t0 = Date.now();
    const all = Promise.all(
      ["a", "b", "c", "d"].map((k, i) =>
        redis.set(k, String(i)).then(() => order.push(`${k}@${Date.now() - t0}`)),
      ),
    );
    await time.advance(100);
    await all;
    expect(order).toEqual(["a@50", "b@50", "c@50", "d@50"]);
  });

  it("sim redis - expiry follows virtual time (PX, PEXPIRE, PTTL)", async () => {
    const redis = createSimRedis();
    await redis.set("k", "v", "PX", 1000);
    await redis.hset("h", "f", "v");
    await redis.pexpire("h", 2000);
    await time.advance(999);
    expect([await redis.get("k"), await redis.pttl("k"), await redis.pttl("h")]).toEqual(["v", 1, 1001]);
    await time.advance(2);
    expect([await redis.get("k"), await redis.exists("k"), await redis.pttl("k")]).toEqual([null, 0, -2]);
    await time.advance(1000);
    expect(redis.dump()).toEqual({});
  });
});
