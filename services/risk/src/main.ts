import {
  connectNats,
  createLogger,
  createRedis,
  onShutdown,
  runStage,
  serveHttp,
  startTelemetry,
} from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { riskStage } from "./handler.ts";
import { createVelocityStore } from "./velocity.ts";

const config = loadConfig();
const logger = createLogger({ service: "risk", level: config.logLevel });
const telemetry = startTelemetry({ serviceName: "risk", serviceVersion: pkg.version, ...config.telemetry });
const nc = await connectNats({ url: config.natsUrl, name: "risk" });
const redis = createRedis({ url: config.redisUrl, name: "risk" });
const stage = await runStage({
  definition: riskStage,
  deps: {
    velocity: createVelocityStore(redis, config.velocity),
    thresholds: config.thresholds,
  },
  nc,
  redis,
  logger,
  settings: config.stage,
});
const http = await serveHttp({ host: config.httpHost, port: config.httpPort, logger, probes: [stage] });
onShutdown(logger, [
  () => stage.stop(),
  () => http.close(),
  () => nc.drain(),
  () => redis.quit(),
  () => telemetry.shutdown(),
]);
