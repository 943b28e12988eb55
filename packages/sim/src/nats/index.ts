export type { CrashOutcome } from "./consumer.ts";
export type { PublishFate } from "./jetstream.ts";
export type {
  SimConnectOptions,
  SimConsumerState,
  SimCrashOptions,
  SimInspection,
  SimNats,
  SimNatsOptions,
  SimStoredMessage,
} from "./sim-nats.ts";
export { createSimNats } from "./sim-nats.ts";
