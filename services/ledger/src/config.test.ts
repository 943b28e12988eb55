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
});
