import { serveStage, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { riskDeps } from "./deps.ts";
import { riskStage } from "./handler.ts";

const config = startService({ manifest, version: pkg.version, load: loadConfig });
await serveStage({ definition: riskStage, config, version: pkg.version, deps: riskDeps(config) });
