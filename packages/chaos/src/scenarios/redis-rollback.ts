import { LedgerProjection } from "@jetmesh/contracts";
import { promSum, scrape } from "../prom.ts";
import { redisGet } from "../redis-ops.ts";
import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

const ERASED = "decisions erased";
const REPAIRS = "projection repairs";
const RESTORES = "projection restores";

/** LEDGER sequence the ledger's Redis projection has applied (0 when the key is missing). */
async function appliedSeq(redisUrl: string): Promise<number> {
  return Number((await redisGet(redisUrl, LedgerProjection.appliedSeqKey)) ?? 0);
}

/**
 * Redis rolled back while traffic flows: a snapshot is taken (what a lagging replica or a
 * backup holds), traffic runs on for a few seconds, then Redis restarts from the snapshot,
 * losing every write since: idempotency keys marked done, leases, and the ledger's
 * projection of decisions already published to LEDGER. The streams are the truth; the run
 * fails unless some decisions were really erased (the projection's `ledger:applied-seq` was
 * ahead of the snapshot's when the rollback struck).
 */
export const redisRollback: Scenario = {
  name: "redis-rollback",
  title: "Redis restarted from an older snapshot while traffic flows (a failover to a lagging replica)",
  kinds: ["redis-rollback"],
  reachNotes: {
    [ERASED]:
      "LEDGER decisions the rollbacks erased from Redis (applied-seq before the rollback − in the snapshot)",
    [REPAIRS]: "times a ledger found Redis behind the log and re-applied it (ledger_projection_repairs)",
    [RESTORES]: "restores of the projection by the ledgers (ledger_projection_restores)",
  },
  check(_traffic, reach) {
    return (reach[ERASED] ?? 0) > 0
      ? []
      : ["no rollback erased a LEDGER decision from Redis: the fault did not reach the ledger's projection"];
  },
  async measure({ env }) {
    let repairs = 0;
    let restores = 0;
    for (const i of env.instances("ledger")) {
      if (!i.isRunning()) continue;
      const m = await scrape(i.url);
      repairs += promSum(m, "ledger_projection_repairs");
      restores += promSum(m, "ledger_projection_restores");
    }
    return { [REPAIRS]: repairs, [RESTORES]: restores };
  },
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 15_000));
    const window = durationMs / count;
    const actions: Omit<FaultAction, "id">[] = [];
    for (let k = 0; k < count; k++) {
      actions.push({
        atMs: Math.round(k * window + prng.float(0.05, 0.3) * window),
        kind: "redis-rollback",
        target: "redis",
        // Traffic between the snapshot and the rollback: what the rollback loses.
        holdMs: prng.int(2000, Math.max(2000, Math.min(6000, Math.round(window * 0.5)))),
      });
    }
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const redis = ctx.env.redis;
    const before = await appliedSeq(redis.url);
    const snapshot = await redis.snapshot();
    // SAVE is atomic, but writes may land between it and this read: reading after it makes
    // the count a lower bound, never an overstatement.
    const inSnapshot = Math.max(before, await appliedSeq(redis.url));
    await pause(a.holdMs, ctx.signal);
    const atRollback = await appliedSeq(redis.url);
    const pid = redis.pid;
    await redis.rollbackTo(snapshot);
    const endedAtMs = Date.now();
    const erased = Math.max(0, atRollback - inSnapshot);
    return {
      endedAtMs,
      detail: `snapshot at applied-seq ${inSnapshot}; ${a.holdMs} ms later, at applied-seq ${atRollback}, redis (pid ${pid}) restarted from it: ${erased} LEDGER decision(s) erased from Redis`,
      reach: { [ERASED]: erased },
    };
  },
};
