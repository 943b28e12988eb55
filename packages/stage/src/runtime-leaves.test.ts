import { Writable } from "node:stream";
import { Streams, toStreamConfig } from "@jetmesh/contracts";
import type { StreamConfig } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { BaseEnv, loadRedisSentinel, loadStageConfig, parseConfig, stageSettings } from "./config.ts";
import { createCrashHook } from "./crash-points.ts";
import { ConfigError } from "./errors.ts";
import { Gate, Slots } from "./flow-control.ts";
import { createLogger, maskAccount } from "./logger.ts";
import { positionOf } from "./positions.ts";
import { redeliveryHorizonMs, retryDelayMs } from "./retry-policy.ts";
import { streamDrift } from "./provision.ts";
import { checkSettings } from "./settings-check.ts";

const stream = (
  name: string,
  over: Partial<{ duplicateWindowMs: number; replicas: number; retention: string; maxAgeMs: number }> = {},
) => ({
  name,
  duplicateWindowMs: 900_000,
  replicas: 1,
  retention: "limits",
  critical: name !== "DLQ",
  ...over,
});

describe("stage leaves", () => {
  it("positions - a consumer that acked nothing yet records its start, not the 0 nats-server 2.9 reports", () => {
    const at = (ack: [number, number], delivered: [number, number]) => ({
      ack_floor: { consumer_seq: ack[0], stream_seq: ack[1] },
      delivered: { consumer_seq: delivered[0], stream_seq: delivered[1] },
    });
    // Created at start sequence 3 (recreated at a position, or rewound): floor 2 until it delivers.
    expect(positionOf(at([0, 0], [0, 2]))).toBe(2);
    // Delivered, acked nothing: nothing to record (the last record stands).
    expect(positionOf(at([0, 0], [2, 4]))).toBeUndefined();
    expect(positionOf(at([2, 4], [3, 5]))).toBe(4);
    // A new consumer of a whole stream: 0 is its position.
    expect(positionOf(at([0, 0], [0, 0]))).toBe(0);
  });

  it("retry policy - delays grow exponentially, stay under the cap, and jitter within bounds", () => {
    const p = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
    expect(retryDelayMs(p, 1, () => 0)).toBe(50);
    expect(retryDelayMs(p, 1, () => 1)).toBe(100);
    expect(retryDelayMs(p, 3, () => 1)).toBe(400);
    expect(retryDelayMs(p, 20, () => 1)).toBe(1000);
    for (let n = 1; n < 30; n++) {
      const d = retryDelayMs(p, n);
      expect(d).toBeGreaterThanOrEqual(Math.min(1000, 100 * 2 ** (n - 1)) / 2);
      expect(d).toBeLessThanOrEqual(1000);
    }
    expect(retryDelayMs({ baseMs: 0, maxMs: 0, jitter: 0 }, 1)).toBe(1);
  });

  it("retry policy - the redelivery horizon takes the longest way a delivery can end", () => {
    const s = {
      ackWaitMs: 1000,
      maxDeliver: 3,
      retryMaxMs: 500,
      leaseMs: 1000,
      handlerTimeoutMs: 300,
      publishTimeoutMs: 200,
      publishRetryHorizonMs: 0,
    };
    // A dead process (ack wait 1000) is the longest gap here: 2 gaps before the 3rd delivery.
    expect(redeliveryHorizonMs(s)).toBe(2 * 1050);
    // A slow failing attempt: handler + publish + nak.
    expect(redeliveryHorizonMs({ ...s, handlerTimeoutMs: 5000 })).toBe(2 * (5000 + 200 + 500));
  });

  it("settings check - defaults pass; production without replicas or sync writes is refused", () => {
    const base = {
      outputs: [stream("VALIDATION")],
      inputs: [stream("INGRESS")],
      dlq: stream("DLQ"),
      serverVersion: "2.9.10",
    };
    expect(checkSettings({ settings: stageSettings(), ...base }).problems).toEqual([]);
    const prod = checkSettings({
      settings: stageSettings({ production: true }),
      ...base,
      serverVersion: "2.10.22",
    });
    expect(prod.problems.join("\n")).toMatch(/critical stream INGRESS has 1 replica/);
    expect(prod.problems.join("\n")).toMatch(/sync_interval: always and set JETMESH_SYNC_WRITES=true/);
    const r3 = {
      outputs: [stream("VALIDATION", { replicas: 3 })],
      inputs: [stream("INGRESS", { replicas: 3 })],
      dlq: stream("DLQ"),
    };
    expect(
      checkSettings({
        settings: stageSettings({ production: true, syncWrites: true }),
        ...r3,
        serverVersion: "2.10.22",
      }).problems,
    ).toEqual([]);
    const old = checkSettings({
      settings: stageSettings({ production: true }),
      ...r3,
      serverVersion: "2.9.10",
    });
    expect(old.problems).toEqual([]);
    expect(old.warnings.join()).toMatch(/no sync_interval setting/);
  });

  it("settings check - a linger longer than half the ack wait is refused", () => {
    const at = (lingerMs: number) =>
      checkSettings({
        settings: stageSettings({ lingerMs, ackWaitMs: 1000 }),
        outputs: [stream("VALIDATION")],
        inputs: [stream("INGRESS")],
        dlq: stream("DLQ"),
        serverVersion: "2.9.10",
      }).problems;
    expect(at(0)).toEqual([]);
    expect(at(500)).toEqual([]);
    expect(at(501).join("\n")).toMatch(/linger 501 ms must be at most half the ack wait 1000 ms/);
  });

  it("settings check - an idempotency key ttl not longer than an input stream's age limit is refused (retention plan)", () => {
    const day = 24 * 3600_000;
    const at = (ttlDays: number, ageDays: number, mode: "exactly-once" | "at-least-once" = "exactly-once") =>
      checkSettings({
        settings: stageSettings({ idempotencyTtlMs: ttlDays * day, mode }),
        outputs: [stream("VALIDATION", { maxAgeMs: ageDays * day })],
        inputs: [stream("INGRESS", { maxAgeMs: ageDays * day })],
        dlq: stream("DLQ"),
        serverVersion: "2.9.10",
      });
    // The defaults: keys live 7 days, event streams keep 3.
    expect(at(7, 3).problems).toEqual([]);
    // A message still in INGRESS could be delivered again after its guard expired: refused.
    const short = at(2, 3).problems;
    expect(short).toHaveLength(1);
    expect(short[0]).toMatch(
      /idempotency key ttl 172800000 ms must outlive stream INGRESS's age limit 259200000 ms/,
    );
    expect(at(3, 3).problems.join()).toMatch(/must outlive stream INGRESS's age limit/);
    // Only the stage's inputs are guarded by its keys; outputs are the next stage's inputs.
    expect(at(2, 3).problems.join()).not.toMatch(/VALIDATION/);
    // A stream without an age limit keeps messages longer than any key: the positions store
    // guards a recreated consumer, and the check says so.
    const forever = at(7, 0);
    expect(forever.problems).toEqual([]);
    expect(forever.warnings.join()).toMatch(/stream INGRESS has no age limit/);
    expect(at(2, 3, "at-least-once").problems).toEqual([]);
  });

  it("stream drift - a stream deployed before the retention plan (no age limit) is reported", () => {
    const want = toStreamConfig(Streams.INGRESS);
    const old = { ...want, max_age: 0 } as unknown as StreamConfig;
    expect(streamDrift(old, want)).toEqual([`max_age: server 0, declared ${3 * 24 * 3600_000 * 1_000_000}`]);
    expect(streamDrift(want as unknown as StreamConfig, want)).toEqual([]);
  });

  it("settings check - at-least-once mode skips the key-lifetime rules but keeps the window rule", () => {
    const v = checkSettings({
      settings: stageSettings({ mode: "at-least-once", idempotencyTtlMs: 1000 }),
      outputs: [stream("VALIDATION", { duplicateWindowMs: 1000 })],
      inputs: [],
      dlq: stream("DLQ"),
      serverVersion: "2.9.10",
    });
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]).toMatch(/duplicate window 1000 ms is shorter than the publish retry horizon/);
  });

  it("config - every bad key is listed at once and empty strings count as unset", () => {
    try {
      parseConfig(BaseEnv, {
        JETMESH_MAX_IN_FLIGHT: "zero",
        LOG_LEVEL: "loud",
        JETMESH_ACK_MODE: "maybe",
        NATS_URL: "",
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const keys = (err as ConfigError).problems.map((p) => p.split(" ")[0]);
      expect(keys).toEqual(
        expect.arrayContaining(["JETMESH_MAX_IN_FLIGHT", "LOG_LEVEL", "JETMESH_ACK_MODE"]),
      );
    }
    expect(parseConfig(BaseEnv, { NATS_URL: "" }).NATS_URL).toBe("nats://127.0.0.1:4222");
  });

  it("config - JETMESH_NAMESPACE: unset is production's names, a valid one is kept, an invalid one refused", () => {
    expect(loadStageConfig({}).stage.namespace).toBe("");
    expect(loadStageConfig({ JETMESH_NAMESPACE: "" }).stage.namespace).toBe("");
    expect(loadStageConfig({ JETMESH_NAMESPACE: "alice" }).stage.namespace).toBe("alice");
    for (const bad of ["Alice", "a.b", "a_b", "x".repeat(25)]) {
      try {
        loadStageConfig({ JETMESH_NAMESPACE: bad });
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).problems).toHaveLength(1);
        const [line = ""] = (err as ConfigError).problems;
        expect(line.startsWith(`JETMESH_NAMESPACE (${JSON.stringify(bad)})`), line).toBe(true);
      }
    }
  });

  it("config - Redis through Sentinel: the sentinels and the name together, ports in range, a readable line per mistake", () => {
    const c = loadStageConfig({
      REDIS_SENTINELS: "127.0.0.1:26379,redis-sentinel-2:26380",
      REDIS_SENTINEL_NAME: "jetmesh",
    });
    expect(c.redisSentinel).toEqual({
      sentinels: [
        { host: "127.0.0.1", port: 26379 },
        { host: "redis-sentinel-2", port: 26380 },
      ],
      name: "jetmesh",
    });
    expect(loadStageConfig({}).redisSentinel).toBeUndefined();
    const problems = (env: Record<string, string>) => {
      try {
        loadStageConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
      }
      return expect.unreachable();
    };
    expect(problems({ REDIS_SENTINELS: "127.0.0.1", REDIS_SENTINEL_NAME: "jetmesh" })[0]).toMatch(
      /^REDIS_SENTINELS \("127.0.0.1"\): wrong format; allowed: comma-separated host:port, e\.g\. /,
    );
    expect(problems({ REDIS_SENTINELS: "127.0.0.1:26379" })).toEqual([
      "REDIS_SENTINEL_NAME (unset): REDIS_SENTINELS needs the name the sentinels monitor",
    ]);
    expect(problems({ REDIS_SENTINELS: "127.0.0.1:99999", REDIS_SENTINEL_NAME: "jetmesh" })).toEqual([
      'REDIS_SENTINELS ("127.0.0.1:99999"): port 99999 of 127.0.0.1; allowed: 1 to 65535',
    ]);
    expect(problems({ REDIS_SENTINEL_NAME: "jetmesh" })).toEqual([
      "REDIS_SENTINEL_NAME and REDIS_SENTINEL_PASSWORD_FILE need REDIS_SENTINELS",
    ]);
    expect(loadRedisSentinel({ REDIS_SENTINELS: "a:1", REDIS_SENTINEL_NAME: "m" })?.sentinels).toEqual([
      { host: "a", port: 1 },
    ]);
  });

  it("crash points - unset is a no-op, a typo is refused, the nth time kills", () => {
    const none = createCrashHook(undefined);
    expect(() => none("after-publish")).not.toThrow();
    expect(() => createCrashHook("after-publsh")).toThrow(/is not one of/);
    const seen: string[] = [];
    // onCrash throws so the test process survives the kill that would follow
    const hook = createCrashHook("after-ack", 2, (p) => {
      seen.push(p);
      throw new Error("stop");
    });
    hook("after-ack");
    hook("after-publish");
    expect(seen).toEqual([]);
    expect(() => hook("after-ack")).toThrow("stop");
    expect(seen).toEqual(["after-ack"]);
  });

  it("flow control - slots bound holders and the gate waits for every dependency", async () => {
    const slots = new Slots(2);
    expect(slots.acquire()).toBeUndefined();
    expect(slots.acquire()).toBeUndefined();
    const third = slots.acquire();
    expect(third).toBeInstanceOf(Promise);
    expect(slots.inUse).toBe(2);
    slots.release();
    await third;
    expect(slots.inUse).toBe(2);
    const gate = new Gate();
    gate.set("redis", false);
    gate.set("nats", false);
    let opened = false;
    let kept = 0;
    const waiting = gate
      .whenOpen(() => kept++, 10)
      .then(() => {
        opened = true;
      });
    await new Promise((r) => setTimeout(r, 35));
    gate.set("redis", true);
    await new Promise((r) => setTimeout(r, 5));
    expect(opened).toBe(false);
    gate.set("nats", true);
    await waiting;
    expect(opened).toBe(true);
    expect(kept).toBeGreaterThan(0);
  });

  it("logger - account ids are masked beyond their last four characters", () => {
    expect(maskAccount("acc-12345678")).toBe("********5678");
    expect(maskAccount("abc")).toBe("abc");
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ service: "t", destination: sink });
    log.info({ from: "acc-12345678", data: { to: "bank:acme-0042" }, stage: "x" }, "hello");
    const line = JSON.parse(out);
    expect(line.from).toBe("********5678");
    expect(line.data.to).toBe("**********0042");
    expect(line.service).toBe("t");
    expect(out).not.toContain("acc-12345678");
  });
});

describe("connections", () => {
  it("connections - a URL's password is masked in log lines, user and host kept", async () => {
    const { maskUrl } = await import("./connections.ts");
    expect(maskUrl("redis://validator:s3cret@10.0.0.1:6379/0")).toBe("redis://validator:***@10.0.0.1:6379/0");
    expect(maskUrl("nats://ops:p%40ss@nats-1:4222")).toBe("nats://ops:***@nats-1:4222");
    expect(maskUrl("redis://:onlypass@h:6379")).toBe("redis://:***@h:6379");
    expect(maskUrl("nats://127.0.0.1:4222")).toBe("nats://127.0.0.1:4222");
  });
});
