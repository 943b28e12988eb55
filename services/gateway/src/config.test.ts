import { ConfigError } from "@jetmesh/stage";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

describe("gateway config", () => {
  it("gateway - defaults: port 8080, 16 KiB bodies, lag limit 20000 on the validator's consumer", () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8080);
    expect(c.gateway).toMatchObject({ maxBodyBytes: 16 * 1024, maxLag: 20_000, maxPending: 1024 });
    expect(c.lag).toEqual({ consumer: "validator", pollMs: 1000 });
    expect(c.gateway.idempotencyLeaseMs).toBeGreaterThan(
      c.publisher.publishTimeoutMs + c.publisher.publishRetryHorizonMs,
    );
  });

  it("gateway - empty values count as unset and every bad key is listed at once", () => {
    expect(loadConfig({ GATEWAY_PORT: "", GATEWAY_MAX_LAG: "5" }).gateway.maxLag).toBe(5);
    try {
      loadConfig({ GATEWAY_PORT: "http", GATEWAY_MAX_BODY_BYTES: "-1", LOG_LEVEL: "loud" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join("\n");
      expect(text).toContain("GATEWAY_PORT");
      expect(text).toContain("GATEWAY_MAX_BODY_BYTES");
      expect(text).toContain("LOG_LEVEL");
    }
  });

  it("gateway - a lease shorter than the longest publish is refused", () => {
    expect(() => loadConfig({ GATEWAY_IDEMPOTENCY_LEASE_MS: "1000" })).toThrow(ConfigError);
  });
});
