// A long run in short time (issue 17): the whole mesh with every event stream, the DLQ and
// Redis shrunk, and at least ten times each shrunk stream's capacity pushed through the
// gateway. Streams drop old data by age (the retention plan, packages/contracts/README.md),
// so the gateway never meets a full stream: no 503 wall. Then: no guard expired before the
// message it guards left its stream, I1 to I6 over what the streams still hold (LEDGER keeps
// everything: I1 against it for every transfer, the rest whole for the transfers the streams
// still hold), Redis under its maxmemory with nothing evicted, and every process's RSS at
// the end within a bound of its value after warm-up.
//
// Size: small by default (about 6,600 transfers at 100/s, under two minutes). Full size on
// demand: JETMESH_LONG_RUN=full (about 25,000 transfers at 150/s with 10 s age limits;
// idempotency keys then expire during the run, so Redis memory must level off too).
//   JETMESH_LONG_RUN=full pnpm exec vitest run test/e2e/long-run.test.ts
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { EventTypes, Headers, type StreamLimits, StreamNames, subjectFor } from "@jetmesh/contracts";
import { sendTraffic, waitForQuiet } from "@jetmesh/mesh";
import {
  checkInvariants,
  gatewayBalances,
  readStoredEvents,
  stopAllProcesses,
  streamPosition,
} from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { describeViolations, REFUSED_BANK_ACCOUNTS, startTestMesh, type TestMesh } from "../support/mesh.ts";

const FULL = process.env.JETMESH_LONG_RUN === "full";
/** Transfers started per second. */
const RATE = FULL ? 150 : 100;
/** Age limit of every shrunk event stream: what it keeps is about RATE × MAX_AGE. */
const MAX_AGE_MS = FULL ? 10_000 : 4_000;
/** Capacity = expected messages within the age limit × this: room for bursts, never more. */
const HEADROOM = 1.5;
/** Capacity is pushed through at least this many times. */
const TIMES = 10;
const TRANSFERS = Math.ceil(TIMES * HEADROOM * (MAX_AGE_MS / 1000) * RATE * 1.1);
const REDIS_MAXMEMORY = 64 * 1024 * 1024;
/** Payout shares: PAYOUTS gets fewer messages, so its capacity is smaller in proportion. */
const PAYOUT_SHARE = { payout: 0.1, refusedPayout: 0.05 };

// The stages' publish retry horizon (1 s + 2 s) and the gateway's lease plus publish (1.6 s +
// 1 s + 0.5 s) fit the 3.5 s duplicate window, which fits the age limit (the server demands
// it); keys live 70 s: longer than the client horizon (5 s) plus the redelivery horizon
// (9 × 6.4 s), and than every age limit (the settings check); the gateway's records and
// statuses too (its minimum), so that the full run sees Redis level off.
const ENV = {
  JETMESH_PUBLISH_TIMEOUT_MS: "1000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "2000",
  JETMESH_MAX_DELIVER: "10",
  JETMESH_IDEMPOTENCY_HORIZON_MS: "5000",
  JETMESH_IDEMPOTENCY_TTL_MS: "70000",
  GATEWAY_PUBLISH_RETRY_HORIZON_MS: "500",
  GATEWAY_IDEMPOTENCY_LEASE_MS: "1600",
  GATEWAY_IDEMPOTENCY_TTL_MS: "70000",
  GATEWAY_STATUS_TTL_MS: "70000",
};
const DUPLICATE_WINDOW_MS = 3500;

