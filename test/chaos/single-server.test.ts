// Short versions of the single-server scenarios for CI. Starting the mesh (six node
// processes) costs more than a short scenario on this 2-core machine, so the scenarios
// share one environment fit for all of them (every service behind its fault proxies, the
// gateway shedding at a small lag) and run one after the other; each sends its own
// traffic, and the checker reads every stream after each one. `pnpm chaos` runs each
// scenario in an environment of its own.
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChaosEnv, envOptionsFor, runScenario, scenarioNamed, startChaosEnv } from "@jetmesh/chaos";
import { expectSurvived, SEED } from "./support.ts";

const RATE = 15;
const storm = scenarioNamed("storm");
const kill = scenarioNamed("kill");
const slow = scenarioNamed("slow");
const network = scenarioNamed("network");
const redis = scenarioNamed("redis");
const nats = scenarioNamed("nats");

describe("chaos on one nats-server", () => {
  let env: ChaosEnv | undefined;
  const run = (scenario: typeof storm, durationMs: number) => {
    if (!env) throw new Error("environment not started");
    return runScenario({
      scenario,
      seed: SEED,
      durationMs,
      rate: RATE,
      env,
      warmupMs: 2000,
      quietTimeoutMs: 120_000,
    });
  };

  beforeAll(async () => {
    env = await startChaosEnv({ ...envOptionsFor([storm, kill, slow, network, redis, nats]) });
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await stopAllProcesses();
  }, 60_000);

  it("chaos - duplicate storm: every request three times, some concurrently, moves money once", async () => {
    const r = await run(storm, 6000);
    expectSurvived(r, storm);
    expect(r.traffic.copies.concurrent + r.traffic.copies["pair-then-one"]).toBeGreaterThan(0);
    expect(r.traffic.copies.sequential).toBeGreaterThan(0);
  }, 150_000);

  it("chaos - SIGKILL of every stage twice, restarted after a pause: nothing lost or doubled", async () => {
    const r = await run(kill, 15_000);
    expectSurvived(r, kill);
    const hits = new Map<string, number>();
    for (const f of r.faults) hits.set(f.action.target, (hits.get(f.action.target) ?? 0) + 1);
    for (const stage of ["gateway", "validator", "risk", "ledger", "payout"])
      expect(hits.get(stage)).toBeGreaterThan(1);
  }, 240_000);

  it("chaos - a frozen stage: the gateway sheds with 503 + Retry-After and memory stays bounded", async () => {
    const r = await run(slow, 12_000);
    expectSurvived(r, slow);
    expect(r.traffic.shed).toBeGreaterThan(0);
    expect(r.traffic.shedWithoutRetryAfter).toBe(0);
    for (const p of r.rss) expect(p.maxMb, p.name).toBeLessThan(768);
  }, 180_000);

  it("chaos - cuts, silent holds and latency ramps between services and NATS/Redis", async () => {
    const r = await run(network, 15_000);
    expectSurvived(r, network);
    const links = new Set(r.faults.map((f) => String(f.action.params?.link)));
    expect([...links].sort()).toEqual(["nats", "redis"]);
  }, 200_000);

  it("chaos - redis killed and restarted empty, and FLUSHALL under traffic", async () => {
    const r = await run(redis, 10_000);
    expectSurvived(r, redis);
  }, 180_000);

  it("chaos - nats-server kill -9 and restart on the same store, twice", async () => {
    const r = await run(nats, 10_000);
    expectSurvived(r, nats);
    expect(r.faultCounts["nats-kill"]).toBe(2);
  }, 180_000);
});
