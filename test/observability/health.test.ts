// /healthz and /readyz as an orchestrator uses them: /healthz says the process lives (never
// restart it for a dependency outage), /readyz says it can do work (NATS and Redis
// reachable, consumers bound, not draining), and turns 503 while a stage drains.
import { EventTypes, makeEnvelope, StreamNames } from "@jetmesh/contracts";
import {
  type FaultProxy,
  type NatsServerHandle,
  type RedisServerHandle,
  startFaultProxy,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readStream } from "../support/infra.ts";
import {
  httpGet,
  publishTraced,
  type RunningService,
  serviceEnv,
  startBank,
  startService,
} from "./support/pipeline.ts";

const TAG = Math.random().toString(36).slice(2, 8);

type Readiness = {
  status: number;
  body: { checks?: Record<string, Record<string, unknown>> } & Record<string, unknown>;
};

async function readyz(s: RunningService): Promise<Readiness> {
  const r = await httpGet(`${s.opsUrl}/readyz`);
  return { status: r.status, body: JSON.parse(r.body) as Readiness["body"] };
}

describe("health endpoints", { timeout: 120_000 }, () => {
  let nats: NatsServerHandle;
  let redis: RedisServerHandle;
  let nc: NatsConnection;
  let bank: RunningService;
  let services: RunningService[];
  let redisProxy: FaultProxy;

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    nc = await connect({ servers: nats.url });
    // The deploy step: LEDGER (which payout reads) is never created by a service.
    await provisionStreams(await jetstreamManager(nc), {
      replicas: 1,
      logger: createLogger({ service: "test", level: "silent" }),
    });
    // The validator reaches Redis through a proxy, so the test can make Redis slow for it alone.
    redisProxy = await startFaultProxy({ targetPort: redis.port });
    bank = await startBank();
    const env = serviceEnv({ natsUrl: nats.url, redisUrl: redis.url }, { OTEL_SDK_DISABLED: "true" });
    services = await Promise.all([
      startService("gateway", env, { portKey: "GATEWAY_PORT" }),
      startService("validator", {
        ...env,
        REDIS_URL: redisProxy.url("redis"),
        JETMESH_DRAIN_TIMEOUT_MS: "20000",
      }),
      startService("payout", {
        ...env,
        PAYOUT_BANK_URL: bank.url,
      }),
    ]);
  }, 300_000);
  afterAll(async () => {
    await nc?.close();
    await stopAllProcesses();
    await redisProxy?.close();
    await Promise.all([nats?.stop(), redis?.stop()]);
  }, 60_000);

  it("health - /healthz and /readyz answer 200 with every check ok while NATS and Redis are reachable", async () => {
    for (const s of services) {
      expect((await httpGet(`${s.opsUrl}/healthz`)).status, s.name).toBe(200);
      const r = await readyz(s);
      expect(r.status, `${s.name} ${JSON.stringify(r.body)}`).toBe(200);
      expect(r.body.ready, s.name).toBe(true);
      for (const [name, check] of Object.entries(r.body.checks ?? {}))
        expect(check.ok, `${s.name}.${name}`).toBe(true);
    }
    const stage = await readyz(services[2]!);
    expect(stage.body.checks?.payout).toMatchObject({
      nats: true,
      redis: true,
      consumers: true,
      draining: false,
    });
  });

  it("health - /readyz turns 503 naming redis while Redis is down, /healthz stays 200, and both recover", async () => {
    await redis.kill();
    try {
      for (const s of services) {
        const down = await waitFor(
          async () => {
            const r = await readyz(s);
            return r.status === 503 ? r : undefined;
          },
          { what: `${s.name} not ready without redis`, timeoutMs: 20_000, intervalMs: 100 },
        );
        expect(down.body.ready, s.name).toBe(false);
        expect(JSON.stringify(down.body.checks), s.name).toMatch(/"redis":(false|\{"ok":false)/);
        // The process is alive and should not be restarted for an outage it waits out.
        expect((await httpGet(`${s.opsUrl}/healthz`)).status, s.name).toBe(200);
      }
    } finally {
      await redis.restart();
    }
    for (const s of services) {
      await waitFor(async () => (await readyz(s)).status === 200, {
        what: `${s.name} ready again`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
    }
  });

  it("health - a stage's /readyz answers 503 draining while it finishes in-flight work after SIGTERM, then it exits 0", async () => {
    const validator = services[1]!;
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const validated = async (transferId: string) =>
      (await readStream(jsm, StreamNames.Validation)).filter((e) => e.env?.correlationId === transferId);
    const input = (n: string) => {
      const transferId = `${TAG}-${n}`;
      return makeEnvelope(
        EventTypes.TransferRequested,
        {
          transferId,
          from: "external",
          to: `acc-${TAG}`,
          amountMinor: 100,
          currency: "EUR",
          requestedAt: new Date().toISOString(),
        },
        { eventId: `${TAG}-${n}-req`, correlationId: transferId, causationId: `test:${n}`, producer: "test" },
      );
    };
    // One message first, at full speed, so that the stage's scripts are loaded in Redis.
    const warm = input("warm");
    await publishTraced(js, warm);
    await waitFor(async () => (await validated(warm.correlationId)).length === 1, { what: "warm-up output" });
    // Slow Redis (not down): the next message's claim and done-marking take seconds.
    redisProxy.setLatency(1200);
    const slow = input("drain");
    await publishTraced(js, slow);
    await waitFor(
      async () =>
        /jetmesh_in_flight_messages\{stage="validator"\} 1\b/.test(
          (await httpGet(`${validator.url}/metrics`)).body,
        ),
      { what: "a message in flight", timeoutMs: 30_000, intervalMs: 50 },
    );
    void validator.child.kill("SIGTERM");
    const draining = await waitFor(
      async () => {
        const r = await readyz(validator);
        return r.status === 503 ? r : undefined;
      },
      { what: "validator not ready while draining", timeoutMs: 5_000, intervalMs: 25 },
    );
    expect(draining.body.checks?.validator).toMatchObject({
      ok: false,
      draining: true,
      redis: true,
      in_flight: 1,
    });
    // Still alive: it only stops being a target for new work.
    expect((await httpGet(`${validator.url}/healthz`)).status).toBe(200);
    const exit = await validator.child.exited;
    redisProxy.setLatency(0);
    expect(exit).toEqual({ code: 0, signal: null });
    // Drained, not dropped: the in-flight message finished and its output was published.
    const lines = validator.child.lines().join("\n");
    expect(lines).toMatch(/"msg":"draining"/);
    expect(lines).toMatch(/"msg":"drained"/);
    expect(await validated(slow.correlationId)).toHaveLength(1);
  });
});
