import { outcomeTtlProblems } from "./outcome-ttl.ts";
import { ConfigError } from "@jetmesh/stage";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

describe("ledger config", () => {
  it("ledger - defaults: port 8083, snapshots every 1000 events in ledger-snapshots, catch-up within 10 s", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8083);
    expect(c.ledger).toEqual({
      snapshotEvery: 1000,
      snapshotBucket: "ledger-snapshots",
      snapshotChunkBytes: 512 * 1024,
      epochCheckMs: 1000,
      catchUpTimeoutMs: 10_000,
      rebuildSettleMs: 1000,
      outcomeTtlMs: 14 * 24 * 3600_000,
    });
    expect(c.stage.mode).toBe("exactly-once");
  });

  it("ledger - reads its keys, treats empty as unset, and lists every bad key at once", () => {
    const c = loadConfig({ LEDGER_SNAPSHOT_EVERY: "10", LEDGER_SNAPSHOT_BUCKET: "", HTTP_PORT: "0" });
    expect(c.ledger.snapshotEvery).toBe(10);
    expect(c.ledger.snapshotBucket).toBe("ledger-snapshots");
    expect(loadConfig({ LEDGER_CATCH_UP_TIMEOUT_MS: "2500" }).ledger.catchUpTimeoutMs).toBe(2500);
    expect(c.httpPort).toBe(0);
    try {
      loadConfig({
        LEDGER_SNAPSHOT_EVERY: "0",
        LEDGER_SNAPSHOT_BUCKET: "no spaces",
        LEDGER_SNAPSHOT_CHUNK_BYTES: "12",
        LEDGER_CATCH_UP_TIMEOUT_MS: "5",
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join("\n");
      expect(text).toMatch(/LEDGER_SNAPSHOT_EVERY/);
      expect(text).toMatch(/LEDGER_SNAPSHOT_BUCKET/);
      expect(text).toMatch(/LEDGER_SNAPSHOT_CHUNK_BYTES/);
      expect(text).toMatch(/LEDGER_CATCH_UP_TIMEOUT_MS/);
    }
  });

  it("ledger - an outcome TTL that does not outlive every horizon a message can come back within is refused, naming each", () => {
    const day = 24 * 3600_000;
    expect(loadConfig({ LEDGER_OUTCOME_TTL_MS: String(8 * day) }).ledger.outcomeTtlMs).toBe(8 * day);
    try {
      loadConfig({ LEDGER_OUTCOME_TTL_MS: String(2 * day) });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join("\n");
      for (const what of [
        "JETMESH_IDEMPOTENCY_TTL_MS",
        "REPLAY's age limit",
        "stream RISK's age limit",
        "stream PAYOUTS's age limit",
      ])
        expect(text).toContain(what);
      expect(text).not.toContain("duplicate window");
    }
    // half of it must outlive the input streams' age limits: inputs the pipeline delivers are
    // never refused as past the input horizon (outcome-ttl.ts, rule 1)
    const half = outcomeTtlProblems(5 * day, day).join("\n");
    expect(half).toContain(
      "half of it (216000000 ms, the age past which an input of an unknown transfer is refused) must outlive stream RISK's age limit",
    );
    expect(outcomeTtlProblems(8 * day, day)).toEqual([]);
    // a longer idempotency horizon needs a longer outcome lifetime
    expect(() =>
      loadConfig({
        JETMESH_IDEMPOTENCY_TTL_MS: String(40 * day),
        JETMESH_IDEMPOTENCY_HORIZON_MS: String(day),
      }),
    ).toThrow(/LEDGER_OUTCOME_TTL_MS 1209600000 ms must outlive the ledger's idempotency key ttl/);
  });
});
