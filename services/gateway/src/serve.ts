import { once } from "node:events";
import { EventTypes, namesFor, StreamNames } from "@jetmesh/contracts";
import {
  connectNats,
  createLogger,
  createRedis,
  exitOnConfigError,
  metricsRegistry,
  onShutdown,
  maskUrl,
  serveHttp,
  type StageHandle,
  startTelemetry,
} from "@jetmesh/stage";
import { checkSchemaRegistry } from "@jetmesh/stage/internal";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { loadClientsFile } from "./auth/clients.ts";
import type { GatewayConfig } from "./config.ts";
import { ensureIngress } from "./ingress.ts";
import { createGatewayServers, startStatusProjection } from "./start.ts";
import { statusProjection } from "./status/projection.ts";
import { loadIdSecretsFile } from "./transfers/transfer-ids.ts";

/**
 * Runs the gateway process: secrets first, then telemetry, NATS and Redis, INGRESS, the API
 * and ops servers, the drain on SIGTERM, and the status projection last (it waits for every
 * pipeline stream; /readyz says so meanwhile).
 */
export async function serveGateway(config: GatewayConfig, version: string): Promise<void> {
  const logger = createLogger({ service: "gateway", level: config.logLevel });
  // Secrets first: a clients or id-secrets file that is missing, malformed or readable by
  // others stops the gateway before it connects anywhere.
  const clients = loadClientsFile(config.clientsFile);
  const ids = loadIdSecretsFile(config.idSecretsFile);
  const telemetry = startTelemetry({
    serviceName: "gateway",
    serviceVersion: version,
    ...config.telemetry,
  });
  // Until NATS answers and INGRESS is there, the ops port serves /healthz (alive) and a
  // /readyz that says what the gateway waits for; the full ops server takes the port after.
  let waitingFor = `nats at ${maskUrl(config.natsUrl)}`;
  const early = await serveHttp({
    host: config.httpHost,
    port: config.opsPort,
    logger,
    probes: [{ name: "gateway", health: () => ({ ok: false, waiting_for: waitingFor }) }],
  });
  const nc = await connectNats({ url: config.natsUrl, name: "gateway", auth: config.natsAuth, logger });
  const names = namesFor(config.stage.namespace);
  const redis = createRedis({
    url: config.redisUrl,
    name: "gateway",
    auth: config.redisAuth,
    ...(config.redisSentinel ? { sentinel: config.redisSentinel } : {}),
    logger,
    keyPrefix: names.redisPrefix,
  });
  const jsm = await jetstreamManager(nc);
  waitingFor = `stream ${names.stream(StreamNames.Ingress)}`;
  await ensureIngress(jsm, {
    replicas: config.stage.replicas,
    logger,
    publisher: config.publisher,
    leaseMs: config.gateway.idempotencyLeaseMs,
  });
  // The gateway produces transfers.requested: it may write only a version the registry lists
  // as released (consumers before producers); a missing registry is a warning.
  waitingFor = "the schema registry";
  await checkSchemaRegistry({
    js: jetstream(nc),
    service: "gateway",
    consumes: [],
    produces: [EventTypes.TransferRequested],
    logger,
    namespace: config.stage.namespace,
  }).catch((e: unknown) => {
    exitOnConfigError("gateway", e); // the readable block and exit 2, as for a bad environment
    throw e;
  });
  await early.close();

  const registry = metricsRegistry();
  let draining = false;
  // The status projection (a stage of its own) starts after the API listens: it waits for
  // every pipeline stream (LEDGER is the deploy step's), and /readyz says so meanwhile.
  let projection: StageHandle | undefined;
  let projectionWaits = "start-up";
  const projectionProbe = {
    name: statusProjection.name,
    health: () => projection?.health() ?? { ok: false, waiting_for: projectionWaits },
  };
  const wiring = { nc, jsm, redis, logger, registry, config, clients, ids };
  const { servers, lag } = createGatewayServers(wiring, {
    probes: [projectionProbe, { name: "gateway", health: () => ({ ok: !draining, draining }) }],
  });
  servers.ops.listen(config.opsPort, config.httpHost);
  servers.api.listen(config.httpPort, config.httpHost);
  await Promise.all([once(servers.ops, "listening"), once(servers.api, "listening")]);
  logger.info(
    { host: config.httpHost, port: config.httpPort, ops_port: config.opsPort, clients: clients.length },
    "gateway listening",
  );
  onShutdown(logger, [
    // Turn /readyz 503 first and give load balancers a probe period to notice.
    async () => {
      draining = true;
      await new Promise((r) => setTimeout(r, 1000));
    },
    // Stop accepting; requests in flight finish (their publish is acknowledged or fails).
    () =>
      new Promise<void>((resolve) => {
        servers.api.close(() => resolve());
        servers.api.closeIdleConnections();
      }),
    () => lag.stop(),
    () => projection?.stop(),
    () => nc.drain(),
    () => redis.quit(),
    () => telemetry.shutdown(),
    // Last: /readyz says "draining" until the end.
    () =>
      new Promise<void>((resolve) => {
        servers.ops.close(() => resolve());
        servers.ops.closeAllConnections();
      }),
  ]);
  projection = await startStatusProjection(wiring, {
    onWaiting: (what) => {
      projectionWaits = what;
    },
  });
}
