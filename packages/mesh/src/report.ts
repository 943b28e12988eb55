import type { InvariantName, InvariantReport, Violation } from "@jetmesh/testkit";
import { percentiles } from "@jetmesh/tools";
import type { TrafficResult } from "./traffic.ts";

/** The run's report, as printed and as written by `--json`. */
export interface MeshReport {
  readonly ok: boolean;
  /** The reconciler's open findings at the end (kind and key); absent when the mesh ran none. */
  readonly reconcilerOpenFindings?: readonly string[];
  readonly runId: string;
  readonly options: { readonly transfers: number; readonly rate: number; readonly accounts: number };
  readonly requests: {
    readonly sent: number;
    readonly byStatus: Readonly<Record<string, number>>;
    readonly errors: Readonly<Record<string, number>>;
    readonly invalid: TrafficResult["invalid"];
    readonly retries: TrafficResult["retries"];
    readonly failed: TrafficResult["failed"];
  };
  readonly transfers: {
    /** Accepted (202) transfers, funding included. */
    readonly accepted: number;
    readonly funding: number;
    readonly byOutcome: Readonly<Record<string, number>>;
  };
  readonly throughput: {
    /** Seconds from the first transfer sent to the last answer. */
    readonly sendSeconds: number;
    readonly offeredPerSec: number;
    readonly acceptedPerSec: number;
    /** Seconds from the first transfer sent to the last terminal outcome stored. */
    readonly endToEndSeconds: number;
    readonly completedPerSec: number;
    /** Seconds spent waiting for the pipeline to go quiet after the last answer. */
    readonly drainSeconds: number;
  };
  /**
   * From the client's 202 to the outcome's stream timestamp (VALIDATION or LEDGER), ms;
   * 0 for an outcome stored before the 202 reached the client (`beforeAccepted` of them).
   */
  readonly latencyMs: Percentiles & { readonly beforeAccepted: number };
  /** From sending the request to the outcome's stream timestamp, ms (the client's view). */
  readonly requestToOutcomeMs: Percentiles;
  readonly invariants: {
    readonly ok: boolean;
    readonly results: Readonly<Record<InvariantName, "pass" | "fail" | "skipped">>;
    readonly violationCounts: Readonly<Record<InvariantName, number>>;
    readonly firstViolation?: Violation;
    /** Up to 20 violations. */
    readonly violations: readonly Violation[];
    readonly totals: Readonly<Record<string, string>>;
    readonly events: Readonly<Record<string, number>>;
    readonly dlq: number;
  };
}

