// A crash at each step of the recipe (the process dies with SIGKILL at a named point),
// then a restart: exactly one output message and one effect per input.
import { Streams } from "@jetmesh/contracts";
import { CrashPoints } from "@jetmesh/stage/internal";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";
import { startEchoProcess } from "./support/stage-process.ts";

const N = 12;

describe("runtime crash points", () => {
  afterAll(async () => {
    await stopAllProcesses();
  });

  for (const point of Object.values(CrashPoints)) {
    it(`runtime - a crash ${point} then a restart gives one output and one effect per input`, async () => {
      const infra: Infra = await startInfra();
      try {
        const urls = { natsUrl: infra.nats.url, redisUrl: infra.redisServer.url };
        // The first process dies the 4th time it reaches the point.
        const first = await startEchoProcess(urls, { JETMESH_CRASH_AT: point, JETMESH_CRASH_AFTER: "4" });
        for (let i = 0; i < N; i++) await publishEvent(infra.js, requested(i, {}, point));
        const exit = await Promise.race([
          first.exited,
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error("no crash within 60 s")), 60_000),
          ),
        ]);
        expect(exit.signal).toBe("SIGKILL");
        expect(first.lines().join("\n")).toContain(`crash point ${point} reached`);

        const second = await startEchoProcess(urls);
        const outputs = await waitFor(
          async () => {
            const v = await readStream(infra.jsm, Streams.VALIDATION.name);
            return new Set(v.map((e) => e.env?.correlationId)).size >= N ? v : undefined;
          },
          { what: `${N} distinct outputs`, timeoutMs: 60_000 },
        );
        // Quiet: nothing pending or unacknowledged, so no late duplicate can still come.
        await waitFor(
          async () => {
            const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
            return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
          },
          { what: "echo consumer quiet", timeoutMs: 60_000 },
        );
        const final = await readStream(infra.jsm, Streams.VALIDATION.name);
        expect(final.length).toBe(outputs.length);
        const perTransfer = new Map<string, number>();
        for (const e of final)
          perTransfer.set(e.env!.correlationId, (perTransfer.get(e.env!.correlationId) ?? 0) + 1);
        expect([...perTransfer.values()].every((n) => n === 1)).toBe(true);
        expect(perTransfer.size).toBe(N);
        for (let i = 0; i < N; i++) {
          expect(await infra.redis.get(`echo:effects:${point}-${i}`)).toBe("1");
        }
        await second.stop();
      } finally {
        await infra.close();
      }
    }, 240_000);
  }
});
