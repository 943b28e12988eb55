/**
 * @jetmesh/testkit: real nats-server and redis-server processes, JetStream clusters, a
 * TCP fault-injection proxy, child-process helpers and the invariant checker for tests.
 * Everything listens on 127.0.0.1 only, on free ports, with temp data folders; nothing
 * outlives the test process. The server-starting part is its own entry,
 * `@jetmesh/testkit/local-infra` (re-exported here, so either import works).
 */
export {
  bundleOf,
  ensureBinaries,
  ensurePrometheus,
  ensurePromtool,
  freePort,
  killAll,
  liveProcessIds,
  spawnProcess,
  startFaultProxy,
  startInfra,
  startNats,
  startNatsCluster,
  startRedis,
  startRedisSentinel,
  stopAllProcesses,
} from "./local-infra/index.ts";
export type {
  Binaries,
  ChildHandle,
  ExitResult,
  FailedPrimary,
  FailPrimaryOptions,
  FaultProxy,
  Infra,
  NatsClusterHandle,
  NatsClusterMembership,
  NatsServerHandle,
  RedisSentinelHandle,
  RedisServerHandle,
  RedisSnapshot,
  SpawnProcessOptions,
  StartFaultProxyOptions,
  StartInfraOptions,
  StartNatsClusterOptions,
  StartNatsOptions,
  StartRedisOptions,
  StartRedisSentinelOptions,
} from "./local-infra/index.ts";
export { checkInvariants, eventRef, foldLedger, Invariants, overdrafts } from "./invariants.ts";
export type {
  AcceptedTransfer,
  CheckInvariantsOptions,
  EventRef,
  InvariantCounts,
  InvariantName,
  InvariantReport,
  LedgerEntry,
  Overdraft,
  TransferOutcome,
  TransferView,
  Violation,
} from "./invariants.ts";
export { gatewayBalances, redisBalances } from "./invariants-balances.ts";
export { BankInvariants, checkBankRecord, readBankRecord } from "./invariants-bank.ts";
export type {
  BankInvariantName,
  BankRecordCounts,
  BankRecordReport,
  BankViolation,
  CheckBankRecordInput,
} from "./invariants-bank.ts";
export type { Balances, BalanceSource } from "./invariants-balances.ts";
export { readStoredEvents, streamPosition } from "./invariants-read.ts";
export type { StoredEvent, StreamPosition } from "./invariants-read.ts";
export { waitFor } from "./wait.ts";
export type { WaitForOptions } from "./wait.ts";
export { createPrng } from "./prng.ts";
export type { Prng } from "./prng.ts";
export { httpGet } from "./local-infra/http-get.ts";
export type { HttpResponse } from "./local-infra/http-get.ts";
