// Row 4: the whole pipeline through the gateway's HTTP API. The mesh runner
// (@jetmesh/mesh) starts nats-server, redis-server and every service as its own process,
// as `pnpm mesh` does; the bench funds the accounts, then measures
// - saturation: 64 clients post transfers back to back for a while; transfers/s is the
//   accepted transfers over the time from the first request to the last outcome;
// - latency: transfers offered at a fixed rate (open loop), each timed from its 202 to the
//   ledger's outcome (posted or declined, or the validator's rejection) appearing on its stream.
// The reconciler (services/reconciler), a service of the catalog, runs in the mesh as it is deployed, from its
// bundle with its default settings: its CPU per transfer is kept out of the pipeline's
// processes and reported as a share of theirs (the budget: under 10%).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Headers } from "@jetmesh/contracts";
import { MEMORY_NODE_OPTIONS, type MeshHandle, ServiceNames, startMesh } from "@jetmesh/mesh";
import { waitFor } from "@jetmesh/testkit";
import { type AcceptedTransfer, nowMs, PLAIN_MIX, startTraffic, type TrafficStats } from "@jetmesh/tools";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Latencies } from "./latency.ts";
import { ProcWatch } from "./proc-stats.ts";
import type { ProcessCost, RowContext, RowResult } from "./rows.ts";

const PROFILE_PRELOAD = fileURLToPath(new URL("./cpu-profile-preload.mjs", import.meta.url));
const OUTCOME_SUBJECTS = ["ledger.posted.>", "ledger.declined.>", "transfers.rejected.>"];
const MB = 1024 * 1024;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Outcomes as the streams receive them, by transferId (the events' correlation id). */
class Outcomes {
  readonly #at = new Map<string, number>();
  readonly #waiting = new Map<string, () => void>();
  constructor(nc: NatsConnection) {
    for (const subject of OUTCOME_SUBJECTS)
      nc.subscribe(subject, {
        callback: (_err, m) => {
          const id = m.headers?.get(Headers.CorrelationId);
          if (!id || this.#at.has(id)) return;
          this.#at.set(id, nowMs());
          this.#waiting.get(id)?.();
          this.#waiting.delete(id);
        },
      });
  }
  at(transferId: string): number | undefined {
    return this.#at.get(transferId);
  }
  /** Resolves with the outcome's time, or undefined after `timeoutMs`. */
  wait(transferId: string, timeoutMs: number): Promise<number | undefined> {
    const t = this.#at.get(transferId);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(transferId);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(transferId, () => {
        clearTimeout(timer);
        resolve(this.#at.get(transferId));
      });
    });
  }
}

/**
 * 202 → outcome, and request → outcome. The outcome can reach its stream before the 202
 * reaches the client (the gateway completes its idempotency record after the publish):
 * such a transfer counts 0 ms from its 202, and is counted.
 */
class Timing {
  readonly fromAccepted: Latencies;
  readonly fromRequest: Latencies;
  outcomeBefore202 = 0;
  constructor(n: number) {
    this.fromAccepted = new Latencies(n);
    this.fromRequest = new Latencies(n);
  }
  record(a: AcceptedTransfer, outcomeAt: number): void {
    if (outcomeAt < a.acceptedAtMs) this.outcomeBefore202++;
    this.fromAccepted.record(Math.max(0, outcomeAt - a.acceptedAtMs));
    this.fromRequest.record(outcomeAt - a.sentAtMs);
  }
  facts(): Record<string, number> {
    const r = this.fromRequest.summary();
    return {
      outcome_before_202: this.outcomeBefore202,
      request_to_outcome_p50_ms: round(r.p50, 2),
      request_to_outcome_p95_ms: round(r.p95, 2),
      request_to_outcome_p99_ms: round(r.p99, 2),
    };
  }
}