/** Percentiles of a latency, ms. */
export interface Percentiles {
  readonly samples: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles (the tools' one rule), as the report names them. */
function latencyPercentiles(values: readonly number[]): Percentiles {
  const p = percentiles(values);
  return { samples: p.count, p50: round(p.p50), p95: round(p.p95), p99: round(p.p99), max: round(p.max) };
}

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

/** Builds the report from what the client saw, the checker's answer and the drain time. */
export function buildReport(input: {
  runId: string;
  options: { transfers: number; rate: number; accounts: number };
  traffic: TrafficResult;
  invariants: InvariantReport;
  quietAtMs: number;
  /** The reconciler's open findings at the end (kind and key), when the mesh runs one. */
  openFindings?: readonly string[];
}): MeshReport {
  const { traffic: t, invariants: inv } = input;
  const main = t.accepted.filter((a) => a.kind !== "funding");
  const latencies: number[] = [];
  const fromRequest: number[] = [];
  let beforeAccepted = 0;
  let lastOutcome = t.startedAtMs;
  for (const a of main) {
    const view = inv.transfers.get(a.transferId);
    if (!view?.terminal) continue;
    const ms = view.terminal.timestampMs - a.acceptedAtMs;
    if (ms < 0) beforeAccepted++;
    latencies.push(Math.max(0, ms));
    fromRequest.push(Math.max(0, view.terminal.timestampMs - a.sentAtMs));
    lastOutcome = Math.max(lastOutcome, view.reversal?.timestampMs ?? view.terminal.timestampMs);
  }
  const byOutcome: Record<string, number> = {};
  for (const a of main) {
    const o = inv.transfers.get(a.transferId)?.outcome ?? "lost";
    byOutcome[o] = (byOutcome[o] ?? 0) + 1;
  }
  const sendSeconds = Math.max(0.001, (t.finishedAtMs - t.startedAtMs) / 1000);
  const endToEndSeconds = Math.max(0.001, (lastOutcome - t.startedAtMs) / 1000);
  const completed = main.filter((a) => inv.transfers.get(a.transferId)?.terminal).length;
  const results = {} as Record<InvariantName, "pass" | "fail" | "skipped">;
  for (const i of ["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"] as const) {
    results[i] = !inv.checked.includes(i) ? "skipped" : inv.violationCounts[i] > 0 ? "fail" : "pass";
  }
  const clientOk = t.retries.mismatched.length === 0;
  return {
    ok: inv.ok && clientOk,
    runId: input.runId,
    options: input.options,
    requests: {
      sent: t.requests,
      byStatus: t.statuses,
      errors: t.errors,
      invalid: t.invalid,
      retries: t.retries,
      failed: t.failed,
    },
    transfers: { accepted: t.accepted.length, funding: t.funding, byOutcome },
    throughput: {
      sendSeconds: round(sendSeconds, 2),
      offeredPerSec: round(input.options.transfers / sendSeconds),
      acceptedPerSec: round(main.length / sendSeconds),
      endToEndSeconds: round(endToEndSeconds, 2),
      completedPerSec: round(completed / endToEndSeconds),
      drainSeconds: round(Math.max(0, input.quietAtMs - t.finishedAtMs) / 1000, 2),
    },
    latencyMs: { ...latencyPercentiles(latencies), beforeAccepted },
    requestToOutcomeMs: latencyPercentiles(fromRequest),
    invariants: {
      ok: inv.ok,
      results,
      violationCounts: inv.violationCounts,
      ...(inv.violations[0] ? { firstViolation: inv.violations[0] } : {}),
      violations: inv.violations.slice(0, 20),
      totals: inv.totals,
      events: inv.counts.events,
      dlq: inv.counts.dlq,
    },
    ...(input.openFindings ? { reconcilerOpenFindings: [...input.openFindings] } : {}),
  };
}

const DESCRIPTIONS: Readonly<Record<InvariantName, string>> = {
  I1: "no loss: one terminal outcome per accepted transfer",
  I2: "no duplicate effect",
  I3: "conservation: balances sum to 0 per currency",
  I4: "LEDGER folded from seq 1 = live balances",
  I5: "lineage: cause, correlation, one trace per transfer",
  I6: "every DLQ message has a reason",
  S1: "every prefix of LEDGER solvent",
  M1: "money created only by an authorised mint",
};

/** The report as text for a terminal. */
export function formatReport(r: MeshReport): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`  ${k.padEnd(12)}${v}`);
  const statuses = Object.entries(r.requests.byStatus)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `${s}: ${n}`)
    .join(" · ");
  out.push(`jetmesh mesh report (run ${r.runId})`);
  kv(
    "traffic",
    `${r.options.transfers} transfers at ${r.options.rate}/s over ${r.options.accounts} accounts, after ${r.transfers.funding} fundings from external`,
  );
  const errors = Object.entries(r.requests.errors)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  kv("requests", `${r.requests.sent} HTTP requests · ${statuses}${errors ? ` (errors: ${errors})` : ""}`);
  kv(
    "retries",
    `${r.requests.retries.duplicates} duplicated by the client (${r.requests.retries.concurrent} concurrent) · ${r.requests.retries.afterFailure} resent after 503/409/error · ${r.requests.retries.mismatched.length} answered with another transfer`,
  );
  kv(
    "invalid",
    `${r.requests.invalid.sent} sent · ${r.requests.invalid.answered400} answered 400${r.requests.invalid.unexpected.length ? ` · unexpected: ${r.requests.invalid.unexpected.slice(0, 3).join(", ")}` : ""}`,
  );
  const o = r.transfers.byOutcome;
  const order = ["posted", "reversed", "declined", "rejected", "lost", "multiple"];
  kv(
    "outcomes",
    `${r.transfers.accepted - r.transfers.funding} accepted · ${order
      .filter((k) => o[k] !== undefined || k === "lost")
      .map((k) => `${k} ${o[k] ?? 0}`)
      .join(" · ")}${r.requests.failed.length ? ` · ${r.requests.failed.length} never accepted` : ""}`,
  );
  kv(
    "throughput",
    `${r.throughput.acceptedPerSec}/s accepted over ${r.throughput.sendSeconds} s · ${r.throughput.completedPerSec}/s end to end over ${r.throughput.endToEndSeconds} s · quiet ${r.throughput.drainSeconds} s after the last answer`,
  );
  const l = r.latencyMs;
  const q = r.requestToOutcomeMs;
  kv(
    "latency",
    `202 → outcome p50 ${l.p50} ms · p95 ${l.p95} ms · p99 ${l.p99} ms · max ${l.max} ms (${l.samples} transfers; ${l.beforeAccepted} outcomes were stored before their 202 reached the client)`,
  );
  kv("", `request → outcome p50 ${q.p50} ms · p95 ${q.p95} ms · p99 ${q.p99} ms · max ${q.max} ms`);
  kv(
    "streams",
    `${Object.entries(r.invariants.events)
      .map(([s, n]) => `${s} ${n}`)
      .join(" · ")} · totals ${Object.entries(r.invariants.totals)
      .map(([c, v]) => `${c} ${v}`)
      .join(", ")}`,
  );
  out.push("  invariants");
  for (const [i, res] of Object.entries(r.invariants.results) as [InvariantName, string][]) {
    const n = r.invariants.violationCounts[i];
    out.push(
      `    ${i} ${res === "pass" ? "pass" : res === "skipped" ? "skipped" : `FAIL (${n})`}  ${DESCRIPTIONS[i]}`,
    );
  }
  if (r.reconcilerOpenFindings)
    out.push(
      `  reconciler  ${r.reconcilerOpenFindings.length} open findings${r.reconcilerOpenFindings.length ? `: ${r.reconcilerOpenFindings.slice(0, 3).join("; ")} (pnpm jetmesh findings --open)` : ""}`,
    );
  const v = r.invariants.firstViolation;
  if (v) {
    out.push(`  first violation: ${v.invariant} ${v.message}`);
    for (const e of v.events.slice(0, 8)) {
      out.push(`    ${e.type} ${e.stream} seq ${e.seq}${e.eventId ? ` event ${e.eventId}` : ""}`);
    }
  }
  if (r.requests.retries.mismatched.length) {
    out.push(`  idempotency broken at the gateway: ${r.requests.retries.mismatched.slice(0, 3).join("; ")}`);
  }
  out.push(r.ok ? "  result: PASS" : "  result: FAIL");
  return out.join("\n");
}
