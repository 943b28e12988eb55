import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "./errors.ts";

/**
 * Reads a secret (a password, an NKey seed, a key) from a file, trimmed. Secrets never come
 * from images or logs: a deployment mounts them as files readable by the service alone.
 * @throws ConfigError when the file is missing, empty, or readable by others (mode o+r): a
 *   world-readable secret is refused at start, not used.
 */
export function readSecretFile(path: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new ConfigError([`${what}: secret file ${path} cannot be read`]);
  }
  if (mode & 0o004)
    throw new ConfigError([
      `${what}: secret file ${path} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod o-r it`,
    ]);
  const value = readFileSync(path, "utf8").trim();
  if (!value) throw new ConfigError([`${what}: secret file ${path} is empty`]);
  return value;
}
