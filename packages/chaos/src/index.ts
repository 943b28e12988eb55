/**
 * @jetmesh/chaos: seeded fault injection against the whole mesh. Each scenario starts real
 * processes (nats-server or a three-node cluster, redis-server, the bank, every service),
 * sends steady traffic with client retries, injects a fault plan drawn from one seed,
 * waits for quiet and checks I1 to I6 with the testkit's independent checker.
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
export { drainMs, progressMs, rssMb, startMonitor } from "./monitor.ts";
export type { Monitor, PipelineSample, RssStats } from "./monitor.ts";
export { createPrng } from "./prng.ts";
export type { Prng } from "./prng.ts";
export { formatDetails, formatFaults, formatSchedule, formatSummary, table } from "./report.ts";
export { CHAOS_SETTINGS, envOptionsFor, planOf, runScenario, scenarioPrng } from "./run.ts";
export type { FaultRecord, RunScenarioOptions, ScenarioResult } from "./run.ts";
export { pause } from "./scenario.ts";
export type { FaultAction, Injected, Scenario, ScenarioContext } from "./scenario.ts";
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
