// The floor row: what one transfer costs the broker and a bare HTTP server, with nothing of
// jetmesh around it (src/floor-process.ts). Per transfer, as in the pipeline: one HTTP request
// and its 202, five stream writes with Nats-Msg-Id (INGRESS, VALIDATION, RISK, LEDGER,
// PAYOUTS become FLOOR1..FLOOR5), four stage deliveries and acks (validator, risk, ledger,
// payout) and five status deliveries and acks (the gateway's projection reads every stream).
// Its processes carry the names of their mesh counterparts, so the pipeline rows divide
// process by process (report.ts). Not in it: Redis (the idempotency keys, the ledger's and
// risk's scripts, the status writes), decoding, the bank's HTTP call, logs, metrics, traces.
import { Agent, request } from "node:http";
import { type ChildHandle, waitFor } from "@jetmesh/testkit";
import { AckPolicy, DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { Latencies } from "./latency.ts";
import { ProcWatch, sampleProcess } from "./proc-stats.ts";
import { FLOOR, FLOOR_PACED } from "./report.ts";
import { type ProcessCost, type RowContext, type RowResult, spawnChild } from "./rows.ts";

const STREAMS = 5;
/** The floor's stage processes, named as the pipeline's stages that read FLOOR1..FLOOR4. */
const STAGES = ["validator", "risk", "ledger", "payout"] as const;
const MB = 1024 * 1024;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function resetFloor(ctx: RowContext): Promise<void> {
  const { jsm } = ctx.infra;
  for (let n = 1; n <= STREAMS; n++) {
    const name = `FLOOR${n}`;
    await jsm.streams.delete(name).catch(() => false);
    await jsm.streams.add({
      name,
      subjects: [`floor.${n}`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      duplicate_window: 120_000_000_000,
    });
    const consumer = (durable: string) =>
      jsm.consumers.add(name, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        ack_wait: 30_000_000_000,
        max_ack_pending: ctx.maxAckPending,
      });
    await consumer("status");
    if (n < STREAMS) await consumer("stage");
  }
}

/**
 * `n` transfers posted by `clients` keep-alive clients: back to back, or, with `rate`, each
 * at its time on a fixed schedule (open loop, as the pipeline's paced row); request → 202
 * latencies.
 */
async function post(
  port: number,
  n: number,
  clients: number,
  tag: string,
  rate?: number,
): Promise<Latencies> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const lat = new Latencies(n);
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({
        from: `acc-${i % 97}`,
        to: `acc-${(i % 97) + 1}`,
        amountMinor: 1 + (i % 50),
        currency: "EUR",
      });
      const t0 = performance.now();
      const req = request(
        {
          agent,
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/v1/transfers",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: "Bearer bench-floor-key",
            "idempotency-key": `${tag}-${i}`,
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode !== 202) reject(new Error(`floor gateway answered ${res.statusCode}`));
            else {
              lat.record(performance.now() - t0);
              resolve();
            }
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  if (rate) {
    const t0 = performance.now();
    const sent: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      sent.push(one(i));
    }
    await Promise.all(sent);
  } else
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < n) await one(next++);
      }),
    );
  agent.destroy();
  return lat;
}

/**
 * The floor row: `floor.transfer` at its saturation (64 clients back to back), or with
 * `paced`, `floor.transfer.paced` at the pipeline's offered rate for as long as its paced
 * row: a process that gets one message at a time pays per message what a busy one shares
 * over a batch, so each pipeline row is read against the floor at its own load.
 */
export async function floorRow(ctx: RowContext, paced = false): Promise<RowResult> {
  const id = paced ? FLOOR_PACED : FLOOR;
  const rate = paced ? ctx.pipelineRate : undefined;
  const n = ctx.tiny
    ? 200
    : rate
      ? Math.max(1, Math.round(rate * ctx.pipelineSeconds))
      : Math.min(ctx.messages, 20_000);
  await resetFloor(ctx);
  const children: Record<string, ChildHandle> = {};
  try {
    children.gateway = await spawnChild(ctx, `${id}.gateway`, "floor-process.ts", {
      FLOOR_ROLE: "gateway",
      FLOOR_EXPECT: String(n * STREAMS),
    });
    const listening = await children.gateway.waitForLine(/floor gateway listening \d+/, 60_000);
    const port = Number(/listening (\d+)/.exec(listening)![1]);
    for (const [k, name] of STAGES.entries()) {
      children[name] = await spawnChild(ctx, `${id}.${name}`, "floor-process.ts", {
        FLOOR_ROLE: "stage",
        FLOOR_IN: String(k + 1),
      });
      await children[name].waitForLine(/floor stage \d+ ready/, 60_000);
    }
    const pids: Record<string, number> = { "nats-server": ctx.infra.nats.pid };
    for (const [name, c] of Object.entries(children)) pids[name] = c.pid;
    const watch = new ProcWatch(pids);
    watch.start();
    const t0 = performance.now();
    const lat = await post(port, n, 64, `floor-${Date.now().toString(36)}`, rate);
    await waitFor(() => children.gateway!.lines().some((l) => l.includes("floor done")), {
      timeoutMs: 120_000,
      intervalMs: 5,
      what: `the floor to ack ${n * STREAMS} status deliveries`,
    });
    const seconds = (performance.now() - t0) / 1000;
    const used = watch.stop();
    const processes: Record<string, ProcessCost> = {};
    for (const [name, c] of Object.entries(used)) {
      const child = children[name];
      processes[name] = {
        cpuUsPerMsg: round((c.cpuMs * 1000) / n, 2),
        maxRssMb: round(c.maxRssBytes / MB),
        ...(child ? { peakRssMb: round(sampleProcess(child.pid).peakRssBytes / MB) } : {}),
      };
    }
    return {
      id,
      label: rate ? `floor @${rate}/s` : "floor: raw nats.js + node:http",
      messages: n,
      seconds: round(seconds, 3),
      perSecond: Math.round(n / seconds),
      latency: {
        ...lat.summary(),
        offeredPerSecond: rate ?? null,
        spans: rate
          ? `request → 202 from the bare HTTP server, offered at ${rate}/s`
          : "request → 202 from the bare HTTP server, 64 clients",
      },
      subject: "gateway",
      processes,
      facts: { stream_writes_per_transfer: STREAMS, deliveries_per_transfer: STREAMS + STAGES.length },
    };
  } finally {
    for (const c of Object.values(children)) await c.stop(5_000);
  }
}
