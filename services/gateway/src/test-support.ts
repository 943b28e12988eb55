/**
 * Test harness of the gateway's tests: real nats-server and redis-server from the
 * testkit on free ports, and the gateway served in-process on port 0.
 */
import { once } from "node:events";
import { chmodSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type ClientEntry, decodeEvent, newApiKey, parseClients, StreamNames } from "@jetmesh/contracts";
import {
  connectNats,
  createLogger,
  createRedis,
  type Logger,
  type NatsConnection,
  type Redis,
} from "@jetmesh/stage";
import { createEventPublisher } from "@jetmesh/stage/internal";
import { type NatsServerHandle, type RedisServerHandle, startNats, startRedis } from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Registry } from "prom-client";
import { createGateway, type GatewayDeps, type GatewaySettings } from "./app.ts";
import { createApiKeyAuthenticator } from "./auth/clients.ts";
import { ensureIngress } from "./ingress.ts";
import { watchNatsConnection } from "./nats-connection.ts";
import { idempotencyKey } from "./transfers/idempotency.ts";
import { idsFor, scopedKey, storedRequestReader } from "./transfers/submit.ts";
import { parseIdSecrets } from "./transfers/transfer-ids.ts";

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
  defaultRate: { perSecond: 1000, burst: 1000 },
  maxConnections: 256,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
};

/** The API keys of the test clients (fresh per test process; only their hashes reach the gateway). */
export const keys = {
  /** `test-customer`: owns acc-1 … acc-50. */
  customer: newApiKey(),
  /** `test-other`: owns acc-100 … acc-109. */
  other: newApiKey(),
  /** `test-operator`: every account, mints up to 1,000,000,000. */
  operator: newApiKey(),
} as const;

const range = (from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `acc-${from + i}`);

export const testClients: ClientEntry[] = parseClients({
  clients: [
    {
      id: "test-customer",
      role: "customer",
      accounts: range(1, 50),
      keys: [{ id: "k1", sha256: keys.customer.sha256 }],
    },
    {
      id: "test-other",
      role: "customer",
      accounts: range(100, 109),
      keys: [{ id: "k1", sha256: keys.other.sha256 }],
    },
    {
      id: "test-operator",
      role: "operator",
      accounts: ["*"],
      mintMaxMinor: 1_000_000_000,
      keys: [{ id: "k1", sha256: keys.operator.sha256 }],
    },
  ],
});

/** Transfer-id secrets of the tests: one version, valid since the epoch. */
const testIdSecrets = {
  versions: [
    { version: 1, notBefore: "1970-01-01T00:00:00Z", secret: Buffer.alloc(32, 7).toString("base64") },
  ],
};
export const testIds = parseIdSecrets(testIdSecrets);

/** The Authorization header of a key (the customer's by default). */
export function bearer(key: { key: string } = keys.customer): Record<string, string> {
  return { authorization: `Bearer ${key.key}` };
}

/** GET with a client's key (the customer's by default). */
export function getAs(url: string, key: { key: string } = keys.customer): Promise<Response> {
  return fetch(url, { headers: bearer(key) });
}

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
  /** The API port. */
  readonly url: string;
  /** The ops port: /healthz, /readyz, /metrics. */
  readonly opsUrl: string;
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
  const servers = createGateway({
    authenticator: createApiKeyAuthenticator(testClients),
    ids: testIds,
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
  const listen = async (server: typeof servers.api): Promise<string> => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const close = (server: typeof servers.api): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    url: await listen(servers.api),
    opsUrl: await listen(servers.ops),
    registry,
    close: async () => {
      await Promise.all([close(servers.api), close(servers.ops)]);
    },
  };
}

export const transfer = { from: "acc-1", to: "acc-2", amountMinor: 1250, currency: "EUR" } as const;

/**
 * POST /v1/transfers with a JSON body (or a raw string), an optional Idempotency-Key, and
 * the customer's API key unless `apiKey` names another (null: no Authorization at all).
 */
export function postTransfer(
  base: string,
  body: unknown,
  opts: {
    key?: string;
    contentType?: string;
    headers?: Record<string, string>;
    apiKey?: { key: string } | null;
  } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "content-type": opts.contentType ?? "application/json",
    ...(opts.apiKey === null ? {} : bearer(opts.apiKey ?? keys.customer)),
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
      {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key, ...bearer() },
      },
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

/** The ids the gateway gives `client`'s key (the test secrets have one version: time does not matter). */
export function testIdsFor(key: string, client = "test-customer"): { transferId: string; eventId: string } {
  return idsFor(testIds, client, key, new Date().toISOString());
}

/** The Redis key of `client`'s idempotency record for `key`. */
export function recordOf(key: string, client = "test-customer"): string {
  return idempotencyKey(scopedKey(client, key));
}

/**
 * Writes the test clients (hashes only) and id secrets as files the gateway process reads,
 * with the mode secrets must have (0600, or `mode` to see it refused).
 */
export function writeGatewaySecrets(
  dir: string,
  mode = 0o600,
): { clientsFile: string; idSecretsFile: string } {
  const clientsFile = join(dir, "clients.json");
  const idSecretsFile = join(dir, "id-secrets.json");
  writeFileSync(clientsFile, JSON.stringify({ clients: testClients }), { mode });
  writeFileSync(idSecretsFile, JSON.stringify(testIdSecrets), { mode });
  chmodSync(clientsFile, mode);
  chmodSync(idSecretsFile, mode);
  return { clientsFile, idSecretsFile };
}
