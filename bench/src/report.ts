// Ratios, targets and the table printed on stdout. Every ratio divides two figures
// measured in the same run, so a noisy or slower machine moves both sides.
import { table } from "@jetmesh/tools";
import type { RowResult } from "./rows.ts";

export interface Ratio {
  readonly name: string;
  readonly numerator: string;
  readonly denominator: string;
  /** What is divided: throughput, or CPU time per message of the processes under test. */
  readonly of: "messages/s" | "cpu/msg";
  readonly value: number;
  /** The target, when the issue sets one (value must be ≥ it, or ≤ it with `atMost`). */
  readonly target?: number;
  /** The value must be at most the target (a cost), not at least (a rate). */
  readonly atMost?: boolean;
  readonly met?: boolean;
}

export interface Target {
  readonly name: string;
  readonly value: number;
  readonly limit: number;
  readonly unit: string;
  readonly met: boolean;
}

const RATIOS: ReadonlyArray<{ name: string; num: string; den: string; target?: number; cpu?: boolean }> = [
  {
    name: "runtime EO / hand-written EO, plain acks",
    num: "runtime.eo.plain",
    den: "handwritten.eo.plain",
    target: 1,
  },
  {
    name: "runtime EO / hand-written EO, confirmed acks",
    num: "runtime.eo.confirmed",
    den: "handwritten.eo.confirmed",
    target: 1,
  },
  {
    name: "runtime EO / runtime ALO, plain acks",
    num: "runtime.eo.plain",
    den: "runtime.alo.plain",
    target: 0.7,
  },
  {
    name: "runtime EO / runtime ALO, confirmed acks",
    num: "runtime.eo.confirmed",
    den: "runtime.alo.confirmed",
    target: 0.7,
  },
  {
    name: "confirmed / plain, hand-written EO",
    num: "handwritten.eo.confirmed",
    den: "handwritten.eo.plain",
  },
  { name: "confirmed / plain, runtime EO", num: "runtime.eo.confirmed", den: "runtime.eo.plain" },
  { name: "confirmed / plain, runtime ALO", num: "runtime.alo.confirmed", den: "runtime.alo.plain" },
  { name: "publish with Msg-Id / without", num: "broker.publish.msgid", den: "broker.publish" },
  { name: "hand-written EO plain / raw consume+ack", num: "handwritten.eo.plain", den: "broker.consume" },
  { name: "runtime EO plain / raw consume+ack", num: "runtime.eo.plain", den: "broker.consume" },
  {
    name: "runtime EO traced+exported / runtime EO, plain",
    num: "runtime.eo.plain.export",
    den: "runtime.eo.plain",
  },
  {
    name: "CPU/msg runtime EO / hand-written EO, plain",
    num: "runtime.eo.plain",
    den: "handwritten.eo.plain",
    cpu: true,
  },
  {
    name: "CPU/msg runtime EO / runtime ALO, plain",
    num: "runtime.eo.plain",
    den: "runtime.alo.plain",
    cpu: true,
  },
];

const r2 = (x: number) => Math.round(x * 100) / 100;

/** The ratios whose two rows both ran. */
export function ratios(rows: readonly RowResult[]): Ratio[] {
  const by = new Map(rows.map((r) => [r.id, r]));
  const out: Ratio[] = [];
  for (const q of RATIOS) {
    const a = by.get(q.num);
    const b = by.get(q.den);
    if (!a || !b) continue;
    const value = q.cpu
      ? r2(a.processes[a.subject]!.cpuUsPerMsg / b.processes[b.subject]!.cpuUsPerMsg)
      : r2(a.perSecond / b.perSecond);
    out.push({
      name: q.name,
      numerator: q.num,
      denominator: q.den,
      of: q.cpu ? "cpu/msg" : "messages/s",
      value,
      ...(q.target !== undefined ? { target: q.target, met: value >= q.target } : {}),
    });
  }
  out.push(...floorRatios(rows), ...rateRatios(rows));
  for (const b of rows) {
    const at = b.id.indexOf("@");
    const a = at > 0 ? by.get(b.id.slice(0, at)) : undefined;
    if (!a) continue;
    const other = b.id.slice(at + 1);
    // A paced phase runs at its offered rate whatever the stage: only its CPU compares.
    if (!a.facts?.paced)
      out.push({
        name: `${a.id} / the same on ${other}`,
        numerator: a.id,
        denominator: b.id,
        of: "messages/s",
        value: r2(a.perSecond / b.perSecond),
      });
    out.push({
      name: `CPU/msg ${a.id} / the same on ${other}`,
      numerator: a.id,
      denominator: b.id,
      of: "cpu/msg",
      value: r2(a.processes[a.subject]!.cpuUsPerMsg / b.processes[b.subject]!.cpuUsPerMsg),
    });
    // A mesh row's load moves every process alike: the subject's share of the services' CPU
    // compares a change to one service without that (the other services run the same code).
    if (a.id.startsWith("pipeline."))
      out.push({
        name: `CPU share of ${a.subject} among the services, ${a.id} / the same on ${other}`,
        numerator: a.id,
        denominator: b.id,
        of: "cpu/msg",
        value: r2(serviceShare(a) / serviceShare(b)),
      });
  }
  return out;
}

