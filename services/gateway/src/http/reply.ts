import type { FieldIssue } from "@jetmesh/contracts";

/** What a route answers; the server writes it (JSON unless `text` is given). */
export interface Reply {
  readonly status: number;
  readonly body?: unknown;
  /** A plain-text body with its content type (e.g. Prometheus exposition). */
  readonly text?: { readonly contentType: string; readonly content: string };
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * An answer decided below the route (body too large, not JSON, dependency down). Thrown
 * so that readers of the body need not thread a result type through every caller.
 */
export class HttpError extends Error {
  override readonly name = "HttpError";
  readonly reply: Reply;
  constructor(reply: Reply, options?: { cause?: unknown }) {
    const body = reply.body as { error?: unknown } | undefined;
    super(typeof body?.error === "string" ? body.error : `http ${reply.status}`, options);
    this.reply = reply;
  }
}

export function json(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return headers ? { status, body, headers } : { status, body };
}

/** 400 naming every field that is wrong and the rule it broke. */
export function invalidRequest(issues: readonly FieldIssue[]): Reply {
  return json(400, { error: "invalid request", issues });
}

/**
 * 503 with Retry-After: the request was not acted on and may be sent again as is; with
 * the same Idempotency-Key a retry can never cause a second transfer.
 */
export function unavailable(error: string, retryAfterSeconds: number, detail?: string): Reply {
  return json(503, detail ? { error, detail } : { error }, { "Retry-After": String(retryAfterSeconds) });
}
