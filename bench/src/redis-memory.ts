// Redis memory per million transfers per day, measured (issue 17): runs the whole mesh on a
// private redis-server, sends N transfers with the demo mix, waits until the pipeline is
// quiet, then walks every key (SCAN, MEMORY USAGE, PTTL) and groups them by kind (the key
// with its ids replaced by `*`). Each kind's bytes per transfer times its lifetime (its TTL,
// read from the keys) gives the steady-state memory of one million transfers a day: a key
// that lives d days is held for d days of traffic. Keys without a TTL are reported apart:
// they grow with something other than traffic (accounts, positions) or without bound.
//   pnpm --filter @jetmesh/bench exec node --import tsx src/redis-memory.ts [--transfers 3000] [--rate 150]
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REFUSED_BANK_ACCOUNTS, sendTraffic, startMesh, waitForQuiet } from "@jetmesh/mesh";
import { startNats, startRedis, stopAllProcesses } from "@jetmesh/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Redis } from "ioredis";

const { values } = parseArgs({
  options: { transfers: { type: "string", default: "3000" }, rate: { type: "string", default: "150" } },
});
const transfers = Number(values.transfers);
const rate = Number(values.rate);
const DAY_MS = 24 * 3600_000;

/** A key's kind: its segments, ids (long, or with digits) replaced by `*`. */
export function kindOf(key: string): string {
  return key
    .split(":")
    .map((seg, i) => (i > 0 && (/\d/.test(seg) || seg.length > 20) ? "*" : seg))
    .join(":");
}

interface Kind {
  keys: number;
  bytes: number;
  /** Longest TTL seen (ms); 0 when the keys have none. */
  ttlMs: number;
  noTtl: number;
}

async function scanKinds(redis: Redis): Promise<Map<string, Kind>> {
  const kinds = new Map<string, Kind>();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const [bytes, pttl] = await Promise.all([redis.memory("USAGE", key), redis.pttl(key)]);
      const k = kinds.get(kindOf(key)) ?? { keys: 0, bytes: 0, ttlMs: 0, noTtl: 0 };
      k.keys++;
      k.bytes += Number(bytes ?? 0);
      if (pttl < 0) k.noTtl++;
      else k.ttlMs = Math.max(k.ttlMs, pttl);
      kinds.set(kindOf(key), k);
    }
  } while (cursor !== "0");
  return kinds;
}

async function main(): Promise<void> {
  const [nats, redisServer] = await Promise.all([startNats(), startRedis()]);
  const mesh = await startMesh({
    natsUrl: nats.url,
    redisUrl: redisServer.url,
    dataDir: await mkdtemp(join(tmpdir(), "jetmesh-redis-memory-")),
    removeDataOnStop: true,
    refuseAccounts: REFUSED_BANK_ACCOUNTS,
    readyTimeoutMs: 90_000,
  });
  const redis = new Redis(redisServer.url);
  const nc = await connect({ servers: nats.url });
  try {
    const before = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const traffic = await sendTraffic({
      gatewayUrl: mesh.gatewayUrl,
      apiKeys: mesh.apiKeys,
      transfers,
      rate,
      accounts: 100,
      runId: `redis-memory-${Date.now()}`,
      refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
    });
    await waitForQuiet(await jetstreamManager(nc), { timeoutMs: 180_000 });
    const after = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const accepted = traffic.accepted.length;
    const kinds = await scanKinds(redis);
    const rows = [...kinds].sort((a, b) => b[1].bytes - a[1].bytes);
    let perMillionPerDay = 0;
    console.log(`transfers accepted: ${accepted}; used_memory ${before} → ${after} B`);
    console.log("kind | keys | bytes/transfer | ttl (days) | GiB per 1M transfers/day");
    for (const [kind, k] of rows) {
      const perTransfer = k.bytes / accepted;
      const days = k.ttlMs / DAY_MS;
      const steady = k.noTtl === k.keys ? 0 : (perTransfer * 1e6 * days) / 2 ** 30;
      perMillionPerDay += steady;
      console.log(
        `${kind} | ${k.keys}${k.noTtl ? ` (${k.noTtl} without ttl)` : ""} | ${perTransfer.toFixed(1)} | ${days.toFixed(2)} | ${steady.toFixed(2)}`,
      );
    }
    const overhead = (after - before) / accepted;
    console.log(
      `used_memory per transfer (allocator overhead included): ${overhead.toFixed(0)} B; keys with a TTL at steady state: ${perMillionPerDay.toFixed(1)} GiB per million transfers a day (× ${(overhead / (rows.reduce((s, [, k]) => s + k.bytes, 0) / accepted)).toFixed(2)} for used_memory)`,
    );
  } finally {
    redis.disconnect();
    await nc.close();
    await mesh.stop();
    await Promise.all([nats.stop(), redisServer.stop()]);
    await stopAllProcesses();
  }
}

await main();
