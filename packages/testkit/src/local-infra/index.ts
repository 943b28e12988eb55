/**
 * @jetmesh/testkit/local-infra: the local infrastructure of tests and runners. Real
 * nats-server (one, or a three-node cluster) and redis-server processes on free 127.0.0.1
 * ports with temp data folders, {@link startInfra} for the runners (reuse what answers,
 * start the rest), child processes that die with this one, a TCP fault proxy, the bundle of
 * an entry point. Nothing here checks anything: the invariant checker is `@jetmesh/testkit`.
 */
export { ensureBinaries, ensurePrometheus, ensurePromtool } from "./binaries.ts";
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
export { freePort } from "./ports.ts";
export { killAll, liveProcessIds, stopAllProcesses } from "./processes.ts";
export { startRedisSentinel } from "./redis-sentinel.ts";
export type {
  FailedPrimary,
  FailPrimaryOptions,
  RedisSentinelHandle,
  StartRedisSentinelOptions,
} from "./redis-sentinel.ts";
export { startRedis } from "./redis-server.ts";
export type { RedisServerHandle, RedisSnapshot, StartRedisOptions } from "./redis-server.ts";
export { startInfra } from "./start-infra.ts";
export type { Infra, StartInfraOptions } from "./start-infra.ts";
