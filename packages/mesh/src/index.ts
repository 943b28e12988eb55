/**
 * @jetmesh/mesh: the local runner. A dev tool, not a service: it starts nats-server,
 * redis-server and every service as its own process, sends demo traffic through the
 * gateway, waits until the pipeline is quiet and reports with the invariants checked.
 * The end-to-end tests use the same functions.
 */
export { MEMORY_NODE_OPTIONS, MESH_LINGER_MS, repoRoot, startMesh } from "./mesh.ts";
export type { AddInstanceOptions, MeshHandle, MeshService, StartMeshOptions } from "./mesh.ts";
export { createProgressBar } from "./progress.ts";
export type { ProgressBar } from "./progress.ts";
export { pipelineBacklog, waitForQuiet } from "./quiet.ts";
export type { PipelineBacklog, WaitForQuietOptions } from "./quiet.ts";
export { buildReport, formatReport } from "./report.ts";
export type { MeshReport, Percentiles } from "./report.ts";
export { REFUSED_BANK_ACCOUNTS, runDemo } from "./run.ts";
export type { RunDemoOptions } from "./run.ts";
export { MESH_CUSTOMER, MESH_CUSTOMER_ACCOUNTS, MESH_OPERATOR, writeGatewaySecrets } from "./secrets.ts";
export type { GatewaySecrets, MeshApiKeys } from "./secrets.ts";
export { ServiceNames, Services, serviceSpec } from "./services.ts";
export type { ByService, ReferenceService, ServiceName, ServiceSpec } from "./services.ts";
export { DEFAULT_SHARES, sendTraffic } from "./traffic.ts";
export type {
  AcceptedRecord,
  TrafficOptions,
  TrafficProgress,
  TrafficResult,
  TrafficShares,
  TransferKind,
} from "./traffic.ts";
