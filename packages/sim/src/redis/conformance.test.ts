// The simulated Redis against a real redis-server: the project's own Redis code paths (the
// runtime's idempotency store, the ledger's projection store and its scripts, risk's
// velocity, the gateway's rate limiter, idempotency records, status store and balance
// reads) and the raw commands and script conversions they rely on run once on each, and
// what they return, how they fail and what they leave behind (keys, values, TTLs rounded)
// must be equal. Time: short real sleeps against the server, virtual time in the simulator.
import { createRedis, type Redis } from "@jetmesh/stage";
import { createIdempotencyStore } from "@jetmesh/stage/internal";
import { type RedisServerHandle, startRedis, stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAccount } from "@jetmesh/gateway/balances";
import { createRateLimiter, rateKey } from "@jetmesh/gateway/rate-limit";
import { createStatusStore } from "@jetmesh/gateway/status-store";
import { createIdempotencyRecords } from "@jetmesh/gateway/idempotency";
import { applyLedgerEvent, emptyFold } from "@jetmesh/ledger/fold";
import { createLedgerStore } from "@jetmesh/ledger/store";
import { declined, posted, reversed } from "@jetmesh/ledger/test-support";
import { createVelocityStore } from "@jetmesh/risk/velocity";
import { installVirtualTime } from "../virtual-time.ts";
import { createSimRedis } from "./index.ts";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/** What a scenario can do besides talking to Redis: wait (real ms, or virtual ms in the simulator). */
interface Env {
  sleep(ms: number): Promise<void>;
}
type Scenario = (redis: Redis, env: Env) => Promise<unknown>;

/** A call's outcome, comparable across both: its value, or its error's class and message. */
async function outcome(p: Promise<unknown> | (() => Promise<unknown>)): Promise<unknown> {
  try {
    return { ok: await (typeof p === "function" ? p() : p) };
  } catch (err) {
    const e = err as Error & { previousErrors?: Error[] };
    return {
      error: e.name,
      message: e.message,
      ...(e.previousErrors ? { previous: e.previousErrors.map((x) => x.message) } : {}),
    };
  }
}

/** Fields whose values depend on the clock or the process (owners, lease ends, times). */
const CLOCK_FIELDS = new Set(["owner", "leaseUntil", "firstAt", "at"]);

/**
 * A TTL as compared: -1/-2 as they are, whole seconds up to an hour, whole minutes beyond, each
 * rounded up. Real milliseconds pass between a write and this read (hundreds of them on a loaded
 * machine), virtual ones do not: rounded to the nearest second, a 14-day TTL read 0.5 s after
 * its write compared one second short (seen once in six runs). Rounded up, a TTL set in full
 * reads the same on both sides until a whole unit has passed.
 */
const ttlOf = (pttl: number): number | string =>
  pttl < 0 ? pttl : pttl > 3_600_000 ? `${Math.ceil(pttl / 60_000)} min` : Math.ceil(pttl / 1000);

/** Every key with its type, value and TTL (ttlOf), read through the client. */
async function contents(redis: Redis): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await redis.keys("*")).sort()) {
    const type = await redis.type(key);
    const pttl = await redis.pttl(key);
    let value: unknown;
    if (type === "string") value = await redis.get(key);
    else if (type === "hash") {
      const h = await redis.hgetall(key);
      for (const f of Object.keys(h)) if (CLOCK_FIELDS.has(f)) h[f] = "<clock>";
      // The rate limiter refills by elapsed time: real ms pass, virtual ones do not.
      if (key.startsWith("gateway:rate:") && h.tokens) h.tokens = Number(h.tokens).toFixed(2);
      value = Object.fromEntries(Object.entries(h).sort(([a], [b]) => (a < b ? -1 : 1)));
    } else if (type === "set") value = (await redis.smembers(key)).sort();
    else if (type === "list") value = await redis.lrange(key, 0, -1);
    out[key] = { type, value, ttl: ttlOf(pttl) };
  }
  return out;
}

