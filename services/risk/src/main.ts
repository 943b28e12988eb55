import { serveStage } from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { riskDeps } from "./deps.ts";
import { riskStage } from "./handler.ts";

const config = loadConfig();
await serveStage({ definition: riskStage, config, version: pkg.version, deps: riskDeps(config) });
