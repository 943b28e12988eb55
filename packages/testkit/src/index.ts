/**
 * @jetmesh/testkit: real nats-server and redis-server processes, JetStream clusters, a
 * TCP fault-injection proxy, child-process helpers and the invariant checker for tests.
 * Everything listens on 127.0.0.1 only, on free ports, with temp data folders; nothing
 * outlives the test process.
 */
export { ensureBinaries } from "./binaries.ts";
export type { Binaries } from "./binaries.ts";
export { bundleOf } from "./bundles.ts";
export { spawnProcess } from "./child-process.ts";
export type { ChildHandle, ExitResult, SpawnProcessOptions } from "./child-process.ts";
export { startFaultProxy } from "./fault-proxy.ts";
export type { FaultProxy, StartFaultProxyOptions } from "./fault-proxy.ts";
export { startNatsCluster } from "./nats-cluster.ts";
export type { NatsClusterHandle, StartNatsClusterOptions } from "./nats-cluster.ts";
export { startNats } from "./nats-server.ts";
export type { NatsClusterMembership, NatsServerHandle, StartNatsOptions } from "./nats-server.ts";
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
  BankPayout,
  BankRecord,
  BankRecordCounts,
  BankRecordReport,
  BankRefusal,
  BankViolation,
  CheckBankRecordInput,
} from "./invariants-bank.ts";
export type { Balances, BalanceSource } from "./invariants-balances.ts";
export { readStoredEvents, streamPosition } from "./invariants-read.ts";
export type { StoredEvent, StreamPosition } from "./invariants-read.ts";
export { freePort } from "./ports.ts";
export { killAll, liveProcessIds, stopAllProcesses } from "./processes.ts";
export { startRedis } from "./redis-server.ts";
export type { RedisServerHandle, RedisSnapshot, StartRedisOptions } from "./redis-server.ts";
export { waitFor } from "./wait.ts";
export type { WaitForOptions } from "./wait.ts";
export { createPrng } from "./prng.ts";
export type { Prng } from "./prng.ts";
export { httpGet } from "./http-get.ts";
export type { HttpResponse } from "./http-get.ts";
