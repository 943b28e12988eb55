/**
 * @jetmesh/stage/internal: the runtime's machinery, for the gateway, the ledger's writer,
 * the bench, the tools and tests. A stage's own code uses `@jetmesh/stage` only.
 */
export { CrashPoints, createCrashHook, SimulatedCrash } from "./crash-points.ts";
export type { CrashHook, CrashPoint } from "./crash-points.ts";
export { park } from "./dead-letter.ts";
export type { ParkReason, ParkedOrigin } from "./dead-letter.ts";
export { createIdempotencyStore } from "./idempotency-store.ts";
export type { ClaimResult, IdempotencyStore } from "./idempotency-store.ts";
export { createStageMetrics } from "./metrics.ts";
export type { StageMetrics } from "./metrics.ts";
export {
  consumerConfig,
  inputConsumerSpec,
  replayConsumerSpec,
  consumerDrift,
  ensureConsumer,
  ensureStream,
  provisionStreams,
  StreamMissingError,
  streamDrift,
} from "./provision.ts";
export type { ConsumerSpec, ConsumerStart } from "./provision.ts";
export { openPositions, POSITIONS_BUCKET, positionOf } from "./positions.ts";
export type {
  ConsumerPosition,
  ConsumerProgress,
  DeclaredConsumerSettings,
  PositionStore,
} from "./positions.ts";
export { outputEnvelopes } from "./outputs.ts";
export { createEventPublisher, PublishErrorCodes } from "./publisher.ts";
export { ReplyInbox } from "./reply-inbox.ts";
export type { EventPublisher, PublishOptions, PublisherSettings } from "./publisher.ts";
export { checkSettings } from "./settings-check.ts";
export type { StreamFacts } from "./settings-check.ts";
export { checkSchemaRegistry, publishSchemaRegistry, readSchemaRegistry } from "./schema-registry.ts";
export type { PublishResult } from "./schema-registry.ts";
