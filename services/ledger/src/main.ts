import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  connectNats,
  createLogger,
  createRedis,
  metricsRegistry,
  onShutdown,
  runStage,
  type StageHandle,
  serveHttp,
  startTelemetry,
} from "@jetmesh/stage";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { ledgerStage } from "./handler.ts";
import { registerProjectorMetrics } from "./metrics.ts";
import { createProjector } from "./projector.ts";
import { createSnapshotStore, openSnapshotBucket } from "./snapshots.ts";
import { createLedgerStore } from "./store.ts";

const config = loadConfig();
const logger = createLogger({ service: "ledger", level: config.logLevel });
const telemetry = startTelemetry({ serviceName: "ledger", serviceVersion: pkg.version, ...config.telemetry });
const nc = await connectNats({ url: config.natsUrl, name: "ledger" });
const redis = createRedis({ url: config.redisUrl, name: "ledger" });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
const bucket = await openSnapshotBucket(js, config.ledger.snapshotBucket, config.stage.replicas);
const store = createLedgerStore(redis);
const projector = createProjector({
  js,
  jsm,
  store,
  snapshots: createSnapshotStore(bucket, { chunkBytes: config.ledger.snapshotChunkBytes }),
  logger,
  snapshotEvery: config.ledger.snapshotEvery,
  epochCheckMs: config.ledger.epochCheckMs,
});
registerProjectorMetrics(metricsRegistry(), projector);
let stage: StageHandle | undefined;
// Probes and /healthz answer while a long restore runs; /readyz says why it is not ready.
const stageProbe = { name: "ledger", health: () => stage?.health() ?? { ok: false, starting: true } };
const projection = { name: "projection", health: () => ({ ok: projector.ready(), ...projector.status() }) };
const http = await serveHttp({
  host: config.httpHost,
  port: config.httpPort,
  logger,
  probes: [stageProbe, projection],
});
onShutdown(logger, [
  () => stage?.stop(),
  () => projector.stop(),
  () => http.close(),
  () => nc.drain(),
  () => redis.quit(),
  () => telemetry.shutdown(),
]);
// Decisions wait for a whole projection: restore (or catch up) before consuming.
await projector.start();
stage = await runStage({
  definition: ledgerStage,
  deps: { store, onNotReady: (reason: string) => projector.requestRestore(reason) },
  nc,
  redis,
  logger,
  settings: config.stage,
});
