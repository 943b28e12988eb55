import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, expect, it } from "vitest";

// The packages' faces are enforced by lint (biome.json), not by review: these probes are
// planted in a scratch tree under the repository's own biome.json, and each must be flagged.
const repo = resolve(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "jetmesh-lint-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function lint(files: Record<string, string>): string[] {
  copyFileSync(join(repo, "biome.json"), join(scratch, "biome.json"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(scratch, path)), { recursive: true });
    writeFileSync(join(scratch, path), text);
  }
  const r = spawnSync(join(repo, "node_modules/.bin/biome"), ["lint", "--max-diagnostics=200", "."], {
    cwd: scratch,
    encoding: "utf8",
  });
  // One line per finding: "<path>:<line>:<col> lint/<group>/<rule>".
  return `${r.stdout}${r.stderr}`
    .split("\n")
    .map((l) => /^(\S+):\d+:\d+ (lint\/\S+)/.exec(l))
    .filter((m) => m !== null)
    .map((m) => `${m[1]} ${m[2]}`)
    .sort();
}

it("lint - production code may not import testkit or the simulator, re-export everything, or reach into another package's src", () => {
  const found = lint({
    "services/demo/src/uses-testkit.ts":
      'import { startNats } from "@jetmesh/testkit";\nexport const a = startNats;\n',
    "services/demo/src/uses-sim.ts": 'import { runWorld } from "@jetmesh/sim";\nexport const b = runWorld;\n',
    "packages/stage/src/uses-testing.ts":
      'import { handlerContext } from "@jetmesh/stage/testing";\nexport const c = handlerContext;\n',
    "services/demo/src/barrel.ts": 'export * from "./handler.ts";\n',
    "services/demo/src/deep.ts":
      'import { park } from "../../../packages/stage/src/dead-letter.ts";\nexport const d = park;\n',
    "test/deep.test.ts": 'import { fold } from "@jetmesh/ledger/src/fold.ts";\nexport const e = fold;\n',
    // Allowed: tests and test support may use testkit; packages by name and entry.
    "services/demo/src/handler.test.ts":
      'import { startNats } from "@jetmesh/testkit";\nexport const f = startNats;\n',
    "services/demo/src/test-support.ts":
      'import { startNats } from "@jetmesh/testkit";\nexport const g = startNats;\n',
    "services/demo/src/ok.ts":
      'import { serveStage } from "@jetmesh/stage";\nimport { Streams } from "@jetmesh/contracts";\nexport const h = [serveStage, Streams];\n',
  });
  expect(found).toEqual([
    "packages/stage/src/uses-testing.ts lint/style/noRestrictedImports",
    "services/demo/src/barrel.ts lint/performance/noReExportAll",
    "services/demo/src/deep.ts lint/style/noRestrictedImports",
    "services/demo/src/uses-sim.ts lint/style/noRestrictedImports",
    "services/demo/src/uses-testkit.ts lint/style/noRestrictedImports",
    "test/deep.test.ts lint/style/noRestrictedImports",
  ]);
});

it("lint - the repository itself passes biome's lint, the faces' rules included", () => {
  const r = spawnSync(join(repo, "node_modules/.bin/biome"), ["lint", "--max-diagnostics=20", "."], {
    cwd: repo,
    encoding: "utf8",
  });
  expect(`${r.stdout}${r.stderr}`.split("\n").filter((l) => / lint\//.test(l))).toEqual([]);
  expect(r.status).toBe(0);
});
