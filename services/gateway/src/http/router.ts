import type { IncomingMessage } from "node:http";
import type { Context, Span } from "@opentelemetry/api";
import type { Principal } from "../auth/clients.ts";
import type { Reply } from "./reply.ts";

/** What a route handler receives. */
export interface RouteRequest {
  readonly req: IncomingMessage;
  readonly url: URL;
  /** Values of the template's `:name` segments, URI-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The request's SERVER span. */
  readonly span: Span;
  /**
   * The context holding that span: the parent to pass on explicitly, since without a
   * registered context manager (telemetry off, tests) `context.active()` stays empty.
   */
  readonly context: Context;
  /** The authenticated client; set on every route that is not `public`. */
  readonly principal?: Principal;
}

export type RouteHandler = (r: RouteRequest) => Promise<Reply> | Reply;

export interface Route {
  readonly method: string;
  /** `/v1/transfers/:id`: literal segments and `:name` parameters. Also the metrics label. */
  readonly template: string;
  /** Anyone may call it (health, metrics on the ops port); otherwise a client must authenticate. */
  readonly public?: boolean;
  readonly handle: RouteHandler;
}

/** Result of matching a request line against the routes. */
export type Match =
  | { readonly kind: "found"; readonly route: Route; readonly params: Record<string, string> }
  /** The path exists with other methods: 405 with Allow. */
  | { readonly kind: "method"; readonly template: string; readonly allow: readonly string[] }
  | { readonly kind: "none" };

interface Compiled {
  readonly route: Route;
  readonly segments: readonly string[];
}

/**
 * A table of routes matched segment by segment. A few routes need no framework; what
 * matters is that the template, not the raw path, names the route in metrics and spans,
 * so label sets stay bounded whatever ids clients send.
 */
export function createRouter(routes: readonly Route[]): (method: string, pathname: string) => Match {
  const compiled: Compiled[] = routes.map((route) => ({ route, segments: split(route.template) }));
  return (method, pathname) => {
    const parts = split(pathname);
    let allowed: { template: string; methods: string[] } | undefined;
    for (const c of compiled) {
      const params = matchSegments(c.segments, parts);
      if (!params) continue;
      if (c.route.method === method || (method === "HEAD" && c.route.method === "GET")) {
        return { kind: "found", route: c.route, params };
      }
      allowed ??= { template: c.route.template, methods: [] };
      allowed.methods.push(c.route.method);
    }
    return allowed
      ? { kind: "method", template: allowed.template, allow: allowed.methods }
      : { kind: "none" };
  };
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

function matchSegments(
  template: readonly string[],
  parts: readonly string[],
): Record<string, string> | undefined {
  if (template.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < template.length; i++) {
    const t = template[i] as string;
    const p = parts[i] as string;
    if (t.startsWith(":")) {
      try {
        params[t.slice(1)] = decodeURIComponent(p);
      } catch {
        return undefined; // malformed %-escape: no such resource
      }
    } else if (t !== p) return undefined;
  }
  return params;
}
