/**
 * @jetmesh/chaos: seeded fault injection against the whole mesh. Each scenario starts real
 * processes (nats-server or a three-node cluster, redis-server, the bank, every service),
 * sends steady traffic with client retries, injects a fault plan drawn from one seed,
 * waits for quiet, checks I1 to I6 and S1 with the testkit's independent checker and B1 to
 * B5 against the bank's own record, and reports how far each fault reached.
 */
export { formatMs, parseDuration } from "./duration.ts";
export { StageServices, startChaosEnv } from "./environment.ts";
export type {
  ChaosEnv,
  ChaosEnvOptions,
  StageService,
  UnplannedExit,
  WatchedProcess,
} from "./environment.ts";
export { startBankLink } from "./bank-link.ts";
export type { BankLink, BankLinkStats } from "./bank-link.ts";
export type { Instance } from "./instances.ts";
export { parseProm, promSum, scrape } from "./prom.ts";
export type { PromSample } from "./prom.ts";
export { drainMs, progressMs, rssMb, startMonitor } from "./monitor.ts";
export type { Monitor, PipelineSample, RssStats } from "./monitor.ts";
export { createPrng } from "@jetmesh/testkit";
export type { Prng } from "@jetmesh/testkit";
export { formatDetails, formatFaults, formatReach, formatSchedule, formatSummary } from "./report.ts";
export { table } from "@jetmesh/tools";
export { CHAOS_SETTINGS, envOptionsFor, planOf, runScenario, scenarioPrng } from "./run.ts";
export type { ChaosViolation, CheckName, FaultRecord, RunScenarioOptions, ScenarioResult } from "./run.ts";
export { pause } from "./scenario.ts";
export type { FaultAction, Injected, MeasureContext, Reach, Scenario, ScenarioContext } from "./scenario.ts";
export { Scenarios, scenarioNamed } from "./scenarios/all.ts";
export { startTraffic } from "./traffic.ts";
export type {
  ChaosAccepted,
  ChaosTrafficOptions,
  ChaosTransferKind,
  CopyPattern,
  Traffic,
  TrafficStats,
} from "./traffic.ts";
