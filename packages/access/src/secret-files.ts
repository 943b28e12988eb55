import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** The git work tree `dir` is in, or undefined. */
function gitWorkTreeOf(dir: string): string | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, ".git"))) return d;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * Resolves and creates (mode 0700) a folder for secrets.
 * @throws when it is inside a git work tree: secrets never go into a repository.
 */
export function secretsFolder(out: string, what: string): string {
  const dir = resolve(out);
  const repo = gitWorkTreeOf(dir);
  if (repo)
    throw new Error(`refusing to write ${what} inside the git work tree ${repo}: choose a folder outside it`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Writes a file through a temporary file and a rename, so a reader never sees half of it, with
 * `mode` (0600 by default: readable by its owner only) set also when the file existed wider.
 */
export function writeSecretFile(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
