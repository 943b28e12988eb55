import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Folders created by this kit that have not been removed yet. */
const created = new Set<string>();

/**
 * Creates a fresh folder under the OS temp dir, named `jetmesh-<prefix>-XXXXXX`.
 * The kit remembers it and removes it at process exit if nobody removed it before.
 */
export async function createTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `jetmesh-${prefix}-`));
  created.add(dir);
  return dir;
}

/** Removes a folder made by {@link createTempDir} (recursively; a missing folder is fine). */
export async function removeTempDir(dir: string): Promise<void> {
  created.delete(dir);
  // A server killed a moment ago may still be flushing a file: retry instead of failing.
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

/** Removes every folder made by {@link createTempDir} that is still there. */
export async function removeAllTempDirs(): Promise<void> {
  await Promise.all([...created].map((dir) => removeTempDir(dir)));
}

/**
 * Synchronous variant of {@link removeAllTempDirs} for the process 'exit' event, where
 * nothing asynchronous runs. Errors are swallowed: the process is going away anyway.
 */
export function removeAllTempDirsSync(): void {
  for (const dir of created) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort at exit
    }
  }
  created.clear();
}
