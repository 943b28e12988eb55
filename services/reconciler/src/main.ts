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
import { startReconciler } from "./reconciler.ts";

const config = loadConfig();
const logger = createLogger({ service: "reconciler", level: config.logLevel });
const telemetry = startTelemetry({
  serviceName: "reconciler",
  serviceVersion: pkg.version,
  ...config.telemetry,
});
const nc = await connectNats({ url: config.natsUrl, name: "reconciler", auth: config.natsAuth });
const redis = createRedis({ url: config.redisUrl, name: "reconciler", auth: config.redisAuth });
const reconciler = startReconciler({
  nc,
  redis,
  logger,
  registry: metricsRegistry(),
  settings: config.reconcile,
  stage: config.stage,
});
// /healthz answers from the start; /readyz once every stream was read to its end.
const http = await serveHttp({
  host: config.httpHost,
  port: config.httpPort,
  logger,
  probes: [{ name: "reconciler", health: () => reconciler.health() }],
});
onShutdown(logger, [
  () => reconciler.stop(),
  () => http.close(),
  () => nc.drain(),
  () => redis.quit(),
  () => telemetry.shutdown(),
]);
await reconciler.ready;