/** Messages a stream taking `perSecond` keeps within the age limit, with headroom. */
const capacity = (perSecond: number) => Math.max(20, Math.ceil(perSecond * (MAX_AGE_MS / 1000) * HEADROOM));
const limits = (perSecond: number): StreamLimits => {
  const maxMsgs = capacity(perSecond);
  return { maxMsgs, maxBytes: maxMsgs * 4096, maxAgeMs: MAX_AGE_MS, duplicateWindowMs: DUPLICATE_WINDOW_MS };
};
const STREAM_LIMITS: Record<string, StreamLimits> = {
  INGRESS: limits(RATE),
  VALIDATION: limits(RATE),
  RISK: limits(RATE),
  // Payouts follow postings only (not invalid, declined or duplicate requests): measured
  // 12.6% of transfers for a 15% share, so capacity is sized on 12%.
  PAYOUTS: limits(RATE * 0.8 * (PAYOUT_SHARE.payout + PAYOUT_SHARE.refusedPayout)),
  // LEDGER keeps everything (no limit shrunk); only its duplicate window follows the others,
  // so that keys shorter than 15 minutes pass the settings check.
  LEDGER: { duplicateWindowMs: DUPLICATE_WINDOW_MS },
  // Parked messages are kept (no age limit), in a DLQ that holds 50.
  DLQ: { maxMsgs: 50, maxBytes: 8 * 1024 * 1024, duplicateWindowMs: DUPLICATE_WINDOW_MS },
};
/** A stage's input and the event type its idempotency keys guard there. */
const GUARDED = [
  { stream: StreamNames.Ingress, stage: "validator", type: EventTypes.TransferRequested },
  { stream: StreamNames.Validation, stage: "risk", type: EventTypes.TransferValidated },
  { stream: StreamNames.Risk, stage: "ledger", type: EventTypes.TransferScored },
] as const;
const POISON = 5;

function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

