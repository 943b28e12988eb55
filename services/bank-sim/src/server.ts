import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { AnswerBodies, type Bank, createBank } from "./bank.ts";
import { parsePayoutRequest } from "./records.ts";
import { type BankBehaviour, type Issue, parseBehaviour, parseOutage } from "./settings.ts";

/** Options of {@link startBankSim}. */
export interface StartBankSimOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: a free port, read it back from the handle. */
  readonly port?: number;
  readonly seed?: string;
  /** Merged into the realistic defaults; `POLITE_BEHAVIOUR` brings back the bank that decides at once. */
  readonly behaviour?: Partial<BankBehaviour>;
  /** JSON-lines file that keeps decisions across restarts. */
  readonly stateFile?: string;
  /** An outage of this many ms from the start; default 0 (none). */
  readonly outageMs?: number;
}

/** A running bank simulator. */
export interface BankSimHandle {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** The simulator's state, for tests that want to look without HTTP. */
  readonly bank: Bank;
  /** Stops listening, drops open connections, cancels processing timers and pending delayed answers. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const MAX_KEY_LENGTH = 255;
const KEY_RULE = `of 1 to ${MAX_KEY_LENGTH} characters is required`;
const STATUS_PATH = /^\/v1\/payouts\/([^/]+)$/;
const ROUTES = [
  "/v1/payouts",
  "/admin/payouts",
  "/admin/refusals",
  "/admin/stats",
  "/admin/config",
  "/admin/outage",
  "/healthz",
];

/** A request the simulator answers with a 4xx; `issues` name the field and the rule. */
class HttpProblem extends Error {
  override readonly name = "HttpProblem";
  readonly status: number;
  readonly issues: readonly Issue[];
  constructor(status: number, message: string, issues: readonly Issue[] = []) {
    super(message);
    this.status = status;
    this.issues = issues;
  }
}

/**
 * Starts the simulated bank over node:http. The payout API (`/v1/...`) behaves like the
 * strictest idempotency-key APIs: a new key is processing for a while (409 "in use" to a
 * concurrent retry), answers may come after the client gave up, keys may be forgotten,
 * and outages answer 503. See the README for every status and body.
 */
export async function startBankSim(opts: StartBankSimOptions = {}): Promise<BankSimHandle> {
  const bank = createBank({
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.behaviour !== undefined ? { behaviour: opts.behaviour } : {}),
    ...(opts.stateFile !== undefined ? { stateFile: opts.stateFile } : {}),
    ...(opts.outageMs !== undefined ? { outageMs: opts.outageMs } : {}),
  });
  const closing = new AbortController();

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", "http://bank").pathname;
    const method = req.method ?? "GET";
    if (path.startsWith("/v1/")) return v1(req, res, path, method);
    if (method === "GET" && path === "/admin/payouts") return send(res, 200, { payouts: bank.payouts() });
    if (method === "GET" && path === "/admin/refusals") return send(res, 200, { refusals: bank.refusals() });
    if (method === "GET" && path === "/admin/stats") return send(res, 200, bank.stats());
    if (method === "GET" && path === "/admin/config") return send(res, 200, bank.behaviour());
    if (method === "POST" && path === "/admin/config") {
      const { change, issues } = parseBehaviour(await readJson(req), bank.behaviour());
      if (!change) throw new HttpProblem(400, "invalid config", issues);
      return send(res, 200, bank.configure(change));
    }
    if (method === "GET" && path === "/admin/outage") return send(res, 200, bank.outage());
    if (method === "POST" && path === "/admin/outage") {
      const { durationMs, issues } = parseOutage(await readJson(req));
      if (durationMs === undefined) throw new HttpProblem(400, "invalid outage", issues);
      return send(res, 200, bank.startOutage(durationMs));
    }
    if (method === "GET" && path === "/healthz") return send(res, 200, { status: "ok" });
    if (ROUTES.includes(path)) throw new HttpProblem(405, `${method} not allowed on ${path}`);
    throw new HttpProblem(404, `no route ${path}`);
  };

  /** The bank's own API: all of it goes dark during an outage, unknown routes included. */
  const v1 = async (req: IncomingMessage, res: ServerResponse, path: string, method: string) => {
    const isPayout = path === "/v1/payouts" && method === "POST";
    const statusKey = STATUS_PATH.exec(path)?.[1];
    if (isPayout) bank.count("requests");
    else if (statusKey !== undefined && method === "GET") bank.count("statusQueries");
    if (bank.outage().active) {
      bank.count("outageRejections");
      return send(res, 503, AnswerBodies.unavailable);
    }
    if (isPayout) return payout(req, res);
    if (statusKey !== undefined) {
      if (method !== "GET")
        throw new HttpProblem(405, `${method} not allowed on /v1/payouts/{idempotencyKey}`);
      return statusQuery(res, statusKey);
    }
    if (path === "/v1/payouts") throw new HttpProblem(405, `${method} not allowed on ${path}`);
    throw new HttpProblem(404, `no route ${path}`);
  };

  const statusQuery = (res: ServerResponse, encoded: string): void => {
    let key: string;
    try {
      key = decodeURIComponent(encoded);
    } catch {
      key = "";
    }
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new HttpProblem(400, "invalid request", [
        { field: "idempotencyKey", rule: `path segment ${KEY_RULE}` },
      ]);
    }
    const status = bank.status(key);
    if (status === undefined) send(res, 404, { error: "unknown idempotency key" });
    else send(res, 200, status);
  };

  const payout = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Set before any await: a client that hangs up while the key is processing must be seen.
    let clientLeft = false;
    res.once("close", () => {
      if (!res.writableFinished) clientLeft = true;
    });
    const key = req.headers["idempotency-key"];
    if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new HttpProblem(400, "invalid request", [
        { field: "Idempotency-Key", rule: `header ${KEY_RULE}` },
      ]);
    }
    const { request, issues } = parsePayoutRequest(await readJson(req));
    if (!request) throw new HttpProblem(400, "invalid request", issues);
    // Decided and stored before any delay below: a client that times out has still been
    // paid, which is the ambiguous outcome an idempotency key exists for.
    const answer = await bank.answer(key, request);
    const { latencyMs, slowMs } = bank.behaviour();
    const delayMs = latencyMs + (answer.slow ? slowMs : 0);
    if (delayMs > 0) await sleep(delayMs, undefined, { signal: closing.signal });
    if (clientLeft || res.destroyed) {
      bank.count("answersAfterClientLeft");
      return;
    }
    if (answer.replayed) res.setHeader("Idempotent-Replayed", "true");
    send(res, answer.status, answer.body);
  };

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (closing.signal.aborted) return;
      if (err instanceof HttpProblem) {
        send(res, err.status, { error: err.message, ...(err.issues.length ? { issues: err.issues } : {}) });
      } else {
        send(res, 500, { error: "internal error" });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    bank,
    close: async () => {
      closing.abort();
      bank.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpProblem(400, "invalid request", [{ field: "/", rule: "must be json" }]);
  }
}
