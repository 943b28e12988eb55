// The catalog's reader: every services/<dir>/manifest.json, read as data (nothing is
// imported from a service). Plain Node ESM on purpose: scripts/build.mjs reads the bundles
// from here before anything is built, in the service image's build stage too. Types in read.d.mts;
// everything above raw reading (the check against the contracts, the views) is catalog.ts.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The bundle entry of a service that names none: its `src/main.ts`. */
export const DEFAULT_BUNDLES = ["src/main.ts"];

/**
 * Reads every `<servicesDir>/<dir>/manifest.json`, sorted by name.
 * @throws when a service folder (one with a package.json) has no manifest.json, when a
 *   manifest is not JSON, has no name, or names another folder.
 */
export function readManifests(servicesDir) {
  const manifests = [];
  for (const dir of readdirSync(servicesDir, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    const folder = join(servicesDir, dir.name);
    const file = join(folder, "manifest.json");
    if (!existsSync(file)) {
      if (existsSync(join(folder, "package.json")))
        throw new Error(
          `${folder} has no manifest.json: every service folder needs one (the catalog reads it)`,
        );
      continue;
    }
    let m;
    try {
      m = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`${file}: not JSON (${err instanceof Error ? err.message : err})`);
    }
    if (typeof m?.name !== "string" || !m.name) throw new Error(`${file}: no name`);
    if (m.name !== dir.name) throw new Error(`${file}: name "${m.name}" must be its folder's, "${dir.name}"`);
    manifests.push(m);
  }
  return manifests.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The bundles a service ships, relative to the repository root: its manifest's `bundles`
 * (paths in its folder), `src/main.ts` when it names none. The first is the process the
 * service runs.
 */
export function bundlesOf(m) {
  return (m.bundles ?? DEFAULT_BUNDLES).map((b) => `services/${m.name}/${b}`);
}
