import { serveStage } from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { validatorStage } from "./handler.ts";

const config = loadConfig();
await serveStage({
  definition: validatorStage,
  config,
  version: pkg.version,
  deps: () => ({ rules: config.rules }),
});
