import { randomUUID } from "node:crypto";
import {
  checkEventData,
  type Envelope,
  EventTypes,
  makeEnvelope,
  type TransferValidated,
} from "@jetmesh/contracts";
import {
  context as otelContext,
  createLogger,
  type Emission,
  type HandlerContext,
  type Plan,
  PermanentError,
} from "@jetmesh/stage";
import { type RedisServerHandle, startRedis } from "@jetmesh/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assess, decide, type RiskDeps, riskStage, type Thresholds } from "./handler.ts";
import { createVelocityStore, type Velocity, type VelocityStore } from "./velocity.ts";

const thresholds: Thresholds = { reviewScore: 60, denyScore: 85 };
const base: TransferValidated = {
  transferId: "t-1",
  from: "acc-alice",
  to: "acc-bob",
  amountMinor: 1000,
  currency: "EUR",
};
const AT = "2026-11-26T10:00:10.000Z";

function envelope(data: TransferValidated, eventId: string = randomUUID(), occurredAt = AT) {
  return makeEnvelope(EventTypes.TransferValidated, data, {
    eventId,
    correlationId: data.transferId,
    causationId: "cause-1",
    producer: "validator",
    occurredAt,
  }) as Envelope<typeof EventTypes.TransferValidated>;
}

function context(deps: RiskDeps): HandlerContext<RiskDeps> {
  return {
    stage: "risk",
    deps,
    logger: createLogger({ service: "risk", level: "silent" }),
    delivery: {
      stream: "VALIDATION",
      subject: "transfers.validated.00",
      streamSequence: 1,
      deliveryCount: 1,
    },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: otelContext.active(),
    signal: new AbortController().signal,
  };
}

/** Runs the handler the way the runtime does: plan, then effect. */
async function run(
  event: Envelope<typeof EventTypes.TransferValidated>,
  deps: RiskDeps,
): Promise<readonly Emission[]> {
  const out: readonly Emission[] | Plan = await riskStage.handle(event, context(deps));
  if (Array.isArray(out)) return out;
  const plan = out as Plan;
  return [...(plan.emit ?? []), ...((await plan.effect?.()) ?? [])];
}

/** An in-memory velocity for the pure tests: returns what it is told to. */
function fixedVelocity(v: Velocity): VelocityStore & { calls: number } {
  const store = {
    calls: 0,
    bump: async () => {
      store.calls++;
      return v;
    },
  };
  return store;
}

const score = (t: Partial<TransferValidated>, v?: Velocity) => assess({ ...base, ...t }, v, thresholds);
const quiet: Velocity = { count: 1, sumMinor: 1000 };

describe("risk scoring", () => {
  it("risk - small transfers with no velocity are allowed with no factors", () => {
    expect(score({ amountMinor: 50_000 }, quiet)).toEqual({ score: 0, decision: "allow", factors: [] });
  });

  it("risk - amount bands add points at their bounds", () => {
    const points = (amountMinor: number) => score({ amountMinor }, quiet).score;
    expect(
      [50_000, 50_001, 500_000, 500_001, 2_000_000, 2_000_001, 5_000_000, 5_000_001].map(points),
    ).toEqual([0, 15, 15, 30, 30, 45, 45, 60]);
    expect(score({ amountMinor: 600_000 }, quiet).factors).toEqual(["amount:high"]);
  });

  it("risk - velocity count and sum bands add points", () => {
    const v = (count: number, sumMinor = 1000) => score({}, { count, sumMinor });
    expect([3, 4, 6, 7, 10, 11].map((n) => v(n).score)).toEqual([0, 15, 15, 30, 30, 45]);
    expect(v(11).factors).toEqual(["velocity:burst"]);
    expect(v(1, 5_000_001).score).toBe(20);
    expect(v(1, 10_000_001)).toMatchObject({ score: 30, factors: ["velocity-sum:extreme"] });
  });

  it("risk - a payout to a bank account adds points", () => {
    expect(score({ to: "bank:acme-1" }, quiet)).toEqual({
      score: 10,
      decision: "allow",
      factors: ["destination:bank"],
    });
  });

  it("risk - thresholds decide allow, review and deny", () => {
    expect([0, 59, 60, 84, 85, 100].map((s) => decide(s, thresholds))).toEqual([
      "allow",
      "allow",
      "review",
      "review",
      "deny",
      "deny",
    ]);
    // 6M to a bank: extreme amount and bank destination → review
    expect(score({ amountMinor: 6_000_000, to: "bank:acme-1" }, quiet)).toMatchObject({
      score: 70,
      decision: "review",
    });
    // extreme amount, a burst and a large sum → deny, capped at 100
    expect(score({ amountMinor: 6_000_000 }, { count: 12, sumMinor: 20_000_000 })).toEqual({
      score: 100,
      decision: "deny",
      factors: ["amount:extreme", "velocity:burst", "velocity-sum:extreme"],
    });
  });

  it("risk - money in from external is scored low without touching velocity", async () => {
    const velocity = fixedVelocity({ count: 99, sumMinor: 99_000_000 });
    const out = await run(envelope({ ...base, from: "external", amountMinor: 9_000_000 }), {
      velocity,
      thresholds,
    });
    expect(out).toEqual([
      {
        type: "transfers.scored",
        data: {
          ...base,
          from: "external",
          amountMinor: 9_000_000,
          score: 0,
          decision: "allow",
          factors: ["source:external"],
        },
      },
    ]);
    expect(velocity.calls).toBe(0);
  });

  it("risk - the velocity bump is planned as the effect and its result scored", async () => {
    const velocity = fixedVelocity({ count: 7, sumMinor: 7000 });
    const planned = await riskStage.handle(envelope(base), context({ velocity, thresholds }));
    expect(Array.isArray(planned)).toBe(false);
    expect(velocity.calls).toBe(0); // nothing happens before the runtime applies the effect
    const out = (await (planned as Plan).effect?.()) ?? [];
    expect(velocity.calls).toBe(1);
    expect(out[0]?.data).toEqual({ ...base, score: 30, decision: "allow", factors: ["velocity:high"] });
    expect(checkEventData(out[0]!.type, out[0]!.data)).toEqual([]);
  });

  it("risk - an input whose occurredAt is not a time is permanent", () => {
    const velocity = fixedVelocity(quiet);
    expect(() =>
      riskStage.handle(envelope(base, "e-x", "yesterday"), context({ velocity, thresholds })),
    ).toThrow(PermanentError);
  });
});

