import { serveProcess, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { LEDGER_PROBES, ledgerProcess } from "./start.ts";

// /readyz says what the ledger waits for, or why it stopped; settings that contradict exactly-once refuse the start.
const config = startService({ manifest, version: pkg.version, load: loadConfig });
const start = ledgerProcess(config);
await serveProcess({ name: "ledger", config, version: pkg.version, probes: LEDGER_PROBES, start });
