/**
 * @jetmesh/stage: define a stage and serve it (serveStage, serveProcess), with what a
 * stage's code and its main.ts use. The machinery behind it (publisher, reply inbox,
 * provisioning, idempotency store, crash points, metrics) is `@jetmesh/stage/internal`, for
 * the gateway, the ledger's writer, the bench, tools and tests; `@jetmesh/stage/testing` is
 * for a stage's own tests.
 */
export {
  BaseEnv,
  loadRedisSentinel,
  loadStageConfig,
  parseConfig,
  settingsFromEnv,
  stageProcessConfig,
  stageSettings,
} from "./config.ts";
export { authenticates } from "./config.ts";
export type { NatsAuth, RedisAuth, RedisSentinel, StageProcessConfig, StageSettings } from "./config.ts";
export { connectNats, createRedis, inboxPrefixOf, maskUrl } from "./connections.ts";
export { readSecretFile } from "./secrets.ts";
export type { NatsConnection, Redis } from "./connections.ts";
export { defineStage, emit, isEvent } from "./define-stage.ts";
export type {
  Delivery,
  Effect,
  Emission,
  Handler,
  HandlerContext,
  Middleware,
  Plan,
  StageDefinition,
  StageInput,
} from "./define-stage.ts";
export {
  ConfigError,
  DuplicateMismatchError,
  PermanentError,
  PublishError,
  TransientError,
} from "./errors.ts";
export { operationalRoutes, serveHttp } from "./http-server.ts";
export type { HttpServer, ReadinessProbe, Routes } from "./http-server.ts";
export { createLogger, maskAccount } from "./logger.ts";
export type { Logger } from "./logger.ts";
export { metricsRegistry } from "./metrics.ts";
export { redeliveryHorizonMs, retryDelayMs } from "./retry-policy.ts";
export type { HorizonSettings, RetryPolicy } from "./retry-policy.ts";
export { runStage } from "./run-stage.ts";
export { serveProcess, serveStage } from "./serve-stage.ts";
export { configErrorBlock, exitOnConfigError, serviceHelp, startService } from "./service-start.ts";
export type { ServiceManifest, StartIo } from "./service-start.ts";
export type {
  ProcessClients,
  ProcessParts,
  ServeProcessOptions,
  ServeStageOptions,
  StageClients,
} from "./serve-stage.ts";
export type { RunStageOptions, StageHandle } from "./run-stage.ts";
export { onShutdown } from "./shutdown.ts";
export { untilAnswered } from "./start-retry.ts";
export {
  context,
  extractContext,
  injectContext,
  linkTo,
  SpanKind,
  SpanStatusCode,
  startTelemetry,
  trace,
  traceparentOf,
  tracer,
} from "./telemetry.ts";
export type { Context, HeaderCarrier, Span, Telemetry, TelemetryOptions } from "./telemetry.ts";
