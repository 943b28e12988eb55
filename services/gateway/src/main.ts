import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { serveGateway } from "./serve.ts";

await serveGateway(loadConfig(), pkg.version);
