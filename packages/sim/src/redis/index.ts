export { createSimRedis } from "./sim-redis.ts";
export type {
  SimRedis,
  SimRedisControl,
  SimRedisDumpEntry,
  SimRedisOptions,
  SimRedisSnapshot,
} from "./sim-redis.ts";
