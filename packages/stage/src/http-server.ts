import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { metricsRegistry } from "./metrics.ts";

/** Something whose readiness /readyz reports (a running stage, a gateway). */
export interface ReadinessProbe {
  readonly name: string;
  /** `ok` plus details shown in the /readyz body. */
  health(): { ok: boolean; [detail: string]: unknown };
}

/** Extra routes: return true when the request was handled. */
export type Routes = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/**
 * The operational endpoints every service serves: /healthz (the process lives),
 * /readyz (every probe ok: NATS and Redis reachable, consumers bound, not draining),
 * /metrics (Prometheus text). Returns a request handler a service's own HTTP server
 * can delegate to.
 */
export function operationalRoutes(
  probes: readonly ReadinessProbe[],
  registry: Registry = metricsRegistry(),
): Routes {
  return async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") return false;
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
      return true;
    }
    if (path === "/readyz") {
      const checks = Object.fromEntries(probes.map((p) => [p.name, p.health()]));
      const ok = Object.values(checks).every((c) => c.ok);
      res
        .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ ready: ok, checks }));
      return true;
    }
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
      return true;
    }
    return false;
  };
}

/** A started HTTP server. */
export interface HttpServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** Serves the operational endpoints (and `routes`, if given) on host:port (0 = free port). */
export async function serveHttp(opts: {
  host: string;
  port: number;
  logger: Logger;
  probes: readonly ReadinessProbe[];
  routes?: Routes;
  registry?: Registry;
}): Promise<HttpServer> {
  const ops = operationalRoutes(opts.probes, opts.registry);
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (opts.routes && (await opts.routes(req, res))) return;
        if (await ops(req, res)) return;
        res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
      } catch (err) {
        opts.logger.error({ err, url: req.url }, "http handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end('{"error":"internal error"}');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  opts.logger.info({ host: opts.host, port }, "http listening");
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
