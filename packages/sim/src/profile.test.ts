import { SourceMap } from "node:module";
import { describe, expect, it } from "vitest";
import { addProfiles, chargeLayers, describeProfile, LAYERS, type LayerProfile, layerOf } from "./profile.ts";

describe("sim --profile", () => {
  it("charges each source of the simulator's bundle to its layer", () => {
    // Sources as the bundle's map names them, relative to packages/sim/dist.
    expect(layerOf("../../stage/src/process-message.ts")).toBe("real: stage runtime, services, contracts");
    expect(layerOf("../../../services/ledger/src/ledger-writer.ts")).toBe(
      "real: stage runtime, services, contracts",
    );
    expect(layerOf("../../contracts/src/codec.ts")).toBe("real: stage runtime, services, contracts");
    expect(
      layerOf(
        "../../../node_modules/.pnpm/@nats-io+nats-core@3.3.1/node_modules/@nats-io/nats-core/lib/protocol.js",
      ),
    ).toBe("real: nats.js client");
    expect(layerOf("../../../node_modules/.pnpm/msgpackr@2.1.4/node_modules/msgpackr/unpack.js")).toMatch(
      /^real: their libraries/,
    );
    expect(layerOf("../src/nats/core-bus.ts")).toBe("simulator: JetStream, Redis, bank, world");
    expect(layerOf("../../../services/bank-sim/src/bank.ts")).toBe(
      "simulator: JetStream, Redis, bank, world",
    );
    expect(layerOf("../../../node_modules/.pnpm/fengari@0.1.5/node_modules/fengari/src/lvm.js")).toBe(
      "simulator: Lua VM (fengari)",
    );
    expect(
      layerOf(
        "../../../node_modules/.pnpm/@sinonjs+fake-timers@15.5.0/node_modules/@sinonjs/fake-timers/src/fake-timers-src.js",
      ),
    ).toBe("simulator: virtual clock (fake-timers)");
    expect(layerOf("../../testkit/src/invariants.ts")).toMatch(/^checks/);
    expect(layerOf("node:internal/process/task_queues")).toMatch(/^node:/);
    expect(layerOf("")).toMatch(/^node:/);
  });

  it("shares samples out through the source map and sums workers", () => {
    // A two-line bundle: line 0 maps to the runtime, line 1 to the simulator.
    const map = new SourceMap({
      version: 3,
      file: "cli.mjs",
      sources: ["../../stage/src/publisher.ts", "../src/nats/stream.ts"],
      sourcesContent: [],
      sourceRoot: "",
      names: [],
      mappings: "AAAA;ACAA",
    });
    const url = "file:///x/cli.mjs";
    const profile = {
      nodes: [
        { id: 1, callFrame: { url, lineNumber: 0, columnNumber: 0 } },
        { id: 2, callFrame: { url, lineNumber: 1, columnNumber: 0 } },
        { id: 3, callFrame: { url: "", lineNumber: -1, columnNumber: -1 } },
      ],
      samples: [1, 1, 2, 3],
      timeDeltas: [1000, 1000, 3000, 500],
    };
    const ms = chargeLayers(profile, map, url);
    expect(ms["real: stage runtime, services, contracts"]).toBe(2);
    expect(ms["simulator: JetStream, Redis, bank, world"]).toBe(3);
    expect(ms["node: promises, timers, crypto, GC, other"]).toBe(0.5);
    const one: LayerProfile = { worlds: 2, ms };
    const both = addProfiles(addProfiles(undefined, one), one);
    expect(both.worlds).toBe(4);
    expect(both.ms["simulator: JetStream, Redis, bank, world"]).toBe(6);
    const text = describeProfile(both);
    expect(text.split("\n")).toHaveLength(LAYERS.length + 3);
    // Real code 4 ms of 11 (36.4%): at most 2.8 times as fast; node's 1 ms (9.1%) staying, 2.2.
    expect(text).toContain("the real code under test is 36.4% of a world's CPU");
    expect(text).toContain("at most 2.8 times as fast");
    expect(text).toContain("(2.2 times if node's own 9.1% stayed)");
  });
});