/** The traffic options every phase shares: the tools' client traffic, plain transfers of small amounts. */
function trafficBase(mesh: MeshHandle, runId: string, accounts: number) {
  return {
    gatewayUrl: mesh.gatewayUrl,
    apiKeys: mesh.apiKeys,
    runId,
    accounts,
    mix: { ...PLAIN_MIX, amountMinor: [1, 50] as const },
  };
}

/** Every transfer accepted, every answer expected: anything else is a bench bug, not a measure. */
function checked(phase: string, s: TrafficStats): TrafficStats {
  const wrong = [...s.unexpected, ...s.givenUp, ...s.mismatched];
  if (wrong.length)
    throw new Error(`${phase}: ${wrong.length} requests went wrong: ${wrong.slice(0, 3).join("; ")}`);
  return s;
}

function costs(
  used: Record<string, { cpuMs: number; maxRssBytes: number; peakRssBytes: number }>,
  n: number,
): Record<string, ProcessCost> {
  const out: Record<string, ProcessCost> = {};
  for (const [name, c] of Object.entries(used))
    out[name] = {
      cpuUsPerMsg: round((c.cpuMs * 1000) / Math.max(1, n), 2),
      maxRssMb: round(c.maxRssBytes / MB),
      ...(name !== "nats-server" && name !== "redis-server" ? { peakRssMb: round(c.peakRssBytes / MB) } : {}),
    };
  return out;
}

function pids(mesh: MeshHandle): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of ServiceNames) {
    const pid = mesh.service(n).child?.pid;
    if (pid) out[n] = pid;
  }
  if (mesh.nats) out["nats-server"] = mesh.nats.pid;
  if (mesh.redis) out["redis-server"] = mesh.redis.pid;
  return out;
}

/**
 * Waits until the mesh's reconciler (a catalog service, started with the others) has read
 * every stream to its end: its CPU for a row's events is counted only once it has read them all.
 */
async function reconcilerCaughtUp(mesh: MeshHandle): Promise<void> {
  if (!ServiceNames.includes("reconciler")) return;
  const metricsUrl = `${mesh.service("reconciler").opsUrl}/metrics`;
  await waitFor(
    async () => {
      const text = await (await fetch(metricsUrl)).text();
      return ![...text.matchAll(/^jetmesh_reconcile_lag_messages\{[^}]*\} (\S+)$/gm)].some(
        (m) => m[1] !== "0",
      );
    },
    { timeoutMs: 60_000, intervalMs: 200, what: "the reconciler caught up" },
  );
}

/**
 * Takes the reconciler out of a row's processes and states its CPU per transfer against the
 * pipeline's: every process of the mesh but the bank (an external system), nats-server and
 * redis-server included (whose figures include serving the reconciler's reads), and against
 * the services alone.
 */
function reconcilerShare(processes: Record<string, ProcessCost>): {
  processes: Record<string, ProcessCost>;
  facts: Record<string, number>;
} {
  const { reconciler, ...rest } = processes;
  if (!reconciler) return { processes, facts: {} };
  const sum = (names: string[]) => names.reduce((a, n) => a + (rest[n]?.cpuUsPerMsg ?? 0), 0);
  const pipeline = sum(Object.keys(rest).filter((n) => n !== "bank-sim"));
  const services = sum(
    Object.keys(rest).filter((n) => n !== "bank-sim" && n !== "nats-server" && n !== "redis-server"),
  );
  return {
    processes: rest,
    facts: {
      reconciler_cpu_us_per_transfer: reconciler.cpuUsPerMsg,
      pipeline_cpu_us_per_transfer: round(pipeline, 2),
      reconciler_cpu_pct_of_pipeline: round((100 * reconciler.cpuUsPerMsg) / Math.max(pipeline, 1e-9), 2),
      reconciler_cpu_pct_of_services: round((100 * reconciler.cpuUsPerMsg) / Math.max(services, 1e-9), 2),
      reconciler_peak_rss_mb: reconciler.peakRssMb ?? reconciler.maxRssMb,
    },
  };
}

