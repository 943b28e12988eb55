export {
  BaseEnv,
  loadStageConfig,
  parseConfig,
  settingsFromEnv,
  stageProcessConfig,
  stageSettings,
} from "./config.ts";
export { authenticates } from "./config.ts";
export type { NatsAuth, RedisAuth, StageProcessConfig, StageSettings } from "./config.ts";
export { connectNats, createRedis, inboxPrefixOf } from "./connections.ts";
export { readSecretFile } from "./secrets.ts";
export type { NatsConnection, Redis } from "./connections.ts";
export { CrashPoints, createCrashHook, SimulatedCrash } from "./crash-points.ts";
export type { CrashHook, CrashPoint } from "./crash-points.ts";
export { park } from "./dead-letter.ts";
export type { ParkReason, ParkedOrigin } from "./dead-letter.ts";
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
export { createIdempotencyStore } from "./idempotency-store.ts";
export type { ClaimResult, IdempotencyStore } from "./idempotency-store.ts";
export { createLogger, maskAccount } from "./logger.ts";
export type { Logger } from "./logger.ts";
export { createStageMetrics, metricsRegistry } from "./metrics.ts";
export type { StageMetrics } from "./metrics.ts";
export {
  consumerConfig,
  ensureConsumer,
  ensureStream,
  provisionStreams,
  StreamMissingError,
} from "./provision.ts";
export type { ConsumerSpec, ConsumerStart } from "./provision.ts";
export { openPositions, POSITIONS_BUCKET } from "./positions.ts";
export type { ConsumerPosition, PositionStore } from "./positions.ts";
export { outputEnvelopes } from "./outputs.ts";
export { createEventPublisher, PublishErrorCodes } from "./publisher.ts";
export { ReplyInbox } from "./reply-inbox.ts";
export type { EventPublisher, PublishOptions, PublisherSettings } from "./publisher.ts";
export { redeliveryHorizonMs, retryDelayMs } from "./retry-policy.ts";
export type { HorizonSettings, RetryPolicy } from "./retry-policy.ts";
export { runStage } from "./run-stage.ts";
export { serveProcess, serveStage } from "./serve-stage.ts";
export type {
  ProcessClients,
  ProcessParts,
  ServeProcessOptions,
  ServeStageOptions,
  StageClients,
} from "./serve-stage.ts";
export type { RunStageOptions, StageHandle } from "./run-stage.ts";
export { checkSettings } from "./settings-check.ts";
export type { StreamFacts } from "./settings-check.ts";
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
