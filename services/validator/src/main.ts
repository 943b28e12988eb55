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
import { validatorStage } from "./handler.ts";

const config = loadConfig();
const logger = createLogger({ service: "validator", level: config.logLevel });
const telemetry = startTelemetry({
  serviceName: "validator",
  serviceVersion: pkg.version,
  ...config.telemetry,
});
const nc = await connectNats({ url: config.natsUrl, name: "validator" });
const redis = createRedis({ url: config.redisUrl, name: "validator" });
const stage = await runStage({
  definition: validatorStage,
  deps: { rules: config.rules },
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
