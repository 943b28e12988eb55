import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

const shas = new Map<string, string>();

/** EVALSHA, loading the script on NOSCRIPT (first use, or after a Redis restart). */
export async function runScript(
  redis: Redis,
  script: string,
  keys: string[],
  args: string[],
): Promise<unknown> {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash("sha1").update(script).digest("hex");
    shas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    // A Redis error reply's code is its first word; NOSCRIPT has no class of its own.
    if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}
