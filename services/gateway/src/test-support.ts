/**
 * Test harness of the gateway's tests: real nats-server and redis-server from the
 * testkit on free ports, and the gateway served in-process on port 0.
 */
import { once } from "node:events";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { decodeEvent, StreamNames } from "@jetmesh/contracts";
import {
  connectNats,
  createEventPublisher,
  createLogger,
  createRedis,
  type Logger,
  type NatsConnection,
  type Redis,
} from "@jetmesh/stage";
import { type NatsServerHandle, type RedisServerHandle, startNats, startRedis } from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Registry } from "prom-client";
import { createGateway, type GatewayDeps, type GatewaySettings } from "./app.ts";
import { ensureIngress } from "./ingress.ts";
import { watchNatsConnection } from "./nats-connection.ts";
import { storedRequestReader } from "./transfers/submit.ts";

export const logger: Logger = createLogger({
  service: "gateway-test",
  level: process.env.TEST_LOG_LEVEL ?? "silent",
});

export const publisherSettings = { publishTimeoutMs: 1000, publishRetryHorizonMs: 200 } as const;

export const testSettings: GatewaySettings = {
  maxBodyBytes: 16 * 1024,
  maxPending: 64,
  maxLag: 20_000,
  idempotencyLeaseMs: 5000,
  idempotencyTtlMs: 3600_000,
  idempotencyHorizonMs: 3600_000,
  acceptUntimedKeys: true,
  inProgressWaitMs: 300,
  statusTtlMs: 3600_000,
};

export interface Infra {
  readonly nats: NatsServerHandle;
  readonly redisServer: RedisServerHandle;
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  close(): Promise<void>;
}

/** A nats-server and a redis-server of its own, clients connected; INGRESS is not created. */
export async function startInfra(): Promise<Infra> {
  const [nats, redisServer] = await Promise.all([startNats(), startRedis()]);
  const nc = await connectNats({ url: nats.url, name: "gateway-test" });
  const redis = createRedis({ url: redisServer.url, name: "gateway-test", commandTimeoutMs: 1000 });
  const jsm = await jetstreamManager(nc);
  return {
    nats,
    redisServer,
    nc,
    redis,
    jsm,
    js: jetstream(nc),
    async close() {
      await nc.close().catch(() => undefined);
      redis.disconnect();
      await Promise.all([nats.stop(), redisServer.stop()]);
    },
  };
}

/** Creates INGRESS from its contract, as main.ts does. */
export function provisionIngress(infra: Infra): Promise<void> {
  return ensureIngress(infra.jsm, {
    replicas: 1,
    logger,
    publisher: publisherSettings,
    leaseMs: testSettings.idempotencyLeaseMs,
  });
}

export interface RunningGateway {
  readonly url: string;
  readonly registry: Registry;
  close(): Promise<void>;
}

/** Serves a gateway on 127.0.0.1:0 wired to `infra`, with overridable parts. */
export async function serveGateway(
  infra: Infra,
  overrides: Partial<Omit<GatewayDeps, "settings">> & { settings?: Partial<GatewaySettings> } = {},
): Promise<RunningGateway> {
  const registry = overrides.registry ?? new Registry();
  const nats = watchNatsConnection(infra.nc);
  const server = createGateway({
    redis: infra.redis,
    publisher: createEventPublisher({ js: infra.js, settings: publisherSettings, logger, stage: "gateway" }),
    readStored: storedRequestReader((stream, seq) => infra.jsm.streams.getMessage(stream, { seq })),
    natsConnected: nats.connected,
    lag: () => undefined,
    logger,
    registry,
    ...overrides,
    settings: { ...testSettings, ...overrides.settings },
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    registry,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export const transfer = { from: "acc-1", to: "acc-2", amountMinor: 1250, currency: "EUR" } as const;

/** POST /v1/transfers with a JSON body (or a raw string) and an optional key. */
export function postTransfer(
  base: string,
  body: unknown,
  opts: { key?: string; contentType?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "content-type": opts.contentType ?? "application/json",
    ...opts.headers,
  };
  if (opts.key !== undefined) headers["idempotency-key"] = opts.key;
  return fetch(`${base}/v1/transfers`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Every message stored in a stream, decoded, with its headers. */
export async function readStream(
  infra: Infra,
  stream: string = StreamNames.Ingress,
): Promise<
  { seq: number; subject: string; headers: Record<string, string>; env: ReturnType<typeof decodeEvent> }[]
> {
  const info = await infra.jsm.streams.info(stream);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await infra.jsm.streams.getMessage(stream, { seq });
    if (!m) continue;
    const headers: Record<string, string> = {};
    for (const k of m.header?.keys() ?? []) headers[k] = m.header?.get(k) ?? "";
    out.push({ seq, subject: m.subject, headers, env: decodeEvent(m.data) });
  }
  return out;
}

/** Sends a body in chunks without Content-Length and reports the status and whether the socket closed. */
export function postChunked(
  base: string,
  chunk: string,
  chunks: number,
  key: string,
): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/v1/transfers`,
      { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }),
        );
      },
    );
    req.on("error", reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < chunks) {
        sent++;
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}
