/**
 * The processes of the reference pipeline as the runner starts them: where each one's
 * entry point is, which variable takes its port, and where it answers "ready". The
 * services' own README/manifest files are the source; this is their summary.
 */

/** One service the runner starts as its own process. */
export interface ServiceSpec {
  readonly name: ServiceName;
  /**
   * TypeScript entry point, relative to the repository root. The runner starts its bundle
   * (`node services/<name>/dist/main.mjs`, see testkit's `bundleOf`), as the service's
   * start command and Dockerfile do.
   */
  readonly entry: string;
  /** Environment variable that takes the HTTP port. */
  readonly portEnv: string;
  /**
   * Environment variable of a separate port for /healthz, /readyz and /metrics (the gateway
   * keeps them off its API port); without it they are on the HTTP port.
   */
  readonly opsPortEnv?: string;
  /** Path answering 200 once the service is ready (on the ops port when there is one). */
  readonly readyPath: string;
  /** True for services that speak NATS and Redis (everything but the simulated bank). */
  readonly jetmesh: boolean;
}

/** Names of the services, in the order they are listed in reports. */
export const ServiceNames = ["bank-sim", "gateway", "validator", "risk", "ledger", "payout"] as const;
export type ServiceName = (typeof ServiceNames)[number];

/** The catalog, keyed by name. */
export const Services: Readonly<Record<ServiceName, ServiceSpec>> = {
  "bank-sim": {
    name: "bank-sim",
    entry: "services/bank-sim/src/main.ts",
    portEnv: "BANK_PORT",
    // The bank is an external system: it has no readiness probe of ours.
    readyPath: "/healthz",
    jetmesh: false,
  },
  gateway: {
    name: "gateway",
    entry: "services/gateway/src/main.ts",
    portEnv: "GATEWAY_PORT",
    opsPortEnv: "GATEWAY_OPS_PORT",
    readyPath: "/readyz",
    jetmesh: true,
  },
  validator: {
    name: "validator",
    entry: "services/validator/src/main.ts",
    portEnv: "HTTP_PORT",
    readyPath: "/readyz",
    jetmesh: true,
  },
  risk: {
    name: "risk",
    entry: "services/risk/src/main.ts",
    portEnv: "HTTP_PORT",
    readyPath: "/readyz",
    jetmesh: true,
  },
  ledger: {
    name: "ledger",
    entry: "services/ledger/src/main.ts",
    portEnv: "HTTP_PORT",
    readyPath: "/readyz",
    jetmesh: true,
  },
  payout: {
    name: "payout",
    entry: "services/payout/src/main.ts",
    portEnv: "HTTP_PORT",
    readyPath: "/readyz",
    jetmesh: true,
  },
};
