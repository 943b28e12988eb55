import { type Finding, FindingKinds } from "@jetmesh/contracts";
import { Counter, Gauge, type Registry } from "prom-client";

/** Names of the scheduled and per-event checks (`check` label). */
export const Checks = {
  /** One pipeline event read and applied to the sagas (and the fold, for LEDGER). */
  Event: "event",
  Deadlines: "deadlines",
  ProjectionSample: "projection_sample",
  ProjectionFull: "projection_full",
  Bank: "bank",
  Dlq: "dlq",
  Settings: "settings",
  /** The declared consumers' lag, read from the JetStream API. */
  ConsumerLag: "consumer_lag",
} as const;
export type Check = (typeof Checks)[keyof typeof Checks];

/**
 * The reconciler's metrics, on the stage runtime's registry. Labels are bounded: finding
 * kinds, check names, stream names, stages and error classes; never a transfer or an account.
 * Open findings are the ones on RECONCILE (the same in every instance): alert on max() by kind.
 */
export function createReconcilerMetrics(
  registry: Registry,
  o: { openFindings: () => readonly Finding[]; now?: () => number },
) {
  const registers = [registry];
  const now = o.now ?? Date.now;
  const kinds = Object.values(FindingKinds);
  new Gauge({
    name: "jetmesh_reconcile_open_findings",
    help: "Discrepancies open on RECONCILE, by kind",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      const open = o.openFindings();
      for (const kind of kinds) this.set({ kind }, open.filter((f) => f.kind === kind).length);
    },
  });
  new Gauge({
    name: "jetmesh_reconcile_oldest_open_finding_seconds",
    help: "Age of the oldest open discrepancy, by kind (0 when none is open)",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      const open = o.openFindings();
      const t = now();
      for (const kind of kinds) {
        const oldest = Math.min(...open.filter((f) => f.kind === kind).map((f) => Date.parse(f.openedAt)));
        this.set({ kind }, Number.isFinite(oldest) ? Math.max(0, (t - oldest) / 1000) : 0);
      }
    },
  });
  const gauge = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers });
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers });
  const checks = counter(
    "jetmesh_reconcile_checks_total",
    "Checks run: one per pipeline event read, and one per account, transfer or setting a scheduled check compared",
    ["check"] as const,
  );
  const checkFailures = counter(
    "jetmesh_reconcile_check_failures_total",
    "Scheduled checks that could not run (the bank, Redis or NATS did not answer)",
    ["check"] as const,
  );
  for (const check of Object.values(Checks)) {
    checks.inc({ check }, 0);
    checkFailures.inc({ check }, 0);
  }
  const written = counter(
    "jetmesh_reconcile_findings_written_total",
    "Finding events this instance wrote to RECONCILE, by kind and state (another instance may have written the rest)",
    ["kind", "state"] as const,
  );
  const publishFailures = counter(
    "jetmesh_reconcile_publish_failures_total",
    "Finding events RECONCILE did not take (full or unreachable); the next check tries again",
  );
  publishFailures.inc(0);
  const lagMessages = gauge(
    "jetmesh_reconcile_lag_messages",
    "Messages stored in a stream and not read by the reconciler yet",
    ["stream"] as const,
  );
  const lagSeconds = gauge(
    "jetmesh_reconcile_lag_seconds",
    "Age of the oldest message of a stream the reconciler has not read (0 when caught up)",
    ["stream"] as const,
  );
  const dlqMessages = gauge(
    "jetmesh_reconcile_dlq_messages",
    "Messages in the DLQ, by the stage that parked them and the error class",
    ["stage", "error"] as const,
  );
  const dlqOldest = gauge(
    "jetmesh_reconcile_dlq_oldest_message_age_seconds",
    "Age of the oldest message in the DLQ (0 when empty)",
  );
  // The names the stage runtime exports its own consumer's lag under (packages/stage
  // metrics.ts): a stage that hangs or dies stops exporting it exactly when it matters, so the
  // reconciler, another process, reports it too. Rules and panels take max by (stage, stream).
  const consumerPending = gauge(
    "jetmesh_consumer_pending_messages",
    "Messages in the stream not yet delivered to the stage's consumer (lag), read by the reconciler",
    ["stage", "stream"] as const,
  );
  const consumerAckPending = gauge(
    "jetmesh_consumer_ack_pending_messages",
    "Messages delivered to the stage's consumer and not yet acknowledged, read by the reconciler",
    ["stage", "stream"] as const,
  );
  const consumerRedelivered = gauge(
    "jetmesh_consumer_redelivered_messages",
    "Messages delivered to the stage's consumer more than once and not yet acknowledged, read by the reconciler",
    ["stage", "stream"] as const,
  );
  const consumerLastDelivery = gauge(
    "jetmesh_consumer_last_delivery_age_seconds",
    "Seconds since the server last delivered a message to the stage's consumer (absent before the first), read by the reconciler",
    ["stage", "stream"] as const,
  );
  const consumerLastAck = gauge(
    "jetmesh_consumer_last_ack_age_seconds",
    "Seconds since the stage's consumer's ack floor last moved (absent before the first ack), read by the reconciler",
    ["stage", "stream"] as const,
  );
  const ready = gauge(
    "jetmesh_reconcile_ready",
    "1 once the reconciler has read every stream to its end at start and checks run",
  );
  ready.set(0);
  const openTransfers = gauge(
    "jetmesh_reconcile_open_transfers",
    "Accepted transfers without their terminal outcome yet",
  );
  return {
    checks,
    checkFailures,
    written,
    publishFailures,
    lagMessages,
    lagSeconds,
    dlqMessages,
    dlqOldest,
    consumerPending,
    consumerAckPending,
    consumerRedelivered,
    consumerLastDelivery,
    consumerLastAck,
    ready,
    openTransfers,
  };
}
export type ReconcilerMetrics = ReturnType<typeof createReconcilerMetrics>;
