import { serveStage } from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { payoutDeps } from "./deps.ts";
import { payoutStage } from "./handler.ts";

const config = loadConfig();
await serveStage({ definition: payoutStage, config, version: pkg.version, deps: payoutDeps(config) });
