import { serveStage, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { payoutDeps } from "./deps.ts";
import { payoutStage } from "./handler.ts";

const config = startService({ manifest, version: pkg.version, load: loadConfig });
await serveStage({ definition: payoutStage, config, version: pkg.version, deps: payoutDeps(config) });
