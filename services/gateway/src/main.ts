import { startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { serveGateway } from "./serve.ts";

await serveGateway(startService({ manifest, version: pkg.version, load: loadConfig }), pkg.version);
