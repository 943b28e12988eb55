import { namesFor, StreamNames } from "@jetmesh/contracts";
import {
  ConfigError,
  type ProcessClients,
  type ProcessParts,
  type NatsConnection,
  type Redis,
  runStage,
  type StageHandle,
  untilAnswered,
} from "@jetmesh/stage";
import { type CrashHook, createEventPublisher, createStageMetrics } from "@jetmesh/stage/internal";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { LedgerConfig } from "./config.ts";
import { ledgerStage } from "./handler.ts";
import { createLedgerWriter, type LedgerWriter } from "./ledger-writer.ts";
import { checkLogIntegrity } from "./log-integrity.ts";
import { createLogFollower, type LogFollower, type LogProblem } from "./log-follower.ts";
import { registerLedgerMetrics } from "./metrics.ts";
import { createRedisProjection, type RedisProjection } from "./redis-projection.ts";
import { createSnapshotStore, openSnapshotBucket } from "./snapshots.ts";
import { createLedgerStore } from "./store.ts";

/** What {@link startLedger} needs: the clients main.ts (or a simulated world) built. */
export interface StartLedgerOptions {
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly config: Pick<LedgerConfig, "ledger" | "stage">;
  /** Test seam: the runtime's crash hook (see runStage). */
  readonly crashHook?: CrashHook;
}

/** A started ledger: its probes, and a stop that drains it. */
export interface LedgerHandle {
  /** The decisions: the stage's health, what it waits for, or why it stopped. */
  stageHealth(): { ok: boolean } & Record<string, unknown>;
  /** The Redis projection: applied position against the fold of the log. */
  projectionHealth(): { ok: boolean } & Record<string, unknown>;
  /** Why the ledger stopped deciding (the log is not the one its state was built from). */
  problem(): LogProblem | undefined;
  /** Resolves once the stage runs or the ledger stopped on a problem; rejects on a ConfigError. */
  readonly started: Promise<void>;
  /** Drains the stage, then the projection and the follower. */
  stop(): Promise<void>;
}

/**
 * The ledger's wiring, shared by main.ts and the simulator: waits for LEDGER (created by the
 * deploy step only), checks that it is the log the snapshot and the Redis projection were
 * built from, folds it (log follower), starts the Redis projection and the writer whose
 * append is the commit point, then runs the stage. A start that fails is retried with
 * backoff; a log that is not the expected one stops the ledger for good ({@link problem}).
 */
export function startLedger(o: StartLedgerOptions): LedgerHandle {
  const { nc, redis, logger, registry, config } = o;
  const js = jetstream(nc);
  const store = createLedgerStore(redis, { outcomeTtlMs: config.ledger.outcomeTtlMs });
  let stage: StageHandle | undefined;
  let follower: LogFollower | undefined;
  let projection: RedisProjection | undefined;
  let writer: LedgerWriter | undefined;
  let problem: LogProblem | undefined;
  let stopping = false;
  let waitingFor = "the log";
  registerLedgerMetrics(registry, {
    follower: () => follower,
    projection: () => projection,
    writer: () => writer,
    problem: () => problem,
  });

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
  // LEDGER and the snapshot bucket as named in the ledger's namespace (JETMESH_NAMESPACE).
  const names = namesFor(config.stage.namespace);
  const stream = names.stream(StreamNames.Ledger);
  const started = (async () => {
    const jsm = await jetstreamManager(nc);
    const snapshotBucket = names.bucket(config.ledger.snapshotBucket);
    const bucket = await untilAnswered(logger, `bucket ${snapshotBucket}`, () =>
      openSnapshotBucket(js, snapshotBucket, config.stage.replicas),
    );
    const snapshots = createSnapshotStore(bucket, { chunkBytes: config.ledger.snapshotChunkBytes });
    // LEDGER is created by the deploy step only: wait for it, and check that it is the log the
    // snapshot and the Redis projection were built from before folding it.
    for (let attempt = 0; !stopping; attempt++) {
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
          stream,
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
          stream,
          snapshots,
          logger,
          snapshotEvery: config.ledger.snapshotEvery,
          outcomeTtlMs: config.ledger.outcomeTtlMs,
          streamCreated: verdict.position.created,
          ...(snapshot ? { from: snapshot.state } : {}),
        });
        follower.onProblem(stop);
        await follower.start();
        projection = createRedisProjection({
          js,
          jsm,
          stream,
          store,
          follower,
          logger,
          streamCreated: verdict.position.created,
          checkEveryMs: config.ledger.epochCheckMs,
        });
        projection.start();
        writer = createLedgerWriter({
          follower,
          stream,
          outcomeTtlMs: config.ledger.outcomeTtlMs,
          // No publish retries of its own: an unanswered append is settled by reading the log.
          publisher: createEventPublisher({
            js,
            nc,
            settings: {
              namespace: config.stage.namespace,
              publishTimeoutMs: config.stage.publishTimeoutMs,
              publishRetryHorizonMs: 0,
            },
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
          ...(o.crashHook ? { crashHook: o.crashHook } : {}),
          onWaiting: (what) => {
            waitingFor = what;
          },
        });
        if (stopping) await stage.stop();
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
  })();
  return {
    stageHealth: () =>
      problem
        ? { ok: false, stopped: problem.message }
        : (stage?.health() ?? { ok: false, waiting_for: waitingFor }),
    projectionHealth: () =>
      projection
        ? { ok: projection.ready(), ...projection.status(), foldSeq: follower?.status().foldSeq ?? 0 }
        : { ok: false, starting: true },
    problem: () => problem,
    started,
    async stop() {
      stopping = true;
      await stage?.stop();
      await projection?.stop();
      await follower?.stop();
    },
  };
}

/** The ledger's /readyz probes: the decisions, and the Redis projection. */
export const LEDGER_PROBES = ["ledger", "projection"] as const;

/** The ledger as a process part for serveProcess: started, its two probes, and its stop. */
export function ledgerProcess(config: LedgerConfig): (c: ProcessClients) => ProcessParts {
  return ({ nc, redis, logger, registry }) => {
    const ledger = startLedger({ nc, redis, logger, registry, config });
    return {
      health: { ledger: () => ledger.stageHealth(), projection: () => ledger.projectionHealth() },
      stop: () => ledger.stop(),
      started: ledger.started,
    };
  };
}
