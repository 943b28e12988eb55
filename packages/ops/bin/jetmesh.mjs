#!/usr/bin/env node
// The operators' CLI is a dev tool: its own TypeScript runs through tsx, like jetmesh-chaos.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
