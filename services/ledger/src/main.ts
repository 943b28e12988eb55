import {
  ConfigError,
  connectNats,
  createEventPublisher,
  createLogger,
  createRedis,
  createStageMetrics,
  metricsRegistry,
  onShutdown,
  runStage,
  type StageHandle,
  serveHttp,
  startTelemetry,
  untilAnswered,
} from "@jetmesh/stage";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { ledgerStage } from "./handler.ts";
import { createLedgerWriter, type LedgerWriter } from "./ledger-writer.ts";
import { checkLogIntegrity } from "./log-integrity.ts";
import { createLogFollower, type LogFollower, type LogProblem } from "./log-follower.ts";
import { registerLedgerMetrics } from "./metrics.ts";
import { createRedisProjection, type RedisProjection } from "./redis-projection.ts";
import { createSnapshotStore, openSnapshotBucket } from "./snapshots.ts";
import { createLedgerStore } from "./store.ts";

const config = loadConfig();
const logger = createLogger({ service: "ledger", level: config.logLevel });
const telemetry = startTelemetry({ serviceName: "ledger", serviceVersion: pkg.version, ...config.telemetry });
const nc = await connectNats({ url: config.natsUrl, name: "ledger", auth: config.natsAuth });
const redis = createRedis({ url: config.redisUrl, name: "ledger", auth: config.redisAuth });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
const store = createLedgerStore(redis);
const registry = metricsRegistry();

let stage: StageHandle | undefined;
let follower: LogFollower | undefined;
let projection: RedisProjection | undefined;
let writer: LedgerWriter | undefined;
let problem: LogProblem | undefined;
let waitingFor = "the log";
registerLedgerMetrics(registry, {
  follower: () => follower,
  projection: () => projection,
  writer: () => writer,
  problem: () => problem,
});
// Probes and /healthz answer from the start; /readyz says what the ledger waits for, or why it stopped.
const stageProbe = {
  name: "ledger",
  health: () =>
    problem
      ? { ok: false, stopped: problem.message }
      : (stage?.health() ?? { ok: false, waiting_for: waitingFor }),
};
const projectionProbe = {
  name: "projection",
  health: () =>
    projection
      ? { ok: projection.ready(), ...projection.status(), foldSeq: follower?.status().foldSeq ?? 0 }
      : { ok: false, starting: true },
};
const http = await serveHttp({
  host: config.httpHost,
  port: config.httpPort,
  logger,
  probes: [stageProbe, projectionProbe],
});
onShutdown(logger, [
  () => stage?.stop(),
  () => projection?.stop(),
  () => follower?.stop(),
  () => http.close(),
  () => nc.drain(),
  () => redis.quit(),
  () => telemetry.shutdown(),
]);

/** The log is not the one the ledger's state was built from: decide nothing, restore nothing. */
function stop(p: LogProblem): void {
  if (problem) return;
  problem = p;
  logger.error({ problem: p.kind }, `ledger stopped: ${p.message}`);
  writer?.halt(p.message);
  void stage?.stop();
  void projection?.stop();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bucket = await untilAnswered(logger, `bucket ${config.ledger.snapshotBucket}`, () =>
  openSnapshotBucket(js, config.ledger.snapshotBucket, config.stage.replicas),
);
const snapshots = createSnapshotStore(bucket, { chunkBytes: config.ledger.snapshotChunkBytes });
// LEDGER is created by the deploy step only: wait for it, and check that it is the log the
// snapshot and the Redis projection were built from before folding it.
for (let attempt = 0; ; attempt++) {
  try {
    const snapshot = await snapshots.readLatest().catch((err: unknown) => {
      logger.error({ err }, "snapshot unreadable; folding from the first message");
      return undefined;
    });
    if (snapshot)
      logger.info(
        { snapshot_seq: snapshot.state.seq, outcomes: snapshot.state.outcomes.size },
        "snapshot loaded",
      );
    waitingFor = "redis";
    const marks = await store.marks();
    const verdict = await checkLogIntegrity({
      jsm,
      ...(snapshot ? { snapshot: snapshot.pointer } : {}),
      projection: marks,
    });
    if (verdict.problem?.kind === "missing") {
      waitingFor = verdict.problem.message;
      if (attempt % 20 === 0) logger.warn(`waiting: ${verdict.problem.message}`);
      await sleep(500);
      continue;
    }
    if (verdict.problem) {
      stop(verdict.problem);
      break;
    }
    waitingFor = "the fold to reach the end of the log";
    follower = createLogFollower({
      js,
      jsm,
      snapshots,
      logger,
      snapshotEvery: config.ledger.snapshotEvery,
      streamCreated: verdict.position.created,
      ...(snapshot ? { from: snapshot.state } : {}),
    });
    follower.onProblem(stop);
    await follower.start();
    projection = createRedisProjection({
      js,
      jsm,
      store,
      follower,
      logger,
      streamCreated: verdict.position.created,
      checkEveryMs: config.ledger.epochCheckMs,
    });
    projection.start();
    writer = createLedgerWriter({
      follower,
      // No publish retries of its own: an unanswered append is settled by reading the log.
      publisher: createEventPublisher({
        js,
        nc,
        settings: { publishTimeoutMs: config.stage.publishTimeoutMs, publishRetryHorizonMs: 0 },
        logger,
        stage: "ledger",
        metrics: createStageMetrics(registry),
      }),
      logger,
      catchUpTimeoutMs: config.ledger.catchUpTimeoutMs,
    });
    stage = await runStage({
      definition: ledgerStage,
      deps: { writer },
      nc,
      redis,
      logger,
      registry,
      settings: config.stage,
      onWaiting: (what) => {
        waitingFor = what;
      },
    });
    break;
  } catch (err) {
    if (problem) break;
    // Settings that contradict exactly-once refuse the start, as in every stage.
    if (err instanceof ConfigError) throw err;
    await projection?.stop();
    await follower?.stop();
    projection = undefined;
    follower = undefined;
    writer = undefined;
    logger.warn({ err, attempt }, "ledger cannot start yet; retrying");
    await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)));
  }
}