/**
 * NODE_OPTIONS of the mesh's services: `--profile` gives each one a CPU profile in its own
 * folder (src/cpu-profile-preload.mjs, written when it exits); BENCH_MESH_NODE_OPTIONS (say `--max-semi-space-size=4`)
 * and a `--node-flags` set go to every service but the simulated bank, as a deploy's
 * NODE_OPTIONS would. BENCH_MESH_ENV (`KEY=VALUE;KEY=VALUE`, say `JETMESH_LINGER_MS=10`) sets
 * variables of those services over the mesh's own.
 */
function meshNodeOptions(
  ctx: RowContext,
): Partial<Record<(typeof ServiceNames)[number], Record<string, string>>> {
  const extra = [process.env.BENCH_MESH_NODE_OPTIONS ?? "", ...(ctx.nodeFlags ?? [])].join(" ").trim();
  const env = Object.fromEntries(
    (process.env.BENCH_MESH_ENV ?? "")
      .split(";")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")).trim(), kv.slice(kv.indexOf("=") + 1)]),
  );
  const out: Partial<Record<(typeof ServiceNames)[number], Record<string, string>>> = {};
  for (const n of ServiceNames) {
    if (n === "bank-sim") continue;
    // Node 20 refuses --cpu-prof in NODE_OPTIONS: a preload starts the profiler instead.
    const prof = ctx.profileDir ? `--import ${PROFILE_PRELOAD}` : "";
    // On top of the flags the mesh gives the service (a later flag overrides an earlier one).
    const opts = [prof, extra].filter(Boolean).join(" ");
    out[n] = {
      ...env,
      ...(opts ? { NODE_OPTIONS: [MEMORY_NODE_OPTIONS[n], opts].filter(Boolean).join(" ") } : {}),
      ...(ctx.profileDir ? { BENCH_CPU_PROF_DIR: join(ctx.profileDir, `pipeline.${n}`) } : {}),
    };
  }
  return out;
}

/**
 * Row 4: pipeline.saturation and pipeline.latency. With `checkout`, the services run from
 * that copy's bundles (`--baseline`), as `<row>@<name>`.
 */
export async function pipelineRows(
  ctx: RowContext,
  baseline?: { checkout?: string; name: string },
): Promise<RowResult[]> {
  const rows = await pipelineRowsOf(ctx, baseline?.checkout);
  return baseline
    ? rows.map((r) => ({ ...r, id: `${r.id}@${baseline.name}`, label: `${r.label} @${baseline.name}` }))
    : rows;
}

