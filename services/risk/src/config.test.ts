import { describe, expect, it } from "vitest";
import manifest from "../manifest.json" with { type: "json" };
import { loadConfig } from "./config.ts";

describe("risk config", () => {
  it("risk - defaults match the manifest", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8082);
    expect(c.thresholds).toEqual({ reviewScore: 60, denyScore: 85 });
    expect(c.velocity).toEqual({ windowMs: 60_000, retentionMs: 3_600_000 });
    expect(c.telemetry).toEqual({ disabled: false, sampleRatio: 1 });
    expect(manifest.env.HTTP_PORT.default).toBe(c.httpPort);
    expect(manifest.env.RISK_REVIEW_SCORE.default).toBe(c.thresholds.reviewScore);
    expect(manifest.env.RISK_DENY_SCORE.default).toBe(c.thresholds.denyScore);
    expect(manifest.env.RISK_VELOCITY_WINDOW_MS.default).toBe(c.velocity.windowMs);
    expect(manifest.env.RISK_VELOCITY_RETENTION_MS.default).toBe(c.velocity.retentionMs);
  });

  it("risk - thresholds must be ordered and bad keys are all named", () => {
    expect(() => loadConfig({ RISK_REVIEW_SCORE: "90", RISK_DENY_SCORE: "80" })).toThrow(
      /RISK_REVIEW_SCORE must be below/,
    );
    expect(() => loadConfig({ RISK_DENY_SCORE: "101", RISK_VELOCITY_WINDOW_MS: "5" })).toThrow(
      /RISK_DENY_SCORE.*RISK_VELOCITY_WINDOW_MS/,
    );
  });

  it("risk - retention shorter than a window plus the redelivery horizon is refused", () => {
    expect(() => loadConfig({ RISK_VELOCITY_RETENTION_MS: "60000" })).toThrow(
      /RISK_VELOCITY_RETENTION_MS must be at least/,
    );
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).telemetry).toEqual({
      disabled: false,
      sampleRatio: 1,
      otlpEndpoint: "http://collector:4318",
    });
  });
});
