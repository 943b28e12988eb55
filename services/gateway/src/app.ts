import { createServer, type Server } from "node:http";
import type { Logger, ReadinessProbe } from "@jetmesh/stage";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import { readAccount } from "./accounts/balances.ts";
import { createHttpMetrics } from "./http/metrics.ts";
import { json, type Reply, unavailable } from "./http/reply.ts";
import type { Route } from "./http/router.ts";
import { createRequestListener } from "./http/server.ts";
import { createStatusStore } from "./status/status-store.ts";
import { buildTransferView } from "./status/status-view.ts";
import { createIdempotencyRecords } from "./transfers/idempotency.ts";
import { createLoadShedder } from "./transfers/load-shedding.ts";
import { type SubmitTransferDeps, submitTransfer, type TransferPublisher } from "./transfers/submit.ts";

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
}

export interface GatewayDeps {
  readonly settings: GatewaySettings;
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

/**
 * The gateway's HTTP server, not yet listening: the API, /healthz, /readyz and /metrics
 * on one port. The caller owns `listen` and `close` (main.ts and tests alike).
 */
export function createGateway(deps: GatewayDeps): Server {
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
      handle: ({ params }) => {
        const id = params.id ?? "";
        if (id.length > ID_MAX) return json(404, { error: "transfer not found" });
        return fromRedis("status projection", async () => {
          const view = buildTransferView(id, await statusStore.read(id));
          return view ? json(200, view) : json(404, { error: "transfer not found" });
        });
      },
    },
    {
      method: "GET",
      template: "/v1/accounts/:id",
      handle: ({ params }) => {
        const id = params.id ?? "";
        if (id.length > ID_MAX) return json(404, { error: "account not found" });
        return fromRedis("ledger projection", async () => {
          const account = await readAccount(deps.redis, id);
          return account ? json(200, account) : json(404, { error: "account not found" });
        });
      },
    },
    { method: "GET", template: "/healthz", handle: () => json(200, { status: "ok" }) },
    {
      method: "GET",
      template: "/readyz",
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
      handle: async () => ({
        status: 200,
        text: { contentType: deps.registry.contentType, content: await deps.registry.metrics() },
      }),
    },
  ];

  const server = createServer(
    createRequestListener({ routes, logger: deps.logger, metrics: createHttpMetrics(deps.registry) }),
  );
  // A client trickling headers or a body holds a socket and, for a body, a claim's slot;
  // node's defaults (60 s headers, 300 s request) are generous for 16 KiB of JSON.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}
