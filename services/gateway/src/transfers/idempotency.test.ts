import { createRedis, type Redis } from "@jetmesh/stage";
import { type RedisServerHandle, startRedis } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdempotencyRecords, idempotencyKey } from "./idempotency.ts";

const answer = { transferId: "t-1", eventId: "e-1", traceId: "a".repeat(32) };

describe("idempotency records", () => {
  let server: RedisServerHandle;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = createRedis({ url: server.url, name: "gateway-test" });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it("gateway - a claim is exclusive, a done key replays its answer, another body conflicts", async () => {
    const records = createIdempotencyRecords(redis, { leaseMs: 5000, ttlMs: 60_000 });
    const first = await records.claim("k-1", "h1");
    expect(first.kind).toBe("claimed");
    const second = await records.claim("k-1", "h1");
    expect(second.kind).toBe("pending");
    expect(second.kind === "pending" && second.leaseLeftMs).toBeGreaterThan(4000);
    expect(await records.claim("k-1", "h2")).toEqual({ kind: "conflict" });
    if (first.kind !== "claimed") return;
    expect(await records.complete("k-1", first.owner, "h1", answer)).toBe(true);
    expect(await records.claim("k-1", "h1")).toEqual({ kind: "done", answer });
    expect(await records.claim("k-1", "h2")).toEqual({ kind: "conflict" });
    const ttl = await redis.pttl(idempotencyKey("k-1"));
    expect(ttl).toBeGreaterThan(50_000);
    expect(await redis.hget(idempotencyKey("k-1"), "status")).toBe("done");
  });

  it("gateway - a released or lapsed claim can be taken again, a stale owner cannot overwrite", async () => {
    const records = createIdempotencyRecords(redis, { leaseMs: 150, ttlMs: 60_000 });
    const a = await records.claim("k-2", "h");
    if (a.kind !== "claimed") throw new Error("expected a claim");
    await records.release("k-2", a.owner);
    const b = await records.claim("k-2", "h");
    if (b.kind !== "claimed") throw new Error("expected a claim after release");
    // b's lease lapses (the process died mid-publish): the retry claims it
    await new Promise((r) => setTimeout(r, 250));
    const c = await records.claim("k-2", "h");
    if (c.kind !== "claimed") throw new Error("expected a claim after the lease lapsed");
    // b finishes late: c owns the key now, b must not write over it nor release it
    expect(await records.complete("k-2", b.owner, "h", answer)).toBe(false);
    await records.release("k-2", b.owner);
    expect((await records.claim("k-2", "h")).kind).toBe("pending");
    expect(await records.complete("k-2", c.owner, "h", answer)).toBe(true);
    expect(await records.claim("k-2", "h")).toEqual({ kind: "done", answer });
  });

  it("gateway - a record survives a script cache flush", async () => {
    const records = createIdempotencyRecords(redis, { leaseMs: 5000, ttlMs: 60_000 });
    await redis.script("FLUSH");
    expect((await records.claim("k-3", "h")).kind).toBe("claimed");
  });
});
