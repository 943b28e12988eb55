// Row 4: the whole pipeline through the gateway's HTTP API. The mesh runner
// (@jetmesh/mesh) starts nats-server, redis-server and every service as its own process,
// as `pnpm mesh` does; the bench funds the accounts, then measures
// - saturation: 64 clients post transfers back to back for a while; transfers/s is the
//   accepted transfers over the time from the first request to the last outcome;
// - latency: transfers offered at a fixed rate (open loop), each timed from its 202 to the
//   ledger's outcome (posted or declined, or the validator's rejection) appearing on its stream.
// The reconciler (services/reconciler) runs next to the mesh as it is deployed, from its
// bundle with its default settings: its CPU per transfer is kept out of the pipeline's
// processes and reported as a share of theirs (the budget: under 10%).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Headers } from "@jetmesh/contracts";
import { type MeshHandle, ServiceNames, startMesh } from "@jetmesh/mesh";
import { bundleOf, type ChildHandle, freePort, spawnProcess, waitFor } from "@jetmesh/testkit";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Latencies } from "./latency.ts";
import { ProcWatch } from "./proc-stats.ts";
import type { ProcessCost, RowContext, RowResult } from "./rows.ts";

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
          this.#at.set(id, performance.now());
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

interface Accepted {
  readonly transferId: string;
  /** performance.now() when the first request for the transfer was sent. */
  readonly sentAt: number;
  /** performance.now() when the 202 arrived. */
  readonly acceptedAt: number;
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
  record(a: Accepted, outcomeAt: number): void {
    if (outcomeAt < a.acceptedAt) this.outcomeBefore202++;
    this.fromAccepted.record(Math.max(0, outcomeAt - a.acceptedAt));
    this.fromRequest.record(outcomeAt - a.sentAt);
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

/** POSTs one transfer until the gateway accepts it (503/409 in progress are retried with the same key). */
async function postTransfer(
  gatewayUrl: string,
  key: string,
  body: { from: string; to: string; amountMinor: number; currency: string },
  stats: { requests: number; retries: number },
  apiKey: string,
): Promise<Accepted | undefined> {
  const sentAt = performance.now();
  for (let attempt = 0; attempt < 20; attempt++) {
    stats.requests++;
    try {
      const res = await fetch(`${gatewayUrl}/v1/transfers`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "idempotency-key": key,
          authorization: `Bearer ${apiKey}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.status === 202 || res.status === 200) {
        const { transferId } = JSON.parse(text) as { transferId: string };
        return { transferId, sentAt, acceptedAt: performance.now() };
      }
      // 503 (shedding, outage), 409 (same key in progress), 408 and 5xx (timeouts) are
      // retried with the same key, as a client should; anything else is a bench bug.
      if (res.status !== 503 && res.status !== 409 && res.status !== 408 && res.status < 500)
        throw new Error(`gateway answered ${res.status}: ${text}`);
      const ra = Number(res.headers.get("retry-after"));
      await sleep(Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 2000) : 100);
    } catch (err) {
      if ((err as Error).message.startsWith("gateway answered")) throw err;
      await sleep(100);
    }
    stats.retries++;
  }
  return undefined;
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
    const pid = mesh.services[n].child?.pid;
    if (pid) out[n] = pid;
  }
  if (mesh.nats) out["nats-server"] = mesh.nats.pid;
  if (mesh.redis) out["redis-server"] = mesh.redis.pid;
  return out;
}

/** Starts the reconciler's bundle against the mesh, with its defaults; resolves once it is ready. */
async function startReconcilerProcess(
  mesh: MeshHandle,
): Promise<{ child: ChildHandle; caughtUp: () => Promise<void> }> {
  const port = await freePort();
  const child = await spawnProcess({
    name: "reconciler",
    command: process.execPath,
    args: [bundleOf("services/reconciler/src/main.ts")],
    env: {
      NATS_URL: mesh.natsUrl,
      REDIS_URL: mesh.redisUrl,
      RECONCILE_BANK_URL: mesh.bankUrl,
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(port),
      LOG_LEVEL: "warn",
    },
  });
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
    {
      timeoutMs: 60_000,
      what: "the reconciler ready",
    },
  );
  // Its CPU for a row's events is counted only once it has read them all.
  const caughtUp = async () => {
    await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return ![...text.matchAll(/^jetmesh_reconcile_lag_messages\{[^}]*\} (\S+)$/gm)].some(
          (m) => m[1] !== "0",
        );
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "the reconciler caught up" },
    );
  };
  return { child, caughtUp };
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

/** Row 4: pipeline.saturation and pipeline.latency. */
export async function pipelineRows(ctx: RowContext): Promise<RowResult[]> {
  const mesh = await startMesh({
    dataDir: mkdtempSync(join(tmpdir(), "jetmesh-bench-mesh-")),
    removeDataOnStop: true,
    logLevel: "warn",
    onStatus: (line) => ctx.log(`bench: mesh: ${line}`),
  });
  const nc = await connect({ servers: mesh.natsUrl, name: "bench-pipeline" });
  let reconciler: Awaited<ReturnType<typeof startReconcilerProcess>> | undefined;
  try {
    reconciler = await startReconcilerProcess(mesh);
    const { child: reconcilerChild, caughtUp } = reconciler;
    const watched = () => ({ ...pids(mesh), reconciler: reconcilerChild.pid });
    const outcomes = new Outcomes(nc);
    await nc.flush();
    const run = `b${Date.now().toString(36)}`;
    const accounts = ctx.tiny ? 10 : 100;
    const stats = { requests: 0, retries: 0 };

    // Funding: money in from the external boundary, once per account, so transfers post.
    const funded = await Promise.all(
      Array.from({ length: accounts }, (_, i) =>
        postTransfer(
          mesh.gatewayUrl,
          `${run}-fund-${i}`,
          { from: "external", to: `acc-${i}`, amountMinor: 10_000_000, currency: "EUR" },
          stats,
          mesh.apiKeys.operator,
        ),
      ),
    );
    for (const f of funded) {
      if (!f || (await outcomes.wait(f.transferId, 120_000)) === undefined)
        throw new Error("funding did not reach the ledger in time");
    }
    let seq = 0;
    const transfer = () => {
      const i = seq++;
      const a = i % accounts;
      return {
        key: `${run}-t-${i}`,
        body: {
          from: `acc-${a}`,
          to: `acc-${(a + 1 + (i % 7)) % accounts}`,
          amountMinor: 1 + (i % 50),
          currency: "EUR",
        },
      };
    };

    // Saturation: closed loop, 64 requests in flight (the mesh's client default).
    const watch = new ProcWatch(watched());
    watch.start();
    const satAccepted: Accepted[] = [];
    const t0 = performance.now();
    const until = t0 + ctx.pipelineSeconds * 1000;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < until) {
          const t = transfer();
          const a = await postTransfer(mesh.gatewayUrl, t.key, t.body, stats, mesh.apiKeys.customer);
          if (a) satAccepted.push(a);
        }
      }),
    );
    const sendSeconds = (performance.now() - t0) / 1000;
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
    const sat = reconcilerShare(costs(watch.stop(), satAccepted.length));
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
      processes: sat.processes,
      facts: {
        accepted_per_second: Math.round(satAccepted.length / sendSeconds),
        clients: 64,
        ...satLat.facts(),
        ...sat.facts,
      },
    };
    ctx.log(`bench: pipeline.saturation: ${saturation.perSecond} transfers/s`);

    // Fixed offered load, open loop: one transfer every 1/rate s, whatever the answers do.
    const rate = ctx.pipelineRate;
    const n = Math.max(1, Math.round(rate * ctx.pipelineSeconds));
    const watch2 = new ProcWatch(watched());
    watch2.start();
    const lat = new Timing(n);
    const t1 = performance.now();
    const pending: Promise<void>[] = [];
    let lastOutcome = t1;
    let lost = 0;
    for (let i = 0; i < n; i++) {
      const due = t1 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const t = transfer();
      pending.push(
        postTransfer(mesh.gatewayUrl, t.key, t.body, stats, mesh.apiKeys.customer).then(async (a) => {
          const at = a ? await outcomes.wait(a.transferId, 120_000) : undefined;
          if (!a || at === undefined) {
            lost++;
            return;
          }
          lastOutcome = Math.max(lastOutcome, at);
          lat.record(a, at);
        }),
      );
    }
    await Promise.all(pending);
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
      facts: { requests: stats.requests, retries: stats.retries, ...lat.facts(), ...latShare.facts },
    };
    return [saturation, latencyRow];
  } finally {
    await reconciler?.child.stop().catch(() => {});
    await nc.close().catch(() => {});
    await mesh.stop();
  }
}
