import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The network between the payout stage and the bank, as an HTTP hop on 127.0.0.1 that the
 * chaos runner controls. It forwards every request as it came (a client that hangs up is
 * hung up on upstream too, so the bank sees its answers arrive after the client left) and
 * knows which payout calls are open, so a fault can strike mid-call. One fault needs it:
 * a request that lingers on the wire and reaches the bank after its retry did.
 *
 * Why that fault: the payout asks the bank for a key's status before it sends the key
 * again, so its retries never overlap a request the bank is still working on, unless the
 * first request has not arrived yet when the status query does (one TCP connection stuck
 * in retransmission while a fresh one goes through). Then the retry is processing when the
 * original lands, and the bank answers that original 409 "in use": the race the bank's
 * idempotency keys exist for.
 */

/** What the link did. */
export interface BankLinkStats {
  /** Requests forwarded to the bank. */
  readonly forwarded: number;
  /** Payout requests held back until their retry had gone ahead (or the hold ran out). */
  readonly held: number;
  /** Of those, released right after their retry (the rest after the longest hold). */
  readonly overtaken: number;
  /** The bank's answers to held requests, by status (409 = it was still working on the retry). */
  readonly lateAnswers: Readonly<Record<string, number>>;
  /** Requests whose client hung up before the answer; the link hung up on the bank too. */
  readonly clientLeft: number;
}

/** A running link; see {@link startBankLink}. */
export interface BankLink {
  /** `http://127.0.0.1:<port>`: give it to the payout as PAYOUT_BANK_URL. */
  readonly url: string;
  /** Where requests go (the bank's URL); requests before this is set answer 502. */
  setTarget(url: string): void;
  /**
   * While on, the first `POST /v1/payouts` of each idempotency key is held: it is delivered
   * 20 ms after a later request with the same key was forwarded (the retry overtook it), or
   * after `maxHoldMs`. Turning it off releases nothing early.
   */
  holdOriginals(on: boolean, maxHoldMs?: number): void;
  /** Payout requests forwarded and not yet answered. */
  callsInFlight(): number;
  /** Resolves true as soon as a payout call is open, false after `timeoutMs` without one. */
  waitForCall(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  stats(): BankLinkStats;
  /** Stops listening, drops held requests and open connections. Idempotent. */
  close(): Promise<void>;
}

const PAYOUTS_PATH = "/v1/payouts";
/** How long after the retry was forwarded its original follows: within the bank's processing. */
const RELEASE_AFTER_RETRY_MS = 20;

interface Held {
  release(): void;
}

/** Starts the link on a free loopback port. */
export async function startBankLink(): Promise<BankLink> {
  const link = new Link();
  await link.listen();
  return link;
}

class Link implements BankLink {
  readonly #server = createServer((req, res) => {
    this.#handle(req, res).catch(() => res.destroy());
  });
  readonly #agent = new Agent({ keepAlive: true });
  readonly #held = new Map<string, Held>();
  /** Keys whose original was held in the current hold window: their later requests go through. */
  readonly #seen = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #target: string | undefined;
  #holding = false;
  #maxHoldMs = 3000;
  #open = 0;
  #closed: Promise<void> | undefined;
  #forwarded = 0;
  #heldCount = 0;
  #overtaken = 0;
  #clientLeft = 0;
  readonly #late: Record<string, number> = {};
  url = "";

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: "127.0.0.1", port: 0 }, () => {
        this.#server.off("error", reject);
        this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  setTarget(url: string): void {
    this.#target = url.replace(/\/$/, "");
  }

  holdOriginals(on: boolean, maxHoldMs = 3000): void {
    this.#holding = on;
    this.#maxHoldMs = maxHoldMs;
    if (!on) this.#seen.clear();
  }

  callsInFlight(): number {
    return this.#open;
  }

  async waitForCall(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !signal?.aborted) {
      if (this.#open > 0) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.#open > 0;
  }

  stats(): BankLinkStats {
    return {
      forwarded: this.#forwarded,
      held: this.#heldCount,
      overtaken: this.#overtaken,
      lateAnswers: { ...this.#late },
      clientLeft: this.#clientLeft,
    };
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      for (const t of this.#timers) clearTimeout(t);
      this.#timers.clear();
      this.#held.clear();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
      this.#agent.destroy();
    });
    return this.#closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const key = req.headers["idempotency-key"];
    const isPayout = req.method === "POST" && req.url === PAYOUTS_PATH && typeof key === "string";
    if (isPayout && this.#holding && !this.#seen.has(key)) {
      this.#seen.add(key);
      this.#heldCount++;
      await this.#hold(key);
      await this.#forward(req, res, body, { late: true });
      return;
    }
    const sent = this.#forward(req, res, body, { late: false, payout: isPayout });
    // The retry of a held original went ahead: the original follows it onto the wire.
    const waiting = isPayout ? this.#held.get(key) : undefined;
    if (waiting) {
      await sent;
      this.#overtaken++;
      this.#later(RELEASE_AFTER_RETRY_MS, () => waiting.release());
    }
  }

  #hold(key: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry: Held = {
        release: () => {
          if (this.#held.get(key) !== entry) return;
          this.#held.delete(key);
          resolve();
        },
      };
      this.#held.set(key, entry);
      this.#later(this.#maxHoldMs, () => entry.release());
    });
  }

  #later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      f();
    }, ms);
    this.#timers.add(t);
  }

  /**
   * Sends the request upstream and relays the answer; resolves once the request is written.
   * A late (held) request goes through even though its client has left: its bytes were on
   * the wire. Otherwise a client that hangs up is hung up on upstream as well.
   */
  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    o: { late: boolean; payout?: boolean },
  ): Promise<void> {
    if (!this.#target || this.#closed) {
      if (!res.headersSent) res.writeHead(502).end();
      return Promise.resolve();
    }
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.connection;
    headers["content-length"] = String(body.length);
    const counted = o.payout || o.late;
    if (counted) this.#open++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (counted) this.#open--;
    };
    const up = request(`${this.#target}${req.url ?? "/"}`, {
      method: req.method,
      headers,
      agent: this.#agent,
    });
    this.#forwarded++;
    up.on("response", (answer) => {
      if (o.late) this.#late[answer.statusCode ?? 0] = (this.#late[answer.statusCode ?? 0] ?? 0) + 1;
      if (res.destroyed || res.writableEnded) {
        answer.resume();
        answer.once("end", finish);
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.once("end", finish);
    });
    up.on("error", () => {
      finish();
      if (!res.headersSent && !res.destroyed) res.writeHead(502).end();
      else res.destroy();
    });
    up.on("close", finish);
    if (!o.late) {
      res.once("close", () => {
        if (res.writableFinished) return;
        this.#clientLeft++;
        up.destroy();
      });
    }
    return new Promise<void>((resolve) => {
      up.end(body, () => resolve());
    });
  }
}
