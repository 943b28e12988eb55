import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";

/** At most this many kinds get their own series; the rest are counted under `other`. */
export const MAX_KINDS = 40;

/**
 * A key's kind, a bounded label: its first segment, and its second when the key has more
 * after it and the second is a word (no digits): `ledger:outcome:<id>` → `ledger:outcome:*`,
 * `gateway:idem:<client>:<key>` → `gateway:idem:*`, `validator:<eventId>` → `validator:*`,
 * `ledger:accounts` → `ledger:*` (the stage's guards share `ledger:*` with the marks).
 */
export function keyKind(key: string): string {
  const segs = key.split(":");
  if (segs.length >= 3 && /^[a-z][a-z_-]{0,23}$/.test(segs[1] as string)) return `${segs[0]}:${segs[1]}:*`;
  return `${segs[0]}:*`;
}

/** What Redis says about its memory and keys. */
export interface RedisHealth {
  readonly usedMemoryBytes: number;
  /** 0: no limit. */
  readonly maxmemoryBytes: number;
  readonly policy: string;
  /** Keys in db 0, and how many of them have a TTL (INFO keyspace). */
  readonly keys: number;
  readonly expiringKeys: number;
  /** Keys by kind, counted on what the scan saw and scaled to `keys` when the scan stopped at its budget. */
  readonly kinds: ReadonlyMap<string, number>;
  /** Share of the keyspace the scan saw (1 when it walked every key). */
  readonly scannedRatio: number;
}

/** `field:value` lines of an INFO reply. */
function infoFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

/**
 * Reads INFO memory and keyspace, then SCANs at most `scanBudget` keys (COUNT 1000 a call) and
 * counts them by {@link keyKind}: exact when the scan ends within the budget, otherwise scaled
 * by the share seen (SCAN walks the hash table, so its prefix is a fair sample). Reads key
 * names only. @throws what the client throws (Redis unreachable, a command refused).
 */
export async function readRedisHealth(redis: Redis, scanBudget: number): Promise<RedisHealth> {
  const info = infoFields(String(await redis.call("INFO", "memory", "keyspace")));
  const db0 = /keys=(\d+),expires=(\d+)/.exec(info.get("db0") ?? "");
  const keys = Number(db0?.[1] ?? 0);
  const counts = new Map<string, number>();
  let seen = 0;
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    for (const key of batch) {
      const kind = counts.has(keyKind(key)) || counts.size < MAX_KINDS ? keyKind(key) : "other";
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    seen += batch.length;
  } while (cursor !== "0" && seen < scanBudget);
  const complete = cursor === "0";
  const ratio = complete || keys === 0 ? 1 : Math.min(1, seen / keys);
  const kinds = new Map([...counts].map(([k, n]) => [k, complete ? n : Math.round(n / ratio)] as const));
  return {
    usedMemoryBytes: Number(info.get("used_memory") ?? 0),
    maxmemoryBytes: Number(info.get("maxmemory") ?? 0),
    policy: info.get("maxmemory_policy") ?? "",
    keys,
    expiringKeys: Number(db0?.[2] ?? 0),
    kinds,
    scannedRatio: ratio,
  };
}

/**
 * Redis's memory, its limit and its keys by kind, read by the reconciler (not by the stages that
 * write them). Every series is labelled `server` (host:port of REDIS_URL), so a round Redis did
 * not answer leaves no stale or zero figures, only `jetmesh_redis_up 0`.
 */
export function createRedisHealthMetrics(registry: Registry, server: string) {
  const registers = [registry];
  const g = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L | "server">({ name, help, labelNames: ["server", ...labelNames], registers });
  const up = g(
    "jetmesh_redis_up",
    "1 when Redis answered INFO and SCAN in the last round, 0 when it did not",
  );
  const m = {
    used: g("jetmesh_redis_used_memory_bytes", "Redis used_memory (INFO memory)"),
    max: g("jetmesh_redis_maxmemory_bytes", "Redis maxmemory; 0 means no limit"),
    policy: g("jetmesh_redis_maxmemory_policy", "1, labelled with Redis's maxmemory-policy", [
      "policy",
    ] as const),
    keys: g("jetmesh_redis_keys", "Keys in Redis db 0 (INFO keyspace)"),
    expiring: g("jetmesh_redis_expiring_keys", "Keys in Redis db 0 that have a TTL (INFO keyspace)"),
    kinds: g(
      "jetmesh_redis_keys_by_kind",
      `Keys by kind (prefix with ids replaced by *; past ${MAX_KINDS} kinds: other), scaled from a bounded SCAN`,
      ["kind"] as const,
    ),
    ratio: g(
      "jetmesh_redis_keys_scanned_ratio",
      "Share of the keyspace the last count of keys by kind saw (1: exact)",
    ),
  };
  const l = { server };
  return {
    record(h: RedisHealth): void {
      for (const gauge of Object.values(m)) gauge.reset();
      up.set(l, 1);
      m.used.set(l, h.usedMemoryBytes);
      m.max.set(l, h.maxmemoryBytes);
      m.policy.set({ ...l, policy: h.policy }, 1);
      m.keys.set(l, h.keys);
      m.expiring.set(l, h.expiringKeys);
      for (const [kind, n] of h.kinds) m.kinds.set({ ...l, kind }, n);
      m.ratio.set(l, h.scannedRatio);
    },
    /** Redis did not answer: up 0 and nothing else (old figures would mislead). */
    down(): void {
      for (const gauge of Object.values(m)) gauge.reset();
      up.set(l, 0);
    },
  };
}
export type RedisHealthMetrics = ReturnType<typeof createRedisHealthMetrics>;
