export type { PublishFate } from "./jetstream.ts";
export type {
  SimConnectOptions,
  SimConsumerState,
  SimInspection,
  SimNats,
  SimNatsOptions,
  SimStoredMessage,
} from "./sim-nats.ts";
export { createSimNats } from "./sim-nats.ts";
