import {
  connectNats,
  createLogger,
  createRedis,
  metricsRegistry,
  onShutdown,
  serveHttp,
  startTelemetry,
} from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { startLedger } from "./start.ts";

const config = loadConfig();
const logger = createLogger({ service: "ledger", level: config.logLevel });
const telemetry = startTelemetry({ serviceName: "ledger", serviceVersion: pkg.version, ...config.telemetry });
const nc = await connectNats({ url: config.natsUrl, name: "ledger", auth: config.natsAuth });
const redis = createRedis({ url: config.redisUrl, name: "ledger", auth: config.redisAuth });
const registry = metricsRegistry();
const ledger = startLedger({ nc, redis, logger, registry, config });
// Probes and /healthz answer from the start; /readyz says what the ledger waits for, or why it stopped.
const http = await serveHttp({
  host: config.httpHost,
  port: config.httpPort,
  logger,
  probes: [
    { name: "ledger", health: () => ledger.stageHealth() },
    { name: "projection", health: () => ledger.projectionHealth() },
  ],
});
onShutdown(logger, [
  () => ledger.stop(),
  () => http.close(),
  () => nc.drain(),
  () => redis.quit(),
  () => telemetry.shutdown(),
]);
// Settings that contradict exactly-once refuse the start, as in every stage.
await ledger.started;
