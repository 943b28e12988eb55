// Importing the rebuild functions (`@jetmesh/ledger/projection-check`: foldLedger,
// diffProjection, rebuild) runs nothing. The command is its own entry (src/rebuild.ts): a module that
// decides by comparing import.meta.url with process.argv[1] whether to run is fooled inside
// a bundle, where every module's import.meta.url is the bundle's own, so a tool bundling ops
// (which imports these functions) ran a rebuild when it started.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, expect, it } from "vitest";
import { BANNER, EXTERNAL } from "../../../scripts/build.mjs";

const root = fileURLToPath(new URL("../../..", import.meta.url));
let dir: string;
let listener: Server;
let connections = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ledger-rebuild-import-"));
  // Where a rebuild that ran would connect: counted, never answered.
  listener = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
});

afterAll(async () => {
  await new Promise((r) => listener.close(r));
  rmSync(dir, { recursive: true, force: true });
});

it("ledger rebuild - a bundle that imports the rebuild functions runs no rebuild", async () => {
  const out = join(dir, "entry.mjs");
  await build({
    absWorkingDir: root,
    // The module `@jetmesh/ledger/projection-check` names (package.json exports), as a tool's bundle imports it.
    stdin: {
      contents:
        'import { diffProjection, foldLedger, rebuild } from "./projection-check.ts";\n' +
        'console.log(["imported", typeof foldLedger, typeof diffProjection, typeof rebuild].join(" "));\n',
      resolveDir: join(root, "services/ledger/src"),
      sourcefile: "entry.ts",
      loader: "ts",
    },
    outfile: out,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: [...EXTERNAL],
    banner: { js: BANNER },
    logLevel: "silent",
  });
  const port = (listener.address() as { port: number }).port;
  const run = await promisify(execFile)(process.execPath, [out], {
    env: { ...process.env, NATS_URL: `nats://127.0.0.1:${port}`, REDIS_URL: `redis://127.0.0.1:${port}` },
    timeout: 15_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
  expect({ ...run, connections }).toEqual({
    code: 0,
    stdout: "imported function function function\n",
    stderr: "",
    connections: 0,
  });
});
