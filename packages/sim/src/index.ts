export { createSimBank, SIM_BANK_URL } from "./bank.ts";
export type { SimBank } from "./bank.ts";
export { drive, VirtualTimeout } from "./drive.ts";
export { createSimNats } from "./nats/index.ts";
export type {
  CrashOutcome,
  PublishFate,
  SimConnectOptions,
  SimConsumerState,
  SimCrashOptions,
  SimInspection,
  SimNats,
  SimNatsOptions,
  SimStoredMessage,
} from "./nats/index.ts";
export { createSimRedis } from "./redis/index.ts";
export type {
  SimRedis,
  SimRedisControl,
  SimRedisDumpEntry,
  SimRedisOptions,
  SimRedisSnapshot,
} from "./redis/index.ts";
export { installSeededRandom } from "./seeded-random.ts";
export { installVirtualTime } from "./virtual-time.ts";
export type { VirtualTime } from "./virtual-time.ts";
export { runWorld, SIM_MINTER } from "./world.ts";
export type { WorldOptions, WorldResult } from "./world.ts";
