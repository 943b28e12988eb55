import { ConfigError } from "@jetmesh/stage";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

describe("reconciler config", () => {
  it("reconciler - defaults: port 8085, a deadline per step, every declared consumer", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8085);
    expect(c.reconcile.deadlines).toEqual({
      validate: 60_000,
      score: 60_000,
      decide: 60_000,
      payout: 300_000,
      reverse: 60_000,
    });
    expect(c.reconcile.consumers).toHaveLength(10);
    expect(c.reconcile.bankUrl).toBe("http://127.0.0.1:9090");
  });

  it("reconciler - RECONCILE_CONSUMERS picks declared consumers; a bad value stops the start naming every bad key", () => {
    const c = loadConfig({
      RECONCILE_CONSUMERS: "RISK/ledger, LEDGER/payout",
      RECONCILE_BANK_URL: "http://bank:9090/",
    });
    expect(c.reconcile.consumers.map((x) => `${x.stream}/${x.durable}`)).toEqual([
      "RISK/ledger",
      "LEDGER/payout",
    ]);
    expect(c.reconcile.bankUrl).toBe("http://bank:9090");
    expect(loadConfig({ RECONCILE_CONSUMERS: "none" }).reconcile.consumers).toEqual([]);
    expect(() => loadConfig({ RECONCILE_CONSUMERS: "RISK/risk" })).toThrow(
      /RECONCILE_CONSUMERS names RISK\/risk/,
    );
    try {
      loadConfig({ RECONCILE_SCAN_MS: "0", RECONCILE_BANK_URL: "ftp://x", HTTP_PORT: "-1" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join("\n");
      for (const key of ["RECONCILE_SCAN_MS", "RECONCILE_BANK_URL", "HTTP_PORT"]) expect(text).toContain(key);
    }
  });

  it("reconciler - RECONCILE_NATS_MONITOR_URLS lists monitoring URLs; one that is not http(s) stops the start", () => {
    expect(loadConfig({}).reconcile.natsMonitorUrls).toEqual([]);
    expect(
      loadConfig({ RECONCILE_NATS_MONITOR_URLS: "http://nats-1:8222, http://nats-2:8222" }).reconcile
        .natsMonitorUrls,
    ).toEqual(["http://nats-1:8222", "http://nats-2:8222"]);
    expect(() => loadConfig({ RECONCILE_NATS_MONITOR_URLS: "nats-1:8222" })).toThrow(
      /RECONCILE_NATS_MONITOR_URLS names nats-1:8222/,
    );
  });
});
