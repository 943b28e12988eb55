import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Bank,
  type BankBehaviour,
  createBank,
  type Issue,
  parseBehaviour,
  parsePayoutRequest,
} from "./bank.ts";

/** Options of {@link startBankSim}. */
export interface StartBankSimOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: a free port, read it back from the handle. */
  readonly port?: number;
  readonly seed?: string;
  readonly behaviour?: Partial<BankBehaviour>;
  /** JSON-lines file that keeps stored answers across restarts. */
  readonly stateFile?: string;
}

/** A running bank simulator. */
export interface BankSimHandle {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** The simulator's state, for tests that want to look without HTTP. */
  readonly bank: Bank;
  /** Stops listening, drops open connections and cancels pending delayed answers. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const MAX_KEY_LENGTH = 255;

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
 * Starts the simulated bank over node:http:
 * - `POST /v1/payouts` (header `Idempotency-Key` required): 201 {reference} the first
 *   time; the stored answer again for the same key and body; 409 for the same key with
 *   another body; 422 {error, reason} when refused; 503 when the error switch fires.
 * - `GET /admin/payouts` → {payouts}; `GET|POST /admin/config`; `GET /healthz`.
 */
export async function startBankSim(opts: StartBankSimOptions = {}): Promise<BankSimHandle> {
  const bank = createBank({
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.behaviour !== undefined ? { behaviour: opts.behaviour } : {}),
    ...(opts.stateFile !== undefined ? { stateFile: opts.stateFile } : {}),
  });
  const closing = new AbortController();

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", "http://bank").pathname;
    const method = req.method ?? "GET";
    if (path === "/v1/payouts" && method === "POST") return payout(req, res);
    if (path === "/admin/payouts" && method === "GET") return send(res, 200, { payouts: bank.payouts() });
    if (path === "/admin/config" && method === "GET") return send(res, 200, bank.behaviour());
    if (path === "/admin/config" && method === "POST") {
      const { change, issues } = parseBehaviour(await readJson(req));
      if (!change) throw new HttpProblem(400, "invalid config", issues);
      return send(res, 200, bank.configure(change));
    }
    if (path === "/healthz" && method === "GET") return send(res, 200, { status: "ok" });
    if (["/v1/payouts", "/admin/payouts", "/admin/config", "/healthz"].includes(path)) {
      throw new HttpProblem(405, `${method} not allowed on ${path}`);
    }
    throw new HttpProblem(404, `no route ${path}`);
  };

  const payout = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const key = req.headers["idempotency-key"];
    if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new HttpProblem(400, "invalid request", [
        { field: "Idempotency-Key", rule: `header of 1 to ${MAX_KEY_LENGTH} characters is required` },
      ]);
    }
    const { request, issues } = parsePayoutRequest(await readJson(req));
    if (!request) throw new HttpProblem(400, "invalid request", issues);
    // Decided and stored before the delay: a client that times out has still been paid,
    // which is the ambiguous outcome an idempotency key exists for.
    const answer = bank.answer(key, request);
    const { latencyMs } = bank.behaviour();
    if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: closing.signal });
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