describe("e2e long run", () => {
  let t: TestMesh | undefined;
  let redis: Redis | undefined;
  afterAll(async () => {
    redis?.disconnect();
    await t?.stop();
    await stopAllProcesses();
  });

  it(
    `e2e - ${TIMES}× every shrunk stream's capacity through the mesh: no 503 wall, no guard expired early, I1 to I6, memory flat`,
    async () => {
      t = await startTestMesh({
        env: ENV,
        streamLimits: STREAM_LIMITS,
        redisArgs: ["--maxmemory", String(REDIS_MAXMEMORY), "--maxmemory-policy", "noeviction"],
      });
      const mesh = t.mesh;
      redis = new Redis(t.redis.url, { maxRetriesPerRequest: 3 });
      const processes = new Map<string, number>([["nats-server", t.nats.pid]]);
      for (const [name, s] of Object.entries(mesh.services)) if (s.child) processes.set(name, s.child.pid);
      const samples: { at: number; rss: Map<string, number>; redis: number }[] = [];
      const sample = async () => {
        const rss = new Map<string, number>();
        for (const [name, pid] of processes) {
          const v = rssBytes(pid);
          if (v !== undefined) rss.set(name, v);
        }
        const info = await redis?.info("memory");
        samples.push({ at: Date.now(), rss, redis: Number(/used_memory:(\d+)/.exec(info ?? "")?.[1] ?? 0) });
      };
      const sampler = setInterval(() => void sample().catch(() => {}), 2000);

      // Poison spread over the run: parked with a reason (I6) while everything behind flows.
      const js = jetstream(t.nc);
      const poisoner = (async () => {
        for (let i = 0; i < POISON; i++) {
          await sleep(((TRANSFERS / RATE) * 1000) / (POISON + 1));
          const h = natsHeaders();
          h.set(Headers.CorrelationId, `poison-${i}`);
          await js.publish(subjectFor("transfers.requested", `acc-${i}`), new Uint8Array([0xc1, 0xff]), {
            msgID: `poison-${i}`,
            headers: h,
          });
        }
      })();

      const traffic = await sendTraffic({
        gatewayUrl: mesh.gatewayUrl,
        apiKeys: mesh.apiKeys,
        transfers: TRANSFERS,
        rate: RATE,
        accounts: 50,
        maxInFlight: 64,
        runId: "e2e-long-run",
        refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
        // No rule rejections: every accepted transfer must then end in LEDGER, which keeps
        // everything, so I1 is checked for all of them after the other streams dropped theirs.
        shares: { retry: 0.1, ruleRejected: 0, ...PAYOUT_SHARE },
      });
      await poisoner;

      // No guard expired early: every message an input stream still holds that its stage has
      // acknowledged has its key, living at least as long as the message stays in the stream.
      const now = Date.now();
      let guarded = 0;
      for (const g of GUARDED) {
        const ackFloor = (await t.jsm.consumers.info(g.stream, g.stage)).ack_floor.stream_seq;
        const held = await readStoredEvents(js, g.stream, await streamPosition(t.jsm, g.stream));
        for (const e of held) {
          if (e.seq > ackFloor || e.env?.type !== g.type) continue;
          const pttl = await redis.pttl(`${g.stage}:${e.env.eventId}`);
          const leavesInMs = e.timestampMs + MAX_AGE_MS - now;
          expect(pttl, `${g.stage} guard of ${g.stream} seq ${e.seq}`).toBeGreaterThan(leavesInMs);
          guarded++;
        }
      }

      await waitForQuiet(t.jsm, { timeoutMs: 120_000 });
      await sample();
      clearInterval(sampler);
      const report = await checkInvariants({
        nc: t.nc,
        accepted: traffic.accepted,
        balances: gatewayBalances(mesh.gatewayUrl, { apiKey: mesh.apiKeys.operator }),
        minters: mesh.minters,
      });

      // The client: everything accepted, nothing given up on, no 503 wall (a stray 503 would
      // be retried by the client; there must be none at all: no stream was ever full).
      expect(traffic.failed).toEqual([]);
      expect(traffic.retries.mismatched).toEqual([]);
      expect(traffic.statuses["503"] ?? 0).toBe(0);

      // Each shrunk stream took at least TIMES its capacity, and holds no more than it.
      const through: Record<string, { stored: number; capacity: number; held: number }> = {};
      for (const [name, l] of Object.entries(STREAM_LIMITS)) {
        const pos = await streamPosition(t.jsm, name);
        through[name] = { stored: pos.lastSeq, capacity: l.maxMsgs ?? 0, held: pos.messages };
      }
      console.log("long run streams", JSON.stringify(through));
      for (const name of ["INGRESS", "VALIDATION", "RISK", "PAYOUTS"]) {
        const s = through[name] as { stored: number; capacity: number; held: number };
        expect(s.stored, name).toBeGreaterThanOrEqual(TIMES * s.capacity);
        expect(s.held, name).toBeLessThanOrEqual(s.capacity);
      }

      // I1 to I6 over what the streams hold; I1 for every transfer against LEDGER.
      expect(report.violations, describeViolations(report)).toEqual([]);
      expect(report.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"]);
      const c = report.counts;
      expect(c.agedBeforeMs).toBeDefined();
      expect(c.aged).toBe(0);
      expect(c.lost + c.multiple).toBe(0);
      expect(c.accepted).toBe(traffic.accepted.length);
      expect(c.posted + c.declined + c.reversed).toBe(c.accepted);
      expect(c.reversed).toBeGreaterThan(0);
      expect(c.dlq).toBe(2 * POISON);
      expect(guarded).toBeGreaterThan(0);

      // Redis: bounded, nothing evicted, no write refused.
      const stats = await redis.info("stats");
      const memory = await redis.info("memory");
      expect(Number(/evicted_keys:(\d+)/.exec(stats)?.[1])).toBe(0);
      expect(Number(/used_memory:(\d+)/.exec(memory)?.[1])).toBeLessThan(REDIS_MAXMEMORY);
      expect(/maxmemory_policy:(\S+)/.exec(memory)?.[1]).toBe("noeviction");

      // Memory flat: each process's RSS at the end within a bound of its value after warm-up
      // (the first sample past half the traffic phase: V8 grows its heap lazily for a while;
      // a leak keeps growing through the second half, ten capacities later).
      const warmAt = traffic.startedAtMs + (traffic.finishedAtMs - traffic.startedAtMs) / 2;
      const warm = samples.find((s) => s.at >= warmAt);
      const end = samples.at(-1);
      expect(warm && end && warm !== end).toBe(true);
      const table: Record<string, { warmMiB: number; endMiB: number }> = {};
      for (const [name, w] of warm?.rss ?? []) {
        const e = end?.rss.get(name);
        if (e === undefined) continue;
        table[name] = { warmMiB: Math.round(w / 2 ** 20), endMiB: Math.round(e / 2 ** 20) };
        expect(e, `${name} RSS ${w} → ${e}`).toBeLessThanOrEqual(w * 1.25 + 48 * 2 ** 20);
      }
      console.log(
        "long run memory",
        JSON.stringify({ transfers: TRANSFERS, rss: table, redisWarm: warm?.redis, redisEnd: end?.redis }),
      );
      // Full size outlives the key TTL: Redis must level off as keys expire.
      if (FULL && warm && end) expect(end.redis).toBeLessThanOrEqual(warm.redis * 1.5 + 8 * 2 ** 20);
    },
    FULL ? 900_000 : 300_000,
  );
});
