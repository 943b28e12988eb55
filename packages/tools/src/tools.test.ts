import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createPrng } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { percentile, percentiles } from "./percentile.ts";
import { table } from "./table.ts";
import { DEMO_MIX, type PlanContext, planTransfer, STEADY_MIX } from "./traffic/plan.ts";
import { startTraffic } from "./traffic/traffic.ts";

/**
 * A stand-in for the gateway's API: 202 with a transfer id derived from the key, 400 for a
 * body that is not a transfer or a request without a key, a 503 with Retry-After to every
 * fifth first attempt; every transfer reads back as posted.
 */
function fakeGateway(): Promise<{ url: string; server: Server; posts: string[] }> {
  const posts: string[] = [];
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      if (req.method === "GET") return res.end(JSON.stringify({ status: "posted" }));
      const key = req.headers["idempotency-key"];
      const t = JSON.parse(body) as { amountMinor?: unknown; from?: unknown };
      posts.push(String(key));
      if (typeof key !== "string" || typeof t.amountMinor !== "number" || typeof t.from !== "string") {
        res.statusCode = 400;
        return res.end(JSON.stringify({ error: "bad request" }));
      }
      if (!seen.has(key) && posts.length % 5 === 0) {
        seen.add(key);
        res.statusCode = 503;
        res.setHeader("retry-after", "0.01");
        return res.end(JSON.stringify({ error: "overloaded" }));
      }
      seen.add(key);
      res.statusCode = 202;
      res.end(JSON.stringify({ transferId: `t-${key}`, eventId: `e-${key}` }));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, posts }),
    ),
  );
}

describe("tools", () => {
  let gw: Awaited<ReturnType<typeof fakeGateway>>;
  beforeAll(async () => {
    gw = await fakeGateway();
  });
  afterAll(() => new Promise<void>((r) => gw.server.close(() => r())));
  const apiKeys = { operator: "op", customer: "cu" };

  it("tools - percentile is nearest rank: the smallest value with at least q of them at or below", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([0.5, 0.95, 0.99, 1].map((q) => percentile(sorted, q))).toEqual([50, 95, 99, 100]);
    expect(percentile([7, 8, 9, 10], 0.9)).toBe(10);
    expect(percentile([7, 8, 9, 10], 0.75)).toBe(9);
    expect(percentile([], 0.5)).toBe(0);
    expect(percentiles([3, 1, 2])).toEqual({ count: 3, p50: 2, p95: 3, p99: 3, max: 3 });
  });

  it("tools - table aligns the first column left and the others right, under a rule", () => {
    expect(
      table(
        ["row", "n"],
        [
          ["a", "1"],
          ["longer", "100"],
        ],
      ),
    ).toBe(["row       n", "------  ---", "a         1", "longer  100"].join("\n"));
  });

  it("tools - a seed replays the same plan; the mix's shares hold over many transfers", () => {
    const ctx: PlanContext = {
      runId: "r",
      mix: STEADY_MIX,
      accounts: ["acc-0", "acc-1", "acc-2"],
      banks: ["bank:a"],
      refusedBanks: ["bank:r"],
      fundFirst: true,
      fundFirstMinor: 1000,
    };
    const plans = (seed: string) => {
      const r = createPrng(seed);
      return Array.from({ length: 5000 }, (_, i) => planTransfer(i, r, ctx));
    };
    const a = plans("s1");
    expect(plans("s1")).toEqual(a);
    expect(plans("s2")).not.toEqual(a);
    expect(a.slice(0, 3).map((p) => p.kind)).toEqual(["funding", "funding", "funding"]);
    const share = (k: string) => a.filter((p) => p.kind === k).length / a.length;
    expect(share("payout")).toBeCloseTo(STEADY_MIX.payout, 1);
    expect(share("refused-payout")).toBeCloseTo(STEADY_MIX.refusedPayout, 1);
    expect(a.filter((p) => p.copies === 2).length / a.length).toBeCloseTo(STEADY_MIX.duplicate, 1);
    const demo = planTransfer(0, createPrng("x"), {
      ...ctx,
      mix: { ...DEMO_MIX, invalid: 1 },
      fundFirst: false,
    });
    expect(demo.kind).toBe("invalid");
  });

  it("tools - demo traffic funds every account, then sends its transfers at its rate and settles", async () => {
    const phases = new Set<string>();
    const traffic = startTraffic({
      mode: "demo",
      gatewayUrl: gw.url,
      apiKeys,
      runId: "demo",
      transfers: 60,
      rate: 300,
      accounts: 5,
      refusedBankAccounts: ["bank:r"],
      onProgress: (p) => phases.add(p.phase),
    });
    const s = await traffic.done();
    expect([...phases]).toEqual(["funding", "transfers"]);
    expect(s.funding).toBe(10); // 5 accounts × EUR, USD
    expect(s.transfers).toBe(60);
    expect(s.givenUp).toEqual([]);
    expect(s.unexpected).toEqual([]);
    expect(s.invalid.answered400).toBe(s.invalid.sent);
    expect(s.byStatus["503"]).toBeGreaterThan(0);
    expect(s.retries).toBeGreaterThanOrEqual(s.byStatus["503"] as number);
    expect(traffic.accepted()).toHaveLength(10 + 60 - s.invalid.sent);
    for (const a of traffic.accepted()) expect(a.acceptedAtMs).toBeGreaterThanOrEqual(a.sentAtMs);
  });

  it("tools - steady traffic runs until stopped; saturating traffic for its duration, plain transfers only", async () => {
    const steady = startTraffic({
      mode: "steady",
      gatewayUrl: gw.url,
      apiKeys,
      runId: "steady",
      prng: createPrng(1),
      rate: 200,
      mix: { storm: true },
    });
    await new Promise((r) => setTimeout(r, 300));
    const s = await steady.stop();
    expect(s.transfers).toBeGreaterThan(10);
    expect(s.copies.single).toBe(0);
    // a storm sends every transfer three times, but an invalid request (1% of the steady mix)
    // once: how many there are depends on how many transfers the 300 ms let through
    expect(s.copies.sequential + s.copies.concurrent + s.copies["pair-then-one"]).toBe(
      2 * (s.transfers - s.invalid.sent),
    );

    const sat = startTraffic({
      mode: "saturating",
      gatewayUrl: gw.url,
      apiKeys,
      runId: "sat",
      clients: 4,
      durationMs: 300,
      funding: false,
    });
    const t = await sat.done();
    expect(t.transfers).toBeGreaterThan(4);
    expect(t.finishedAtMs - t.startedAtMs).toBeGreaterThanOrEqual(300);
    expect(Object.keys(t.acceptedByKind)).toEqual(["transfer"]);
  });
});
