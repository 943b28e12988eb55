import { ConfigError } from "@jetmesh/stage";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

const files = { GATEWAY_CLIENTS_FILE: "/run/secrets/clients", GATEWAY_ID_SECRETS_FILE: "/run/secrets/ids" };

describe("gateway config", () => {
  it("gateway - defaults: API on 8080, ops on 8090, 16 KiB bodies, lag limit 20000 on the validator's consumer", () => {
    const c = loadConfig(files);
    expect(c.httpPort).toBe(8080);
    expect(c.opsPort).toBe(8090);
    expect(c.gateway).toMatchObject({
      defaultRate: { perSecond: 50, burst: 100 },
      maxConnections: 1024,
      headersTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
    });
    expect(c.gateway).toMatchObject({ maxBodyBytes: 16 * 1024, maxLag: 20_000, maxPending: 1024 });
    expect(c.lag).toEqual({ consumer: "validator", pollMs: 1000 });
    expect(c.gateway.idempotencyLeaseMs).toBeGreaterThan(
      c.publisher.publishTimeoutMs + c.publisher.publishRetryHorizonMs,
    );
  });

  it("gateway - empty values count as unset and every bad key is listed at once", () => {
    expect(loadConfig({ ...files, GATEWAY_PORT: "", GATEWAY_MAX_LAG: "5" }).gateway.maxLag).toBe(5);
    try {
      loadConfig({ GATEWAY_PORT: "http", GATEWAY_MAX_BODY_BYTES: "-1", LOG_LEVEL: "loud" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join("\n");
      expect(text).toContain("GATEWAY_PORT");
      expect(text).toContain("GATEWAY_MAX_BODY_BYTES");
      expect(text).toContain("LOG_LEVEL");
      // No API without its clients and id secrets: there is no unauthenticated mode.
      expect(text).toContain("GATEWAY_CLIENTS_FILE");
      expect(text).toContain("GATEWAY_ID_SECRETS_FILE");
    }
  });

  it("gateway - the ops port must not be the API port", () => {
    expect(() => loadConfig({ ...files, GATEWAY_PORT: "9000", GATEWAY_OPS_PORT: "9000" })).toThrow(
      /GATEWAY_OPS_PORT must differ/,
    );
  });

  it("gateway - a lease shorter than the longest publish is refused", () => {
    expect(() => loadConfig({ ...files, GATEWAY_IDEMPOTENCY_LEASE_MS: "1000" })).toThrow(ConfigError);
  });
});
