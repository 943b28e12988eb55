import { serveStage } from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { riskStage } from "./handler.ts";
import { createVelocityStore } from "./velocity.ts";

const config = loadConfig();
await serveStage({
  definition: riskStage,
  config,
  version: pkg.version,
  deps: ({ redis }) => ({
    velocity: createVelocityStore(redis, config.velocity),
    thresholds: config.thresholds,
  }),
});
