import type { Server, Socket } from "node:net";
import { connect, createServer } from "node:net";

/** Options of {@link startFaultProxy}. */
export interface StartFaultProxyOptions {
  /** Port the proxy forwards to. */
  targetPort: number;
  /** Host the proxy forwards to: only `127.0.0.1` (default), `::1` or `localhost`. */
  targetHost?: string;
}

/**
 * A TCP proxy between a client under test and a loopback server, with switches that
 * inject network faults. All switches act on open and future connections at once.
 */
export interface FaultProxy {
  /** Port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** `<scheme>://127.0.0.1:<port>`, e.g. `url("nats")` or `url("redis")`. */
  url(scheme: string): string;
  /** Destroys every open connection (both sides); new connections are still accepted. */
  cut(): void;
  /** While on, every new connection is reset as soon as it is accepted. Open ones are left alone. */
  setRefusing(on: boolean): void;
  /**
   * While on, connections stay open but nothing is forwarded in either direction, closes
   * included; bytes that arrive meanwhile, and bytes still delayed by latency, are dropped
   * (a black hole). When turned off, forwarding resumes with new bytes.
   */
  setSilent(on: boolean): void;
  /** Delays every chunk by `ms` in both directions, keeping order (0 turns it off). */
  setLatency(ms: number): void;
  /** Turns every fault off: not refusing, not silent, no latency. Open connections stay. */
  reset(): void;
  /** Number of client connections currently open through the proxy. */
  connections(): number;
  /** Stops accepting, destroys every open connection, resolves when the listener is closed. */
  close(): Promise<void>;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * Starts a fault-injection proxy listening on 127.0.0.1 (an OS-chosen free port) and
 * forwarding to `targetHost:targetPort`. When the target refuses, the client's connection
 * is closed. Note that a NATS client learns the real server addresses from INFO; use
 * `ignoreClusterUpdates: true` so it keeps going through the proxy.
 *
 * @throws when `targetHost` is not a loopback name (the kit never talks to other hosts).
 */
export async function startFaultProxy(opts: StartFaultProxyOptions): Promise<FaultProxy> {
  const targetHost = opts.targetHost ?? "127.0.0.1";
  if (!LOOPBACK_HOSTS.has(targetHost)) {
    throw new Error(`fault proxy target must be 127.0.0.1, ::1 or localhost, not ${targetHost}`);
  }
  if (!Number.isInteger(opts.targetPort) || opts.targetPort <= 0 || opts.targetPort > 65_535) {
    throw new RangeError(`invalid target port ${opts.targetPort}`);
  }
  const proxy = new TcpFaultProxy(targetHost, opts.targetPort);
  await proxy.listen();
  return proxy;
}

/** Shared switches, read by every pipe on every chunk. */
interface Faults {
  silent: boolean;
  latencyMs: number;
}

class TcpFaultProxy implements FaultProxy {
  readonly #server: Server;
  readonly #targetHost: string;
  readonly #targetPort: number;
  readonly #links = new Set<Link>();
  readonly #faults: Faults = { silent: false, latencyMs: 0 };
  #refusing = false;
  #port = 0;

  constructor(targetHost: string, targetPort: number) {
    this.#targetHost = targetHost;
    this.#targetPort = targetPort;
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.#accept(socket),
    );
  }

  get port(): number {
    return this.#port;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: "127.0.0.1", port: 0 }, () => {
        this.#server.off("error", reject);
        const address = this.#server.address();
        if (address === null || typeof address === "string") {
          reject(new Error("fault proxy has no port"));
          return;
        }
        this.#port = address.port;
        resolve();
      });
    });
  }

  url(scheme: string): string {
    return `${scheme}://127.0.0.1:${this.#port}`;
  }

  cut(): void {
    for (const link of [...this.#links]) link.destroy();
  }

  setRefusing(on: boolean): void {
    this.#refusing = on;
  }

  setSilent(on: boolean): void {
    this.#faults.silent = on;
    for (const link of this.#links) {
      if (on) link.dropPending();
      else link.resume();
    }
  }

  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`latency must be a non-negative number, got ${ms}`);
    this.#faults.latencyMs = ms;
  }

  reset(): void {
    this.setRefusing(false);
    this.setSilent(false);
    this.setLatency(0);
  }

  connections(): number {
    return this.#links.size;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.cut();
    });
  }

  #accept(client: Socket): void {
    if (this.#refusing) {
      client.on("error", () => {});
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: this.#targetHost, port: this.#targetPort, allowHalfOpen: true });
    const link = new Link(client, upstream, this.#faults, () => this.#links.delete(link));
    this.#links.add(link);
  }
}

/** One proxied connection: a client socket, its upstream socket, a pipe each way. */
class Link {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #pipes: Pipe[];
  readonly #onClosed: () => void;
  #closed = false;

  constructor(client: Socket, upstream: Socket, faults: Faults, onClosed: () => void) {
    this.#client = client;
    this.#upstream = upstream;
    this.#onClosed = onClosed;
    this.#pipes = [new Pipe(client, upstream, faults), new Pipe(upstream, client, faults)];
    for (const socket of [client, upstream]) {
      // A reset on one side resets the other; errors carry no extra meaning here.
      socket.on("error", () => this.destroy());
      socket.on("close", () => this.destroy());
    }
    // The client was accepted paused: start reading only once the target answered.
    upstream.once("connect", () => {
      for (const pipe of this.#pipes) pipe.start();
    });
  }

  dropPending(): void {
    for (const pipe of this.#pipes) pipe.dropPending();
  }

  resume(): void {
    for (const pipe of this.#pipes) pipe.pump();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pipe of this.#pipes) pipe.dropPending();
    this.#client.destroy();
    this.#upstream.destroy();
    this.#onClosed();
  }
}

/** One direction of a link: reads `from`, applies the faults, writes `to` in order. */
class Pipe {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #faults: Faults;
  readonly #queue: { chunk: Buffer; due: number }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #endSent = false;
  #waitingForDrain = false;

  constructor(from: Socket, to: Socket, faults: Faults) {
    this.#from = from;
    this.#to = to;
    this.#faults = faults;
  }

  start(): void {
    this.#from.on("data", (chunk: Buffer) => {
      if (this.#faults.silent) return;
      this.#queue.push({ chunk, due: Date.now() + this.#faults.latencyMs });
      this.pump();
    });
    this.#from.on("end", () => {
      this.#ended = true;
      this.pump();
    });
    this.#from.resume();
  }

  dropPending(): void {
    this.#queue.length = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Writes every chunk that is due, then waits for the next one; forwards the end last. */
  pump(): void {
    if (this.#timer !== undefined || this.#faults.silent || this.#to.destroyed) return;
    const now = Date.now();
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.due > now) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.pump();
        }, head.due - now);
        return;
      }
      this.#queue.shift();
      if (!this.#to.write(head.chunk) && !this.#waitingForDrain) {
        // Backpressure: stop reading until the other side drained.
        this.#waitingForDrain = true;
        this.#from.pause();
        this.#to.once("drain", () => {
          this.#waitingForDrain = false;
          this.#from.resume();
        });
      }
    }
    if (this.#ended && !this.#endSent) {
      this.#endSent = true;
      this.#to.end();
    }
  }
}
