import type { ConnectionOptions, NatsConnection } from "@nats-io/transport-node";
import type { CrashOutcome } from "./consumer.ts";
import { NatsConnectionImpl } from "@nats-io/transport-node";
import { CoreBus, type Session } from "./core-bus.ts";
import { parseHeaders } from "./headers.ts";
import { type PublishFate, SimJetStream } from "./jetstream.ts";
import { installFactory, registerEndpoint, SIM_HOST_SUFFIX } from "./sim-transport.ts";

/** Options of {@link createSimNats}. */
export interface SimNatsOptions {
  /** Version the server announces in INFO (nats.js derives its feature flags from it). Default "2.9.10". */
  serverVersion?: string;
  /** The world's only source of randomness (queue groups, ephemeral names, restart check delays). */
  random: () => number;
  /**
   * Decides the fate of each publish a stream captures: "store" (default), "drop-ack" (stored,
   * the client never hears back and its request times out) or "refuse" (not stored, 503).
   */
  onPublish?: (subject: string, headers: Record<string, string>) => PublishFate;
  /**
   * One-way network delay of each frame, per connection (given its name) and direction, in
   * ms (frames keep their order); default none: every hop is one microtask.
   */
  latencyMs?: (connection: string) => number;
}

/** Options of {@link SimNats.connect}. Anything else of nats.js's ConnectionOptions may be added. */
export interface SimConnectOptions extends Partial<ConnectionOptions> {
  /** Connection name (what `disconnect(name)` refers to). */
  name: string;
  /** Inbox prefix for this connection's replies (default `_INBOX`). */
  inboxPrefix?: string;
}

/** Options of {@link SimNats.crash}. */
export interface SimCrashOptions {
  /** How long connections are refused (default 0: back at once). */
  downMs?: number;
  /**
   * Picks the durable (`STREAM/durable`) whose state file the kill tears, if any, from those
   * that have a file (a durable that never delivered writes none).
   */
  tear?: (durables: readonly string[]) => string | undefined;
}

/** One stored message as {@link SimNats.inspect} shows it. */
export interface SimStoredMessage {
  seq: number;
  subject: string;
  headers: Record<string, string>;
  data: Uint8Array;
  /** Virtual milliseconds. */
  ts: number;
}

/** One consumer's state as {@link SimNats.inspect} shows it. */
export interface SimConsumerState {
  name: string;
  /** Next stream sequence to deliver. */
  nextSeq: number;
  ackFloor: { consumer_seq: number; stream_seq: number };
  /** Stream sequence → (delivery count so far, virtual ms of the last delivery or nak offset). */
  pending: { seq: number; deliveries: number; ts: number }[];
  /** Stream sequences waiting to be redelivered. */
  redeliveryQueue: number[];
  /** Pull requests waiting. */
  waiting: number;
}

/** What {@link SimNats.inspect} returns. */
export interface SimInspection {
  streams: {
    name: string;
    firstSeq: number;
    lastSeq: number;
    messages: SimStoredMessage[];
    consumers: SimConsumerState[];
  }[];
  connections: string[];
}

/**
 * An in-process NATS server with JetStream, driven by the real nats.js client over an
 * in-memory transport (the client's own protocol parser, reconnect logic and status events
 * run unmodified). Time comes only from the global timers and `Date.now`, randomness only
 * from `random`: under virtual time a run is a function of its seed.
 */
export interface SimNats {
  /** Host:port clients dial (unique per simulated server). */
  readonly server: string;
  /** Opens a real nats.js connection to this server. Rejects while the server is down. */
  connect(opts: SimConnectOptions): Promise<NatsConnection>;
  /** The next `n` captured publishes are stored but never answered (their requests time out). */
  dropPubAcks(n: number): void;
  /**
   * Restarts the server: every connection is cut (nats.js emits disconnect, then reconnect),
   * pull requests in flight are gone, streams and consumer state survive, un-acked
   * deliveries come back after their deadline. Connections are refused for `downMs`
   * (default 0: back at once).
   */
  restart(downMs?: number): Promise<void>;
  /**
   * Kills the server (SIGKILL) and starts it again, as nats-server 2.9.10 does it
   * (SERVER-BEHAVIOUR.md §8): what {@link restart} does, except that every durable consumer
   * comes back with the state its file held, not the state it had. The file is written at
   * most once per 100 ms, so acks, deliveries, naks with delay and +WPI of the last up to
   * 100 ms are lost: acked messages are delivered again. `tear` may name one durable
   * (`STREAM/durable`, from the list it is given) whose file the kill caught mid-write: its
   * state is gone and it starts over from its deliver policy. Stored messages all survive.
   * Resolves with what each durable lost.
   */
  crash(o?: SimCrashOptions): Promise<CrashOutcome[]>;
  /** Cuts the connections named `name` (they reconnect on their own). */
  disconnect(name: string): void;
  /**
   * Freezes the connections named `name` for `ms`, as a stopped process (SIGSTOP, a long GC
   * pause, a VM migration) looks from the outside: every frame either way, sent now or
   * during the freeze, arrives when it ends, in order; the connection stays up and the
   * server's timers (ack wait, heartbeats) run on.
   */
  freeze(name: string, ms: number): void;
  /** Streams, their messages and their consumers' state, for the world's checks. */
  inspect(): SimInspection;
  /** Cuts every connection, stops every timer, refuses new connections. */
  close(): void;
}

