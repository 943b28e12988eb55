// Broker and Redis loss under a running stage, and backpressure with a slow handler.
import { readFileSync } from "node:fs";
import { Streams, toStreamConfig } from "@jetmesh/contracts";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import type { JetStreamClient } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import { type Infra, publishEvent, readStream, requested, startInfra } from "./support/infra.ts";
import { startEchoProcess } from "./support/stage-process.ts";

/** Publishes with the same Nats-Msg-Id until the stream acknowledges (a client retrying). */
async function publishRetrying(js: JetStreamClient, env: ReturnType<typeof requested>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      await publishEvent(js, env);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`could not publish ${env.eventId}`);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

async function readyz(
  port: number,
): Promise<{ checks: Record<string, { max_in_flight_seen: number; in_flight: number }> }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return (await res.json()) as never;
}

function httpPort(lines: string[]): number {
  for (const l of lines) {
    const m = /"port":(\d+).*"msg":"echo ready"/.exec(l);
    if (m) return Number(m[1]);
  }
  throw new Error("no port in the child's log");
}

describe("runtime faults", () => {
  afterAll(() => stopAllProcesses());

  it("runtime - nats-server killed -9 and redis restarted mid-stream: nothing lost, nothing doubled", async () => {
    const infra: Infra = await startInfra({ redisPersistence: true });
    try {
      const urls = { natsUrl: infra.nats.url, redisUrl: infra.redisServer.url };
      const stage = await startEchoProcess(urls);
      const N = 300;
      const publishing = (async () => {
        for (let i = 0; i < N; i++) {
          await publishRetrying(infra.js, requested(i, {}, "f"));
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await new Promise((r) => setTimeout(r, 600));
      await infra.nats.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 1000));
      await infra.nats.restart();
      await new Promise((r) => setTimeout(r, 800));
      await infra.redisServer.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 1000));
      await infra.redisServer.restart();
      await publishing;
      await waitFor(
        async () => {
          const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
          return c.num_pending === 0 && c.num_ack_pending === 0 && c.delivered.stream_seq >= N
            ? c
            : undefined;
        },
        { what: "echo consumer quiet after the faults", timeoutMs: 60_000, intervalMs: 250 },
      );
      const ingress = await readStream(infra.jsm, Streams.INGRESS.name);
      expect(ingress).toHaveLength(N);
      const out = await readStream(infra.jsm, Streams.VALIDATION.name);
      const ids = out.map((o) => o.env!.correlationId);
      expect(new Set(ids).size).toBe(N);
      expect(ids).toHaveLength(N);
      const effects = await infra.redis.mget(Array.from({ length: N }, (_, i) => `echo:effects:f-${i}`));
      expect(effects.every((v) => v === "1")).toBe(true);
      expect(stage.isRunning()).toBe(true);
      // the stage noticed and said so
      expect(stage.lines().join("\n")).toMatch(/nats disconnected; paused|redis down; paused/);
      await stage.stop();
    } finally {
      await infra.close();
    }
  }, 240_000);

  it("runtime - SIGTERM drains: in-flight work finishes, the process exits 0, a restart completes the rest", async () => {
    const infra: Infra = await startInfra();
    try {
      const urls = { natsUrl: infra.nats.url, redisUrl: infra.redisServer.url };
      const stage = await startEchoProcess(urls, { ECHO_DELAY_MS: "200", JETMESH_MAX_IN_FLIGHT: "8" });
      const N = 60;
      for (let i = 0; i < N; i++) await publishEvent(infra.js, requested(i, {}, "d"));
      await waitFor(
        async () => (await readStream(infra.jsm, Streams.VALIDATION.name)).length > 0 || undefined,
        {
          what: "first outputs",
          timeoutMs: 60_000,
        },
      );
      const exit = await stage.stop(30_000);
      expect(exit.code).toBe(0);
      expect(stage.lines().join("\n")).toMatch(/"msg":"drained"/);
      const second = await startEchoProcess(urls);
      await waitFor(
        async () => {
          const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
          return c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
        },
        { what: "quiet after restart", timeoutMs: 60_000 },
      );
      const ids = (await readStream(infra.jsm, Streams.VALIDATION.name)).map((o) => o.env!.correlationId);
      expect(ids).toHaveLength(N);
      expect(new Set(ids).size).toBe(N);
      await second.stop();
    } finally {
      await infra.close();
    }
  }, 240_000);

  it("runtime - backpressure: 50,000 waiting messages, a slow handler, bounded in flight and flat memory", async () => {
    const infra: Infra = await startInfra();
    try {
      const urls = { natsUrl: infra.nats.url, redisUrl: infra.redisServer.url };
      const N = 50_000;
      // Fill the stream first: the stage starts with 50k waiting.
      await infra.jsm.streams.add(toStreamConfig(Streams.INGRESS) as never);
      const window: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) {
        window.push(publishEvent(infra.js, requested(i, {}, "bp")));
        if (window.length >= 500) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
      expect((await infra.jsm.streams.info(Streams.INGRESS.name)).state.messages).toBe(N);

      const stage = await startEchoProcess(urls, {
        ECHO_DELAY_MS: "20",
        JETMESH_MAX_IN_FLIGHT: "16",
        JETMESH_MAX_ACK_PENDING: "64",
        JETMESH_ACK_WAIT_MS: "10000",
        // The 50,000 messages are stored before the stage creates its consumer.
        JETMESH_CONSUMER_START: "all",
      });
      const port = httpPort(stage.lines());
      const rss: number[] = [];
      let maxAckPending = 0;
      for (let t = 0; t < 32; t++) {
        await new Promise((r) => setTimeout(r, 250));
        rss.push(rssMb(stage.pid));
        const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
        maxAckPending = Math.max(maxAckPending, c.num_ack_pending);
      }
      const ready = await readyz(port);
      const seen = ready.checks.echo!.max_in_flight_seen;
      expect(seen).toBeGreaterThan(1); // it did run concurrently
      expect(seen).toBeLessThanOrEqual(16);
      expect(maxAckPending).toBeLessThanOrEqual(64);
      const c = await infra.jsm.consumers.info(Streams.INGRESS.name, "echo");
      expect(c.num_pending).toBeGreaterThan(30_000); // most still waits in the broker, not in the heap
      expect(c.delivered.stream_seq).toBeGreaterThan(500); // and it made progress
      const firstHalf = Math.max(...rss.slice(4, 16));
      const secondHalf = Math.max(...rss.slice(16));
      expect(secondHalf - firstHalf).toBeLessThan(25);
      await stage.kill();
    } finally {
      await infra.close();
    }
  }, 240_000);
});
