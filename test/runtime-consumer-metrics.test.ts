// The consumer metrics the alerts watch, against a real nats-server and redis-server: the
// config drift gauge follows a consumer changed by hand (JetmeshConsumerConfigDrift), and the
// restart counter exists at 0 for every reason from the start, so that increase() sees the
// first restart (JetmeshConsumerRestarting).
import { Writable } from "node:stream";
import { createLogger, createRedis, metricsRegistry, runStage, stageSettings } from "@jetmesh/stage";
import { type ConsumerPosition, POSITIONS_BUCKET } from "@jetmesh/stage/internal";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { Kvm } from "@nats-io/kv";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { echoStage } from "./fixtures/echo-stage.ts";
import { FAST } from "./support/echo-harness.ts";
import { type Infra, publishEvent, requested, startInfra } from "./support/infra.ts";

/** Every reason the supervisor restarts a pull for (consume-loop.ts RestartReasons). */
const RESTART_REASONS = [
  "heartbeats_missed",
  "consumer_deleted",
  "consumer_not_found",
  "stream_not_found",
  "stalled",
  "iterator_ended",
  "error",
];

/** The value of one series of the process registry, as /metrics would show it. */
async function sample(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = metricsRegistry().getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const match = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return match?.value;
}

describe("runtime consumer metrics", () => {
  let infra: Infra;
  const lines: { level: string; msg: string; drift?: string[] }[] = [];
  const logger = createLogger({
    service: "test",
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    }),
  });
  const stops: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    infra = await startInfra();
    lines.length = 0;
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await infra.close();
  });
  afterAll(() => stopAllProcesses());

  async function start() {
    const redis = createRedis({ url: infra.redisServer.url, name: "test" });
    const stage = await runStage({
      definition: echoStage,
      deps: { redis, delayMs: 0, failTimes: 0 },
      nc: infra.nc,
      redis,
      logger,
      settings: stageSettings(FAST),
    });
    stops.push(async () => {
      await stage.stop();
      redis.disconnect();
    });
    return stage;
  }

  it("runtime - the stage records what it declares for its consumer next to its position, for a checker in another process", async () => {
    await start();
    const settings = stageSettings(FAST);
    const kv = await new Kvm(infra.js).open(POSITIONS_BUCKET);
    const record = await waitFor(
      async () => {
        const e = await kv.get("INGRESS.echo");
        const r = e?.operation === "PUT" ? e.json<ConsumerPosition>() : undefined;
        return r?.declared ? r : undefined;
      },
      { what: "the position record with its declaration", timeoutMs: 10_000 },
    );
    expect(record.declared).toEqual({ ackWaitMs: settings.ackWaitMs, maxAckPending: settings.maxAckPending });
    const info = await infra.jsm.consumers.info("INGRESS", "echo");
    expect(info.config.ack_wait).toBe(settings.ackWaitMs * 1_000_000);
    expect(info.config.max_ack_pending).toBe(settings.maxAckPending);
  });

  it("runtime - consumer restarts are counted from 0 for every reason as soon as the stage starts", async () => {
    await start();
    for (const reason of RESTART_REASONS)
      expect(
        await sample("jetmesh_consumer_restarts_total", { stage: "echo", stream: "INGRESS", reason }),
        reason,
      ).toBe(0);
    // The first restart is then an increase from 0, not a series appearing at 1. Which reason
    // the client reports for a deleted consumer depends on timing; any will do.
    await infra.jsm.consumers.delete("INGRESS", "echo");
    await publishEvent(infra.js, requested(1));
    await waitFor(
      async () => {
        let total = 0;
        for (const reason of RESTART_REASONS)
          total +=
            (await sample("jetmesh_consumer_restarts_total", { stage: "echo", stream: "INGRESS", reason })) ??
            0;
        return total >= 1 || undefined;
      },
      { what: "a restart counted", timeoutMs: 40_000 },
    );
  });

  it("runtime - a consumer changed by hand sets the drift gauge within seconds, and setting it back clears it", async () => {
    await start();
    const drift = () => sample("jetmesh_consumer_config_drift", { stage: "echo", stream: "INGRESS" });
    await waitFor(async () => (await drift()) === 0 || undefined, {
      what: "drift 0 at start",
      timeoutMs: 10_000,
    });
    const declared = (await infra.jsm.consumers.info("INGRESS", "echo")).config.max_ack_pending;

    await infra.jsm.consumers.update("INGRESS", "echo", { max_ack_pending: 7 });
    await waitFor(async () => (await drift()) === 1 || undefined, { what: "drift 1", timeoutMs: 10_000 });
    // The stage reports; it never changes the consumer back itself.
    expect((await infra.jsm.consumers.info("INGRESS", "echo")).config.max_ack_pending).toBe(7);
    // Several checks later the change is still logged once.
    await new Promise((r) => setTimeout(r, 6_000));
    const drifted = lines.filter((l) => l.msg === "consumer settings drifted; not changed");
    expect(drifted).toHaveLength(1);
    expect(drifted[0]?.level).toBe("warn");
    expect(drifted[0]?.drift?.join()).toMatch(/max_ack_pending: server 7, declared /);

    await infra.jsm.consumers.update("INGRESS", "echo", { max_ack_pending: declared });
    await waitFor(async () => (await drift()) === 0 || undefined, {
      what: "drift back to 0",
      timeoutMs: 10_000,
    });
    expect(lines.filter((l) => l.msg === "consumer settings drifted; not changed")).toHaveLength(1);
    expect(lines.filter((l) => l.msg === "consumer settings match the declaration again")).toHaveLength(1);
  });
});
