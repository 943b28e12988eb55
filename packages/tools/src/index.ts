/**
 * @jetmesh/tools: what the command-line tools share, so that `pnpm mesh`, `pnpm chaos` and
 * `pnpm bench` are thin commands over one client traffic (demo, steady, saturating), one
 * percentile rule (nearest rank) and one table. Their servers come from
 * `@jetmesh/testkit/local-infra` (`startInfra`). Tools only: no service imports it.
 */
export { percentile, percentiles } from "./percentile.ts";
export type { Percentiles } from "./percentile.ts";
export { table } from "./table.ts";
export { accepting, nowMs, retryable } from "./traffic/client.ts";
export type { Answer, ClientCounts } from "./traffic/client.ts";
export { DEMO_MIX, PLAIN_MIX, planTransfer, STEADY_MIX } from "./traffic/plan.ts";
export type {
  CopyPattern,
  PlanContext,
  Planned,
  TrafficMix,
  TransferBody,
  TransferKind,
} from "./traffic/plan.ts";
export { startTraffic, TrafficModes } from "./traffic/traffic.ts";
export type {
  AcceptedTransfer,
  FundingPhase,
  Traffic,
  TrafficMode,
  TrafficOptions,
  TrafficProgress,
  TrafficStats,
} from "./traffic/traffic.ts";