// Events are made once: both runs apply the same ids.
const fund = posted({
  transferId: "t-fund",
  from: "external",
  to: "acc-a",
  amountMinor: 1000,
  currency: "EUR",
});
const payCore = { transferId: "t-pay", from: "acc-a", to: "bank:x", amountMinor: 300, currency: "EUR" };
const pay = posted(payCore);
const payBack = reversed(payCore);
const refused = declined(
  { transferId: "t-no", from: "acc-a", to: "acc-b", amountMinor: 5, currency: "EUR" },
  "insufficient_funds",
);
const big = posted({
  transferId: "t-big",
  from: "external",
  to: "acc-b",
  amountMinor: 9_000_000_000_000,
  currency: "EUR",
});
const lineage = {
  type: "transfers.requested",
  eventId: "evt-1",
  causationId: "idempotency-key:k-1",
  transferId: "t-status",
  stream: "INGRESS",
  sequence: 1,
  occurredAt: "2026-01-01T00:00:00.000Z",
};

const SCENARIOS: Record<string, Scenario> = {
  "stage idempotency store - claim, renew, done, retry marker and fencing": async (redis) => {
    const store = createIdempotencyStore(redis);
    const r: unknown[] = [];
    r.push(await store.claim("s:e1", "a1", 5000, TRACEPARENT));
    const busy = await store.claim("s:e1", "a2", 5000, TRACEPARENT);
    r.push(busy.state === "busy" ? { state: "busy", s: Math.round(busy.retryInMs / 1000) } : busy);
    r.push(await store.extend("s:e1", "a2", 5000), await store.markDone("s:e1", "a2", "x", 60_000));
    r.push(await store.release("s:e1", "a2", TRACEPARENT, 60_000));
    r.push(await store.extend("s:e1", "a1", 8000), await store.markDone("s:e1", "a1", "result-1", 60_000));
    r.push(
      await store.claim("s:e1", "a3", 5000, TRACEPARENT),
      await store.markDone("s:e1", "a3", "late", 60_000),
    );
    r.push(await store.claim("s:e2", "a1", 5000, TRACEPARENT));
    r.push(await store.release("s:e2", "a1", TRACEPARENT, 60_000));
    r.push(await store.claim("s:e2", "a2", 5000, "tp-2"));
    // A batch: claims of one turn go as one script call.
    r.push(
      await Promise.all([
        store.claim("s:b1", "a1", 5000, TRACEPARENT),
        store.claim("s:b2", "a1", 5000, TRACEPARENT),
        store.claim("s:e1", "a1", 5000, TRACEPARENT),
      ]),
    );
    r.push(await Promise.all([store.markDone("s:b1", "a1", "1", 60_000), store.extend("s:b2", "a9", 5000)]));
    // A key gone (its lease lapsed) counts as marked.
    r.push(await store.markDone("s:never", "a1", "r", 60_000));
    return r;
  },

  "stage idempotency store - a lapsed lease is taken over; a done key expires": async (redis, env) => {
    const store = createIdempotencyStore(redis);
    const r: unknown[] = [];
    r.push(await store.claim("s:x", "a1", 200, TRACEPARENT));
    r.push(await store.claim("s:y", "a1", 5000, TRACEPARENT), await store.markDone("s:y", "a1", "d", 250));
    await env.sleep(400);
    r.push(await store.extend("s:x", "a1", 5000));
    r.push(
      await store.claim("s:x", "a2", 5000, TRACEPARENT),
      await store.claim("s:y", "a2", 5000, TRACEPARENT),
    );
    return r;
  },

  "ledger store - restore under the lock, apply in order, gaps, duplicates and reversals, read back": async (
    redis,
  ) => {
    const store = createLedgerStore(redis);
    const r: unknown[] = [];
    r.push(await store.apply(1, fund), await store.isReady(), await store.marks());
    const fold = emptyFold();
    applyLedgerEvent(fold, 1, fund);
    r.push(await store.acquireRestoreLock("o-1", 10_000), await store.acquireRestoreLock("o-2", 10_000));
    r.push(await store.renewRestoreLock("o-1", 20_000), await store.renewRestoreLock("o-2", 20_000));
    r.push(await store.restoreLockHeld(), await store.writeRestore("o-2", fold, "epoch-x"));
    r.push(
      await store.writeRestore("o-1", fold, "epoch-1"),
      await store.isReady(),
      await store.restoreLockHeld(),
    );
    r.push(await store.apply(3, pay), await store.apply(2, pay), await store.apply(2, pay));
    r.push(await store.apply(3, refused), await store.apply(4, payBack), await store.apply(5, payBack));
    r.push(
      await store.apply(6, undefined),
      await store.apply(7, big),
      await store.appliedSeq(),
      await store.epoch(),
    );
    r.push(await store.marks(), await store.read());
    r.push(await store.acquireRestoreLock("o-3", 10_000));
    await store.releaseRestoreLock("o-4");
    r.push(await store.restoreLockHeld());
    await store.releaseRestoreLock("o-3");
    r.push(await store.restoreLockHeld());
    return r;
  },

  "risk velocity - counted once per event, replays answer the first count, windows expire": async (
    redis,
    env,
  ) => {
    const velocity = createVelocityStore(redis, { windowMs: 60_000, retentionMs: 300, keyPrefix: "risk:v" });
    const at = Date.UTC(2026, 0, 1, 12);
    const first = { account: "acc-1", eventId: "e-1", amountMinor: 500, atMs: at };
    const r: unknown[] = [];
    r.push(await velocity.bump(first), await velocity.bump({ ...first, eventId: "e-2", amountMinor: 200 }));
    r.push(
      await velocity.bump(first),
      await velocity.bump({ ...first, eventId: "e-3", amountMinor: 3_000_000_000 }),
    );
    r.push(await contents(redis));
    await env.sleep(450);
    r.push(await velocity.bump(first));
    // After SCRIPT FLUSH (as after a restart) EVALSHA answers NOSCRIPT and the store loads it again.
    await redis.script("FLUSH");
    r.push(await velocity.bump({ ...first, eventId: "e-4" }));
    return r;
  },

  "gateway rate limiter - a bucket of two, then refused": async (redis) => {
    const limiter = createRateLimiter(redis);
    const policy = { perSecond: 0.001, burst: 2 };
    const r: unknown[] = [];
    for (let i = 0; i < 3; i++) r.push(await limiter.take("client-1", policy));
    r.push(await limiter.take("client-2", { perSecond: 5, burst: 1 }));
    r.push(await redis.pttl(rateKey("client-1")).then((ms) => Math.round(ms / 1000)));
    return r;
  },

  "gateway idempotency records - claim, complete, replay, conflict, unsure, release, pending": async (
    redis,
  ) => {
    const records = createIdempotencyRecords(redis, { leaseMs: 5000, ttlMs: 60_000 });
    const answer = { transferId: "t-1", eventId: "e-1", traceId: "tr-1" };
    const r: unknown[] = [];
    const c1 = await records.claim("c:k1", "body-1");
    r.push(c1.kind);
    r.push(
      await records
        .claim("c:k1", "body-1")
        .then((c) => (c.kind === "pending" ? Math.round(c.leaseLeftMs / 1000) : c)),
    );
    if (c1.kind === "claimed") {
      r.push(await records.complete("c:k1", "someone-else", "body-1", answer));
      r.push(await records.complete("c:k1", c1.owner, "body-1", answer));
    }
    r.push(await records.claim("c:k1", "body-1"), await records.claim("c:k1", "body-2"));
    const c2 = await records.claim("c:k2", "body-1");
    if (c2.kind === "claimed") await records.unsure("c:k2", c2.owner);
    r.push(await records.claim("c:k2", "body-2"), (await records.claim("c:k2", "body-1")).kind);
    const c3 = await records.claim("c:k3", "body-1");
    if (c3.kind === "claimed") await records.release("c:k3", c3.owner);
    r.push((await records.claim("c:k3", "body-2")).kind);
    return r;
  },

  "gateway status and balances - MULTI records, a WRONGTYPE inside MULTI fails the record": async (redis) => {
    const status = createStatusStore(redis, { ttlMs: 60_000 });
    const r: unknown[] = [];
    await status.record(lineage);
    await status.record(lineage);
    await status.record({ ...lineage, eventId: "evt-2", type: "transfers.validated" });
    r.push((await status.read("t-status")).sort((a, b) => (a.eventId < b.eventId ? -1 : 1)));
    r.push(await status.read("t-none"));
    await redis.set("status:t-bad", "not a hash");
    r.push(await outcome(status.record({ ...lineage, transferId: "t-bad" })));
    await redis.hset("ledger:bal:acc-g", "EUR", "1250", "USD", "-5", "JPY", "123456789012345678901");
    r.push(await readAccount(redis, "acc-g"), await readAccount(redis, "acc-none"));
    await redis.set("ledger:bal:acc-s", "x");
    r.push(await outcome(readAccount(redis, "acc-s")));
    return r;
  },

  "commands - strings, SET options, expiry, WRONGTYPE and integer errors": async (redis, env) => {
    const o = (p: () => Promise<unknown>) => outcome(p);
    return [
      await o(() => redis.set("k:a", "1", "PX", 300, "NX")),
      await o(() => redis.set("k:a", "2", "PX", 300, "NX")),
      await o(() => redis.call("SET", "k:a", "3", "XX", "KEEPTTL")),
      await o(() => redis.pttl("k:a").then((ms) => Math.round(ms / 100))),
      await o(() => redis.set("k:b", "1", "EX", 60)),
      await o(() => redis.set("k:b", "2", "GET")),
      await o(() => redis.ttl("k:b")),
      await o(() => redis.set("k:c", "1", "PX", 0)),
      await o(() => redis.set("k:c", "1", "PX", "x")),
      await o(() => redis.call("SET", "k:c", "1", "NX", "XX")),
      await o(() => redis.set("k:n", "9223372036854775806")),
      await o(() => redis.incr("k:n")),
      await o(() => redis.incr("k:n")),
      await o(() => redis.incrby("k:a", 5)),
      await o(() => redis.hset("k:h", "f", "1", "g", "x")),
      await o(() => redis.get("k:h")),
      await o(() => redis.incr("k:h")),
      await o(() => redis.hincrby("k:h", "f", 41)),
      await o(() => redis.hincrby("k:h", "g", 1)),
      await o(() => redis.hincrby("k:h", "f", "1.5" as unknown as number)),
      await o(() => redis.hget("k:a", "f")),
      await o(() => redis.sadd("k:a", "m")),
      await o(() => redis.call("HSET", "k:h", "f")),
      await o(() => redis.call("NOSUCH", "x")),
      await o(() => redis.hdel("k:h", "f", "g", "zz")),
      await o(() => redis.exists("k:h", "k:a", "k:a", "k:none")),
      await o(() => redis.mget("k:a", "k:h", "k:none", "k:b")),
      await o(() => redis.sadd("k:s", "b", "a", "b")),
      await o(() => redis.smembers("k:s").then((m) => m.sort())),
      await o(() => redis.pexpire("k:s", 10_000)),
      await o(() => redis.pexpire("k:none", 10_000)),
      await o(() => redis.pttl("k:none")),
      await o(() => redis.pexpire("k:b", 0)),
      await o(() => redis.exists("k:b")),
      await o(() => redis.ping()),
      await o(() => redis.del("k:none", "k:s")),
      await o(async () => {
        await env.sleep(400);
        return [await redis.get("k:a"), await redis.exists("k:a"), await redis.pttl("k:a")];
      }),
      await o(() => redis.keys("k:*").then((k) => k.sort())),
      await o(async () => {
        const keys: string[] = [];
        for await (const batch of redis.scanStream({ match: "k:?", count: 10 }) as AsyncIterable<string[]>)
          keys.push(...batch);
        return keys.sort();
      }),
    ];
  },

  "commands - MULTI with a failing command, EXECABORT, pipelines": async (redis) => {
    await redis.set("m:str", "v");
    return [
      await outcome(redis.multi().set("m:a", "1").hset("m:str", "f", "v").incr("m:a").exec()),
      await outcome(redis.multi().set("m:b", "1").call("NOSUCH").call("GET").exec()),
      await outcome(redis.get("m:b")),
      await outcome(
        redis
          .pipeline()
          .hset("m:h", "a", "1")
          .hgetall("m:h")
          .hgetall("m:str")
          .exec()
          .then((rs) => rs?.map(([e, v]) => (e ? e.message : v))),
      ),
      await outcome(redis.multi().hset("m:h", "b", "2").hgetall("m:h").exec()),
    ];
  },

  "lua - reply conversions, errors with their script and line, writes before an error stay": async (
    redis,
  ) => {
    await redis.set("l:s", "1");
    await redis.hset("l:h", "a", "1");
    const ev = (script: string, ...args: (string | number)[]) =>
      outcome(redis.eval(script, ...(args as [number])));
    return [
      await ev("return redis.call('HGET', KEYS[1], 'a')", 1, "l:s"),
      await ev("local x = 1\nreturn redis.pcall('HGET', KEYS[1], 'a')", 1, "l:s"),
      await ev("return redis.error_reply('op x not allowed')", 0),
      await ev("return redis.error_reply('boom')", 0),
      await ev("return {err='boom here'}", 0),
      await ev("return {ok='FINE'}", 0),
      await ev("return redis.status_reply('FINE')", 0),
      await ev("return {1, 2.7, -2.7, 'a', true, false, nil, 3}", 0),
      await ev("return {1, {2, 'x', false}}", 0),
      await ev("return nil + 1", 0),
      await ev("local t = {}\nreturn t.x.y", 0),
      await ev("x = 5", 0),
      await ev("return y", 0),
      await ev("return redis.call('NOPE')", 0),
      await ev("return redis.call('GET')", 0),
      await ev("return redis.call('SET', 'k', {})", 0),
      await ev(
        "return tostring(3.0) .. ' ' .. tostring(1e15) .. ' ' .. tostring(123456789012345) .. ' ' .. 2^53 .. ' ' .. 0.1+0.2 .. ' ' .. tostring(1/0) .. ' ' .. tostring(7/2)",
        0,
      ),
      await ev("return string.format('%d:%d:%s', 3000000000, 2.5, 'x')", 0),
      await ev("return {2^63, -0.5, 1e300, 3.99, -3.99}", 0),
      await ev(
        "redis.call('SET', 'l:n1', 0.1) redis.call('SET', 'l:n2', 1e15) redis.call('SET', 'l:n3', 1e21) redis.call('SET', 'l:n4', 3000.0) return redis.call('MGET', 'l:n1', 'l:n2', 'l:n3', 'l:n4')",
        0,
      ),
      await ev(
        "return {math.floor(2.5), math.ceil(2.1), tostring(math.floor(1e12 + 0.5)), unpack({1, 2})}",
        0,
      ),
      await ev("local t = redis.call('TIME') return #t", 0),
      await ev(
        "return {redis.call('SET', KEYS[1], 'x'), redis.call('GET', 'l:none'), redis.call('PING')}",
        1,
        "l:t",
      ),
      await ev(
        "redis.call('SET', KEYS[1], 'before')\nredis.call('HINCRBY', KEYS[2], 'a', 'x')\nredis.call('SET', KEYS[1], 'after')",
        2,
        "l:mid",
        "l:h",
      ),
      await ev("redis.call('SET', KEYS[1], 'one')\nlocal n = tonumber(ARGV[1]) + nil", 1, "l:mid2", "5"),
      await outcome(redis.evalsha("0123456789012345678901234567890123456789", 0)),
      await ev("return 1", -1),
      await ev("return 1", 3, "a"),
      await outcome(redis.script("LOAD", "return 'loaded'").then((sha) => redis.evalsha(sha as string, 0))),
    ];
  },
};

let server: RedisServerHandle;
let real: Redis;

beforeAll(async () => {
  server = await startRedis();
  real = createRedis({ url: server.url, name: "sim-conformance", commandTimeoutMs: 3000 });
});

afterAll(async () => {
  real?.disconnect();
  await stopAllProcesses();
});

describe("simulated redis: conformance with redis-server", () => {
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    it(`sim redis conformance - ${name}`, async () => {
      await real.flushall();
      await real.script("FLUSH");
      const onServer = await outcome(() =>
        scenario(real, { sleep: (ms) => new Promise((r) => setTimeout(r, ms)) }),
      );
      const serverKeys = await contents(real);
      // Scenarios catch the errors they mean to compare: one that throws is broken.
      expect(onServer).toHaveProperty("ok");

      const time = installVirtualTime(Date.now());
      try {
        const sim = createSimRedis();
        const env: Env = {
          sleep: async (ms) => {
            await time.advance(ms);
          },
        };
        const inSim = await outcome(() => scenario(sim, env));
        const simKeys = await contents(sim);
        expect(inSim).toEqual(onServer);
        expect(simKeys).toEqual(serverKeys);
      } finally {
        time.uninstall();
      }
    });
  }
});
