import { describe, expect, it } from "vitest";
import manifest from "../manifest.json" with { type: "json" };
import { loadConfig } from "./config.ts";

describe("payout config", () => {
  it("payout - defaults match the manifest", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8084);
    expect(c.bank).toEqual({ url: "http://127.0.0.1:9090", timeoutMs: 2000, retentionMs: 86_400_000 });
    expect(c.recordsBucket).toBe("payout-records");
    expect(manifest.env.HTTP_PORT.default).toBe(c.httpPort);
    expect(manifest.env.PAYOUT_BANK_URL.default).toBe(c.bank.url);
    expect(manifest.env.PAYOUT_BANK_TIMEOUT_MS.default).toBe(c.bank.timeoutMs);
    expect(manifest.env.PAYOUT_BANK_RETENTION_MS.default).toBe(c.bank.retentionMs);
    expect(manifest.env.PAYOUT_RECORDS_BUCKET.default).toBe(c.recordsBucket);
  });

  it("payout - bad keys are refused at start, all named", () => {
    expect(() => loadConfig({ PAYOUT_BANK_URL: "ftp://bank", PAYOUT_BANK_TIMEOUT_MS: "1" })).toThrow(
      /PAYOUT_BANK_URL.*PAYOUT_BANK_TIMEOUT_MS/,
    );
  });

  it("payout - a bank retention shorter than twice the redelivery horizon is refused", () => {
    expect(() => loadConfig({ PAYOUT_BANK_RETENTION_MS: "60000" })).toThrow(
      /PAYOUT_BANK_RETENTION_MS 60000 must be at least twice the redelivery horizon/,
    );
  });

  it("payout - a bank timeout the runtime would cut short is refused", () => {
    expect(() => loadConfig({ PAYOUT_BANK_TIMEOUT_MS: "5000", JETMESH_HANDLER_TIMEOUT_MS: "3000" })).toThrow(
      /PAYOUT_BANK_TIMEOUT_MS must be below the handler timeout/,
    );
  });
});
