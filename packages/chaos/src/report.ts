import { table } from "@jetmesh/tools";
import { formatMs } from "./duration.ts";
import type { ScenarioResult } from "./run.ts";
import type { FaultAction } from "./scenario.ts";

/** The fault plan of one scenario, as printed before it runs (the same seed prints the same plan). */
export function formatSchedule(scenario: string, seed: string, plan: readonly FaultAction[]): string {
  if (plan.length === 0) return `schedule of ${scenario} (seed ${seed}): no timed faults`;
  const rows = plan.map((a) => [
    String(a.id),
    `+${(a.atMs / 1000).toFixed(1)}s`,
    a.kind,
    a.target,
    a.holdMs ? formatMs(a.holdMs) : "-",
    Object.entries(a.params ?? {})
      .filter(([k]) => k !== "service" && k !== "link")
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
  ]);
  return `schedule of ${scenario} (seed ${seed}):\n${table(["#", "at", "kind", "target", "hold", "params"], rows)}`;
}

/** The summary table: one row per scenario. */
export function formatSummary(results: readonly ScenarioResult[]): string {
  const rows = results.map((r) => {
    const faults = Object.entries(r.faultCounts)
      .filter(([k]) => k !== "duplicate-copy")
      .reduce((n, [, c]) => n + c, 0);
    const maxRss = r.rss.length ? Math.max(...r.rss.map((x) => x.maxMb)) : 0;
    return [
      r.scenario,
      r.seed,
      formatMs(r.durationMs),
      String(faults),
      String(r.faultCounts["duplicate-copy"] ?? 0),
      String(r.traffic.transfers),
      String(r.accepted),
      String(r.traffic.shed),
      String(r.outcomes.posted),
      String(r.outcomes.reversed),
      String(r.outcomes.declined),
      String(r.outcomes.rejected),
      String(r.lost),
      String(r.doubled),
      String(r.dlq),
      r.openDiscrepancies === undefined ? "-" : String(r.openDiscrepancies),
      formatMs(r.longestProgressMs),
      formatMs(r.longestDrainMs),
      String(r.unplannedExits.length),
      `${maxRss.toFixed(0)}M`,
      r.ok ? "PASS" : "FAIL",
    ];
  });
  return table(
    [
      "scenario",
      "seed",
      "faults for",
      "faults",
      "dup copies",
      "sent",
      "accepted",
      "shed 503",
      "posted",
      "reversed",
      "declined",
      "rejected",
      "lost",
      "doubled",
      "dlq",
      "open findings",
      "max to progress",
      "max to drain",
      "crashes",
      "max rss",
      "result",
    ],
    rows,
  );
}

/** Faults by kind per scenario, with the longest recovery after each kind. */
export function formatFaults(results: readonly ScenarioResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const [kind, count] of Object.entries(r.faultCounts).sort()) {
      const ofKind = r.faults.filter((f) => f.action.kind === kind && !f.error);
      const progress = ofKind.flatMap((f) => (f.progressMs === undefined ? [] : [f.progressMs]));
      const drain = ofKind.flatMap((f) => (f.drainMs === undefined ? [] : [f.drainMs]));
      const unrecovered = ofKind.length - progress.length;
      rows.push([
        r.scenario,
        kind,
        String(count),
        progress.length ? formatMs(Math.max(...progress)) : "-",
        progress.length ? formatMs(progress.reduce((a, b) => a + b, 0) / progress.length) : "-",
        drain.length ? formatMs(Math.max(...drain)) : "-",
        unrecovered ? String(unrecovered) : "",
      ]);
    }
  }
  return table(
    ["scenario", "fault kind", "count", "max to progress", "mean to progress", "max to drain", "unrecovered"],
    rows,
  );
}

/**
 * How hard each scenario's faults hit: one row per reach name (decisions a rollback
 * erased, messages another instance took over, the bank's 409s…), then what each counts.
 */
