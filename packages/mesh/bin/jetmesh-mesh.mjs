#!/usr/bin/env node
// The runner is a dev tool: its own TypeScript runs through tsx. The services it starts run
// their bundles with plain node, built here first so that none is missing or stale.
import { register } from "tsx/esm/api";
import { buildBundles } from "../../../scripts/build.mjs";

await buildBundles();
register();
await import("../src/main.ts");
