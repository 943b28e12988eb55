import { describe, expect, it } from "vitest";
import { type ReferenceService, ServiceNames, Services } from "./services.ts";

// Every name of the type, checked by the compiler: a name added to or removed from the type
// must be added or removed here too.
const reference: Record<ReferenceService, true> = {
  "bank-sim": true,
  gateway: true,
  validator: true,
  risk: true,
  ledger: true,
  payout: true,
};

describe("mesh services", () => {
  it("mesh - starts the catalog's services, and every service code names is in it", () => {
    expect(ServiceNames).toEqual(Object.keys(Services));
    for (const name of Object.keys(reference)) expect(ServiceNames, name).toContain(name);
    expect(Services.gateway.opsPortEnv).toBe("GATEWAY_OPS_PORT");
    expect(Services["bank-sim"].readyPath).toBe("/healthz");
  });
});