describe("risk velocity on a real redis-server", () => {
  let server: RedisServerHandle;
  let redis: Redis;
  const windowMs = 60_000;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  const fresh = () => {
    const keyPrefix = `test:${randomUUID()}`;
    return { keyPrefix, velocity: createVelocityStore(redis, { windowMs, retentionMs: 600_000, keyPrefix }) };
  };

  it("risk - a replayed effect returns the first score after later transfers were counted", async () => {
    const { velocity } = fresh();
    const deps = { velocity, thresholds };
    const events = Array.from({ length: 8 }, (_, i) =>
      envelope({ ...base, transferId: `t-${i}`, amountMinor: 600_000 }),
    );
    const first: (readonly Emission[])[] = [];
    for (const e of events) first.push(await run(e, deps));
    expect(first.map((o) => (o[0]!.data as { score: number }).score)).toEqual([
      30, 30, 30, 45, 45, 45, 60, 60,
    ]);

    // crash after the effect, before publish: the redelivery runs handler and effect again
    expect(await run(events[1]!, deps)).toEqual(first[1]);
    expect(await run(events[6]!, deps)).toEqual(first[6]);
    // and the replays counted nothing: the next new transfer is the 9th
    const ninth = await run(envelope({ ...base, transferId: "t-9", amountMinor: 600_000 }), deps);
    expect(ninth[0]?.data).toMatchObject({
      factors: ["amount:high", "velocity:high", "velocity-sum:high"],
      score: 80,
      decision: "review",
    });
  });

  it("risk - concurrent replays of one input count it once", async () => {
    const { velocity } = fresh();
    const event = envelope(base);
    const outs = await Promise.all(Array.from({ length: 20 }, () => run(event, { velocity, thresholds })));
    expect(new Set(outs.map((o) => JSON.stringify(o))).size).toBe(1);
    expect(
      await velocity.bump({ account: base.from, eventId: "other", amountMinor: 1, atMs: Date.parse(AT) }),
    ).toEqual({
      count: 2,
      sumMinor: base.amountMinor + 1,
    });
  });

  it("risk - velocity is kept per account and per window of event time", async () => {
    const { velocity, keyPrefix } = fresh();
    const at = Date.parse(AT);
    const bump = (account: string, eventId: string, atMs: number) =>
      velocity.bump({ account, eventId, amountMinor: 100, atMs });
    expect(await bump("acc-a", "1", at)).toEqual({ count: 1, sumMinor: 100 });
    expect(await bump("acc-a", "2", at + 1000)).toEqual({ count: 2, sumMinor: 200 });
    expect(await bump("acc-b", "3", at)).toEqual({ count: 1, sumMinor: 100 });
    expect(await bump("acc-a", "4", at + windowMs)).toEqual({ count: 1, sumMinor: 100 });

    const key = `${keyPrefix}:acc-a:${Math.floor(at / windowMs)}`;
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(await redis.hgetall(key)).toEqual({ count: "2", sum: "200", "e:1": "1:100", "e:2": "2:200" });
  });

  it("risk - the bump survives a script cache flush", async () => {
    const { velocity } = fresh();
    const at = Date.parse(AT);
    expect(await velocity.bump({ account: "acc-a", eventId: "1", amountMinor: 5, atMs: at })).toEqual({
      count: 1,
      sumMinor: 5,
    });
    await redis.script("FLUSH");
    expect(await velocity.bump({ account: "acc-a", eventId: "1", amountMinor: 5, atMs: at })).toEqual({
      count: 1,
      sumMinor: 5,
    });
  });
});
