import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { namesFor } from "@jetmesh/contracts";
import { connect } from "@nats-io/transport-node";
import { listFindings } from "@jetmesh/ops";
import { checkInvariants, gatewayBalances } from "@jetmesh/testkit";
import { type MeshHandle, type StartMeshOptions, startMesh } from "./mesh.ts";
import type { ProgressBar } from "./progress.ts";
import { waitForQuiet } from "./quiet.ts";
import { buildReport, type MeshReport } from "./report.ts";
import { sendTraffic } from "./traffic.ts";
import { ServiceNames } from "./services.ts";

/** Options of {@link runDemo}. */
export interface RunDemoOptions extends StartMeshOptions {
  readonly transfers: number;
  readonly rate: number;
  readonly accounts?: number;
  /** How long the pipeline may take to go quiet after the last answer (default 180 s). */
  readonly quietTimeoutMs?: number;
  readonly progress?: ProgressBar;
  /** Called once the mesh is up (the CLI keeps the handle for Ctrl-C). */
  readonly onMesh?: (mesh: MeshHandle) => void;
}

/** How long a quiet pipeline may still owe outcomes before they count as lost. */
const LATE_OUTCOME_WAIT_MS = 30_000;

/** Bank accounts the demo's bank refuses; payouts to them end in ledger.reversed. */
export const REFUSED_BANK_ACCOUNTS = ["bank:refuse-1", "bank:refuse-2"] as const;

/**
 * The whole demo: starts the mesh, sends the traffic, waits for quiet, checks I1 to I6
 * from the streams and the gateway's balances, and builds the report. The mesh is left
 * running: the caller stops it (or keeps it, with --keep).
 */
export async function runDemo(o: RunDemoOptions): Promise<{ mesh: MeshHandle; report: MeshReport }> {
  const bar = o.progress;
  const mesh = await startMesh({
    ...o,
    refuseAccounts: o.refuseAccounts ?? REFUSED_BANK_ACCOUNTS,
    onStatus: (line) => bar?.log(line),
  });
  o.onMesh?.(mesh);
  const runId = `run-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const accounts = o.accounts ?? 100;
  const traffic = await sendTraffic({
    gatewayUrl: mesh.gatewayUrl,
    apiKeys: mesh.apiKeys,
    transfers: o.transfers,
    rate: o.rate,
    accounts,
    runId,
    refusedBankAccounts: o.refuseAccounts ?? REFUSED_BANK_ACCOUNTS,
    onProgress: (p) =>
      bar?.update(
        p.phase,
        p.done,
        p.total,
        p.phase === "transfers"
          ? `${Math.round(p.ratePerSec)}/s · accepted ${p.accepted} · retries ${p.retries}`
          : `accepted ${p.accepted}`,
      ),
  });
  bar?.done();
  const nc = await connect({ servers: mesh.natsUrl, name: "mesh-runner" });
  try {
    const jsm = await jetstreamManager(nc);
    const started = Date.now();
    const deadline = started + (o.quietTimeoutMs ?? 180_000);
    const quiet = () =>
      waitForQuiet(jsm, {
        namespace: mesh.namespace,
        timeoutMs: Math.max(1000, deadline - Date.now()),
        onProgress: (b) =>
          bar?.update(
            "draining",
            0,
            1,
            `${b.outstanding} messages outstanding · ${Math.round((Date.now() - started) / 1000)} s`,
          ),
      });
    const check = () =>
      checkInvariants({
        nc,
        accepted: traffic.accepted,
        balances: gatewayBalances(mesh.gatewayUrl, { apiKey: mesh.apiKeys.operator }),
        accounts: traffic.accounts,
        minters: mesh.minters,
        namespace: mesh.namespace,
      });
    await quiet();
    let quietAtMs = Date.now();
    bar?.log("pipeline quiet; checking the invariants from the streams");
    let invariants = await check();
    // Quiet also means every accepted transfer has its outcome: if some are missing while
    // time remains, look again rather than report a loss that is only late.
    const patience = Math.min(deadline, Date.now() + LATE_OUTCOME_WAIT_MS);
    while (invariants.counts.lost > 0 && Date.now() + 2000 < patience) {
      bar?.log(`${invariants.counts.lost} accepted transfers have no outcome yet; waiting`);
      await new Promise((r) => setTimeout(r, 2000));
      await quiet();
      quietAtMs = Date.now();
      invariants = await check();
    }
    // The reconciler's own verdict, read from RECONCILE (when the catalog runs one): shown,
    // not judged; the checker above is the test of the run.
    const reconciler = ServiceNames.includes("reconciler")
      ? (await listFindings(jetstream(nc), jsm, { open: true }, namesFor(mesh.namespace))).findings
      : undefined;
    const report = buildReport({
      runId,
      options: { transfers: o.transfers, rate: o.rate, accounts },
      traffic,
      invariants,
      quietAtMs,
      ...(reconciler ? { openFindings: reconciler.map((f) => `${f.kind} ${f.key}`) } : {}),
    });
    return { mesh, report };
  } finally {
    await nc.close().catch(() => {});
  }
}
