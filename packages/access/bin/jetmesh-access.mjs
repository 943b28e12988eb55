#!/usr/bin/env node
// A deploy tool: its TypeScript runs through tsx, as the other command-line tools do.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
