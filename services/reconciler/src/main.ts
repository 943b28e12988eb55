import { serveProcess, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { reconcilerProcess } from "./reconciler.ts";

// /healthz answers from the start; /readyz once every stream was read to its end.
const config = startService({ manifest, version: pkg.version, load: loadConfig });
const start = reconcilerProcess(config);
await serveProcess({ name: "reconciler", config, version: pkg.version, probes: ["reconciler"], start });
