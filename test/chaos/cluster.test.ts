// The cluster scenario for CI: three nats-server nodes, R3 streams, a stream leader and
// later a follower killed under traffic.
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { runScenario, scenarioNamed } from "@jetmesh/chaos";
import { expectSurvived, SEED } from "./support.ts";

const cluster = scenarioNamed("cluster");

describe("chaos on a three-node cluster", () => {
  afterAll(() => stopAllProcesses(), 60_000);

  it("chaos - R3 streams: stream leader killed, later a follower; services go on through the survivors", async () => {
    const r = await runScenario({
      scenario: cluster,
      seed: SEED,
      durationMs: 16_000,
      rate: 15,
      warmupMs: 2000,
      quietTimeoutMs: 120_000,
    });
    expectSurvived(r, cluster);
    expect(r.faults.map((f) => f.action.kind)).toEqual(["kill-stream-leader", "kill-stream-follower"]);
    expect(r.faults.every((f) => /killed \(leader n\d/.test(f.detail))).toBe(true);
  }, 300_000);
});
