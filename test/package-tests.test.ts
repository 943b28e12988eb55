// Every workspace package has a `test` script that runs its own tests (issue 14): `vitest run`,
// which exits non-zero on a failed test and on a filter that selects no file, selecting at
// least one test file, all of its own folder (a tool whose test drives the whole repository
// from test/ may name test/<its name>.test.ts). What a script selects is asked of vitest itself
// (`vitest list --filesOnly`, which runs no test), from the package's folder as pnpm runs it.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

const root = join(import.meta.dirname, "..");
const out = mkdtempSync(join(tmpdir(), "jetmesh-package-tests-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The workspace's package folders, relative to the root (pnpm-workspace.yaml's globs). */
function packageDirs(): string[] {
  const { packages } = parse(readFileSync(join(root, "pnpm-workspace.yaml"), "utf8")) as {
    packages: string[];
  };
  return packages.flatMap((glob) =>
    glob.endsWith("/*")
      ? readdirSync(join(root, glob.slice(0, -2)), { withFileTypes: true })
          .filter(
            (d) =>
              d.isDirectory() && readdirSync(join(root, glob.slice(0, -2), d.name)).includes("package.json"),
          )
          .map((d) => `${glob.slice(0, -2)}/${d.name}`)
      : [glob],
  );
}

/** The test files `script` (a `vitest run …` command) selects when run in `dir`, relative to the root. */
function selected(dir: string, script: string): string[] {
  const file = join(out, `${dir.replaceAll("/", "-")}.json`);
  const args = script
    .replace(/^vitest run\b/, "")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  const r = spawnSync("pnpm", ["exec", "vitest", "list", "--filesOnly", `--json=${file}`, ...args], {
    cwd: join(root, dir),
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(r.status, `${dir}: vitest list ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return (JSON.parse(readFileSync(file, "utf8")) as { file: string }[]).map((f) => relative(root, f.file));
}

describe("package tests", () => {
  it("package tests - every workspace package's `test` script runs vitest on test files of its own", () => {
    const dirs = packageDirs();
    expect(dirs).toEqual(expect.arrayContaining(["packages/stage", "services/validator", "test", "bench"]));
    for (const dir of dirs) {
      const pkg = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) as {
        name: string;
        scripts?: Record<string, string>;
      };
      const script = pkg.scripts?.test;
      expect(script, `${dir} has a test script`).toBeDefined();
      // vitest run fails on a failed test and on no test file; nothing may turn that into success
      expect(script, dir).toMatch(/^vitest run\b/);
      expect(script, dir).not.toMatch(/passWithNoTests|\|\||;|&/);
      const files = selected(dir, script as string);
      expect(files.length, `${dir} selects test files`).toBeGreaterThan(0);
      const own = `test/${pkg.name.replace(/^@jetmesh\//, "")}.test.ts`;
      for (const f of files)
        expect(f.startsWith(`${dir}/`) || f === own, `${dir} runs ${f}, not its own`).toBe(true);
    }
  }, 120_000);
});
