import { serveStage, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { validatorStage } from "./handler.ts";

const config = startService({ manifest, version: pkg.version, load: loadConfig });
await serveStage({
  definition: validatorStage,
  config,
  version: pkg.version,
  deps: () => ({ rules: config.rules }),
});
