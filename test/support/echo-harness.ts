// The in-process harness of the runtime tests: a fresh nats-server and redis-server per
// test, the echo fixture stage run with `runStage` under fast settings, and a wait for its
// consumer to go quiet. Each runtime test file calls it once inside its describe().
import { Streams } from "@jetmesh/contracts";
import {
  createLogger,
  createRedis,
  type Redis,
  runStage,
  type StageHandle,
  type StageSettings,
  stageSettings,
} from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import type { ConsumerInfo } from "@nats-io/jetstream";
import { afterAll, afterEach, beforeEach } from "vitest";
import { type EchoDeps, echoStage } from "../fixtures/echo-stage.ts";
import { type Infra, startInfra } from "./infra.ts";

export const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** Redeliveries within a second or two; key lifetimes the settings check accepts. */
export const FAST: Partial<StageSettings> = {
  ackWaitMs: 1500,
  maxDeliver: 4,
  retryBaseMs: 50,
  retryMaxMs: 200,
  idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
  idempotencyHorizonMs: 600_000,
  publishTimeoutMs: 500,
  publishRetryHorizonMs: 0,
};

export interface EchoHarness {
  readonly infra: Infra;
  readonly redis: Redis;
  /** Runs the echo stage with these deps and settings (over the file's own); stopped after the test. */
  start(deps?: Partial<EchoDeps>, settings?: Partial<StageSettings>): Promise<StageHandle>;
  /** Stops the stages started so far in this test. */
  stopAll(): Promise<void>;
  /** Resolves once the echo consumer on `stream` has nothing pending or unacknowledged. */
  quiet(stream?: string): Promise<ConsumerInfo>;
}

/** Registers the per-test servers and stages; `fast` overrides {@link FAST} for the file. */
export function echoHarness(fast: Partial<StageSettings> = {}): EchoHarness {
  let infra: Infra;
  let redis: Redis;
  const stages: StageHandle[] = [];
  beforeEach(async () => {
    infra = await startInfra();
    redis = createRedis({ url: infra.redisServer.url, name: "test" });
  });
  afterEach(async () => {
    for (const s of stages.splice(0)) await s.stop();
    redis.disconnect();
    await infra.close();
  });
  afterAll(() => stopAllProcesses());
  return {
    get infra() {
      return infra;
    },
    get redis() {
      return redis;
    },
    async start(deps = {}, settings = {}) {
      const s = await runStage({
        definition: echoStage,
        deps: { redis, delayMs: 0, failTimes: 0, ...deps },
        nc: infra.nc,
        redis,
        logger,
        settings: stageSettings({ ...FAST, ...fast, ...settings }),
      });
      stages.push(s);
      return s;
    },
    async stopAll() {
      for (const s of stages.splice(0)) await s.stop();
    },
    quiet: (stream = Streams.INGRESS.name) =>
      waitFor(
        async () => {
          const c = await infra.jsm.consumers.info(stream, "echo");
          return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
        },
        { what: "consumer quiet", timeoutMs: 30_000 },
      ),
  };
}
