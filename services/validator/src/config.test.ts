import { describe, expect, it } from "vitest";
import manifest from "../manifest.json" with { type: "json" };
import { loadConfig } from "./config.ts";

describe("validator config", () => {
  it("validator - defaults match the manifest", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8081);
    expect(c.rules.maxAmountMinor).toBe(10_000_000);
    expect([...c.rules.currencies]).toEqual(["EUR", "USD", "GBP", "CHF", "JPY"]);
    expect(manifest.env.HTTP_PORT.default).toBe(c.httpPort);
    expect(manifest.env.VALIDATOR_MAX_AMOUNT_MINOR.default).toBe(c.rules.maxAmountMinor);
    expect(manifest.env.VALIDATOR_CURRENCIES.default).toBe([...c.rules.currencies].join(","));
    expect(manifest.env.NATS_URL.default).toBe(c.natsUrl);
    expect(manifest.env.REDIS_URL.default).toBe(c.redisUrl);
  });

  it("validator - own keys are read and blank counts as unset", () => {
    const c = loadConfig({
      VALIDATOR_MAX_AMOUNT_MINOR: "500",
      VALIDATOR_CURRENCIES: "EUR, SEK",
      HTTP_PORT: "",
    });
    expect(c.rules.maxAmountMinor).toBe(500);
    expect([...c.rules.currencies]).toEqual(["EUR", "SEK"]);
    expect(c.httpPort).toBe(8081);
  });

  it("validator - bad keys are refused at start, all named", () => {
    expect(() => loadConfig({ VALIDATOR_MAX_AMOUNT_MINOR: "0", HTTP_PORT: "x" })).toThrow(
      /HTTP_PORT.*VALIDATOR_MAX_AMOUNT_MINOR|VALIDATOR_MAX_AMOUNT_MINOR.*HTTP_PORT/,
    );
    expect(() => loadConfig({ VALIDATOR_CURRENCIES: "EUR,euro" })).toThrow(/VALIDATOR_CURRENCIES/);
  });
});