/**
 * The `rate.*` rows: in each phase (a paced rate, or preloaded), the runtime's CPU per message
 * against the hand-written stage's with the same ack mode. The target, runtime EO ≥
 * 1.0× the hand-written stage, is a rate when preloaded; at a paced rate both keep up, so it
 * is judged as CPU per message: the runtime's at most the hand-written stage's.
 */
function rateRatios(rows: readonly RowResult[]): Ratio[] {
  const by = new Map(rows.map((r) => [r.id, r]));
  const out: Ratio[] = [];
  for (const a of rows) {
    const m = /^(rate\..+)\.runtime$/.exec(a.id);
    const b = m ? by.get(`${m[1]}.handwritten`) : undefined;
    if (!m || !b) continue;
    const value = r2(a.processes[a.subject]!.cpuUsPerMsg / b.processes[b.subject]!.cpuUsPerMsg);
    out.push({
      name: `CPU/msg runtime / hand-written, ${m[1]}`,
      numerator: a.id,
      denominator: b.id,
      of: "cpu/msg",
      value,
      target: 1,
      atMost: true,
      met: value <= 1,
    });
    if (!a.facts?.paced)
      out.push({
        name: `runtime / hand-written, ${m[1]}`,
        numerator: a.id,
        denominator: b.id,
        of: "messages/s",
        value: r2(a.perSecond / b.perSecond),
        target: 1,
        met: a.perSecond / b.perSecond >= 1,
      });
  }
  return out;
}

/** The subject's part of the CPU per transfer of every service (servers and the bank left out). */
function serviceShare(r: RowResult): number {
  const services = Object.entries(r.processes).filter(
    ([n]) => n !== "nats-server" && n !== "redis-server" && n !== "bank-sim",
  );
  const all = services.reduce((a, [, p]) => a + p.cpuUsPerMsg, 0);
  return (r.processes[r.subject]?.cpuUsPerMsg ?? 0) / Math.max(all, 1e-9);
}

/** The floor row's id: one transfer's messages with the raw client and a bare HTTP server. */
export const FLOOR = "floor.transfer";
/** The same at the pipeline's offered rate (`--pipeline-rate`), for the pipeline's paced row. */
export const FLOOR_PACED = "floor.transfer.paced";

/**
 * The floor a pipeline row is read against: the paced row against the paced floor (same
 * offered rate), when it ran; saturation against the floor at its own saturation.
 */
function floorOf(rows: readonly RowResult[], r: RowResult): RowResult | undefined {
  const paced = r.id.startsWith("pipeline.latency") ? rows.find((x) => x.id === FLOOR_PACED) : undefined;
  return paced ?? rows.find((x) => x.id === FLOOR);
}

/** CPU per transfer of every process of a row but the external bank (the pipeline's, as the issue counts it). */
export function cpuPerTransfer(r: RowResult): number {
  return Object.entries(r.processes).reduce((a, [n, p]) => (n === "bank-sim" ? a : a + p.cpuUsPerMsg), 0);
}

/**
 * Each pipeline row's CPU per transfer against the floor's, process by process (the floor's
 * processes carry their mesh counterparts' names) and for all of them together.
 */
function floorRatios(rows: readonly RowResult[]): Ratio[] {
  const out: Ratio[] = [];
  for (const r of rows.filter((x) => x.id.startsWith("pipeline."))) {
    const floor = floorOf(rows, r);
    if (!floor) continue;
    out.push({
      name: `CPU/transfer ${r.id} / ${floor.id}, all processes`,
      numerator: r.id,
      denominator: floor.id,
      of: "cpu/msg",
      value: r2(cpuPerTransfer(r) / cpuPerTransfer(floor)),
    });
    for (const [name, p] of Object.entries(floor.processes)) {
      const q = r.processes[name];
      if (!q) continue;
      out.push({
        name: `CPU/transfer ${r.id} / ${floor.id}, ${name}`,
        numerator: r.id,
        denominator: floor.id,
        of: "cpu/msg",
        value: r2(q.cpuUsPerMsg / p.cpuUsPerMsg),
      });
    }
  }
  return out;
}

