// The reference pipeline as real processes for the observability tests: the whole mesh
// through the runner's library, and single services started from their bundles (`node
// dist/main.mjs` in their folder) for tests that need their own environment or servers.
import { mkdtemp } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type MeshApiKeys, startMesh, writeGatewaySecrets } from "@jetmesh/mesh";
import { type AnyEnvelope, type Envelope, encodeEvent, eventHeaders, subjectFor } from "@jetmesh/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { bundleOf, type ChildHandle, freePort, spawnProcess, waitFor } from "@jetmesh/testkit";

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

/** A running service process, the base URL of its HTTP port and of its ops endpoints. */
export interface RunningService {
  readonly name: string;
  readonly child: ChildHandle;
  readonly url: string;
  /** /healthz, /readyz, /metrics: the gateway's ops port, else `url`. */
  readonly opsUrl: string;
}

/**
 * Starts `services/<name>` with its start command; resolves once /readyz answers 200. The
 * gateway gets a clients file and id secrets of its own (`gatewayKeys` holds its keys).
 */
export async function startService(
  name: string,
  env: Record<string, string>,
  opts: { portKey?: string; readyPath?: string; readyTimeoutMs?: number } = {},
): Promise<RunningService> {
  const port = await freePort();
  const opsPort = name === "gateway" ? await freePort() : port;
  const gateway =
    name === "gateway"
      ? writeGatewaySecrets(await mkdtemp(join(tmpdir(), "jetmesh-obs-gateway-")))
      : undefined;
  if (gateway) gatewayKeys = gateway.apiKeys;
  const child = await spawnProcess({
    name,
    command: process.execPath,
    args: [bundleOf(`services/${name}/src/main.ts`)],
    cwd: `${root}services/${name}`,
    env: {
      ...env,
      [opts.portKey ?? "HTTP_PORT"]: String(port),
      ...(gateway
        ? {
            GATEWAY_OPS_PORT: String(opsPort),
            GATEWAY_CLIENTS_FILE: gateway.clientsFile,
            GATEWAY_ID_SECRETS_FILE: gateway.idSecretsFile,
          }
        : {}),
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  const readyPath = opts.readyPath ?? "/readyz";
  try {
    await waitFor(async () => (await httpGet(`${opsUrl}${readyPath}`)).status === 200, {
      what: `${name} ready`,
      timeoutMs: opts.readyTimeoutMs ?? 120_000,
      intervalMs: 100,
    });
  } catch (err) {
    throw new Error(`${name} did not become ready\n${child.lines().slice(-30).join("\n")}`, { cause: err });
  }
  return { name, child, url, opsUrl };
}

/** The API keys of the last gateway {@link startService} started. */
export let gatewayKeys: MeshApiKeys | undefined;

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
  const url = `http://127.0.0.1:${port}`;
  return { name: "bank-sim", child, url, opsUrl: url };
}

/** The mesh's five pipeline services, the reconciler and the bank, and how to submit a transfer. */
export interface Pipeline {
  readonly bank: { readonly url: string };
  readonly services: Readonly<Record<PipelineService, { readonly url: string; readonly opsUrl: string }>>;
  /** The reconciler beside them (its /metrics on `opsUrl`: findings, lag, the brokers' health). */
  readonly reconciler: { readonly url: string; readonly opsUrl: string };
  /** The mesh's API keys (the operator may send from any account and read every balance). */
  readonly apiKeys: MeshApiKeys;
  /** POST /v1/transfers on the gateway, as the operator. */
  submit(
    body: { from: string; to: string; amountMinor: number; currency: string },
    key: string,
  ): Promise<{ status: number; body: { transferId: string; eventId: string; traceId: string } }>;
  close(): Promise<void>;
}

/** Environment shared by the services: private infra, test-speed protocol settings. */
export function serviceEnv(infra: { natsUrl: string; redisUrl: string }, extra: Record<string, string> = {}) {
  return { NATS_URL: infra.natsUrl, REDIS_URL: infra.redisUrl, ...TRACING_ENV, ...extra };
}

const TRACING_ENV = {
  LOG_LEVEL: "info",
  // Export spans quickly so a test does not wait the default 5 s batch delay.
  OTEL_BSP_SCHEDULE_DELAY: "100",
  OTEL_METRICS_EXPORTER: "none",
  OTEL_LOGS_EXPORTER: "none",
};

/**
 * The whole mesh, started by the local runner's library (`startMesh`: private nats-server
 * and redis-server, the bank simulator, every service from its bundle), with `extraEnv`
 * for every jetmesh service.
 */
export async function startPipeline(extraEnv: Record<string, string> = {}): Promise<Pipeline> {
  const mesh = await startMesh({
    dataDir: await mkdtemp(join(tmpdir(), "jetmesh-obs-")),
    removeDataOnStop: true,
    logLevel: TRACING_ENV.LOG_LEVEL,
    env: { ...TRACING_ENV, ...extraEnv },
  });
  const gateway = mesh.services.gateway.url;
  return {
    bank: { url: mesh.bankUrl },
    services: mesh.services,
    reconciler: mesh.service("reconciler"),
    apiKeys: mesh.apiKeys,
    async submit(body, key) {
      const res = await fetch(`${gateway}/v1/transfers`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "idempotency-key": key,
          authorization: `Bearer ${mesh.apiKeys.operator}`,
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as never };
    },
    close: () => mesh.stop(),
  };
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