export function formatReach(results: readonly ScenarioResult[]): string {
  const rows: string[][] = [];
  const notes = new Map<string, string>();
  for (const r of results) {
    for (const [name, value] of Object.entries(r.reach)) {
      rows.push([r.scenario, name, String(value)]);
      if (r.reachNotes[name]) notes.set(name, r.reachNotes[name] as string);
    }
    if (r.bank) {
      const b = r.bank;
      rows.push([r.scenario, "posted to the bank", String(b.postedToBank)]);
      rows.push([r.scenario, "paid / refused by the bank", `${b.paidTransfers} / ${b.refusedTransfers}`]);
    }
  }
  if (rows.length === 0) return "reach: nothing measured";
  notes.set(
    "posted to the bank",
    "transfers LEDGER posted to a bank: account (B1-B5 compare each with the bank's record)",
  );
  notes.set(
    "paid / refused by the bank",
    "distinct transfers in the bank's /admin/payouts and /admin/refusals",
  );
  const legend = [...notes].map(([name, note]) => `  ${name}: ${note}`);
  return `${table(["scenario", "reach", "value"], rows)}\n${legend.join("\n")}`;
}

/** Everything after the tables: problems, warnings, violations with their events. */
export function formatDetails(results: readonly ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const head = `${r.scenario} (seed ${r.seed}, ${formatMs(r.durationMs)} at ${r.rate}/s): ${r.ok ? "pass" : "FAIL"}`;
    const lines = [head];
    lines.push(
      `  requests ${r.traffic.requests} (${Object.entries(r.traffic.byStatus)
        .map(([k, v]) => `${k}×${v}`)
        .join(" ")})${
        Object.keys(r.traffic.errors).length
          ? ` errors ${Object.entries(r.traffic.errors)
              .map(([k, v]) => `${k}×${v}`)
              .join(" ")}`
          : ""
      }, retries ${r.traffic.retries}, 503 with Retry-After ${r.traffic.retryAfter503}, ` +
        `invariants checked ${r.invariantsChecked.join(" ") || "none"}, drained at ≤ ${r.drainThreshold} outstanding, status projection lag max ${r.maxStatusLag}, ` +
        `drained in ${formatMs(r.timings.drainMs)}, run ${formatMs(r.timings.totalMs)}`,
    );
    lines.push(
      `  rss max: ${r.rss
        .map(
          (x) =>
            `${x.name} ${x.maxMb.toFixed(0)}M (${x.firstThirdMaxMb.toFixed(0)}→${x.lastThirdMaxMb.toFixed(0)})`,
        )
        .join(", ")}`,
    );
    for (const p of r.problems) lines.push(`  problem: ${p}`);
    for (const w of r.warnings) lines.push(`  warning: ${w}`);
    for (const v of r.violations.slice(0, 20)) {
      lines.push(`  ${v.invariant} ${v.transferId ?? ""}: ${v.message}`);
      for (const e of v.events.slice(0, 8)) {
        lines.push(
          `      ${e.type} ${e.stream}#${e.seq} ${e.eventId ?? ""} at ${new Date(e.timestampMs).toISOString()}`,
        );
      }
    }
    const t0 = r.faults[0]?.startedAtMs ?? 0;
    for (const f of r.faults) {
      const at = `+${((f.startedAtMs - t0) / 1000).toFixed(1)}s`;
      const reach = f.reach
        ? `; reach ${Object.entries(f.reach)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}`
        : "";
      const what = f.error
        ? `error: ${f.error}`
        : `${f.detail}${reach}; stages moving after ${formatMs(f.progressMs)}, drained after ${formatMs(f.drainMs)}`;
      lines.push(`  fault ${f.action.id} ${at} ${f.action.kind} ${f.action.target}: ${what}`);
    }
    if (r.dataDir) lines.push(`  logs and store kept in ${r.dataDir}`);
    out.push(lines.join("\n"));
  }
  return out.join("\n\n");
}