/** The absolute targets of the issue that this run can judge. */
export function targets(rows: readonly RowResult[]): Target[] {
  const out: Target[] = [];
  for (const r of rows) {
    if (!r.id.startsWith("handwritten") && !r.id.startsWith("runtime") && !r.id.startsWith("pipeline"))
      continue;
    for (const [name, p] of Object.entries(r.processes)) {
      // The simulated bank is an external system, not a stage.
      if (name === "nats-server" || name === "redis-server" || name === "bank-sim") continue;
      const rss = p.peakRssMb ?? p.maxRssMb;
      out.push({ name: `${r.id}: ${name} peak RSS`, value: rss, limit: 150, unit: "MB", met: rss < 150 });
    }
  }
  for (const r of rows) {
    const pct = r.facts?.reconciler_cpu_pct_of_pipeline;
    if (typeof pct !== "number") continue;
    out.push({
      name: `${r.id}: reconciler CPU/transfer, % of the pipeline's (${r.facts?.reconciler_cpu_us_per_transfer} of ${r.facts?.pipeline_cpu_us_per_transfer} µs)`,
      value: pct,
      limit: 10,
      unit: "% (≤)",
      met: pct <= 10,
    });
  }
  for (const r of rows.filter((x) => x.id.startsWith("pipeline."))) {
    const floor = floorOf(rows, r);
    if (!floor) continue;
    const v = r2(cpuPerTransfer(r) / cpuPerTransfer(floor));
    out.push({
      name: `${r.id}: CPU/transfer ÷ ${floor.id}'s (${r2(cpuPerTransfer(r))} / ${r2(cpuPerTransfer(floor))} µs)`,
      value: v,
      limit: 2,
      unit: "× (≤)",
      met: v <= 2,
    });
  }
  const sat = rows.find((r) => r.id === "pipeline.saturation");
  if (sat)
    out.push({
      name: "pipeline saturation",
      value: sat.perSecond,
      limit: 2500,
      unit: "transfers/s (≥)",
      met: sat.perSecond >= 2500,
    });
  const lat = rows.find((r) => r.id === "pipeline.latency");
  if (lat)
    out.push({
      name: `pipeline p99 202→outcome at ${lat.latency.offeredPerSecond}/s`,
      value: lat.latency.p99,
      limit: 50,
      unit: "ms (≤)",
      met: lat.latency.p99 <= 50,
    });
  return out;
}

const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));

/** The table printed by `pnpm bench`. */
export function formatReport(
  rows: readonly RowResult[],
  rs: readonly Ratio[],
  ts: readonly Target[],
): string {
  const header = [
    "row",
    "msg/s",
    "p50 ms",
    "p99 ms",
    "@ msg/s",
    "cpu µs/msg",
    "main µs",
    "sys/msg",
    "nats µs",
    "redis µs",
    "RSS MB",
  ];
  const cells: string[][] = [];
  for (const r of rows) {
    const s = r.processes[r.subject];
    const others = Object.entries(r.processes).filter(
      ([n]) => n !== r.subject && n !== "nats-server" && n !== "redis-server",
    );
    const cpu = others.length
      ? `${f(s?.cpuUsPerMsg)}+${f(others.reduce((a, [, p]) => a + p.cpuUsPerMsg, 0))}`
      : f(s?.cpuUsPerMsg);
    cells.push([
      r.label,
      String(r.perSecond),
      f(r.latency.p50, 2),
      f(r.latency.p99, 2),
      r.latency.offeredPerSecond === null ? "sat." : String(r.latency.offeredPerSecond),
      cpu,
      f(s?.mainCpuUsPerMsg),
      f(s?.syscallsPerMsg, 2),
      f(r.processes["nats-server"]?.cpuUsPerMsg),
      f(r.processes["redis-server"]?.cpuUsPerMsg),
      f(s?.peakRssMb ?? s?.maxRssMb, 0),
    ]);
  }
  const lines = [table(header, cells), ""];
  for (const r of rows) {
    const f50 = r.facts?.request_to_outcome_p50_ms;
    if (f50 === undefined) continue;
    lines.push(
      `${r.label}: request → outcome p50 ${f50} ms, p95 ${r.facts?.request_to_outcome_p95_ms} ms, p99 ${r.facts?.request_to_outcome_p99_ms} ms; ${r.facts?.outcome_before_202} of ${r.latency.count} outcomes were stored before their 202 reached the client (0 ms from the 202)`,
    );
  }
  if (lines.length > 2) lines.push("");
  if (rs.length) {
    lines.push("ratios (same run)");
    const rc: string[][] = [];
    for (const q of rs)
      rc.push([
        q.name,
        q.value.toFixed(2),
        q.target === undefined ? "" : `${q.atMost ? "≤" : "≥"} ${q.target} ${q.met ? "met" : "MISSED"}`,
      ]);
    lines.push(table(["", "value", "target"], rc), "");
  }
  if (ts.length) {
    lines.push("targets");
    const tc: string[][] = [];
    for (const t of ts) tc.push([t.name, f(t.value), `${t.limit} ${t.unit} ${t.met ? "met" : "MISSED"}`]);
    lines.push(table(["", "value", "limit"], tc), "");
  }
  return lines.join("\n");
}
