import type { StageClients } from "@jetmesh/stage";
import type { RiskConfig } from "./config.ts";
import type { RiskDeps } from "./handler.ts";
import { createVelocityStore } from "./velocity.ts";

/** The risk stage's dependencies from its configuration and clients. */
export function riskDeps(config: RiskConfig): (c: StageClients) => RiskDeps {
  return ({ redis }) => ({
    velocity: createVelocityStore(redis, config.velocity),
    thresholds: config.thresholds,
  });
}