async function pipelineRowsOf(ctx: RowContext, root: string | undefined): Promise<RowResult[]> {
  const mesh = await startMesh({
    ...(root ? { root } : {}),
    dataDir: mkdtempSync(join(tmpdir(), "jetmesh-bench-mesh-")),
    removeDataOnStop: true,
    logLevel: "warn",
    serviceEnv: meshNodeOptions(ctx),
    onStatus: (line) => ctx.log(`bench: mesh: ${line}`),
  });
  const nc = await connect({ servers: mesh.natsUrl, name: "bench-pipeline" });
  try {
    const watched = () => pids(mesh);
    const caughtUp = () => reconcilerCaughtUp(mesh);
    const outcomes = new Outcomes(nc);
    await nc.flush();
    const run = `b${Date.now().toString(36)}`;
    const accounts = ctx.tiny ? 10 : 100;

    // Funding: money in from the external boundary, once per account, posted before anything is measured.
    await startTraffic({
      ...trafficBase(mesh, `${run}-fund`, accounts),
      mode: "demo",
      transfers: 0,
      rate: 1,
      funding: { amountMinor: 10_000_000, currencies: ["EUR"], timeoutMs: 120_000 },
    }).done();

    // Saturation: closed loop, 64 clients (the mesh's client default) back to back.
    const watch = new ProcWatch(watched());
    watch.start();
    const satTraffic = startTraffic({
      ...trafficBase(mesh, `${run}-sat`, accounts),
      mode: "saturating",
      clients: 64,
      durationMs: ctx.pipelineSeconds * 1000,
      funding: false,
    });
    const sat = checked("pipeline.saturation", await satTraffic.done());
    const satAccepted = satTraffic.accepted();
    const t0 = sat.startedAtMs;
    const sendSeconds = (sat.finishedAtMs - t0) / 1000;
    const satLat = new Timing(satAccepted.length);
    let last = t0;
    for (const a of satAccepted) {
      const at = await outcomes.wait(a.transferId, 180_000);
      if (at === undefined) throw new Error(`transfer ${a.transferId} reached no outcome within 180 s`);
      last = Math.max(last, at);
      satLat.record(a, at);
    }
    const satSeconds = (last - t0) / 1000;
    await caughtUp();
    const satShare = reconcilerShare(costs(watch.stop(), satAccepted.length));
    const saturation: RowResult = {
      id: "pipeline.saturation",
      label: "pipeline saturation",
      messages: satAccepted.length,
      seconds: round(satSeconds, 3),
      perSecond: Math.round(satAccepted.length / satSeconds),
      latency: {
        ...satLat.fromAccepted.summary(),
        offeredPerSecond: null,
        spans: "202 → outcome on its stream, under saturation (mostly queueing)",
      },
      subject: "gateway",
      processes: satShare.processes,
      facts: {
        accepted_per_second: Math.round(satAccepted.length / sendSeconds),
        clients: 64,
        ...satLat.facts(),
        ...satShare.facts,
      },
    };
    ctx.log(`bench: pipeline.saturation: ${saturation.perSecond} transfers/s`);

    // Fixed offered load, open loop: one transfer every 1/rate s, whatever the answers do.
    const rate = ctx.pipelineRate;
    const n = Math.max(1, Math.round(rate * ctx.pipelineSeconds));
    const watch2 = new ProcWatch(watched());
    watch2.start();
    const lat = new Timing(n);
    const offered = startTraffic({
      ...trafficBase(mesh, `${run}-lat`, accounts),
      mode: "demo",
      transfers: n,
      rate,
      funding: false,
      // Open loop: the schedule never waits for answers.
      maxInFlight: n,
      maxRequests: n,
    });
    const offeredStats = checked("pipeline.latency", await offered.done());
    const t1 = offeredStats.startedAtMs;
    let lastOutcome = t1;
    let lost = n - offered.accepted().length;
    for (const a of offered.accepted()) {
      const at = await outcomes.wait(a.transferId, 120_000);
      if (at === undefined) {
        lost++;
        continue;
      }
      lastOutcome = Math.max(lastOutcome, at);
      lat.record(a, at);
    }
    if (lost)
      throw new Error(
        `${lost} of ${n} transfers offered at ${rate}/s were not accepted or reached no outcome`,
      );
    await caughtUp();
    const latShare = reconcilerShare(costs(watch2.stop(), n));
    const latencyRow: RowResult = {
      id: "pipeline.latency",
      label: `pipeline @${rate}/s`,
      messages: n,
      seconds: round((lastOutcome - t1) / 1000, 3),
      perSecond: Math.round((n * 1000) / (lastOutcome - t1)),
      latency: {
        ...lat.fromAccepted.summary(),
        offeredPerSecond: rate,
        spans: "202 → outcome on its stream",
      },
      subject: "gateway",
      processes: latShare.processes,
      facts: {
        requests: sat.requests + offeredStats.requests,
        retries: sat.retries + offeredStats.retries,
        ...lat.facts(),
        ...latShare.facts,
      },
    };
    return [saturation, latencyRow];
  } finally {
    await nc.close().catch(() => {});
    await mesh.stop();
  }
}
