// The bench is a script, not a test of speed: this runs `pnpm bench --tiny` once and checks
// that it produced every row with positive figures. It never asserts a speed.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ROWS } from "./main.ts";
import type { Ratio } from "./report.ts";
import type { RowResult } from "./rows.ts";
import { benchDir } from "./rows.ts";

const dir = mkdtempSync(join(tmpdir(), "jetmesh-bench-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bench", () => {
  it("bench - --tiny produces every row with positive figures, a table and the ratios", async () => {
    const json = join(dir, "bench.json");
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/main.ts", "--tiny", "--json", json],
      { cwd: benchDir, maxBuffer: 16 * 1024 * 1024, timeout: 540_000 },
    );
    const report = JSON.parse(readFileSync(json, "utf8")) as { rows: RowResult[]; ratios: Ratio[] };
    const ids = report.rows.map((r) => r.id);
    // The pipeline and the rate rows report several results each.
    const rates = ROWS.filter((r) => r.id.startsWith("rate."));
    for (const row of ROWS.filter((r) => r.id !== "pipeline" && !rates.includes(r)))
      expect(ids).toContain(row.id);
    // --tiny paces the rate rows at 100/s only.
    for (const row of rates)
      for (const phase of ["100", "preload"])
        for (const subject of ["handwritten", "runtime"])
          expect(ids).toContain(`${row.id}.${phase}.${subject}`);
    expect(ids).toEqual(expect.arrayContaining(["pipeline.saturation", "pipeline.latency"]));
    for (const r of report.rows) {
      expect(r.perSecond, r.id).toBeGreaterThan(0);
      expect(r.latency.count, r.id).toBeGreaterThan(0);
      expect(r.latency.p99, r.id).toBeGreaterThanOrEqual(r.latency.p50);
      if (r.id.startsWith("pipeline")) {
        // 202 → outcome is 0 for a transfer whose outcome was stored before its 202 arrived;
        // request → outcome is always positive.
        expect(r.latency.p50, r.id).toBeGreaterThanOrEqual(0);
        expect(r.facts?.request_to_outcome_p50_ms, r.id).toBeGreaterThan(0);
      } else expect(r.latency.p50, r.id).toBeGreaterThan(0);
      const subject = r.processes[r.subject];
      expect(subject, r.id).toBeDefined();
      expect(subject!.cpuUsPerMsg, r.id).toBeGreaterThan(0);
      expect(subject!.peakRssMb ?? subject!.maxRssMb, r.id).toBeGreaterThan(0);
      for (const [name, p] of Object.entries(r.processes))
        expect(p.maxRssMb, `${r.id} ${name}`).toBeGreaterThan(0);
    }
    expect(report.ratios.length).toBeGreaterThanOrEqual(8);
    // Each pipeline row is read against the floor at its own load.
    const against = (row: string) =>
      report.ratios.find((q) => q.numerator === row && q.name.endsWith("all processes"))?.denominator;
    expect(against("pipeline.saturation")).toBe("floor.transfer");
    expect(against("pipeline.latency")).toBe("floor.transfer.paced");
    for (const q of report.ratios) expect(q.value, q.name).toBeGreaterThan(0);
    for (const r of report.rows) expect(stdout).toContain(r.label);
    expect(stdout).toContain("ratios (same run)");
  }, 600_000);
});
