import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** This checkout's root (this file is packages/testkit/src/local-infra/bundles.ts). */
const checkoutRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/**
 * The bundle that `scripts/build.mjs` makes of a TypeScript entry point, as an absolute
 * path: `<dir>/src/<file>.ts` → `<dir>/dist/<file>.mjs` (the build script's rule). A process
 * under test runs it with plain `node`, as deployed: never its sources through tsx, whose
 * loader costs about 80 MB of RSS and a compile at every start.
 *
 * `entry` is absolute or relative to `root` (default: this checkout). The path is not
 * checked: the test commands and vitest's global setup build every bundle first, and node
 * says "Cannot find module" when one is missing (`node scripts/build.mjs` makes it).
 */
export function bundleOf(entry: string, root: string = checkoutRoot): string {
  const source = isAbsolute(entry) ? entry : join(root, entry);
  return join(dirname(dirname(source)), "dist", `${basename(source, ".ts")}.mjs`);
}
