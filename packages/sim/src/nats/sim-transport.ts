import type { ConnectionOptions, Server, Transport } from "@nats-io/transport-node";
import { deferred, errors, setTransportFactory } from "@nats-io/transport-node";
import { NodeTransport } from "@nats-io/transport-node/lib/node_transport.js";
import type { Session } from "./core-bus.ts";

/** What a simulated server offers its transports. */
export interface SimEndpoint {
  /** A new session writing to the transport, or an error when the server refuses connections. */
  accept(write: (b: Uint8Array) => void, kill: () => void): Session | Error;
  /**
   * One-way delay of each frame in ms, given the connection's name (frames of a connection
   * stay in order, as on TCP); none by default.
   */
  latencyMs?: (connection: string) => number;
}

/**
 * Delivers frames after `latency` ms each, never overtaking an earlier frame of the same
 * direction (TCP's order), on the global timers; at once while no latency is set.
 *
 * Each delayed frame has its own timer, and a timer that fires delivers every frame queued
 * before its own first. Virtual time runs timers due at one moment in the order they were
 * set, so there each timer delivers just its frame; real timers of different delays may run
 * out of that order (node keeps one list per delay, timed from its cached loop time), and a
 * frame set later could otherwise pass one set earlier, as a PING its PUB.
 */
class Wire {
  #lastAt = 0;
  readonly #queue: Array<() => void> = [];
  constructor(
    private readonly latency: (() => number) | undefined,
    /** Without delay: deliver in this task (server → client) or the next microtask (client → server). */
    private readonly now: "sync" | "microtask",
  ) {}
  carry(deliver: () => void): void {
    const d = this.latency?.() ?? 0;
    if (d <= 0 && this.#queue.length === 0) {
      if (this.now === "sync") deliver();
      else queueMicrotask(deliver);
      return;
    }
    const at = Math.max(this.#lastAt, Date.now() + Math.max(0, d));
    this.#lastAt = at;
    this.#queue.push(deliver);
    setTimeout(() => {
      // Up to and including this frame; nothing when an earlier-set timer already took it.
      for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
        next();
        if (next === deliver) return;
      }
    }, at - Date.now());
  }
}

const endpoints = new Map<string, SimEndpoint>();

/** Host names of simulated servers end in this, so the shared factory can tell them apart. */
export const SIM_HOST_SUFFIX = ".sim.invalid";

/** Registers a simulated server under `host`; returns the function that removes it. */
export function registerEndpoint(host: string, ep: SimEndpoint): () => void {
  endpoints.set(host, ep);
  installFactory();
  return () => endpoints.delete(host);
}

/**
 * nats-core keeps one transport factory per process, and `connect` of transport-node
 * replaces it with its socket factory. Ours dials simulated hosts in memory and hands any
 * other host to the socket transport, so real and simulated connections can coexist; it is
 * installed again before every simulated connect.
 */
export function installFactory(): void {
  setTransportFactory({
    factory: () => new RoutingTransport(),
    // No DNS for simulated hosts; real hosts are resolved by the socket transport itself.
    dnsResolveFn: undefined,
  });
}

class RoutingTransport implements Transport {
  readonly version = "3.3.1";
  readonly lang = "nats.js-sim";
  #inner: Transport | undefined;
  // nats-core asks for closed() before it connects: hand out our own promise and settle it
  // from whichever transport the dial picks.
  readonly #closed = deferred<undefined | Error>();
  get closeError(): Error | undefined {
    return this.#inner?.closeError;
  }
  get isClosed(): boolean {
    return this.#inner?.isClosed ?? false;
  }
  connect(server: Server, opts: ConnectionOptions): Promise<void> {
    this.#inner = server.hostname.endsWith(SIM_HOST_SUFFIX)
      ? new SimTransport()
      : (new NodeTransport() as unknown as Transport);
    this.#inner.closed().then(
      (v) => this.#closed.resolve(v ?? undefined),
      (e: unknown) => this.#closed.resolve(e as Error),
    );
    return this.#inner.connect(server, opts);
  }
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return (this.#inner as Transport)[Symbol.asyncIterator]();
  }
  isEncrypted(): boolean {
    return this.#inner?.isEncrypted() ?? false;
  }
  send(frame: Uint8Array): void {
    this.#inner?.send(frame);
  }
  close(err?: Error): Promise<void> {
    return this.#inner?.close(err) ?? Promise.resolve();
  }
  disconnect(): void {
    this.#inner?.disconnect();
  }
  closed(): Promise<undefined | Error> {
    return this.#closed;
  }
  discard(): void {
    this.#inner?.discard();
  }
}

/** An in-memory transport to a simulated server: bytes both ways, nothing on the wire. */
class SimTransport implements Transport {
  readonly version = "3.3.1";
  readonly lang = "nats.js-sim";
  closeError: Error | undefined;
  #session: Session | undefined;
  #yields: Uint8Array[] = [];
  #signal = deferred<void>();
  #closed = deferred<undefined | Error>();
  #done = false;
  #connected = false;
  #in = new Wire(undefined, "sync");
  #out = new Wire(undefined, "microtask");

  get isClosed(): boolean {
    return this.#done;
  }

  async connect(server: Server, opts: ConnectionOptions): Promise<void> {
    const ep = endpoints.get(server.hostname);
    if (!ep) throw new errors.ConnectionError("connection refused");
    const name = opts.name ?? "";
    const latency = ep.latencyMs;
    const delay = latency ? () => latency(name) : undefined;
    this.#in = new Wire(delay, "sync");
    this.#out = new Wire(delay, "microtask");
    const s = ep.accept(
      (b) => this.#in.carry(() => this.#push(b)),
      () => {
        void this.#close(new errors.ConnectionError("connection closed by the server"));
      },
    );
    if (s instanceof Error) throw new errors.ConnectionError("connection refused", { cause: s });
    this.#session = s;
    this.#connected = true;
    await Promise.resolve();
  }

  #push(b: Uint8Array): void {
    if (this.#done) return;
    this.#yields.push(b);
    this.#signal.resolve();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this.#iterate();
  }

  async *#iterate(): AsyncIterableIterator<Uint8Array> {
    while (true) {
      if (this.#yields.length === 0) await this.#signal;
      const ys = this.#yields;
      this.#yields = [];
      for (const y of ys) yield y;
      if (this.#done) break;
      if (this.#yields.length === 0) this.#signal = deferred<void>();
    }
  }

  isEncrypted(): boolean {
    return false;
  }

  send(frame: Uint8Array): void {
    if (this.#done || !this.#session) return;
    const s = this.#session;
    const copy = frame.slice();
    // One hop of latency: the server reads after the client's current task (or later).
    this.#out.carry(() => {
      if (!this.#done) s.receive(copy);
    });
  }

  close(err?: Error): Promise<void> {
    return this.#close(err);
  }

  disconnect(): void {
    void this.#close(undefined);
  }

  async #close(err: Error | undefined): Promise<void> {
    if (!this.#connected || this.#done) return;
    this.#done = true;
    this.closeError = err;
    this.#session?.kill();
    this.#signal.resolve();
    this.#closed.resolve(err);
  }

  closed(): Promise<undefined | Error> {
    return this.#closed;
  }

  discard(): void {
    this.#done = true;
    this.#session?.kill();
    this.#signal.resolve();
  }
}
