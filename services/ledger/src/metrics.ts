import { Gauge, type Registry } from "prom-client";
import type { Projector } from "./projector.ts";

/**
 * The projector's gauges, read from its status at each scrape: how far Redis and the
 * fold are along LEDGER, the latest snapshot, restores so far, and whether the
 * projection is whole. Registered once per registry.
 */
export function registerProjectorMetrics(registry: Registry, projector: Projector): void {
  if (registry.getSingleMetric("ledger_projection_applied_seq")) return;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge(
    "ledger_projection_applied_seq",
    "LEDGER sequence Redis has applied",
    () => projector.status().appliedSeq,
  );
  gauge(
    "ledger_projection_fold_seq",
    "LEDGER sequence the in-memory fold has reached",
    () => projector.status().foldSeq,
  );
  gauge(
    "ledger_snapshot_seq",
    "LEDGER sequence of the latest snapshot taken",
    () => projector.status().snapshotSeq,
  );
  gauge(
    "ledger_projection_restores",
    "restores of the Redis projection by this process",
    () => projector.status().restores,
  );
  gauge("ledger_projection_ready", "1 while the projection is whole and caught up", () =>
    projector.ready() ? 1 : 0,
  );
}
