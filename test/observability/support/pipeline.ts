// The reference pipeline as real processes: private nats-server and redis-server from the
// testkit, every service started by its own start command (`node dist/main.mjs` in its
// folder, the bundle), exactly as an operator would run it on one machine.
import { get } from "node:http";
import { fileURLToPath } from "node:url";
import { type AnyEnvelope, type Envelope, encodeEvent, eventHeaders, subjectFor } from "@jetmesh/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  bundleOf,
  type ChildHandle,
  freePort,
  type NatsServerHandle,
  type RedisServerHandle,
  spawnProcess,
  startNats,
  startRedis,
  waitFor,
} from "@jetmesh/testkit";

export const PIPELINE = ["gateway", "validator", "risk", "ledger", "payout"] as const;
export type PipelineService = (typeof PIPELINE)[number];

const root = fileURLToPath(new URL("../../../", import.meta.url));

/** One HTTP GET without keep-alive (servers here are stopped and restarted). */
export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
  });
}

/** A running service process and the base URL of its HTTP port. */
export interface RunningService {
  readonly name: string;
  readonly child: ChildHandle;
  readonly url: string;
}

/** Starts `services/<name>` with its start command; resolves once /readyz answers 200. */
export async function startService(
  name: string,
  env: Record<string, string>,
  opts: { portKey?: string; readyPath?: string; readyTimeoutMs?: number } = {},
): Promise<RunningService> {
  const port = await freePort();
  const child = await spawnProcess({
    name,
    command: process.execPath,
    args: [bundleOf(`services/${name}/src/main.ts`)],
    cwd: `${root}services/${name}`,
    env: { ...env, [opts.portKey ?? "HTTP_PORT"]: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  const readyPath = opts.readyPath ?? "/readyz";
  try {
    await waitFor(async () => (await httpGet(`${url}${readyPath}`)).status === 200, {
      what: `${name} ready`,
      timeoutMs: opts.readyTimeoutMs ?? 120_000,
      intervalMs: 100,
    });
  } catch (err) {
    throw new Error(`${name} did not become ready\n${child.lines().slice(-30).join("\n")}`, { cause: err });
  }
  return { name, child, url };
}

/** Starts the bank simulator with its start command; resolves once it listens. */
export async function startBank(env: Record<string, string> = {}): Promise<RunningService> {
  const port = await freePort();
  const child = await spawnProcess({
    name: "bank-sim",
    command: process.execPath,
    args: [bundleOf("services/bank-sim/src/main.ts")],
    cwd: `${root}services/bank-sim`,
    env: { BANK_PORT: String(port), ...env },
  });
  await child.waitForLine(/listening/, 120_000);
  return { name: "bank-sim", child, url: `http://127.0.0.1:${port}` };
}

/** Broker, store, bank and the five pipeline services. */
export interface Pipeline {
  readonly nats: NatsServerHandle;
  readonly redis: RedisServerHandle;
  readonly bank: RunningService;
  readonly services: Readonly<Record<PipelineService, RunningService>>;
  /** POST /v1/transfers on the gateway. */
  submit(
    body: { from: string; to: string; amountMinor: number; currency: string },
    key: string,
  ): Promise<{ status: number; body: { transferId: string; eventId: string; traceId: string } }>;
  close(): Promise<void>;
}

/** Environment shared by the services: private infra, test-speed protocol settings. */
export function serviceEnv(infra: { natsUrl: string; redisUrl: string }, extra: Record<string, string> = {}) {
  return {
    NATS_URL: infra.natsUrl,
    REDIS_URL: infra.redisUrl,
    LOG_LEVEL: "info",
    // Export spans quickly so a test does not wait the default 5 s batch delay.
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    ...extra,
  };
}

/** Starts nats-server, redis-server, the bank simulator and every pipeline service. */
export async function startPipeline(extraEnv: Record<string, string> = {}): Promise<Pipeline> {
  const [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const env = serviceEnv({ natsUrl: nats.url, redisUrl: redis.url }, extraEnv);
  const started: RunningService[] = [];
  try {
    const bank = await startBank({ BANK_LATENCY_MS: "0" });
    started.push(bank);
    // Every process provisions the streams it touches (concurrent creators are fine), so
    // all five start at once; under load a cold start alone takes seconds.
    const [gateway, validator, risk, ledger, payout] = await Promise.all([
      startService("gateway", env, { portKey: "GATEWAY_PORT" }),
      startService("validator", env),
      startService("risk", env),
      startService("ledger", env),
      startService("payout", { ...env, PAYOUT_BANK_URL: bank.url }),
    ]);
    started.push(gateway, validator, risk, ledger, payout);
    return {
      nats,
      redis,
      bank,
      services: { gateway, validator, risk, ledger, payout },
      async submit(body, key) {
        const res = await fetch(`${gateway.url}/v1/transfers`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as never };
      },
      async close() {
        await Promise.all(started.map((s) => s.child.stop(10_000)));
        await Promise.all([nats.stop(), redis.stop()]);
      },
    };
  } catch (err) {
    await Promise.all(started.map((s) => s.child.kill()));
    await Promise.all([nats.stop(), redis.stop()]);
    throw err;
  }
}

/**
 * Publishes an event as an upstream producer would (event headers, Nats-Msg-Id), with the
 * caller's `traceparent` when given.
 */
export async function publishTraced(
  js: JetStreamClient,
  env: AnyEnvelope | Envelope,
  traceparent?: string,
): Promise<{ seq: number }> {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
  if (traceparent) h.set("traceparent", traceparent);
  const from = (env.data as { from: string }).from;
  const ack = await js.publish(subjectFor(env.type, from), encodeEvent(env), {
    msgID: env.eventId,
    headers: h,
  });
  return { seq: ack.seq };
}
