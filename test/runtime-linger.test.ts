// JETMESH_LINGER_MS: deliveries that arrive within the linger are processed in one turn (one
// claim script and one done script for all of them), each exactly once; a stop while they
// linger gives them back unprocessed, and the next instance processes them.
import { EventTypes } from "@jetmesh/contracts";
import {
  createLogger,
  defineStage,
  emit,
  runStage,
  type StageSettings,
  stageSettings,
  startTelemetry,
} from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";

startTelemetry({ serviceName: "runtime-linger-test" });
const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** Handler starts by transfer id (performance.now()), and the stage that records them. */
function lingerStage(name: string, starts: Map<string, number[]>) {
  return defineStage<"transfers.requested">({
    name,
    inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
    emits: [EventTypes.TransferValidated],
    handle: (evt) => {
      const { transferId, from, to, amountMinor, currency } = evt.data;
      starts.set(transferId, [...(starts.get(transferId) ?? []), performance.now()]);
      return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
    },
  });
}

/** Runs {@link lingerStage} `name` on the test's servers with these settings. */
function startLingerer(
  infra: Infra,
  name: string,
  starts: Map<string, number[]>,
  settings: Partial<StageSettings>,
) {
  return runStage({
    definition: lingerStage(name, starts),
    deps: {},
    nc: infra.nc,
    redis: infra.redis,
    logger,
    settings: stageSettings(settings),
  });
}

/** EVALSHA and EVAL calls redis-server has run so far (the claim and done scripts). */
async function scriptCalls(infra: Infra): Promise<number> {
  const stats = (await infra.redis.info("commandstats")) as string;
  let n = 0;
  for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

describe("runtime linger", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
  }, 60_000);
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });
  beforeEach(async () => {
    for (const s of ["INGRESS", "VALIDATION"]) await infra.jsm.streams.purge(s).catch(() => {});
  });

  it("runtime - deliveries within the linger are processed together: one claim and one done script for all, each output once", async () => {
    const starts = new Map<string, number[]>();
    const lingerMs = 400;
    const stage = await startLingerer(infra, "lingerer", starts, { lingerMs });
    try {
      // Let the consumer's pull settle (its setup runs no scripts), then count from here.
      await waitFor(
        async () =>
          (await infra.jsm.consumers.info("INGRESS", "lingerer").catch(() => undefined)) ?? undefined,
        {
          what: "the consumer",
        },
      );
      await new Promise((r) => setTimeout(r, 200));
      const before = await scriptCalls(infra);
      const firstAt = performance.now();
      // One by one, each stored before the next is sent: without a linger each would be a
      // delivery of its own, processed in a turn of its own.
      for (let i = 1; i <= 6; i++) await publishEvent(infra.js, requested(i));
      const sentIn = performance.now() - firstAt;
      await waitFor(() => (starts.size === 6 ? true : undefined), {
        what: "six handlers",
        timeoutMs: 10_000,
      });
      const begun = [...starts.values()].flat();
      expect(begun).toHaveLength(6);
      // Nothing ran before the first delivery's linger was over...
      expect(Math.min(...begun) - firstAt).toBeGreaterThanOrEqual(lingerMs - 5);
      // ...and the six ran in one go (their claims answered by one script call).
      expect(sentIn).toBeLessThan(lingerMs);
      expect(Math.max(...begun) - Math.min(...begun)).toBeLessThan(100);
      await waitFor(
        async () => ((await readStream(infra.jsm, "VALIDATION")).length === 6 ? true : undefined),
        {
          what: "six outputs",
        },
      );
      await waitFor(
        async () =>
          (await infra.jsm.consumers.info("INGRESS", "lingerer")).num_ack_pending === 0 ? true : undefined,
        { what: "every input acked" },
      );
      // A claim script and a done script for the six (per message it would be twelve).
      expect(await scriptCalls(infra)).toBe(before + 2);
      const out = await readStream(infra.jsm, "VALIDATION");
      expect(out.map((o) => o.env!.correlationId).sort()).toEqual(["t-1", "t-2", "t-3", "t-4", "t-5", "t-6"]);
    } finally {
      await stage.stop();
    }
  }, 60_000);

  it("runtime - a stop while deliveries linger gives them back unprocessed, and the next instance processes each once", async () => {
    const first = new Map<string, number[]>();
    // Longer than the test waits (and at most half the ack wait): only the stop ends this linger.
    const stage = await startLingerer(infra, "held", first, {
      lingerMs: 30_000,
      ackWaitMs: 60_000,
      drainTimeoutMs: 10_000,
    });
    for (let i = 1; i <= 3; i++) await publishEvent(infra.js, requested(i, {}, "h"));
    await waitFor(
      async () =>
        (await infra.jsm.consumers.info("INGRESS", "held")).num_ack_pending === 3 ? true : undefined,
      { what: "three deliveries held" },
    );
    const stopAt = performance.now();
    await stage.stop();
    // Nothing in flight to drain: the stop does not wait for the linger or the drain deadline.
    expect(performance.now() - stopAt).toBeLessThan(5_000);
    expect(first.size).toBe(0);
    expect(await readStream(infra.jsm, "VALIDATION")).toEqual([]);

    const second = new Map<string, number[]>();
    const next = await startLingerer(infra, "held", second, { lingerMs: 0, ackWaitMs: 60_000 });
    try {
      await waitFor(
        async () => ((await readStream(infra.jsm, "VALIDATION")).length >= 3 ? true : undefined),
        {
          what: "three outputs",
          timeoutMs: 15_000,
        },
      );
      expect([...second.keys()].sort()).toEqual(["h-1", "h-2", "h-3"]);
      expect([...second.values()].every((s) => s.length === 1)).toBe(true);
      const out = await readStream(infra.jsm, "VALIDATION");
      expect(out.map((o) => o.env!.correlationId).sort()).toEqual(["h-1", "h-2", "h-3"]);
    } finally {
      await next.stop();
    }
  }, 60_000);
});
