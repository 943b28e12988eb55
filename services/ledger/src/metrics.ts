import { Gauge, type Registry } from "prom-client";
import type { LedgerWriter } from "./ledger-writer.ts";
import type { LogFollower, LogProblem } from "./log-follower.ts";
import type { RedisProjection } from "./redis-projection.ts";

/** The parts of a running ledger its gauges read; any may be absent while it starts. */
export interface LedgerParts {
  follower(): LogFollower | undefined;
  projection(): RedisProjection | undefined;
  writer(): LedgerWriter | undefined;
  problem(): LogProblem | undefined;
}

/**
 * The ledger's gauges, read at each scrape: how far the fold and the Redis projection are
 * along LEDGER, snapshots, restores and repairs of Redis, the writer's appends and
 * conflicts, and whether the ledger stopped because its log is not the one its state was
 * built from. Registered once per registry.
 */
export function registerLedgerMetrics(registry: Registry, parts: LedgerParts): void {
  if (registry.getSingleMetric("ledger_projection_applied_seq")) return;
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });
  gauge(
    "ledger_projection_applied_seq",
    "LEDGER sequence Redis has applied",
    () => parts.projection()?.status().appliedSeq,
  );
  gauge(
    "ledger_projection_fold_seq",
    "LEDGER sequence the in-memory fold has reached",
    () => parts.follower()?.status().foldSeq,
  );
  gauge(
    "ledger_snapshot_seq",
    "LEDGER sequence of the latest snapshot taken",
    () => parts.follower()?.status().snapshotSeq,
  );
  gauge(
    "ledger_fold_outcomes",
    "transfer outcomes the in-memory fold holds (bounded by LEDGER_OUTCOME_TTL_MS: older ones leave it)",
    () => parts.follower()?.status().outcomes,
  );
  gauge(
    "ledger_fold_outcomes_compacted",
    "outcomes this process dropped from its fold as past the ledger's horizon",
    () => parts.follower()?.status().compacted,
  );
  gauge(
    "ledger_projection_restores",
    "restores of the Redis projection by this process",
    () => parts.projection()?.status().restores,
  );
  gauge(
    "ledger_projection_repairs",
    "times Redis was found to have lost writes (rolled back) and was re-applied from the log",
    () => parts.projection()?.status().repairs,
  );
  gauge("ledger_projection_ready", "1 while the Redis projection is whole and not repairing", () =>
    parts.projection()?.ready() ? 1 : 0,
  );
  gauge(
    "ledger_decisions_appended",
    "decisions this process appended to LEDGER",
    () => parts.writer()?.status().appends,
  );
  gauge(
    "ledger_append_conflicts",
    "appends refused by optimistic concurrency or left unanswered (another writer, a timeout); each is decided again",
    () => parts.writer()?.status().conflicts,
  );
  gauge(
    "ledger_log_mismatch",
    "1 when the ledger stopped because LEDGER is not the log its state was built from",
    () => (parts.problem() ? 1 : 0),
  );
}