let serial = 0;

/** Creates a simulated NATS server; see {@link SimNats}. */
export function createSimNats(opts: SimNatsOptions): SimNats {
  return new SimNatsImpl(opts);
}

class SimNatsImpl implements SimNats {
  readonly server: string;
  readonly #bus: CoreBus;
  readonly #js: SimJetStream;
  readonly #opts: SimNatsOptions;
  readonly #host: string;
  #dropPubAcks = 0;
  /** Connection name → virtual time its frames are held until. */
  readonly #frozen = new Map<string, number>();
  #up = true;
  #closed = false;
  #unregister: () => void;

  constructor(opts: SimNatsOptions) {
    this.#opts = opts;
    this.#host = `nats-${++serial}${SIM_HOST_SUFFIX}`;
    this.server = `${this.#host}:4222`;
    this.#bus = new CoreBus(opts.random);
    this.#js = new SimJetStream({ bus: this.#bus, random: opts.random, fate: (s, h) => this.#fate(s, h) });
    const latency = opts.latencyMs;
    this.#unregister = registerEndpoint(this.#host, {
      latencyMs: (c) => {
        const d = latency?.(c) ?? 0;
        const until = this.#frozen.get(c);
        return until === undefined ? d : Math.max(d, until - Date.now());
      },
      accept: (write, kill) => {
        if (!this.#up || this.#closed) return new Error("server down");
        const s = this.#bus.attach(write, kill);
        s.greet({
          server_id: "SIMNATS",
          server_name: this.#host,
          version: opts.serverVersion ?? "2.9.10",
          proto: 1,
          go: "go1.19",
          host: this.#host,
          port: 4222,
          headers: true,
          max_payload: 1_048_576,
          jetstream: true,
        });
        return s;
      },
    });
  }

  #fate(subject: string, hdr: Uint8Array | undefined): PublishFate {
    if (this.#dropPubAcks > 0) {
      this.#dropPubAcks--;
      return "drop-ack";
    }
    if (!this.#opts.onPublish) return "store";
    return this.#opts.onPublish(subject, Object.fromEntries(parseHeaders(hdr).pairs));
  }

  async connect(o: SimConnectOptions): Promise<NatsConnection> {
    installFactory();
    const { name, inboxPrefix, ...rest } = o;
    return NatsConnectionImpl.connect({
      maxReconnectAttempts: -1,
      ...rest,
      servers: this.server,
      name,
      inboxPrefix: inboxPrefix ?? "_INBOX",
      resolve: false,
      noRandomize: true,
    } as ConnectionOptions);
  }

  dropPubAcks(n: number): void {
    this.#dropPubAcks += n;
  }

  #cut(filter: (s: Session) => boolean): void {
    for (const s of [...this.#bus.sessions]) if (filter(s)) s.kill();
  }

  restart(downMs = 0): Promise<void> {
    return this.#down(downMs, () => {});
  }

  async crash(o: SimCrashOptions = {}): Promise<CrashOutcome[]> {
    let out: CrashOutcome[] = [];
    await this.#down(o.downMs ?? 0, () => {
      out = this.#js.crashAll(o.tear?.(this.#js.durables()));
    });
    return out;
  }

  /** Stops the server, runs `lose` (what the stop costs), and starts it after `downMs`. */
  async #down(downMs: number, lose: () => void): Promise<void> {
    this.#up = false;
    this.#js.stopAll();
    lose();
    this.#cut(() => true);
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    else await Promise.resolve();
    if (this.#closed) return;
    this.#js.dropEphemerals();
    this.#js.startAll();
    this.#up = true;
  }

  disconnect(name: string): void {
    this.#cut((s) => s.name === name);
  }

  freeze(name: string, ms: number): void {
    this.#frozen.set(name, Math.max(this.#frozen.get(name) ?? 0, Date.now() + ms));
  }

  inspect(): SimInspection {
    const streams = [...this.#js.streams.values()].map((s) => ({
      name: s.config.name,
      firstSeq: s.firstSeq,
      lastSeq: s.lastSeq,
      messages: [...s.ordered()].map((m) => ({
        seq: m.seq,
        subject: m.subject,
        headers: Object.fromEntries(parseHeaders(m.hdr).pairs),
        data: m.data,
        ts: m.ts,
      })),
      consumers: [...(this.#js.consumers.get(s.config.name)?.values() ?? [])].map((c) => ({
        name: c.name,
        nextSeq: c.sseq,
        ackFloor: { consumer_seq: c.adflr, stream_seq: c.asflr },
        pending: [...c.pending].map(([seq, p]) => ({ seq, deliveries: (c.rdc.get(seq) ?? 0) + 1, ts: p.ts })),
        redeliveryQueue: [...c.rdq],
        waiting: c.waiting.length,
      })),
    }));
    return { streams, connections: [...this.#bus.sessions].map((s) => s.name) };
  }

  close(): void {
    this.#closed = true;
    this.#up = false;
    this.#js.close();
    this.#cut(() => true);
    this.#unregister();
  }
}
