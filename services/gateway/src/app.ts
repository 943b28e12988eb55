import { createServer, type RequestListener, type Server } from "node:http";
import type { Logger, ReadinessProbe } from "@jetmesh/stage";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import { readAccount } from "./accounts/balances.ts";
import { forbidden } from "./auth/authorize.ts";
import type { Authenticator } from "./auth/clients.ts";
import { createClientGuard } from "./auth/guard.ts";
import { createRateLimiter, type RatePolicy } from "./auth/rate-limit.ts";
import { createHttpMetrics } from "./http/metrics.ts";
import { json, type Reply, unavailable } from "./http/reply.ts";
import type { Route } from "./http/router.ts";
import { createRequestListener } from "./http/server.ts";
import { createStatusStore } from "./status/status-store.ts";
import { buildTransferView } from "./status/status-view.ts";
import { createIdempotencyRecords } from "./transfers/idempotency.ts";
import { createLoadShedder } from "./transfers/load-shedding.ts";
import { type SubmitTransferDeps, submitTransfer, type TransferPublisher } from "./transfers/submit.ts";
import type { TransferIds } from "./transfers/transfer-ids.ts";

/** The gateway's tunables (see config.ts for their environment names and defaults). */
export interface GatewaySettings {
  readonly maxBodyBytes: number;
  /** Publishes in flight in this process beyond which requests get 503. */
  readonly maxPending: number;
  /** INGRESS consumer lag beyond which requests get 503. */
  readonly maxLag: number;
  readonly idempotencyLeaseMs: number;
  readonly idempotencyTtlMs: number;
  /** How long a client may repeat a request; a timed key older than this is refused. */
  readonly idempotencyHorizonMs: number;
  /** Accept Idempotency-Keys that carry no time (not UUIDv7); never in production. */
  readonly acceptUntimedKeys: boolean;
  readonly inProgressWaitMs: number;
  readonly statusTtlMs: number;
  /** The bucket of a client whose entry in the clients file names none. */
  readonly defaultRate: RatePolicy;
  /** Open connections per port beyond which new ones are refused. */
  readonly maxConnections: number;
  /** Time a client has to send its request headers, then its whole request. */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

export interface GatewayDeps {
  readonly settings: GatewaySettings;
  /** Who may call the API, and which accounts each client owns. */
  readonly authenticator: Authenticator;
  readonly ids: TransferIds;
  readonly redis: Redis;
  readonly publisher: TransferPublisher;
  /** Reads a stored transfers.requested (the original of a duplicate). */
  readonly readStored: SubmitTransferDeps["readStored"];
  /** True while the NATS connection is up. */
  readonly natsConnected: () => boolean;
  /** The validator's INGRESS lag as last polled; undefined when unknown. */
  readonly lag: () => number | undefined;
  readonly logger: Logger;
  /** The process registry (`metricsRegistry()`), served on /metrics. */
  readonly registry: Registry;
  /** More readiness probes, e.g. the status projection's stage handle. */
  readonly probes?: readonly ReadinessProbe[];
}

const ID_MAX = 128;

/** The gateway's two HTTP servers. */
export interface GatewayServers {
  /** The API: every route needs a client's key. */
  readonly api: Server;
  /** /healthz, /readyz and /metrics, for the platform only: never exposed to clients. */
  readonly ops: Server;
}

/**
 * The gateway's HTTP servers, not yet listening. The caller owns `listen` and `close`
 * (main.ts and tests alike).
 */
export function createGateway(deps: GatewayDeps): GatewayServers {
  const s = deps.settings;
  const statusStore = createStatusStore(deps.redis, { ttlMs: s.statusTtlMs });
  const shedder = createLoadShedder({ maxPending: s.maxPending, maxLag: s.maxLag, lag: deps.lag });
  const records = createIdempotencyRecords(deps.redis, {
    leaseMs: s.idempotencyLeaseMs,
    ttlMs: s.idempotencyTtlMs,
  });

  /** Redis reads: an unreachable Redis is a 503, not a 500. */
  const fromRedis = async (what: string, read: () => Promise<Reply>): Promise<Reply> => {
    try {
      return await read();
    } catch (err) {
      deps.logger.warn({ err }, `${what} unavailable`);
      return unavailable(`${what} unavailable`, 2);
    }
  };

  const routes: Route[] = [
    {
      method: "POST",
      template: "/v1/transfers",
      handle: submitTransfer({
        publisher: deps.publisher,
        authenticator: deps.authenticator,
        ids: deps.ids,
        records,
        shedder,
        natsConnected: deps.natsConnected,
        statusStore,
        logger: deps.logger,
        maxBodyBytes: s.maxBodyBytes,
        inProgressWaitMs: s.inProgressWaitMs,
        idempotencyHorizonMs: s.idempotencyHorizonMs,
        acceptUntimedKeys: s.acceptUntimedKeys,
        readStored: deps.readStored,
      }),
    },
    {
      method: "GET",
      template: "/v1/transfers/:id",
      handle: ({ params, principal }) => {
        const id = params.id ?? "";
        if (id.length > ID_MAX || !principal) return json(404, { error: "transfer not found" });
        return fromRedis("status projection", async () => {
          const entries = await statusStore.read(id);
          // Another client's transfer is "not found", exactly like one that does not exist.
          const visible = principal.allAccounts || entries.some((e) => e.actor === principal.clientId);
          const view = visible ? buildTransferView(id, entries) : undefined;
          return view ? json(200, view) : json(404, { error: "transfer not found" });
        });
      },
    },
    {
      method: "GET",
      template: "/v1/accounts/:id",
      handle: ({ params, principal }) => {
        const id = params.id ?? "";
        if (id.length > ID_MAX) return json(404, { error: "account not found" });
        if (!principal || !deps.authenticator.owns(principal, id))
          return forbidden({ field: "/id", rule: `is not an account of client ${principal?.clientId}` });
        return fromRedis("ledger projection", async () => {
          const account = await readAccount(deps.redis, id);
          return account ? json(200, account) : json(404, { error: "account not found" });
        });
      },
    },
  ];
  const opsRoutes: Route[] = [
    { method: "GET", template: "/healthz", public: true, handle: () => json(200, { status: "ok" }) },
    {
      method: "GET",
      template: "/readyz",
      public: true,
      // Same body as the runtime's operational /readyz: { ready, checks: { name: { ok, … } } }.
      handle: () => {
        const checks: Record<string, { ok: boolean; [detail: string]: unknown }> = {
          nats: { ok: deps.natsConnected() },
          redis: { ok: deps.redis.status === "ready" },
        };
        for (const probe of deps.probes ?? []) checks[probe.name] = probe.health();
        const ready = Object.values(checks).every((c) => c.ok);
        return json(ready ? 200 : 503, { ready, checks });
      },
    },
    {
      method: "GET",
      template: "/metrics",
      public: true,
      handle: async () => ({
        status: 200,
        text: { contentType: deps.registry.contentType, content: await deps.registry.metrics() },
      }),
    },
  ];

  const metrics = createHttpMetrics(deps.registry);
  const guard = createClientGuard({
    authenticator: deps.authenticator,
    limiter: createRateLimiter(deps.redis),
    defaultRate: s.defaultRate,
    logger: deps.logger,
  });
  return {
    api: serverFor(createRequestListener({ routes, logger: deps.logger, metrics, guard }), s),
    ops: serverFor(createRequestListener({ routes: opsRoutes, logger: deps.logger, metrics }), s),
  };
}

/**
 * Bounds what one client can hold: a connection limit, and a deadline for the headers and
 * for the whole request, checked every second (node checks every 30 s by default, so a
 * trickling client could hold a socket for up to 30 s past the limit).
 */
function serverFor(listener: RequestListener, s: GatewaySettings): Server {
  const server = createServer(
    {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      connectionsCheckingInterval: 1000,
    },
    listener,
  );
  server.maxConnections = s.maxConnections;
  return server;
}
