#!/usr/bin/env node
// Bundles every process jetmesh starts (services, the ledger's rebuild check, the bench's
// children, the test fixture stage) into one ES module each, run with plain `node`. A
// process run through tsx carries tsx's loader thread, the TypeScript compile and the
// source maps: about 80 MB of RSS per process that a bundle does not.
//
//   node scripts/build.mjs              every bundle
//   node scripts/build.mjs ledger bench the bundles of those groups (names below)
//
// `<dir>/src/<file>.ts` (`test/fixtures/<file>.ts` likewise) becomes `<dir>/dist/<file>.mjs`,
// with a linked source map next to it: `NODE_OPTIONS=--enable-source-maps` makes stack
// traces point into the TypeScript sources (off by default: it costs memory and time).
// Plain Node ESM on purpose: it runs before anything else is built, in the service image's
// build stage too (deploy/docker/Dockerfile.service). It rebuilds every time (about two seconds for all of them), so a bundle
// is never older than its sources. esbuild writes next to `dist/` and each file then
// replaces its old self in one rename: a process starting meanwhile never reads half a bundle.
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
// biome-ignore lint/style/noRestrictedImports: plain Node ESM, before anything is built: the catalog's entry is TypeScript, its reader is not
import { bundlesOf, readManifests } from "../packages/catalog/src/read.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Source entries, relative to the repository root, by the group name that selects them: one
 * group per service of the catalog (its manifest's `bundles`, `src/main.ts` by default; read
 * from services/*\/manifest.json, so a new service is bundled without an edit here), then
 * the tools' and tests' own.
 */
export const ENTRIES = {
  ...Object.fromEntries(readManifests(join(root, "services")).map((m) => [m.name, bundlesOf(m)])),
  bench: [
    "bench/src/runtime-stage.ts",
    "bench/src/handwritten-stage.ts",
    "bench/src/raw-consumer.ts",
    "bench/src/raw-publisher.ts",
    "bench/src/floor-process.ts",
  ],
  test: ["test/fixtures/echo-stage.ts"],
  sim: ["packages/sim/src/cli.ts"],
  // the operators' CLI as the tests run it (the bin, packages/ops/bin/jetmesh.mjs, runs the
  // sources through tsx: about 1 s a start, which the runbook and CLI tests pay hundreds of times)
  ops: ["packages/ops/src/cli.ts"],
};

/** Where the bundle of `entry` goes: the sources' folder's sibling `dist/`, `.ts` → `.mjs`. */
export function bundleOf(entry, folder = "dist") {
  return join(dirname(dirname(entry)), folder, `${basename(entry, ".ts")}.mjs`);
}

// Native addons cannot be bundled. msgpackr-extract (msgpackr's string decoder, about a
// third off decoding an event) is optional: msgpackr falls back to JavaScript without it.
// Each bundle that uses one gets a copy of it and its dependencies in `dist/node_modules`,
// so a `dist/` folder runs on its own (the service image ships only that folder).
export const EXTERNAL = ["msgpackr-extract"];

// CommonJS dependencies bundled into an ES module still call require() for Node's
// builtins and read __dirname; give them both (the bundle's own folder).
export const BANNER = [
  'import { createRequire as __jetmeshCreateRequire } from "node:module";',
  'import { dirname as __jetmeshDirname } from "node:path";',
  'import { fileURLToPath as __jetmeshFileURLToPath } from "node:url";',
  "const require = __jetmeshCreateRequire(import.meta.url);",
  "const __filename = __jetmeshFileURLToPath(import.meta.url);",
  "const __dirname = __jetmeshDirname(__filename);",
].join("\n");

/**
 * Builds the bundles of the named groups (all of them when `names` is empty).
 * @throws on an unknown group name or a build error (esbuild prints the details).
 */
export async function buildBundles(names = []) {
  const unknown = names.filter((n) => !(n in ENTRIES));
  if (unknown.length)
    throw new Error(`unknown bundle ${unknown.join(", ")}; known: ${Object.keys(ENTRIES).join(", ")}`);
  const entries = (names.length ? names : Object.keys(ENTRIES)).flatMap((n) => ENTRIES[n]);
  // A staging folder at the same depth as dist/: the maps' relative source paths hold after the move.
  const staging = `dist.${process.pid}.tmp`;
  const stagingDirs = [...new Set(entries.map((e) => join(root, dirname(bundleOf(e, staging)))))];
  try {
    await bundle(entries, staging);
  } finally {
    for (const dir of stagingDirs) rmSync(dir, { recursive: true, force: true });
  }
  return entries.map((e) => bundleOf(e));
}

async function bundle(entries, staging) {
  // One esbuild run for every entry: each is still its own bundle (no code splitting).
  const { metafile } = await build({
    absWorkingDir: root,
    entryPoints: entries.map((e) => ({ in: e, out: bundleOf(e, staging).replace(/\.mjs$/, "") })),
    outdir: ".",
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: EXTERNAL,
    banner: { js: BANNER },
    sourcemap: "linked",
    // Stack traces need only the mappings; the sources are next to the map in a checkout.
    sourcesContent: false,
    logLevel: "warning",
    metafile: true,
  });
  for (const [out, meta] of Object.entries(metafile.outputs)) {
    if (!out.endsWith(".mjs")) continue;
    const modules = join(root, dirname(dirname(out)), "dist", "node_modules");
    for (const name of EXTERNAL) {
      // The module that imports it: the package is resolved from there, as Node would.
      const importer = Object.keys(meta.inputs).find((i) =>
        metafile.inputs[i]?.imports.some((im) => im.external && im.path === name),
      );
      if (importer) copyPackage(name, join(root, importer), modules);
    }
  }
  // Last, the bundles themselves: their externals are in place when they appear.
  for (const out of Object.keys(metafile.outputs)) {
    const dist = join(root, dirname(dirname(out)), "dist");
    mkdirSync(dist, { recursive: true });
    renameSync(join(root, out), join(dist, basename(out)));
  }
}

/**
 * Copies package `name`, as resolved from `from`, into `modules` unless the same version
 * is there, then its dependencies (optional ones when installed: a native addon's
 * prebuilt binary for this platform).
 */
function copyPackage(name, from, modules, optional = false) {
  const dir = createRequire(from)
    .resolve.paths(name)
    ?.map((p) => join(p, name))
    .find((d) => existsSync(join(d, "package.json")));
  if (!dir) {
    if (optional) return;
    throw new Error(`cannot find ${name} from ${from}`);
  }
  const real = realpathSync(dir);
  const self = join(real, "package.json");
  const pkg = JSON.parse(readFileSync(self, "utf8"));
  const dest = join(modules, name);
  if (versionAt(dest) !== pkg.version) {
    // Copied aside and swapped in by renames, never removed in place: a build running at
    // the same time may be doing the same. (A pnpm package's own node_modules holds only
    // .bin links: left out.)
    const tmp = `${dest}.${process.pid}.tmp`;
    const old = `${dest}.${process.pid}.old`;
    const inner = join(real, "node_modules");
    cpSync(real, tmp, { recursive: true, dereference: true, filter: (src) => !src.startsWith(inner) });
    try {
      renameSync(dest, old);
    } catch {
      // nothing there yet
    }
    try {
      renameSync(tmp, dest);
    } catch (err) {
      if (versionAt(dest) !== pkg.version) throw err;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(old, { recursive: true, force: true });
    }
  }
  for (const dep of Object.keys(pkg.dependencies ?? {})) copyPackage(dep, self, modules);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) copyPackage(dep, self, modules, true);
}

function versionAt(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
  } catch {
    return undefined;
  }
}

/**
 * Bundles `entry` into `outfile` as the bundles above are built, except that the sources
 * named in `sources` (repo-relative path → text) are read from there instead of the disk:
 * the simulator's mutation test plants one bug at a time this way, never touching the tree.
 * @throws on a build error.
 */
export async function buildVariant(entry, outfile, sources) {
  const replaced = new Map(Object.entries(sources).map(([path, text]) => [join(root, path), text]));
  await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: EXTERNAL,
    banner: { js: BANNER },
    logLevel: "warning",
    plugins: [
      {
        name: "variant",
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, (args) =>
            replaced.has(args.path) ? { contents: replaced.get(args.path), loader: "ts" } : undefined,
          );
        },
      },
    ],
  });
}

/** vitest `globalSetup`: every bundle once before the tests, so a fresh clone needs no step first. */
export async function setup() {
  await buildBundles();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = performance.now();
  buildBundles(process.argv.slice(2)).then(
    (out) => console.error(`build: ${out.length} bundles in ${Math.round(performance.now() - t0)} ms`),
    (err) => {
      console.error(`build: ${err.message}`);
      process.exit(1);
    },
  );
}
