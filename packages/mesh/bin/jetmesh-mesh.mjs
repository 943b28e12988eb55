#!/usr/bin/env node
// The package's sources are TypeScript run through tsx, as every jetmesh process is.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
