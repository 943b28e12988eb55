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
import { createBankClient } from "./bank-client.ts";
import { loadConfig } from "./config.ts";
import { payoutStage } from "./handler.ts";

const config = loadConfig();
const logger = createLogger({ service: "payout", level: config.logLevel });
const telemetry = startTelemetry({ serviceName: "payout", serviceVersion: pkg.version, ...config.telemetry });
const nc = await connectNats({ url: config.natsUrl, name: "payout" });
const redis = createRedis({ url: config.redisUrl, name: "payout" });
const stage = await runStage({
  definition: payoutStage,
  deps: { bank: createBankClient(config.bank) },
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
