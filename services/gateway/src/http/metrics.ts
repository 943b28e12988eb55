import { Counter, Histogram, type Registry } from "prom-client";

/** HTTP metrics; labels are route templates and a fixed set of methods, never raw paths. */
export interface HttpMetrics {
  observe(route: string, method: string, status: number, seconds: number): void;
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Registers (once per registry: several gateways in one test process share it)
 * `jetmesh_http_requests_total{route,method,status}` and
 * `jetmesh_http_request_duration_seconds{route,method}`.
 */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  const requests =
    (registry.getSingleMetric("jetmesh_http_requests_total") as
      | Counter<"route" | "method" | "status">
      | undefined) ??
    new Counter({
      name: "jetmesh_http_requests_total",
      help: "HTTP requests answered, by route template, method and status code",
      labelNames: ["route", "method", "status"] as const,
      registers: [registry],
    });
  const duration =
    (registry.getSingleMetric("jetmesh_http_request_duration_seconds") as
      | Histogram<"route" | "method">
      | undefined) ??
    new Histogram({
      name: "jetmesh_http_request_duration_seconds",
      help: "Time from request to the end of the response, by route template and method",
      labelNames: ["route", "method"] as const,
      buckets: BUCKETS,
      registers: [registry],
    });
  return {
    observe(route, rawMethod, status, seconds) {
      const method = METHODS.has(rawMethod) ? rawMethod : "OTHER";
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route, method }, seconds);
    },
  };
}
